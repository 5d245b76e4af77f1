"""The model package on disk: its file names and its manifest (sizes and sha256 of every file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import InvalidModelError, ModelNotFoundError

MANIFEST = "nomoat.json"
ONNX_FILE = "onnx/nomoat_q4.onnx"  # nomoat's graph: logits_to_keep is an input
OPTIMUM_FILE = "onnx/model_q4.onnx"  # the same graph with Optimum's inputs (transformers.js)
DATA_FILE = "onnx/model_q4.onnx_data"  # the weights, shared by all graphs
WASM_FILE = "onnx/nomoat_wasm.onnx"  # wasm variant: f32 Gemms whose weights the browser builds at load
WASM_RECIPE = "onnx/nomoat_wasm.json"  # how: each f32 weight from blocks in DATA_FILE
TENSORS_FILE = "onnx/nomoat_tensors.json"  # where each weight lies in DATA_FILE (nomoat's wasm decoder)
FORMAT_VERSION = 2


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(model_dir: Path, extra: dict) -> dict:
    manifest = {
        "format": FORMAT_VERSION,
        **extra,
        "files": {
            p.relative_to(model_dir).as_posix(): {"size": p.stat().st_size, "sha256": sha256(p)}
            for p in sorted(model_dir.rglob("*")) if p.is_file() and p.name != MANIFEST
        },
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def check_package(model_dir: str | Path, verify_sha256: bool = False) -> dict:
    """Raise if a file is missing, truncated (size differs) or, with verify_sha256, corrupt."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelNotFoundError(
            f"No model folder at {d}. Make one with 'nomoat convert MODEL.gguf {d}', "
            "or use the default model ('nomoat convert --default')."
        )
    mf = d / MANIFEST
    if not mf.is_file():
        raise ModelNotFoundError(f"{d} is not a nomoat model package (no {MANIFEST}); run 'nomoat convert'.")
    try:
        manifest = json.loads(mf.read_text())
        files = manifest["files"]
    except (ValueError, KeyError) as e:
        raise InvalidModelError(f"{mf} is damaged ({e}); re-run 'nomoat convert'.") from e
    for name, info in files.items():
        p = d / name
        if not p.is_file():
            raise ModelNotFoundError(f"{p} is missing; re-run 'nomoat convert' for {d}.")
        if p.stat().st_size != info["size"]:
            raise InvalidModelError(
                f"{p} is {p.stat().st_size} bytes, the manifest says {info['size']}: truncated or "
                f"replaced. Re-run 'nomoat convert' for {d}."
            )
        if verify_sha256 and sha256(p) != info["sha256"]:
            raise InvalidModelError(f"{p} is corrupt (sha256 mismatch); re-run 'nomoat convert' for {d}.")
    return manifest
