"""A numpy forward pass of the Llama-family decoders, written to be read, not to be fast.

Weights are the GGUF's own, dequantized by the `gguf` package (independent of the converter),
in f32. This is the exact-math reference the ONNX graph is tested against.

Each architecture follows llama.cpp's graph for it (src/models/llama.cpp, qwen2.cpp, qwen3.cpp,
gemma3.cpp (gemma3_iswa), phi3.cpp) and its hparams (llama-model.cpp), read here from the GGUF's
own metadata and tensors, not from the converter's config:
  llama   adjacent-pair RoPE on the GGUF's (permuted) Q/K rows; Llama-3.x: rope_freqs divides
          each frequency
  qwen2   q/k/v biases; NEOX RoPE (pairs i, i + hd/2) on rows stored in HF order
  qwen3   per-head RMSNorm of q and k before RoPE; NEOX
  gemma3  embedding * sqrtf(n_embd); q/k norms; attention and FFN outputs RMS-normed before their
          residual add (post norms); GELU (tanh) gate; layers with il % 6 < 5 slide (a key is
          masked when pos_q - pos_k >= sliding_window) and use RoPE base 10000; NEOX
  phi3    q|k|v in one attn_qkv tensor, gate|up in one ffn_up (gate first); NEOX; LongRoPE
          (Phi-3.5/Phi-4-mini): rope_factors_long (if n_ctx > rope.scaling.original_context_length)
          or rope_factors_short divides each frequency, and cos/sin are times rope.scaling.attn_factor;
          partial rotary (Phi-4-mini): only the first rope.dimension_count values of a head turn
RoPE scaling of any architecture: rope.scaling.type linear multiplies every frequency by
freq_scale = 1 / rope.scaling.factor (gemma3: not on its sliding layers, which keep scale 1).
Norm weights are applied as stored (y = x / rms(x) * w): llama.cpp's converter already stored
Gemma's (1 + w).
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


def rope(x: np.ndarray, pos: np.ndarray, theta: float, neox: bool = False, factors: np.ndarray | None = None,
         n_rot: int | None = None, freq_scale: float = 1.0, mscale: float = 1.0) -> np.ndarray:
    """x (heads, S, hd). Pair i (of the first n_rot values; the rest pass unchanged) turns by
    pos * freq_scale * theta^(-2i/n_rot) / factors[i] (factors: rope_freqs or LongRoPE's), and cos
    and sin are times mscale (ggml's rope_yarn with ext_factor 0). llama's GGUF stores Q/K rows so
    that RoPE rotates adjacent pairs (2i, 2i+1); the NEOX architectures (qwen2, qwen3, gemma3, phi3)
    rotate (i, i + n_rot/2)."""
    hd = x.shape[-1]
    n = n_rot or hd
    inv = freq_scale / theta ** (np.arange(0, n, 2, dtype=np.float64) / n)
    if factors is not None:
        inv = inv / factors
    ang = np.outer(pos, inv)  # (S, n/2)
    cos, sin = (np.cos(ang) * mscale).astype(np.float32), (np.sin(ang) * mscale).astype(np.float32)
    out = x.copy()
    if neox:
        x0, x1 = x[..., : n // 2], x[..., n // 2 : n]
        out[..., :n] = np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)
        return out
    x0, x1 = x[..., 0:n:2], x[..., 1:n:2]
    out[..., 0:n:2] = x0 * cos - x1 * sin
    out[..., 1:n:2] = x0 * sin + x1 * cos
    return out


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x**3)))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


class ReferenceBackend(LogitsBackend):
    name = "reference"
    device = "cpu"

    def __init__(self, gguf_path: str | Path, kv_bits: int = 32, n_ctx: int | None = None) -> None:
        """n_ctx: llama.cpp's context size (default the GGUF's context_length), which picks LongRoPE's
        long or short factors; a converted package's window plays that part (convert's context).
        kv_bits=16 stores the KV cache as the browser's wasm decoder does: each (head, position) row
        rounded to int16 levels of max|row| / levels, 8191 levels for keys and 32767 for values (then
        kept dequantized)."""
        from gguf import GGUFReader

        if kv_bits not in (16, 32):
            raise ValueError(f"kv_bits is 16 or 32, not {kv_bits!r}")
        self.kv_bits = kv_bits
        from ..convert.gguf_file import read_gguf

        self.config: ModelConfig = read_gguf(gguf_path, context=n_ctx).config  # validates the file
        r = GGUFReader(gguf_path)
        self.w = {t.name: _dequant(t) for t in r.tensors}  # name → f32 (rows, cols) or (n,)

        def meta(key: str, default=None):
            f = r.fields.get(key)
            return default if f is None else f.contents()

        # What sets the architectures apart, as llama.cpp's llama-model.cpp reads it from the GGUF.
        self.arch = arch = meta("general.architecture")
        self.neox = arch != "llama"  # LLAMA_ROPE_TYPE_NORM for llama, NEOX for the others
        self.rope_base = meta(f"{arch}.rope.freq_base", 10000.0)
        self.n_swa = meta(f"{arch}.attention.sliding_window", 0) if arch == "gemma3" else 0
        n_layer, n_embd = meta(f"{arch}.block_count"), meta(f"{arch}.embedding_length")
        n_head = meta(f"{arch}.attention.head_count")
        head_k = meta(f"{arch}.attention.key_length", n_embd // n_head)
        self.swa_layers = [self.n_swa > 0 and il % 6 < 5 for il in range(n_layer)]  # set_swa_pattern(6)
        self.swa_rope_base = 10000.0  # rope_freq_base_train_swa
        self.embd_scale = np.float32(np.sqrt(np.float32(n_embd))) if arch == "gemma3" else None  # sqrtf(n_embd)
        self.kq_scale = 1 / np.sqrt(n_embd // n_head if arch == "gemma3" and n_layer == 62 else head_k)
        self.act = gelu_tanh if arch == "gemma3" else silu
        self.n_rot = meta(f"{arch}.rope.dimension_count", head_k)
        scaling, factor = meta(f"{arch}.rope.scaling.type", "linear"), meta(f"{arch}.rope.scaling.factor", 0.0)
        self.freq_scale = 1.0 / factor if scaling != "none" and factor else 1.0  # rope_freq_scale_train
        self.mscale = meta(f"{arch}.rope.scaling.attn_factor", 1.0)  # cparams.yarn_attn_factor (1) * this
        n_ctx_train = meta(f"{arch}.context_length")
        n_ctx_orig = meta(f"{arch}.rope.scaling.original_context_length", n_ctx_train)
        long = (n_ctx or n_ctx_train) > n_ctx_orig  # llama_model::get_rope_factors
        self.rope_factors = self.w.get("rope_freqs.weight",  # Llama-3.x rope scaling, or LongRoPE's, or None
                                       self.w.get("rope_factors_long.weight" if long else "rope_factors_short.weight"))

    @staticmethod
    def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, scale: np.float32) -> np.ndarray:
        """softmax(q K^T * scale + mask) V for q (nq, S, hd) over the cache k, v (nkv, P+S, hd), each KV
        head shared by nq / nkv query heads. An instance may replace it (bench/measure_kv_quant.py does,
        to read a quantized cache)."""
        g = q.shape[0] // k.shape[0]
        scores = q @ np.repeat(k, g, axis=0).transpose(0, 2, 1) * scale + mask  # (nq, S, P+S)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        return (scores / scores.sum(-1, keepdims=True)) @ np.repeat(v, g, axis=0)

    def new_state(self) -> RefState:
        return RefState()

    def _forward(self, state: RefState, ids: Sequence[int]) -> np.ndarray:
        c, w = self.config, self.w
        nq, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        P, S = len(state.tokens), len(ids)
        pos = np.arange(P, P + S)
        eps = c.rms_norm_eps
        x = w["token_embd.weight"][np.asarray(ids)]  # (S, H)
        if self.embd_scale is not None:
            x = x * self.embd_scale
        causal = np.triu(np.full((S, P + S), -np.inf, np.float32), k=P + 1)  # (S, P+S)
        distance = pos[:, None] - np.arange(P + S)[None, :]  # pos_q - pos_k
        sliding = np.where(distance >= max(self.n_swa, 1), -np.inf, 0).astype(np.float32) + causal
        for i in range(c.num_hidden_layers):
            p = f"blk.{i}."
            h = rms_norm(x, w[p + "attn_norm.weight"], eps)
            if p + "attn_qkv.weight" in w:  # phi3: q|k|v in one tensor
                qkv = h @ w[p + "attn_qkv.weight"].T
                q, k, v = np.split(qkv, [nq * hd, nq * hd + nkv * hd], axis=-1)
            else:
                q, k, v = (h @ w[p + f"attn_{x_}.weight"].T for x_ in "qkv")
            if p + "attn_q.bias" in w:  # qwen2
                q, k, v = q + w[p + "attn_q.bias"], k + w[p + "attn_k.bias"], v + w[p + "attn_v.bias"]
            q = q.reshape(S, nq, hd).transpose(1, 0, 2)  # (nq, S, hd)
            k = k.reshape(S, nkv, hd).transpose(1, 0, 2)  # (nkv, S, hd)
            v = v.reshape(S, nkv, hd).transpose(1, 0, 2)
            if p + "attn_q_norm.weight" in w:  # qwen3, gemma3: RMSNorm of each head
                q = rms_norm(q, w[p + "attn_q_norm.weight"], eps)
                k = rms_norm(k, w[p + "attn_k_norm.weight"], eps)
            swa = self.swa_layers[i]
            base, scale = (self.swa_rope_base, 1.0) if swa else (self.rope_base, self.freq_scale)  # *_train_swa
            q = rope(q, pos, base, self.neox, self.rope_factors, self.n_rot, scale, self.mscale)
            k = rope(k, pos, base, self.neox, self.rope_factors, self.n_rot, scale, self.mscale)
            if self.kv_bits == 16:
                k, v = int_rows(k, 8191), int_rows(v, 32767)
            if len(state.k) <= i:
                state.k.append(k)
                state.v.append(v)
            else:
                state.k[i] = np.concatenate([state.k[i], k], axis=1)  # (nkv, P+S, hd)
                state.v[i] = np.concatenate([state.v[i], v], axis=1)
            mask = sliding if self.swa_layers[i] else causal
            att = self.attend(q, state.k[i], state.v[i], mask, np.float32(self.kq_scale))  # (nq, S, hd)
            out = att.transpose(1, 0, 2).reshape(S, nq * hd) @ w[p + "attn_output.weight"].T
            if p + "post_attention_norm.weight" in w:  # gemma3
                out = rms_norm(out, w[p + "post_attention_norm.weight"], eps)
            x = x + out
            h = rms_norm(x, w[p + "ffn_norm.weight"], eps)
            if p + "ffn_gate.weight" in w:
                g, u = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T  # (S, inter)
            else:  # phi3: gate|up in one ffn_up
                g, u = np.split(h @ w[p + "ffn_up.weight"].T, 2, axis=-1)
            out = (self.act(g) * u) @ w[p + "ffn_down.weight"].T
            if p + "post_ffw_norm.weight" in w:  # gemma3
                out = rms_norm(out, w[p + "post_ffw_norm.weight"], eps)
            x = x + out
        x = rms_norm(x, w["output_norm.weight"], eps)
        head = w.get("output.weight", w["token_embd.weight"])  # (vocab, H)
        state.tokens.extend(int(t) for t in ids)
        return x @ head.T  # (S, vocab)

    async def forward(self, state: RefState, token_ids: Sequence[int], all_logits: bool = False):
        logits = self._forward(state, token_ids)
        return logits if all_logits else logits[-1]
