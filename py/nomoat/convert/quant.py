"""GGUF weights → onnxruntime MatMulNBits tensors (or plain f32), read exactly.

GGUF stores a weight W (N rows = output features, K cols = input features) row by row, in
blocks along K. MatMulNBits wants, per row n and block b of `block` (16 or 32) columns: packed
integers q[n, b, :] (`bits` 4 or 8), a scale s[n, b] and the default zero point z = 2^(bits-1);
it computes (q - z) * s. A per-block offset c[n, b] (`block_offsets`, stored (K/block, N)) is
added by the graph as ReduceSum_block(x) @ C. So every weight the graph defines is

    W[n, k] = (q[n, k] - 2^(bits-1)) * s[n, b] + c[n, b]        (b = k // block)

evaluated in f32: (q - z) * s is exact for every type here (a small integer times an f16 times
a 6- or 8-bit integer fits 24 bits), so W is one f32 rounding of that sum, as in the `gguf`
package's dequantization (gguf/quants.py, the reference for every block layout below).

  type  block layout (gguf)                    → bits/block  integers        s        c
  Q4_0  d, 32 x 4-bit                          → 4/32        q               d        -         exact
  Q4_1  d, m, 32 x 4-bit: d*q + m              → 4/32        q               d        m + 8d    bound
  Q5_0  d, 32 x 5-bit: d*(q - 16)              → 8/32        q + 112         d        -         exact
  Q5_1  d, m, 32 x 5-bit: d*q + m              → 8/32        q + 128         d        m         exact
  Q8_0  d, 32 x int8: d*q                      → 8/32        q + 128         d        -         exact
  Q4_K  256: 8 sub-blocks of 32, 6-bit sc, mn  → 4/32        q               d*sc     8s - dmin*mn  bound
        w = d*sc*q - dmin*mn
  Q5_K  as Q4_K with a 5th bit                 → 8/32        q + 128         d*sc     -dmin*mn  exact
  Q6_K  256: 16 sub-blocks of 16, int8 sc      → 8/16        q + 96          d*sc     -         exact
        w = d*sc*(q - 32)
  F16, BF16, F32                               → a plain f32 weight (N, K)                      exact

"exact": W equals gguf's dequantization bit for bit (the same f32 operations on the same
values). "bound": the offset c = fl(m + z*s) is itself rounded once in f32 before the final
rounding of (q - z)*s + c, where gguf rounds s*q + m once. The two agree whenever m + z*s is
representable in f32 (true when its two terms are within a few binades of each other, as in
every tensor of the real Gemma-3-270M Q4_K_M file), and otherwise differ by at most

    |W - W_gguf| <= 2^-23 * (|c| + |W_gguf|)       (two roundings of relative size 2^-24 each).

Q4_1 and Q4_K keep 4 bits (half the bytes of 8) at this price; tests/test_quant_types.py checks
the bound on blocks whose f16 scales span the whole f16 range.

Fusing weights that share an input (q|k|v, gate|up) widens exactly: 4 → 8 bits (q + 120, so
q - 128 = q4 - 8), block 32 → 16 (each scale and offset repeated for both halves), and an f32
part makes the fused weight f32 (each quantized part dequantized as above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from .gguf_file import GGUFTensor

BLOCK = 32  # the default MatMulNBits block (every type but Q6_K)
QK_K = 256  # K-quant super-block
FLOAT_TYPES = ("F32", "F16", "BF16")


@dataclass
class QLinear:
    """y = x @ W.T for W (N, K), in MatMulNBits form."""

    bits: int  # 4 or 8
    packed: np.ndarray  # uint8 (N, K/block, block*bits/8)
    scales: np.ndarray  # f32 (N, K/block)
    offsets: np.ndarray | None  # f32 (N, K/block): per-block additive term, or None
    block: int = BLOCK  # 16 or 32

    @property
    def n(self) -> int:
        return self.packed.shape[0]

    @property
    def k(self) -> int:
        return self.packed.shape[1] * self.block

    def integers(self) -> np.ndarray:
        """The unpacked integers q (N, K/block, block) as uint8."""
        if self.bits == 8:
            return self.packed
        lo, hi = self.packed & 0x0F, self.packed >> 4
        return np.stack([lo, hi], axis=-1).reshape(self.n, -1, self.block)

    def dequantize(self) -> np.ndarray:
        """W (N, K) f32 exactly as the graph computes it."""
        zero = np.float32(1 << (self.bits - 1))
        w = (self.integers().astype(np.float32) - zero) * self.scales[..., None]
        if self.offsets is not None:
            w = w + self.offsets[..., None]
        return w.reshape(self.n, self.k)

    def rows(self, perm: np.ndarray) -> QLinear:
        """The same weight with its output rows reordered."""
        off = None if self.offsets is None else self.offsets[perm]
        return QLinear(self.bits, self.packed[perm], self.scales[perm], off, self.block)

    def widen(self, bits: int, block: int) -> QLinear:
        """The same weights (bit for bit) with more bits and/or smaller blocks."""
        q = self.integers()  # (N, nb, block)
        if bits != self.bits:
            assert (self.bits, bits) == (4, 8)
            q = q + np.uint8(120)  # q - 128 == q4 - 8
        r = self.block // block
        q = q.reshape(self.n, -1, block)
        scales = np.repeat(self.scales, r, axis=1)
        offsets = None if self.offsets is None else np.repeat(self.offsets, r, axis=1)
        return QLinear(bits, q if bits == 8 else _pack4(q), scales, offsets, block)


@dataclass
class F32Linear:
    """y = x @ W.T for a float weight W (N, K) (F16/BF16/F32 in the GGUF): no blocks."""

    weight: np.ndarray  # f32 (N, K)

    @property
    def n(self) -> int:
        return self.weight.shape[0]

    @property
    def k(self) -> int:
        return self.weight.shape[1]

    def dequantize(self) -> np.ndarray:
        return self.weight

    def rows(self, perm: np.ndarray) -> F32Linear:
        return F32Linear(self.weight[perm])


Linear = QLinear | F32Linear


def concat(parts: list[Linear]) -> Linear:
    """Stack weights that share an input along N (q|k|v, gate|up) into one weight, widening
    exactly to the widest integers and the smallest block; any f32 part makes it f32."""
    if any(isinstance(p, F32Linear) for p in parts):
        return F32Linear(np.concatenate([p.dequantize() for p in parts]))
    bits, block = max(p.bits for p in parts), min(p.block for p in parts)
    parts = [p if (p.bits, p.block) == (bits, block) else p.widen(bits, block) for p in parts]
    if all(p.offsets is None for p in parts):
        offsets = None
    else:
        offsets = np.concatenate(
            [p.offsets if p.offsets is not None else np.zeros_like(p.scales) for p in parts]
        )
    return QLinear(
        bits,
        np.concatenate([p.packed for p in parts]),
        np.concatenate([p.scales for p in parts]),
        offsets,
        block,
    )


def _blocks(t: GGUFTensor, block: int, block_bytes: int) -> np.ndarray:
    """The tensor's bytes as (rows, cols/block, block_bytes)."""
    if t.cols % block:
        raise UnsupportedModelError(f"{t.name}: {t.cols} columns is not a multiple of {t.qtype}'s block {block}.")
    return t.data.reshape(t.rows, t.cols // block, block_bytes)


def _f16(b: np.ndarray) -> np.ndarray:
    """(..., 2) bytes → (...) f32."""
    return np.ascontiguousarray(b).view(np.float16)[..., 0].astype(np.float32)


def _pack4(q: np.ndarray) -> np.ndarray:
    """(N, nb, block) values 0..15 → (N, nb, block/2) bytes, element 2i in the low nibble of byte i."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def _unpack_gguf4(qs: np.ndarray) -> np.ndarray:
    """GGUF 4-bit block (16 bytes): element j in the low nibble of byte j, j+16 in the high."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _high_bits(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1: (..., 4) bytes, a little-endian uint32 whose bit j is element j's 5th bit → (..., 32) 0|16."""
    bits = np.unpackbits(np.ascontiguousarray(qh), axis=-1, bitorder="little")  # (..., 32): bit j of the uint32
    return bits << 4


def _k_scale_min(sc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K: 12 bytes → 8 six-bit scales and 8 six-bit mins (gguf's Q4_K.get_scale_min)."""
    d, m, m_d = sc[..., 0:4], sc[..., 4:8], sc[..., 8:12]
    scale = np.concatenate([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return scale.astype(np.float32), mn.astype(np.float32)


def _k_low4(qs: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K: (R, S, 128) bytes → (R, S, 8, 32): sub-block 2i is the low nibbles of bytes
    32i..32i+31, sub-block 2i+1 their high nibbles."""
    qs = qs.reshape(*qs.shape[:2], 4, 1, 32)
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-2).reshape(*qs.shape[:2], 8, 32)


def _k_sub(t: GGUFTensor, type_size: int) -> np.ndarray:
    return _blocks(t, QK_K, type_size)  # (R, S, type_size), S = cols/256


def to_qlinear(t: GGUFTensor) -> Linear:
    """The GGUF tensor as a linear weight: QLinear for the block types, F32Linear for floats."""
    R = t.rows
    if t.qtype in FLOAT_TYPES:
        return F32Linear(float_rows(t))
    if t.qtype == "Q4_0":
        b = _blocks(t, 32, 18)
        return QLinear(4, _pack4(_unpack_gguf4(b[..., 2:])), _f16(b[..., 0:2]), None)
    if t.qtype == "Q4_1":
        b = _blocks(t, 32, 20)
        d, m = _f16(b[..., 0:2]), _f16(b[..., 2:4])
        return QLinear(4, _pack4(_unpack_gguf4(b[..., 4:])), d, (m + np.float32(8) * d).astype(np.float32))
    if t.qtype == "Q5_0":
        b = _blocks(t, 32, 22)
        q5 = _unpack_gguf4(b[..., 6:]) | _high_bits(b[..., 2:6])
        return QLinear(8, (q5 + np.uint8(112)).astype(np.uint8), _f16(b[..., 0:2]), None)
    if t.qtype == "Q5_1":
        b = _blocks(t, 32, 24)
        q5 = _unpack_gguf4(b[..., 8:]) | _high_bits(b[..., 4:8])
        return QLinear(8, (q5 + np.uint8(128)).astype(np.uint8), _f16(b[..., 0:2]), _f16(b[..., 2:4]))
    if t.qtype == "Q8_0":
        b = _blocks(t, 32, 34)
        q = b[..., 2:].view(np.int8).astype(np.int16) + 128
        return QLinear(8, q.astype(np.uint8), _f16(b[..., 0:2]), None)
    if t.qtype in ("Q4_K", "Q5_K"):
        b = _k_sub(t, 144 if t.qtype == "Q4_K" else 176)
        d, dmin = _f16(b[..., 0:2])[..., None], _f16(b[..., 2:4])[..., None]  # (R, S, 1)
        sc, mn = _k_scale_min(b[..., 4:16])  # (R, S, 8)
        s = (d * sc).reshape(R, -1)  # (R, K/32)
        dm = (dmin * mn).reshape(R, -1)
        if t.qtype == "Q4_K":
            q = _k_low4(b[..., 16:144]).reshape(R, -1, 32)
            return QLinear(4, _pack4(q), s, (np.float32(8) * s - dm).astype(np.float32))
        qh = b[..., 16:48].reshape(R, -1, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(8, 1)  # (R, S, 8, 32)
        q5 = _k_low4(b[..., 48:176]) | ((qh & 1) << 4)
        return QLinear(8, (q5 + np.uint8(128)).reshape(R, -1, 32).astype(np.uint8), s, -dm)
    if t.qtype == "Q6_K":
        b = _k_sub(t, 210)
        ql = b[..., 0:128].reshape(R, -1, 2, 1, 64) >> np.array([0, 4], np.uint8).reshape(2, 1)  # (R, S, 2, 2, 64)
        qh = b[..., 128:192].reshape(R, -1, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(4, 1)
        q6 = (ql & 0x0F).reshape(R, -1, QK_K) | ((qh & 0x03).reshape(R, -1, QK_K) << 4)  # (R, S, 256) 0..63
        sc = b[..., 192:208].view(np.int8).astype(np.float32)  # (R, S, 16)
        s = (_f16(b[..., 208:210])[..., None] * sc).reshape(R, -1)  # (R, K/16)
        return QLinear(8, (q6 + np.uint8(96)).reshape(R, -1, 16).astype(np.uint8), s, None, block=16)
    raise UnsupportedModelError(f"{t.name}: no mapping for {t.qtype}.")


def float_rows(t: GGUFTensor) -> np.ndarray:
    """An F32/F16/BF16 tensor as f32 (rows, cols), exactly."""
    if t.qtype == "BF16":  # the upper 16 bits of an f32
        bits = np.ascontiguousarray(t.data).view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(t.rows, t.cols)
    return t.data.astype(np.float32).reshape(t.rows, t.cols)


def to_f32(t: GGUFTensor) -> np.ndarray:
    """A float tensor (norms, or an f16/bf16/f32 embedding) as f32 (rows, cols), or (cols,) for 1-D."""
    a = float_rows(t)
    return a[0] if t.rows == 1 else a


def to_embedding(t: GGUFTensor) -> QLinear | np.ndarray:
    """The embedding (or an untied LM head): its blocks for the block types, else an f32 table."""
    return to_f32(t) if t.qtype in FLOAT_TYPES else to_qlinear(t)


def unpermute_rows(n_rows: int, n_heads: int) -> np.ndarray:
    """Row order that undoes llama.cpp's Q/K permutation (back to Hugging Face's layout).

    llama.cpp's converter stores each head's rows as interleaved pairs (i, i + d/2) so its
    adjacent-pair RoPE matches HF's rotate-half RoPE. Rows are whole quantized blocks along K,
    so undoing it is a row gather: no requantization.
    """
    hd = n_rows // n_heads
    idx = np.arange(n_rows).reshape(n_heads, hd // 2, 2)
    return idx.transpose(0, 2, 1).reshape(-1)
