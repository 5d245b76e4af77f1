"""GGUF quantized blocks → onnxruntime MatMulNBits tensors, exactly.

GGUF stores a weight W (N rows = output features, K cols = input features) as blocks of 32
along K. MatMulNBits wants, per row n and block b: packed integers B[n, b, :], a scale s[n, b]
and a zero point z (default 2^(bits-1)); it computes W[n, k] = (q[n, k] - z) * s[n, b].

- Q4_0: w = d * (q - 8)                → bits 4, scale d, default z = 8. Exact.
- Q8_0: w = d * q, q int8              → bits 8, q + 128 as uint8, scale d, default z = 128. Exact.
- Q4_1: w = d * q + m  (m: block min) = d * (q - 8) + (m + 8 d)
                                       → bits 4, scale d, z = 8, plus a per-block offset
  c[n, b] = m + 8 d that the graph adds as ReduceSum_32(x) @ C (C: (K/32, N)). Exact up to the
  f32 rounding of m + 8 d (relative 2^-24); Q4_1's float minimum is not a uint8 zero point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from .gguf_file import GGUFTensor

BLOCK = 32


@dataclass
class QLinear:
    """y = x @ W.T for W (N, K), in MatMulNBits form."""

    bits: int  # 4 or 8
    packed: np.ndarray  # uint8 (N, K/32, 32*bits/8)
    scales: np.ndarray  # f32 (N, K/32)
    offsets: np.ndarray | None  # f32 (N, K/32): per-block additive term (Q4_1), or None

    @property
    def n(self) -> int:
        return self.packed.shape[0]

    @property
    def k(self) -> int:
        return self.packed.shape[1] * BLOCK

    def integers(self) -> np.ndarray:
        """The unpacked integers q (N, K/32, 32) as uint8."""
        if self.bits == 8:
            return self.packed
        lo, hi = self.packed & 0x0F, self.packed >> 4
        return np.stack([lo, hi], axis=-1).reshape(self.n, -1, BLOCK)

    def dequantize(self) -> np.ndarray:
        """W (N, K) f32 exactly as the graph computes it."""
        zero = 1 << (self.bits - 1)
        w = (self.integers().astype(np.float32) - zero) * self.scales[..., None]
        if self.offsets is not None:
            w = w + self.offsets[..., None]
        return w.reshape(self.n, self.k)

    def rows(self, perm: np.ndarray) -> QLinear:
        """The same weight with its output rows reordered."""
        off = None if self.offsets is None else self.offsets[perm]
        return QLinear(self.bits, self.packed[perm], self.scales[perm], off)


def concat(parts: list[QLinear]) -> QLinear:
    """Stack weights that share an input along N (q|k|v, gate|up) into one MatMulNBits."""
    bits = {p.bits for p in parts}
    if len(bits) != 1:
        raise UnsupportedModelError(f"Cannot fuse weights of different bit widths {sorted(bits)}.")
    if all(p.offsets is None for p in parts):
        offsets = None
    else:
        offsets = np.concatenate(
            [p.offsets if p.offsets is not None else np.zeros_like(p.scales) for p in parts]
        )
    return QLinear(
        bits.pop(),
        np.concatenate([p.packed for p in parts]),
        np.concatenate([p.scales for p in parts]),
        offsets,
    )


def _blocks(t: GGUFTensor, block_bytes: int) -> np.ndarray:
    if t.cols % BLOCK:
        raise UnsupportedModelError(f"{t.name}: {t.cols} columns is not a multiple of {BLOCK}.")
    return t.data.reshape(t.rows, t.cols // BLOCK, block_bytes)


def _f16(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view(np.float16)[..., 0].astype(np.float32)


def _pack4(q: np.ndarray) -> np.ndarray:
    """(N, nb, 32) values 0..15 → (N, nb, 16) bytes, element 2i in the low nibble of byte i."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def _unpack_gguf4(qs: np.ndarray) -> np.ndarray:
    """GGUF 4-bit block (16 bytes): element j in the low nibble of byte j, j+16 in the high."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def to_qlinear(t: GGUFTensor) -> QLinear:
    if t.qtype == "Q4_0":
        b = _blocks(t, 18)
        return QLinear(4, _pack4(_unpack_gguf4(b[..., 2:])), _f16(b[..., 0:2]), None)
    if t.qtype == "Q4_1":
        b = _blocks(t, 20)
        d, m = _f16(b[..., 0:2]), _f16(b[..., 2:4])
        return QLinear(4, _pack4(_unpack_gguf4(b[..., 4:])), d, (m + np.float32(8) * d).astype(np.float32))
    if t.qtype == "Q8_0":
        b = _blocks(t, 34)
        q = b[..., 2:].view(np.int8).astype(np.int16) + 128
        return QLinear(8, q.astype(np.uint8), _f16(b[..., 0:2]), None)
    raise UnsupportedModelError(f"{t.name}: no MatMulNBits mapping for {t.qtype}.")


def to_f32(t: GGUFTensor) -> np.ndarray:
    """A float tensor (norms, or an f16/f32 embedding) as f32 (rows, cols), or (cols,) for 1-D."""
    a = t.data.astype(np.float32).reshape(t.rows, t.cols)
    return a[0] if t.rows == 1 else a


def unpermute_rows(n_rows: int, n_heads: int) -> np.ndarray:
    """Row order that undoes llama.cpp's Q/K permutation (back to Hugging Face's layout).

    llama.cpp's converter stores each head's rows as interleaved pairs (i, i + d/2) so its
    adjacent-pair RoPE matches HF's rotate-half RoPE. Rows are whole quantized blocks along K,
    so undoing it is a row gather: no requantization.
    """
    hd = n_rows // n_heads
    idx = np.arange(n_rows).reshape(n_heads, hd // 2, 2)
    return idx.transpose(0, 2, 1).reshape(-1)
