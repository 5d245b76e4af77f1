"""onnxruntime on CPython: the model package's graph on the CPU. The only CPython module that
imports onnxruntime."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from ..errors import InvalidModelError
from ..package import ONNX_FILE
from ..sampler import Sampler
from ..sampling import SamplingParams


@dataclass
class OrtState:
    tokens: list[int] = field(default_factory=list)
    past: dict[str, np.ndarray] = field(default_factory=dict)  # name → (1, n_kv, T, hd)

    def truncate(self, n: int) -> None:
        self.tokens = self.tokens[:n]
        self.past = {k: v[:, :, :n] for k, v in self.past.items()}

    def fork(self) -> OrtState:
        return OrtState(list(self.tokens), dict(self.past))  # arrays are never written in place


class OrtNativeBackend:
    name = "ort_native"
    device = "cpu"

    def __init__(self, model_dir: str | Path, config: ModelConfig, threads: int | None = None,
                 accuracy_level: int | None = None) -> None:
        import onnxruntime as ort

        self.config = config
        path = Path(model_dir) / ONNX_FILE
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        model: str | bytes = str(path)
        if accuracy_level is not None:
            model = _with_accuracy_level(path, accuracy_level)
        try:
            self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise InvalidModelError(
                f"onnxruntime could not load {path} ({type(e).__name__}: {str(e)[:300]}). "
                "The file is corrupt or truncated: re-run 'nomoat convert'."
            ) from e
        c = config
        self._empty = np.zeros((1, c.num_key_value_heads, 0, c.head_dim), np.float32)
        self._past_names = [i.name for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        self._out_names = [o.name for o in self.session.get_outputs()]

    def make_sampler(self, params: SamplingParams) -> Sampler:
        return Sampler(params)

    def new_state(self) -> OrtState:
        return OrtState()

    def run(self, state: OrtState, token_ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        P, S = len(state.tokens), len(token_ids)
        feeds = {
            "input_ids": np.asarray([token_ids], np.int64),  # (1, S)
            "attention_mask": np.ones((1, P + S), np.int64),  # (1, P+S)
            "position_ids": np.arange(P, P + S, dtype=np.int64)[None],  # (1, S)
            "logits_to_keep": np.array(0 if all_logits else 1, np.int64),
        }
        for name in self._past_names:
            feeds[name] = state.past.get(name, self._empty)
        outs = self.session.run(self._out_names, feeds)
        for name, value in zip(self._out_names, outs, strict=True):
            if name.startswith("present."):
                state.past["past_key_values." + name[len("present."):]] = value
        state.tokens.extend(int(t) for t in token_ids)
        logits = outs[0][0]  # (S or 1, vocab)
        return logits if all_logits else logits[-1]

    async def forward(self, state: OrtState, token_ids: Sequence[int], all_logits: bool = False):
        return await asyncio.to_thread(self.run, state, token_ids, all_logits)


def _with_accuracy_level(path: Path, level: int) -> bytes:
    """The graph with every MatMulNBits set to accuracy_level `level` (0 = f32 accumulation,
    4 = int8 activations)."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            for a in node.attribute:
                if a.name == "accuracy_level":
                    a.i = level
    return model.SerializeToString()
