"""CPython's exact greedy decode (onnxruntime CPU, accuracy level 0, token ids in and out): the
oracle bench.mjs's WebGPU tokens are checked against (tests/test_webgpu_node.py; run.sh on the GPU
machine).

    python3 bench/webgpu_node/oracle.py MODEL_DIR '[1, 5, 9]' 16      # -> {"tokens": [...]}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "py"))


def greedy(model_dir: str | Path, prompt: list[int], n: int) -> list[int]:
    """`n` greedy tokens after `prompt` (ties to the lower id, as the JS and GPU samplers)."""
    import numpy as np

    import nomoat

    b = nomoat.load(model_dir, accuracy_level=0, threads=2).backend
    st = b.new_state()
    logits = b.run(st, prompt)
    out = [int(np.argmax(logits))]
    while len(out) < n:
        out.append(int(np.argmax(b.run(st, [out[-1]]))))
    return out


if __name__ == "__main__":
    print(json.dumps({"tokens": greedy(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]))}))
