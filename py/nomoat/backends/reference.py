"""A numpy forward pass of the Llama decoder, written to be read, not to be fast.

Weights are the GGUF's own, dequantized by the `gguf` package (independent of the converter),
in f32. This is the exact-math reference the ONNX graph is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from .base import LogitsBackend


def _dequant(t) -> np.ndarray:
    from gguf import quants

    return quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(
        [int(s) for s in reversed(t.shape)]
    )


@dataclass
class RefState:
    tokens: list[int] = field(default_factory=list)
    k: list[np.ndarray] = field(default_factory=list)  # per layer (n_kv, T, hd)
    v: list[np.ndarray] = field(default_factory=list)

    def truncate(self, n: int) -> None:
        self.tokens = self.tokens[:n]
        self.k = [a[:, :n] for a in self.k]
        self.v = [a[:, :n] for a in self.v]

    def fork(self) -> RefState:
        return RefState(list(self.tokens), [a.copy() for a in self.k], [a.copy() for a in self.v])

    def close(self) -> None:
        self.tokens, self.k, self.v = [], [], []


def int_rows(x: np.ndarray, levels: int) -> np.ndarray:
    """Each last-axis row rounded to integer levels of max|row| / levels, returned dequantized (f32)."""
    x, lv = x.astype(np.float32), np.float32(levels)
    amax = np.abs(x).max(-1, keepdims=True)
    inv = np.where(amax > 0, lv / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    return (np.rint(x * inv) * (amax / lv)).astype(np.float32)


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x: np.ndarray, pos: np.ndarray, theta: float) -> np.ndarray:
    """x (heads, S, hd). GGUF stores Q/K rows so that RoPE rotates adjacent pairs (2i, 2i+1)."""
    hd = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.outer(pos, inv)  # (S, hd/2)
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


class ReferenceBackend(LogitsBackend):
    name = "reference"
    device = "cpu"

    def __init__(self, gguf_path: str | Path, kv_bits: int = 32) -> None:
        """kv_bits=16 stores the KV cache as the browser's wasm decoder does: each (head, position) row
        rounded to int16 levels of max|row| / levels, 8191 levels for keys and 32767 for values (then
        kept dequantized)."""
        from gguf import GGUFReader

        if kv_bits not in (16, 32):
            raise ValueError(f"kv_bits is 16 or 32, not {kv_bits!r}")
        self.kv_bits = kv_bits
        from ..convert.gguf_file import read_gguf

        self.config: ModelConfig = read_gguf(gguf_path).config  # validates the file
        r = GGUFReader(gguf_path)
        self.w = {t.name: _dequant(t) for t in r.tensors}  # name → f32 (rows, cols) or (n,)

    def new_state(self) -> RefState:
        return RefState()

    def _forward(self, state: RefState, ids: Sequence[int]) -> np.ndarray:
        c, w = self.config, self.w
        nq, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        P, S = len(state.tokens), len(ids)
        pos = np.arange(P, P + S)
        x = w["token_embd.weight"][np.asarray(ids)]  # (S, H)
        causal = np.triu(np.full((S, P + S), -np.inf, np.float32), k=P + 1)  # (S, P+S)
        for i in range(c.num_hidden_layers):
            p = f"blk.{i}."
            h = rms_norm(x, w[p + "attn_norm.weight"], c.rms_norm_eps)
            q = (h @ w[p + "attn_q.weight"].T).reshape(S, nq, hd).transpose(1, 0, 2)  # (nq, S, hd)
            k = (h @ w[p + "attn_k.weight"].T).reshape(S, nkv, hd).transpose(1, 0, 2)  # (nkv, S, hd)
            v = (h @ w[p + "attn_v.weight"].T).reshape(S, nkv, hd).transpose(1, 0, 2)
            q, k = rope(q, pos, c.rope_theta), rope(k, pos, c.rope_theta)
            if self.kv_bits == 16:
                k, v = int_rows(k, 8191), int_rows(v, 32767)
            if len(state.k) <= i:
                state.k.append(k)
                state.v.append(v)
            else:
                state.k[i] = np.concatenate([state.k[i], k], axis=1)  # (nkv, P+S, hd)
                state.v[i] = np.concatenate([state.v[i], v], axis=1)
            kk = np.repeat(state.k[i], nq // nkv, axis=0)  # (nq, P+S, hd)
            vv = np.repeat(state.v[i], nq // nkv, axis=0)
            scores = q @ kk.transpose(0, 2, 1) / np.sqrt(hd) + causal  # (nq, S, P+S)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            att = (scores / scores.sum(-1, keepdims=True)) @ vv  # (nq, S, hd)
            x = x + att.transpose(1, 0, 2).reshape(S, nq * hd) @ w[p + "attn_output.weight"].T
            h = rms_norm(x, w[p + "ffn_norm.weight"], c.rms_norm_eps)
            g, u = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T  # (S, inter)
            x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
        x = rms_norm(x, w["output_norm.weight"], c.rms_norm_eps)
        head = w.get("output.weight", w["token_embd.weight"])  # (vocab, H)
        state.tokens.extend(int(t) for t in ids)
        return x @ head.T  # (S, vocab)

    async def forward(self, state: RefState, token_ids: Sequence[int], all_logits: bool = False):
        logits = self._forward(state, token_ids)
        return logits if all_logits else logits[-1]
