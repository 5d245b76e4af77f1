"""Assemble the unpacked nomoat extension (load it from chrome://extensions, "Load unpacked").

    .venv/bin/python examples/extension/build.py [--out DIR] [--model DIR] [--web-dist DIR]

The output (default examples/extension/dist/, git-ignored by the top-level "dist/" rule) holds the
extension's own files, client.js bundled by esbuild (with the web/src modules it imports: content
scripts cannot be ES modules), and under nomoat/ its own copy of the runtime (web/dist: llm.js and
the modules next to it, the worker, pyodide/, ort/, wheels/) and of the model package
(nomoat/models/SmolLM2-135M-Instruct/), so the extension runs with no server. The runtime and model
files are hard-linked where possible (else copied; Chrome refuses symlinks that leave the extension
folder), so do not edit them in the output. Running it again only refreshes what changed and
removes what no longer belongs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCES = ["manifest.json", "background.js", "trust.js", "offscreen.html", "offscreen.js",
           "popup.html", "popup.css", "popup.js", "content.js",
           "panel.html", "panel.css", "panel.js"]
BUNDLED = "client.js"  # an ES module importing web/src; the output's client.js is its esbuild bundle
ESBUILD = ROOT / "web" / "node_modules" / ".bin" / "esbuild"
MODEL_NAME = "SmolLM2-135M-Instruct"  # the default model's folder name, as llm.js expects it
RUNTIME = ["llm.js", "protocol.js", "generated/wheels.js", "worker.mjs", "runtime.mjs", "pyodide/pyodide.mjs",
           "pyodide/pyodide.asm.wasm", "ort/ort.wasm.min.mjs", "ort/ort-wasm-simd-threaded.wasm"]


class BuildError(SystemExit):
    pass


def _bundle(out: Path) -> Path:
    """client.js and the web/src modules it imports, as one classic script in out."""
    if not ESBUILD.is_file():
        raise BuildError(f"{ESBUILD} is missing: run 'make web' first (it installs web/node_modules).")
    dst = out / BUNDLED
    subprocess.run([str(ESBUILD), str(HERE / BUNDLED), "--bundle", "--format=iife", "--target=es2022", "--charset=utf8",
                    "--log-level=warning", f"--outfile={dst}"], check=True)
    return dst


def _plan(web_dist: Path, model: Path) -> dict[str, Path]:
    """Output path (relative, posix) -> source file (the bundle excepted)."""
    missing = [n for n in RUNTIME if not (web_dist / n).is_file()]
    if missing or not list((web_dist / "wheels").glob("nomoat-*.whl")):
        raise BuildError(f"{web_dist} is incomplete (missing {', '.join(missing) or 'wheels/nomoat-*.whl'}): "
                         "run 'make web' first.")
    manifest_file = model / "nomoat.json"
    if not manifest_file.is_file():
        raise BuildError(f"{model} is not a nomoat model package (no nomoat.json): convert the default model first "
                         "(.venv/bin/nomoat convert --default).")
    files = json.loads(manifest_file.read_text())["files"]
    plan = {name: HERE / name for name in SOURCES}
    for p in sorted(web_dist.rglob("*")):
        rel = p.relative_to(web_dist).as_posix()
        if p.is_file() and not rel.startswith("models/"):
            plan["nomoat/" + rel] = p
    base = f"nomoat/models/{MODEL_NAME}/"
    plan[base + "nomoat.json"] = manifest_file
    for name, info in files.items():
        src = model / name
        if not src.is_file() or src.stat().st_size != info["size"]:
            raise BuildError(f"{src} is missing or not {info['size']} bytes as {manifest_file} says: "
                             "convert the model again (.venv/bin/nomoat convert --default --force).")
        plan[base + name] = src
    for rel in plan:  # Chrome refuses to load an extension with a file or folder named "_*"
        if any(part.startswith("_") for part in rel.split("/")):
            raise BuildError(f"{rel}: Chrome reserves names that start with '_'.")
    return plan


def _same(src: Path, dst: Path) -> bool:
    try:
        if os.path.samefile(src, dst):
            return True
        a, b = src.stat(), dst.stat()
    except OSError:
        return False
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)


def build(out: Path | str = HERE / "dist", web_dist: Path | str = ROOT / "web" / "dist",
          model: Path | str = ROOT / "models" / MODEL_NAME) -> Path:
    """Build or refresh the unpacked extension in `out`; returns it. Raises BuildError (a SystemExit
    with a message) when web/dist or the model package is missing."""
    out, web_dist, model = Path(out).resolve(), Path(web_dist).resolve(), Path(model).resolve()
    plan = _plan(web_dist, model)
    out.mkdir(parents=True, exist_ok=True)
    plan[BUNDLED] = _bundle(out)
    for rel, src in plan.items():
        dst = out / rel
        if _same(src, dst):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        if src.parent == HERE:  # the extension's own (small) files: copies, so editing dist/ never edits them
            shutil.copy2(src, dst)
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    for p in sorted(out.rglob("*"), reverse=True):  # remove what no longer belongs
        rel = p.relative_to(out).as_posix()
        if p.is_dir() and not p.is_symlink():
            if not any(k == rel or k.startswith(rel + "/") for k in plan):
                shutil.rmtree(p)
        elif rel not in plan:
            p.unlink()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=HERE / "dist", type=Path)
    ap.add_argument("--web-dist", default=ROOT / "web" / "dist", type=Path)
    ap.add_argument("--model", default=ROOT / "models" / MODEL_NAME, type=Path)
    a = ap.parse_args(argv)
    out = build(a.out, a.web_dist, a.model)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: unpacked extension, {size / 2**20:.0f} MB. Load it at chrome://extensions (Developer mode, "
          "Load unpacked), or: chromium --load-extension=" + str(out), file=sys.stderr)


if __name__ == "__main__":
    main()
