"""A copy of onnxruntime-web's WebGPU build that forwards one more WebGPU EP option,
maxNumPendingDispatches (how many dispatches its EP encodes before it submits; the C++ EP reads
it, default 16, but onnxruntime-web 1.30's setExecutionProviders passes only a whitelist of options
to it). For A/B runs of the submit count (bench.mjs with NOMOAT_ORT_OPTIONS='{"executionProviders":
[{"name": "webgpu", "maxNumPendingDispatches": N}]}'); the product does not use it.

    python3 bench/webgpu_node/patch_ort.py ORT_DIST_DIR OUT_DIR

OUT_DIR gets the patched ort.webgpu.min.mjs and links to the asyncify .mjs/.wasm beside the original.
Fails if the anchor is not found exactly once (another onnxruntime-web version).
"""

from __future__ import annotations

import sys
from pathlib import Path

ANCHOR = 'l.validationMode&&te(a,"validationMode",l.validationMode,r);'
ADDED = 'l.maxNumPendingDispatches&&te(a,"maxNumPendingDispatches",String(l.maxNumPendingDispatches),r);'


def patch(src: Path, out: Path) -> Path:
    text = (src / "ort.webgpu.min.mjs").read_text()
    if text.count(ANCHOR) != 1:
        raise SystemExit(f"patch_ort.py: the anchor occurs {text.count(ANCHOR)} times in {src}/ort.webgpu.min.mjs "
                         "(not onnxruntime-web 1.30's build?)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ort.webgpu.min.mjs").write_text(text.replace(ANCHOR, ANCHOR + ADDED))
    for f in ("ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"):
        link = out / f
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((src / f).resolve())
    return out


if __name__ == "__main__":
    print(patch(Path(sys.argv[1]), Path(sys.argv[2])))
