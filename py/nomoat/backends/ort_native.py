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
from ..package import DATA_FILE, ONNX_FILE
from .base import LogitsBackend


@dataclass
class OrtState:
    tokens: list[int] = field(default_factory=list)
    past: dict[str, np.ndarray] = field(default_factory=dict)  # name → (1, n_kv, T, hd)

    def truncate(self, n: int) -> None:
        self.tokens = self.tokens[:n]
        self.past = {k: v[:, :, :n] for k, v in self.past.items()}

    def fork(self) -> OrtState:
        return OrtState(list(self.tokens), dict(self.past))  # arrays are never written in place

    def close(self) -> None:
        self.tokens, self.past = [], {}


class OrtNativeBackend(LogitsBackend):
    name = "ort_native"
    device = "cpu"

    def __init__(self, model_dir: str | Path, config: ModelConfig, threads: int | None = None,
                 accuracy_level: int | None = None) -> None:
        import onnxruntime as ort

        self.config = config
        path = Path(model_dir) / ONNX_FILE
        ort.set_default_logger_severity(3)  # logits_to_keep is an overridable initializer, on purpose
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            model: str | bytes = str(path)
            if accuracy_level is not None:
                model = _with_accuracy_level(path, accuracy_level)
                # the patched graph arrives as bytes; its weights stay in the package's data file
                so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(path.parent))
            self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnx's DecodeError, onnxruntime's Fail/InvalidProtobuf …
            raise InvalidModelError(
                f"Could not load the model graph {path} with its weights {Path(model_dir) / DATA_FILE} "
                f"({type(e).__name__}: {str(e)[:300]}). "
                "The file is corrupt or truncated: re-run 'nomoat convert'."
            ) from e
        c = config
        _check_io(self.session, c, path)
        self._empty = np.zeros((1, c.num_key_value_heads, 0, c.head_dim), np.float32)
        self._past_names = [i.name for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        self._out_names = [o.name for o in self.session.get_outputs()]

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
    """The graph specialised for the CPU at MatMulNBits accuracy level `level`.

    4: int8 activations (like llama.cpp): fast. 0: f32 accumulation, exact; onnxruntime's CPU
    kernel has no fast f32 path for an 8-bit weight, so at level 0 the tied 8-bit LM head is
    dequantized (exactly) to an f32 MatMul here (+113 MB of memory; the head op gets ~29x faster,
    the whole decode step ~10x: bench/README.md)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)  # the graph only; weights stay on disk
    graph = model.graph
    for node in graph.node:
        if node.op_type == "MatMulNBits":
            for a in node.attribute:
                if a.name == "accuracy_level":
                    a.i = level
    heads = [n for n in graph.node if n.op_type == "MatMulNBits" and
             next(a.i for a in n.attribute if a.name == "bits") == 8]
    if level == 0 and heads:
        inits = {t.name: t for t in graph.initializer}

        def read(name: str, dtype) -> np.ndarray:  # an initializer from the package's data file
            t = inits[name]
            ext = {e.key: e.value for e in t.external_data}
            with open(path.parent / ext["location"], "rb") as f:
                f.seek(int(ext.get("offset", 0)))
                raw = f.read(int(ext["length"]))
            return np.frombuffer(raw, dtype).reshape(tuple(t.dims))

        for node in heads:
            q = read(node.input[1], np.uint8)  # (N, K/32, 32)
            scales = read(node.input[2], np.float32)  # (N * K/32,)
            w = ((q.astype(np.float32) - 128) * scales.reshape(q.shape[0], -1, 1)).reshape(q.shape[0], -1)
            name = node.name + ".f32_weight_t"
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T), name))  # (K, N)
            matmul = onnx.helper.make_node("MatMul", [node.input[0], name], list(node.output), name=node.name + "_f32")
            graph.node.insert(list(graph.node).index(node), matmul)
            graph.node.remove(node)
    return model.SerializeToString()


def _check_io(session, c: ModelConfig, path: Path) -> None:
    """The graph's inputs and outputs fit config.json (a hostile config.json is caught at load, not
    as an onnxruntime error at the first token): 2 × layers past inputs of (_, kv heads, _, head_dim),
    logits over the vocabulary."""
    past = [i for i in session.get_inputs() if i.name.startswith("past_key_values.")]
    logits = next((o for o in session.get_outputs() if o.name == "logits"), None)
    want = [("past inputs", len(past), 2 * c.num_hidden_layers, "num_hidden_layers")]
    want += [(f"{p.name} dim {d}", p.shape[d], v, name) for p in past[:1]
             for d, v, name in ((1, c.num_key_value_heads, "num_key_value_heads"), (3, c.head_dim, "head_dim"))]
    if logits is not None:
        want.append(("logits' last dim", logits.shape[-1], c.vocab_size, "vocab_size"))
    for what, got, expected, field_name in want:
        if isinstance(got, int) and got != expected:
            raise InvalidModelError(f"config.json: {field_name} says {what} should be {expected}, but {path.name} "
                                    f"has {got}; convert the model again ('nomoat convert').")


class OrtNativeEncoder:
    """An embedding package's encoder graph (convert/encoder.py) on the CPU: embed.Embedder's backend."""

    name = "ort_native"
    device = "cpu"

    def __init__(self, graph: str | Path, dimensions: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise InvalidModelError(f"Could not load the encoder graph {graph} ({type(e).__name__}: {str(e)[:300]}). "
                                    "The file is corrupt or truncated: re-run 'nomoat convert'.") from e
        inputs = {i.name for i in self.session.get_inputs()}
        out = next((o for o in self.session.get_outputs() if o.name == "sentence_embedding"), None)
        if not {"input_ids", "attention_mask"} <= inputs or out is None or out.shape[-1] != dimensions:
            raise InvalidModelError(f"{graph} is not an encoder with input_ids, attention_mask → sentence_embedding "
                                    f"of {dimensions} (nomoat.json's dimensions); re-run 'nomoat convert'.")
        self._types = "token_type_ids" in inputs

    def run(self, input_ids: Sequence[Sequence[int]], attention_mask: Sequence[Sequence[int]]) -> np.ndarray:
        ids = np.asarray(input_ids, np.int64)  # (B, S)
        feeds = {"input_ids": ids, "attention_mask": np.asarray(attention_mask, np.int64)}
        if self._types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return self.session.run(["sentence_embedding"], feeds)[0]  # (B, dimensions)

    async def encode(self, input_ids: list[list[int]], attention_mask: list[list[int]]) -> np.ndarray:
        return await asyncio.to_thread(self.run, input_ids, attention_mask)

    def close(self) -> None:
        self.session = None
