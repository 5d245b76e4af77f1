"""Build an offline JupyterLite site whose Pyodide kernel runs nomoat, and serve it.

    .venv/bin/python examples/jupyterlite/build.py               # after `make setup` (or `make web`)
    .venv/bin/python examples/jupyterlite/build.py --serve 8800  # then open the printed URL

The site (.cache/jupyterlite/site/ unless --out says otherwise) requests nothing outside its origin:

    static/pyodide/   Pyodide from web/dist (npm `pyodide`) plus every wheel the kernel and nomoat
                      load, all registered in pyodide-lock.json with their sha256: micropip, comm and
                      the IPython stack (pure wheels from PyPI, downloaded once into
                      .cache/jupyterlite/wheels/), nomoat, jinja2 and a pure-Python markupsafe
                      (web/dist/wheels/). The kernel loads what a cell imports from the lock, so
                      `import nomoat` needs no install step.
    nomoat/           nomoat's JS runtime (runtime.mjs and the modules it imports, ort/) and models/<default model>/
                      and models/all-MiniLM-L6-v2/ where converted (hard links). jupyter-lite.json hands the
                      kernel NOMOAT_ASSETS so that nomoat's Python finds them from the kernel's worker.
    files/, api/contents/all.json   the notebook and its listing.

The first build installs the pinned jupyterlite-core and jupyterlite-pyodide-kernel into this
Python if missing and downloads the kernel's wheels from PyPI; later builds are offline (~2 s).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = ROOT / ".cache" / "jupyterlite"
WHEELS = CACHE / "wheels"  # PyPI wheels for the kernel, downloaded once
NOTEBOOK = HERE / "nomoat.ipynb"

TOOLS = {"jupyterlite-core": "0.8.6", "jupyterlite-pyodide-kernel": "0.8.6"}  # 0.8.6 targets Pyodide 314
# What the kernel loads at start: micropip, then piplite installs ipykernel's shim (bundled with the
# kernel extension) and, through the lock, these; the lock's `depends` bring the rest. comm is not
# in Pyodide's lock: it is added at this version.
KERNEL_PACKAGES = ["micropip", "ipython", "jedi", "comm"]
NOT_IN_LOCK = {"comm": "0.2.3"}
# The kernel's worker scripts, relative to the site root: NOMOAT_ASSETS is resolved against them.
WORKER_DIR = "extensions/@jupyterlite/pyodide-kernel-extension/static/"


def log(msg: str) -> None:
    print(f"[jupyterlite] {msg}", flush=True)


# --- inputs -------------------------------------------------------------------------------------

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


def inputs() -> tuple[Path, list[Path]]:
    """web/dist and the model packages (the default model; the embedding model all-MiniLM-L6-v2 too
    where `make setup` converted it), or exit saying what to run."""
    sys.path.insert(0, str(ROOT / "py"))
    from nomoat.home import default_model_dir, models_home, web_dist

    dist, model, embedder = web_dist(), default_model_dir(), models_home() / "all-MiniLM-L6-v2"
    if not (dist / "runtime.mjs").is_file() or not list((dist / "wheels").glob("nomoat-*.whl")):
        sys.exit(f"{dist} is not built: run 'make web' first.")
    if not (model / "nomoat.json").is_file():
        sys.exit(f"The default model is not converted ({model}/nomoat.json is missing): run 'make setup'.")
    return dist, [model, *([embedder] if (embedder / "nomoat.json").is_file() else [])]


def pypi_wheel(name: str, version: str) -> Path:
    """The pure wheel of name==version: from the cache, else downloaded from PyPI."""
    stem = name.replace("-", "_").lower()
    found = [p for p in WHEELS.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")]
    if found:
        return found[0]
    log(f"downloading {name}=={version} from PyPI")
    WHEELS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-qq", "--no-deps", "--only-binary", ":all:",
                    "--python-version", "3.14", "--implementation", "py", "--abi", "none", "--platform", "any",
                    "-d", str(WHEELS), f"{name}=={version}"], check=True)
    return pypi_wheel(name, version)


# --- Pyodide and its lock -------------------------------------------------------------------------

def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def wheel_name(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return canonical(name), version


def closure(packages: dict, names: list[str]) -> list[str]:
    """names and all they depend on, by the lock's `depends`, as the lock's keys."""
    seen: list[str] = []
    todo = list(names)
    while todo:
        n = canonical(todo.pop())
        if n not in seen:
            seen.append(n)
            todo.extend(packages[n]["depends"] if n in packages else [])
    return sorted(seen)


def register(packages: dict, wheel: Path, pyodide_dir: Path, depends: list[str] | None = None) -> None:
    """Put wheel next to Pyodide and point its lock entry (made if new) at it."""
    name, version = wheel_name(wheel)
    shutil.copy2(wheel, pyodide_dir / wheel.name)
    entry = packages.get(name) or {
        "name": name, "install_dir": "site", "package_type": "package", "unvendored_tests": False,
        "depends": depends or [], "imports": [name.replace("-", "_")], "tool": {},
    }
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    entry.update(file_name=wheel.name, version=version, sha256=digest)
    packages[name] = entry


def stage_pyodide(dist: Path, lite: Path) -> None:
    """lite/static/pyodide (where jupyterlite-pyodide-kernel looks): Pyodide, the wheels, the lock."""
    target = lite / "static" / "pyodide"
    shutil.copytree(dist / "pyodide", target)
    lock = json.loads((target / "pyodide-lock.json").read_text())
    packages = lock["packages"]
    for name in closure(packages, KERNEL_PACKAGES):
        version = packages[name]["version"] if name in packages else NOT_IN_LOCK[name]
        register(packages, pypi_wheel(name, version), target)
    ours = {wheel_name(w)[0]: w for w in (dist / "wheels").glob("*.whl")}
    register(packages, ours["markupsafe"], target)  # Pyodide's own markupsafe is a binary wheel
    register(packages, ours["jinja2"], target)
    register(packages, ours["nomoat"], target, depends=["jinja2"])  # its wheel declares no dependencies
    (target / "pyodide-lock.json").write_text(json.dumps(lock))


# --- the site -------------------------------------------------------------------------------------

def write_config(lite: Path) -> None:
    kernel = {
        "disablePyPIFallback": True,
        # Relative to the kernel's worker script: <site>/nomoat/.
        "loadPyodideOptions": {"env": {"NOMOAT_ASSETS": "../" * WORKER_DIR.count("/") + "nomoat/"}},
    }
    config = {"jupyter-lite-schema-version": 0, "jupyter-config-data": {
        "appName": "nomoat", "contentsAllJsonFile": "all.json",
        "litePluginSettings": {"@jupyterlite/pyodide-kernel-extension:kernel": kernel}}}
    (lite / "jupyter-lite.json").write_text(json.dumps(config, indent=2))


def add_notebook(site: Path) -> None:
    """files/ and the Contents API listing the site reads: what `jupyter lite build --contents`
    writes, which needs jupyter_server and its many dependencies."""
    (site / "files").mkdir()
    shutil.copy2(NOTEBOOK, site / "files" / NOTEBOOK.name)
    when = datetime.datetime.fromtimestamp(NOTEBOOK.stat().st_mtime, datetime.UTC).isoformat()
    entry = {"name": NOTEBOOK.name, "path": NOTEBOOK.name, "type": "notebook", "format": None, "mimetype": None,
             "content": None, "writable": True, "created": when, "last_modified": when,
             "size": NOTEBOOK.stat().st_size, "hash": None, "hash_algorithm": None}
    listing = {**entry, "name": "", "path": "", "type": "directory", "size": None, "content": [entry]}
    (site / "api" / "contents").mkdir(parents=True)
    (site / "api" / "contents" / "all.json").write_text(json.dumps(listing, indent=2))


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def add_nomoat_assets(dist: Path, models: list[Path], site: Path) -> None:
    """site/nomoat: the JS runtime, onnxruntime-web, the models (the default one, and the embedding
    model where it has been converted)."""
    out = site / "nomoat"
    # runtime.mjs and the modules next to it that it imports (web/dist keeps web/src's names), with
    # nomoat's own wasm decoder
    for f in sorted([*dist.glob("*.js"), *dist.glob("*.mjs"), *dist.glob("generated/*.js"), *dist.glob("*.wasm")]):
        link_or_copy(f, out / f.relative_to(dist))
    for f in sorted((dist / "ort").iterdir()):
        link_or_copy(f, out / "ort" / f.name)
    for model in models:
        for f in sorted(model.rglob("*")):
            if f.is_file():
                link_or_copy(f, out / "models" / model.name / f.relative_to(model))


def build(out: Path = CACHE) -> Path:
    """Build out/site (staging in out/lite); returns the site folder."""
    start = time.monotonic()
    ensure_tools()
    dist, models = inputs()
    lite, site = out / "lite", out / "site"
    for d in (lite, site):
        shutil.rmtree(d, ignore_errors=True)
    lite.mkdir(parents=True)
    stage_pyodide(dist, lite)
    write_config(lite)
    log(f"jupyter lite build → {site}")
    subprocess.run([sys.executable, "-m", "jupyterlite_core", "build", "--lite-dir", str(lite), "--output-dir",
                    str(site), "--apps", "lab", "--apps", "notebooks", "--no-sourcemaps",
                    "--no-unused-shared-packages"], check=True, cwd=lite, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONWARNINGS": "ignore::UserWarning"})  # "install jupyter_server to …"
    if not (site / WORKER_DIR).is_dir():
        sys.exit(f"{site / WORKER_DIR} is missing: the Pyodide kernel extension changed its layout.")
    add_notebook(site)
    add_nomoat_assets(dist, models, site)
    log(f"built {site} in {time.monotonic() - start:.1f} s")
    return site


# --- serving --------------------------------------------------------------------------------------

class SiteHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".whl": "application/octet-stream"}
    isolated = False

    def end_headers(self) -> None:
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, fmt: str, *args) -> None:
        pass


def make_server(site: Path, port: int = 0, isolated: bool = False, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A static server for the site. isolated: send COOP/COEP, so onnxruntime-web may use every core
    (the site works either way; on 2 cores one thread measured faster, see README.md)."""
    handler = type("Handler", (SiteHandler,), {"isolated": isolated})
    return ThreadingHTTPServer((host, port), partial(handler, directory=str(site)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=CACHE, help=f"build into OUT/site (default {CACHE})")
    ap.add_argument("--serve", type=int, metavar="PORT", help="then serve the site on 127.0.0.1:PORT")
    ap.add_argument("--isolated", action="store_true", help="serve with COOP/COEP (multi-threaded wasm)")
    args = ap.parse_args()
    site = build(args.out)
    if args.serve is not None:
        server = make_server(site, args.serve, args.isolated)
        log(f"open http://127.0.0.1:{server.server_address[1]}/notebooks/index.html?path={NOTEBOOK.name}"
            "  (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
