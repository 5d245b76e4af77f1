"""Where models live: $NOMOAT_HOME, else `models/` of the source checkout nomoat runs from,
else ~/.cache/nomoat. The default model's package is `<home>/SmolLM2-135M-Instruct/`."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "SmolLM2-135M-Instruct"


def models_home() -> Path:
    env = os.environ.get("NOMOAT_HOME")
    if env:
        return Path(env)
    root = repo_root()
    return root / "models" if root else Path.home() / ".cache" / "nomoat"


def default_model_dir() -> Path:
    return models_home() / DEFAULT_MODEL


def repo_root() -> Path | None:
    """The source checkout nomoat runs from, if any."""
    repo = Path(__file__).resolve().parents[2]
    return repo if (repo / "pyproject.toml").is_file() and (repo / "py" / "nomoat").is_dir() else None


def web_dist() -> Path:
    """The built browser runtime (web/dist: nomoat.js, worker, pyodide/, ort/, wheels/)."""
    env = os.environ.get("NOMOAT_WEB")
    if env:
        return Path(env)
    root = repo_root()
    return (root / "web" / "dist") if root else Path.home() / ".cache" / "nomoat" / "web"
