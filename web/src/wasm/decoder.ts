// nomoat's wasm decoder kernels (AssemblyScript, compiled with SIMD by web/build.mjs into
// dist/nomoat-decoder.wasm). Every argument is a byte address in linear memory or a size; the
// memory is laid out by web/src/wasm_engine.mjs, and nothing here allocates.
//
// Quantized matmuls read the 4-/8-bit blocks as they lie in onnx/model_q4.onnx_data (MatMulNBits
// layout, see py/nomoat/convert/quant.py): per row n and block b of `block` inputs, packed integers
// q (4-bit: element 2i in the low nibble of byte i), a scale d[n, b], and optionally an offset
// c[b, n]: W[n, block * b + j] = (q - 2^(bits-1)) * d + c. The layouts: 4 bits in blocks of 32
// (Q4_0; Q4_1 and Q4_K with offsets), 8 bits in blocks of 32 (Q8_0, Q5_0; Q5_1 and Q5_K with
// offsets), 8 bits in blocks of 16 (Q6_K; with offsets where fused with a K-quant). Activations are
// quantized per block of 32 to int16 (scale max|x| / 32639, relative error ~2^-16 of the block's
// largest value), so that a block's dot product is four i32x4.dot_i16x8_s (two scaled sums of two
// for blocks of 16); the offset term uses the f32 sum of x over each block. Float weights (F16,
// BF16, F32 in the GGUF) are f32 matrices: matmulF32.

export function heapBase(): usize {
  return __heap_base;
}

// The int16 activations' largest magnitude: 32639 = 127 * 256 + 127, so that every value q splits into two
// signed bytes q = 256 h + l (split16) for the relaxed build's 4-bit kernels.
const LEVELS16: i32 = 32639;

// x (T, k) f32 → xq (T, k) i16, xs (T, k/32) f32 scales, xf f32 block sums: (T, k/32) of each block of 32,
// or with half = 1 (T, k/16) of each half block of 16 (for weights in blocks of 16 with offsets). perm = 1
// orders each block as the 4-bit unpacking yields it: even elements first, then odd ones.
export function quantize(x: usize, k: i32, T: i32, perm: i32, half: i32, xq: usize, xs: usize, xf: usize): void {
  const nb = k >> 5;
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < nb; b++) {
      const i = t * nb + b;
      const src = x + (<usize>(i << 5) << 2);
      let m: f32 = 0;
      let sum: f32 = 0;
      for (let j = 0; j < 32; j++) {
        const v = load<f32>(src + (<usize>j << 2));
        m = max(m, abs(v));
        sum += v;
      }
      const inv: f32 = m > 0 ? <f32>LEVELS16 / m : 0;
      store<f32>(xs + (<usize>i << 2), m / <f32>LEVELS16);
      if (half) {
        let s0: f32 = 0, s1: f32 = 0;
        for (let j = 0; j < 16; j++) {
          s0 += load<f32>(src + (<usize>j << 2));
          s1 += load<f32>(src + (<usize>j << 2), 64);
        }
        store<f32>(xf + (<usize>i << 3), s0);
        store<f32>(xf + (<usize>i << 3), s1, 4);
      } else {
        store<f32>(xf + (<usize>i << 2), sum);
      }
      const dst = xq + (<usize>(i << 5) << 1);
      for (let j = 0; j < 32; j++) {
        const q = <i32>nearest(load<f32>(src + (<usize>j << 2)) * inv);
        const p = perm ? ((j & 1) ? 16 + (j >> 1) : j >> 1) : j;
        store<i16>(dst + (<usize>p << 1), <i16>max(-LEVELS16, min(LEVELS16, q)));
      }
    }
  }
}

// @ts-ignore: decorator
@inline function dot32(w0: v128, w1: v128, w2: v128, w3: v128, xb: usize): v128 {
  let d = i32x4.dot_i16x8_s(w0, v128.load(xb));
  d = i32x4.add(d, i32x4.dot_i16x8_s(w1, v128.load(xb, 16)));
  d = i32x4.add(d, i32x4.dot_i16x8_s(w2, v128.load(xb, 32)));
  return i32x4.add(d, i32x4.dot_i16x8_s(w3, v128.load(xb, 48)));
}

// The high nibble of each byte of v (low: i8x16.splat(0x0f)): a 16-bit shift and a mask. Not i8x16.shr_u,
// which x86 has no instruction for (V8 makes the mask anew each time: five instructions instead of two).
// @ts-ignore: decorator
@inline function hiNibbles(v: v128, low: v128): v128 {
  return v128.and(i16x8.shr_u(v, 4), low);
}

// @ts-ignore: decorator
@inline function hsum(a: v128): f32 {
  return (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3));
}

// y[t * ys + r] = Σ_k x[t, k] W[r, k] for rows r0 ≤ r < r1 and T tokens, with x given by quantize()
// (perm = bits == 4, half = offsets in blocks of 16). W: qweight w (n, k/block, block * bits / 8) u8,
// scales s (n, k/block), offsets c (k/block, n) or 0; (bits, block) is (4, 32), (8, 32) or (8, 16).
// Tokens go four at a time: each weight block is unpacked once for four tokens.
export function matmul(w: usize, s: usize, c: usize, n: i32, k: i32, bits: i32, block: i32, r0: i32, r1: i32,
                       T: i32, xq: usize, xs: usize, xf: usize, y: usize, ys: i32): void {
  if (block == 16) matmul16(w, s, k, r0, r1, T, xq, xs, y, ys);
  else matmul32(w, s, k, bits, r0, r1, T, xq, xs, y, ys);
  if (c) addOffsets(c, n, k / block, r0, r1, T, xf, y, ys);
}

// matmul's blocks of 32 (4 or 8 bits), without offsets. Blocks go two at a time: both integer dots summed
// whole into one vector (fold2), converted to f32 once and scaled by both blocks' scales at once (scaled).
// One token (decode) gets its own copy of the row loop, as matmul8x32's.
function matmul32(w: usize, s: usize, k: i32, bits: i32, r0: i32, r1: i32,
                  T: i32, xq: usize, xs: usize, y: usize, ys: i32): void {
  for (let t = 0; t < T; t += 4) {
    const m = min(4, T - t);
    if (m == 1) rows32(w, s, k, bits, r0, r1, t, 1, xq, xs, y, ys);
    else rows32(w, s, k, bits, r0, r1, t, m, xq, xs, y, ys);
  }
}

// matmul32's rows r0 ≤ r < r1 for tokens t..t+m-1 (m ≤ 4).
// @ts-ignore: decorator
@inline function rows32(w: usize, s: usize, k: i32, bits: i32, r0: i32, r1: i32, t: i32, m: i32, xq: usize, xs: usize,
  y: usize, ys: i32): void {
  const nb = k >> 5, nb2 = nb & ~1;
  const blob: usize = bits == 4 ? 16 : 32;
  const low = i8x16.splat(0x0f), eight = i8x16.splat(8), sign = i8x16.splat(-128);
  const xrow = <usize>k << 1; // bytes per token in xq
  const srow = <usize>nb << 2; // bytes per token in xs, xf
  {
    const xq0 = xq + <usize>t * xrow, xs0 = xs + <usize>t * srow;
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * <usize>nb * blob, sr = s + (<usize>(r * nb) << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b = 0;
      for (; b < nb2; b += 2) {
        let w0: v128, w1: v128, w2: v128, w3: v128, u0: v128, u1: v128, u2: v128, u3: v128;
        if (bits == 4) {
          const v = v128.load(wr + (<usize>b << 4)), v2 = v128.load(wr + (<usize>b << 4), 16);
          const lo = i8x16.sub(v128.and(v, low), eight), hi = i8x16.sub(hiNibbles(v, low), eight);
          const lo2 = i8x16.sub(v128.and(v2, low), eight), hi2 = i8x16.sub(hiNibbles(v2, low), eight);
          w0 = i16x8.extend_low_i8x16_s(lo); w1 = i16x8.extend_high_i8x16_s(lo);
          w2 = i16x8.extend_low_i8x16_s(hi); w3 = i16x8.extend_high_i8x16_s(hi);
          u0 = i16x8.extend_low_i8x16_s(lo2); u1 = i16x8.extend_high_i8x16_s(lo2);
          u2 = i16x8.extend_low_i8x16_s(hi2); u3 = i16x8.extend_high_i8x16_s(hi2);
        } else {
          const p = wr + (<usize>b << 5);
          const v0 = v128.xor(v128.load(p), sign), v1 = v128.xor(v128.load(p, 16), sign);
          const v2 = v128.xor(v128.load(p, 32), sign), v3 = v128.xor(v128.load(p, 48), sign);
          w0 = i16x8.extend_low_i8x16_s(v0); w1 = i16x8.extend_high_i8x16_s(v0);
          w2 = i16x8.extend_low_i8x16_s(v1); w3 = i16x8.extend_high_i8x16_s(v1);
          u0 = i16x8.extend_low_i8x16_s(v2); u1 = i16x8.extend_high_i8x16_s(v2);
          u2 = i16x8.extend_low_i8x16_s(v3); u3 = i16x8.extend_high_i8x16_s(v3);
        }
        const d2 = v128.load64_zero(sr + (<usize>b << 2)); // [d0, d1, 0, 0]
        const xb = xq0 + (<usize>b << 6), sb = xs0 + (<usize>b << 2);
        a0 = dot32x2(a0, w0, w1, w2, w3, u0, u1, u2, u3, xb, f32x4.mul(d2, v128.load64_zero(sb)));
        if (m > 1) a1 = dot32x2(a1, w0, w1, w2, w3, u0, u1, u2, u3, xb + xrow, f32x4.mul(d2, v128.load64_zero(sb + srow)));
        if (m > 2) a2 = dot32x2(a2, w0, w1, w2, w3, u0, u1, u2, u3, xb + 2 * xrow, f32x4.mul(d2, v128.load64_zero(sb + 2 * srow)));
        if (m > 3) a3 = dot32x2(a3, w0, w1, w2, w3, u0, u1, u2, u3, xb + 3 * xrow, f32x4.mul(d2, v128.load64_zero(sb + 3 * srow)));
      }
      if (b < nb) { // an odd last block
        let w0: v128, w1: v128, w2: v128, w3: v128;
        if (bits == 4) {
          const v = v128.load(wr + (<usize>b << 4));
          const lo = i8x16.sub(v128.and(v, low), eight), hi = i8x16.sub(hiNibbles(v, low), eight);
          w0 = i16x8.extend_low_i8x16_s(lo); w1 = i16x8.extend_high_i8x16_s(lo);
          w2 = i16x8.extend_low_i8x16_s(hi); w3 = i16x8.extend_high_i8x16_s(hi);
        } else {
          const v0 = v128.xor(v128.load(wr + (<usize>b << 5)), sign), v1 = v128.xor(v128.load(wr + (<usize>b << 5), 16), sign);
          w0 = i16x8.extend_low_i8x16_s(v0); w1 = i16x8.extend_high_i8x16_s(v0);
          w2 = i16x8.extend_low_i8x16_s(v1); w3 = i16x8.extend_high_i8x16_s(v1);
        }
        const d = v128.load32_zero(sr + (<usize>b << 2)); // [d, 0, 0, 0]
        const xb = xq0 + (<usize>b << 6), sb = xs0 + (<usize>b << 2);
        a0 = scaled(a0, fold1(dot32(w0, w1, w2, w3, xb)), f32x4.mul(d, v128.load32_zero(sb)));
        if (m > 1) a1 = scaled(a1, fold1(dot32(w0, w1, w2, w3, xb + xrow)), f32x4.mul(d, v128.load32_zero(sb + srow)));
        if (m > 2) a2 = scaled(a2, fold1(dot32(w0, w1, w2, w3, xb + 2 * xrow)), f32x4.mul(d, v128.load32_zero(sb + 2 * srow)));
        if (m > 3) a3 = scaled(a3, fold1(dot32(w0, w1, w2, w3, xb + 3 * xrow)), f32x4.mul(d, v128.load32_zero(sb + 3 * srow)));
      }
      const yr = y + (<usize>(t * ys + r) << 2), yrow = <usize>ys << 2;
      store<f32>(yr, hsum(a0));
      if (m > 1) store<f32>(yr + yrow, hsum(a1));
      if (m > 2) store<f32>(yr + 2 * yrow, hsum(a2));
      if (m > 3) store<f32>(yr + 3 * yrow, hsum(a3));
    }
  }
}

// One token's two blocks of 32 (int16 weights w0..w3, then u0..u3) against x's at xb: acc + their integer
// dots, each summed whole (fold2), times f = [f0, f1, 0, 0] (each block's weight scale × x's block scale).
// @ts-ignore: decorator
@inline function dot32x2(acc: v128, w0: v128, w1: v128, w2: v128, w3: v128, u0: v128, u1: v128, u2: v128, u3: v128,
  xb: usize, f: v128): v128 {
  return scaled(acc, fold2(dot32(w0, w1, w2, w3, xb), dot32(u0, u1, u2, u3, xb + 64)), f);
}

// The int16 kernels' one float step: a block's exact integer dot product (summed whole, whatever lanes held
// its parts) is converted and scaled in the same order by matmul32 and matmul16s, for any number of tokens:
// a token's result does not depend on the kernel, the build or the chunk it came in, bit for bit.
// Two blocks' four partial lane sums p, q as [Σp, Σq, Σp, Σq].
// @ts-ignore: decorator
@inline function fold2(p: v128, q: v128): v128 {
  const pq = i32x4.add(v128.shuffle<i32>(p, q, 0, 4, 1, 5), v128.shuffle<i32>(p, q, 2, 6, 3, 7));
  return i32x4.add(pq, v128.shuffle<i32>(pq, pq, 2, 3, 0, 1));
}

// One block's four partial lane sums p as [Σp, Σp, Σp, Σp].
// @ts-ignore: decorator
@inline function fold1(p: v128): v128 {
  const h = i32x4.add(p, v128.shuffle<i32>(p, p, 2, 3, 0, 1));
  return i32x4.add(h, v128.shuffle<i32>(h, h, 1, 0, 3, 2));
}

// acc + sums (i32) * f: f holds the blocks' scales in lanes 0 and 1 (lane 0 alone for one block), 0 elsewhere.
// @ts-ignore: decorator
@inline function scaled(acc: v128, sums: v128, f: v128): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sums), f));
}

// Q4_1-style offsets: y[t, r] += Σ_b xf[t, b] c[b, r] over the nb offset blocks (rows contiguous in c):
// sixteen rows at a time held in four vectors over every b (one cache line of c per b), y read and
// written once.
function addOffsets(c: usize, n: i32, nb: i32, r0: i32, r1: i32, T: i32, xf: usize, y: usize, ys: i32): void {
  const srow = <usize>nb << 2, crow = <usize>n << 2;
  for (let t = 0; t < T; t++) {
    const yt = y + (<usize>(t * ys) << 2), ft = xf + <usize>t * srow;
    let r = r0;
    for (; r + 16 <= r1; r += 16) {
      const o = <usize>r << 2;
      let a0 = v128.load(yt + o), a1 = v128.load(yt + o, 16), a2 = v128.load(yt + o, 32), a3 = v128.load(yt + o, 48);
      let cb = c + o;
      for (let b = 0; b < nb; b++) {
        const fv = v128.load32_splat(ft + (<usize>b << 2));
        a0 = f32x4.add(a0, f32x4.mul(fv, v128.load(cb)));
        a1 = f32x4.add(a1, f32x4.mul(fv, v128.load(cb, 16)));
        a2 = f32x4.add(a2, f32x4.mul(fv, v128.load(cb, 32)));
        a3 = f32x4.add(a3, f32x4.mul(fv, v128.load(cb, 48)));
        cb += crow;
      }
      v128.store(yt + o, a0);
      v128.store(yt + o, a1, 16);
      v128.store(yt + o, a2, 32);
      v128.store(yt + o, a3, 48);
    }
    for (; r < r1; r++) {
      let a = load<f32>(yt + (<usize>r << 2));
      for (let b = 0; b < nb; b++) a += load<f32>(ft + (<usize>b << 2)) * load<f32>(c + <usize>b * crow + (<usize>r << 2));
      store<f32>(yt + (<usize>r << 2), a);
    }
  }
}

// The two halves of one 8-bit block of 32 against x's block at xb, each scaled by its own weight
// scale (blocks of 16, Q6_K): acc + (Σ_lo) * d0 + (Σ_hi) * d1.
// @ts-ignore: decorator
@inline function dot16x2(acc: v128, w0: v128, w1: v128, w2: v128, w3: v128, xb: usize, d0: v128, d1: v128): v128 {
  const lo = i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(xb)), i32x4.dot_i16x8_s(w1, v128.load(xb, 16)));
  const hi = i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(xb, 32)), i32x4.dot_i16x8_s(w3, v128.load(xb, 48)));
  return f32x4.add(acc, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(lo), d0), f32x4.mul(f32x4.convert_i32x4_s(hi), d1)));
}

// matmul's 8-bit blocks of 16 (qweight (n, k/16, 16): a row's k bytes in order, scales (n, k/16)),
// read 32 at a time against x's blocks of 32; four tokens at a time as matmul32.
function matmul16(w: usize, s: usize, k: i32, r0: i32, r1: i32, T: i32, xq: usize, xs: usize, y: usize, ys: i32): void {
  const nb = k >> 5, sign = i8x16.splat(-128);
  const xrow = <usize>k << 1, srow = <usize>nb << 2;
  let t = 0;
  for (; t < T; t += 4) {
    const m = min(4, T - t);
    const xq0 = xq + <usize>t * xrow, xs0 = xs + <usize>t * srow;
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * <usize>k, sr = s + (<usize>(r * nb) << 3);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let b = 0; b < nb; b++) {
        const v0 = v128.xor(v128.load(wr + (<usize>b << 5)), sign), v1 = v128.xor(v128.load(wr + (<usize>b << 5), 16), sign);
        const w0 = i16x8.extend_low_i8x16_s(v0), w1 = i16x8.extend_high_i8x16_s(v0);
        const w2 = i16x8.extend_low_i8x16_s(v1), w3 = i16x8.extend_high_i8x16_s(v1);
        const d0 = load<f32>(sr + (<usize>b << 3)), d1 = load<f32>(sr + (<usize>b << 3), 4);
        const xb = xq0 + (<usize>b << 6), sb = xs0 + (<usize>b << 2);
        let f = load<f32>(sb);
        a0 = dot16x2(a0, w0, w1, w2, w3, xb, f32x4.splat(d0 * f), f32x4.splat(d1 * f));
        if (m > 1) {
          f = load<f32>(sb + srow);
          a1 = dot16x2(a1, w0, w1, w2, w3, xb + xrow, f32x4.splat(d0 * f), f32x4.splat(d1 * f));
        }
        if (m > 2) {
          f = load<f32>(sb + 2 * srow);
          a2 = dot16x2(a2, w0, w1, w2, w3, xb + 2 * xrow, f32x4.splat(d0 * f), f32x4.splat(d1 * f));
        }
        if (m > 3) {
          f = load<f32>(sb + 3 * srow);
          a3 = dot16x2(a3, w0, w1, w2, w3, xb + 3 * xrow, f32x4.splat(d0 * f), f32x4.splat(d1 * f));
        }
      }
      const yr = y + (<usize>(t * ys + r) << 2), yrow = <usize>ys << 2;
      store<f32>(yr, hsum(a0));
      if (m > 1) store<f32>(yr + yrow, hsum(a1));
      if (m > 2) store<f32>(yr + 2 * yrow, hsum(a2));
      if (m > 3) store<f32>(yr + 3 * yrow, hsum(a3));
    }
  }
}

// -- 8-bit activations (relaxed SIMD) -------------------------------------------------------------
// This file is built twice (web/build.mjs): nomoat-decoder[-mt].wasm without relaxed SIMD (RELAXED 0:
// matmul8 traps, the engine never calls it) and nomoat-decoder[-mt]-relaxed.wasm with it (RELAXED 1),
// which wasm_engine.mjs loads where WebAssembly.validate accepts relaxed SIMD. There, weights whose
// integers fit in 7 unsigned bits may take 8-bit activations: x quantized per block of 32 to int8 (scale
// max|x| / 127: relative error <= 1/254 of the block's largest value, 128x the int16 path's), and a
// block's dot product is two i16x8.relaxed_dot_i8x16_i7x16_s (16 multiply-adds each, against four
// i32x4.dot_i16x8_s and four widenings; see rdot16). That instruction's result is implementation-defined only where
// its second operand's top bit is set; that operand is the weight's unsigned integer u - lo in 0..127
// (4 bits: the nibble, lo 0, bias -8; 8 bits: the byte u when every byte of the tensor lies in
// lo..lo+127 (byteRange): Q6_K's 6-bit and Q5_K/Q5_0/Q5_1's 5-bit values), so every engine computes the
// same integers, and its pairwise i16 sums (two products of |xq| <= 127 and <= 127) never saturate.
// The weight's signed integer is (u - lo) + bias, so Σ xq q = Σ xq (u - lo) + bias Σ xq: quantize8
// stores bias × each half block's Σ xq (xi), the dot's starting accumulator. Offsets (c) as matmul's.
export const RELAXED: i32 = ASC_FEATURE_RELAXED_SIMD ? 1 : 0;

// The least and greatest of n bytes at p (n a multiple of 16), as min | max << 8.
export function byteRange(p: usize, n: i32): i32 {
  let lo = i8x16.splat(-1), hi = i8x16.splat(0);
  for (let i = 0; i + 16 <= n; i += 16) {
    const v = v128.load(p + <usize>i);
    lo = i8x16.min_u(lo, v);
    hi = i8x16.max_u(hi, v);
  }
  lo = i8x16.min_u(lo, v128.shuffle<u8>(lo, lo, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  hi = i8x16.max_u(hi, v128.shuffle<u8>(hi, hi, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  lo = i8x16.min_u(lo, v128.shuffle<u8>(lo, lo, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3));
  hi = i8x16.max_u(hi, v128.shuffle<u8>(hi, hi, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3));
  lo = i8x16.min_u(lo, v128.shuffle<u8>(lo, lo, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1));
  hi = i8x16.max_u(hi, v128.shuffle<u8>(hi, hi, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1));
  const a = min(i8x16.extract_lane_u(lo, 0), i8x16.extract_lane_u(lo, 1));
  const b = max(i8x16.extract_lane_u(hi, 0), i8x16.extract_lane_u(hi, 1));
  return <i32>a | (<i32>b << 8);
}

// x (T, k) f32 → xq (T, k) i8, xs (T, k/32) f32 scales (max|x| / 127), xf f32 block sums as quantize
// makes them (half: of each half block), xi (T, k/wblock) i32: bias × the sum of each weight block's int8
// values (wblock 32, or 16: elements 0..15 and 16..31 of x's block). perm = 1 orders each block as the
// 4-bit unpacking yields it: even elements first, then odd ones.
export function quantize8(x: usize, k: i32, T: i32, perm: i32, half: i32, bias: i32, wblock: i32, xq: usize, xs: usize,
  xf: usize, xi: usize): void {
  for (let i = 0; i < T * (k >> 5); i++) {
    const src = x + (<usize>i << 7), dst = xq + (<usize>i << 5);
    const v0 = v128.load(src), v1 = v128.load(src, 16), v2 = v128.load(src, 32), v3 = v128.load(src, 48);
    const v4 = v128.load(src, 64), v5 = v128.load(src, 80), v6 = v128.load(src, 96), v7 = v128.load(src, 112);
    let m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    m = f32x4.max(m, v128.shuffle<i32>(m, m, 2, 3, 0, 1));
    const mx = max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
    const inv = f32x4.splat(mx > 0 ? <f32>127.0 / mx : 0);
    store<f32>(xs + (<usize>i << 2), mx / <f32>127.0);
    const s0 = hsum(f32x4.add(f32x4.add(v0, v1), f32x4.add(v2, v3))), s1 = hsum(f32x4.add(f32x4.add(v4, v5), f32x4.add(v6, v7)));
    if (half) {
      store<f32>(xf + (<usize>i << 3), s0);
      store<f32>(xf + (<usize>i << 3), s1, 4);
    } else store<f32>(xf + (<usize>i << 2), s0 + s1);
    const q0 = q8round(v0, inv), q1 = q8round(v1, inv), q2 = q8round(v2, inv), q3 = q8round(v3, inv);
    const q4 = q8round(v4, inv), q5 = q8round(v5, inv), q6 = q8round(v6, inv), q7 = q8round(v7, inv);
    const a = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3));
    const b = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q4, q5), i16x8.narrow_i32x4_s(q6, q7));
    if (perm) {
      v128.store(dst, v128.shuffle<u8>(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
      v128.store(dst, v128.shuffle<u8>(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), 16);
    } else {
      v128.store(dst, a);
      v128.store(dst, b, 16);
    }
    const t0 = i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3)), t1 = i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7));
    const n0 = i32x4.extract_lane(t0, 0) + i32x4.extract_lane(t0, 1) + i32x4.extract_lane(t0, 2) + i32x4.extract_lane(t0, 3);
    const n1 = i32x4.extract_lane(t1, 0) + i32x4.extract_lane(t1, 1) + i32x4.extract_lane(t1, 2) + i32x4.extract_lane(t1, 3);
    if (wblock == 16) {
      store<i32>(xi + (<usize>i << 3), bias * n0);
      store<i32>(xi + (<usize>i << 3), bias * n1, 4);
    } else store<i32>(xi + (<usize>i << 2), bias * (n0 + n1));
  }
}

// nearest(v * inv) as i32 lanes (|v * inv| <= 127 by construction).
// @ts-ignore: decorator
@inline function q8round(v: v128, inv: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, inv)));
}

// y[t * ys + r] = Σ_k x[t, k] W[r, k] as matmul, x given by quantize8 (perm = bits == 4, half = offsets in
// blocks of 16, bias as below, wblock = block), for weights whose unsigned integers u lie in lo..lo+127:
// 4 bits (lo 0, bias -8) or 8 bits (bias lo - 128). Four tokens at a time, and four blocks of 32 at a
// time: their four integer sums are gathered into one vector (i32sum4) before the one conversion to f32
// and the scaling by four weight scales times four activation scales (loaded as vectors: both lie in a
// row). Only in the relaxed build (RELAXED 1).
export function matmul8(w: usize, s: usize, c: usize, n: i32, k: i32, bits: i32, block: i32, lo: i32, r0: i32, r1: i32,
  T: i32, xq: usize, xs: usize, xf: usize, xi: usize, y: usize, ys: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (block == 16) matmul8x16(w, s, k, lo, r0, r1, T, xq, xs, xi, y, ys);
    else matmul8x32(w, s, k, bits, lo, r0, r1, T, xq, xs, xi, y, ys);
    if (c) addOffsets(c, n, k / block, r0, r1, T, xf, y, ys);
  } else unreachable();
}

// The lane sums of i32 vectors a, b, c, d as one vector [Σa, Σb, Σc, Σd].
// @ts-ignore: decorator
@inline function i32sum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

// Σ xq (u - lo) of x's 16 values at xb against w, as four partial lane sums. One i16x8 relaxed dot (pairs of
// products: |sum| <= 2 * 127 * 127 < 2^15, exact) widened pairwise: x86 has no 8-bit dot into i32 lanes
// without AVX-VNNI, where V8 makes i32x4.relaxed_dot_i8x16_i7x16_add_s five instructions (two to make a
// constant of ones), against these two (pmaddubsw, pmaddwd with a constant in memory).
// @ts-ignore: decorator
@inline function rdot16(w: v128, xb: usize): v128 {
  return i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xb), w));
}

// Σ xq (u - lo) of x's block at xb against one weight block of 32 (wa: its first 16 values, wb: the rest),
// as four partial lane sums. With 4-bit weights (u <= 15) the two halves' i16 pair sums are added before
// the widening (|sum| <= 4 * 127 * 15 < 2^15); 8-bit ones (u - lo <= 127) would overflow i16 there.
// @ts-ignore: decorator
@inline function rdot32(wa: v128, wb: v128, xb: usize, bits: i32): v128 {
  if (bits == 4) {
    return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xb), wa),
      i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xb, 16), wb)));
  }
  return i32x4.add(rdot16(wa, xb), rdot16(wb, xb + 16));
}

// One token's four blocks of 32 (weights w0..w7, two a block) at xb: acc + (their integer sums + the bias
// sums at ib) * f (four scales).
// @ts-ignore: decorator
@inline function dot8x32x4(acc: v128, w0: v128, w1: v128, w2: v128, w3: v128, w4: v128, w5: v128, w6: v128, w7: v128,
  xb: usize, ib: usize, f: v128, bits: i32): v128 {
  const d = i32sum4(rdot32(w0, w1, xb, bits), rdot32(w2, w3, xb + 32, bits), rdot32(w4, w5, xb + 64, bits),
    rdot32(w6, w7, xb + 96, bits));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.add(d, v128.load(ib))), f));
}

// One token's block of 32: acc + (Σ xq (u - lo) + its bias sum at ib) * f, all lanes (hsum later).
// @ts-ignore: decorator
@inline function dot8x32(acc: v128, wa: v128, wb: v128, xb: usize, ib: usize, f: f32, bits: i32): v128 {
  const d = i32x4.add(rdot32(wa, wb, xb, bits), v128.load32_zero(ib));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), f32x4.splat(f)));
}

// matmul8's blocks of 32 (4 or 8 bits), without offsets. One token (decode) gets its own copy of the
// row loop (rows8x32 inlined with m = 1: no registers held for the other three).
function matmul8x32(w: usize, s: usize, k: i32, bits: i32, lo: i32, r0: i32, r1: i32, T: i32, xq: usize, xs: usize, xi: usize,
  y: usize, ys: i32): void {
  for (let t = 0; t < T; t += 4) {
    const m = min(4, T - t);
    if (m == 1) rows8x32(w, s, k, bits, lo, r0, r1, t, 1, xq, xs, xi, y, ys);
    else rows8x32(w, s, k, bits, lo, r0, r1, t, m, xq, xs, xi, y, ys);
  }
}

// matmul8x32's rows r0 ≤ r < r1 for tokens t..t+m-1 (m ≤ 4).
// @ts-ignore: decorator
@inline function rows8x32(w: usize, s: usize, k: i32, bits: i32, lo: i32, r0: i32, r1: i32, t: i32, m: i32, xq: usize, xs: usize,
  xi: usize, y: usize, ys: i32): void {
  const nb = k >> 5, nb4 = nb & ~3, blob: usize = bits == 4 ? 16 : 32;
  const low = i8x16.splat(0x0f), lov = i8x16.splat(<i8>lo);
  const xrow = <usize>k, srow = <usize>nb << 2;
  {
    const xq0 = xq + <usize>t * xrow, xs0 = xs + <usize>t * srow, xi0 = xi + <usize>t * srow;
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * <usize>nb * blob, sr = s + (<usize>(r * nb) << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b = 0;
      for (; b < nb4; b += 4) {
        let w0: v128, w1: v128, w2: v128, w3: v128, w4: v128, w5: v128, w6: v128, w7: v128;
        if (bits == 4) {
          const p = wr + (<usize>b << 4), u0 = v128.load(p), u1 = v128.load(p, 16), u2 = v128.load(p, 32), u3 = v128.load(p, 48);
          w0 = v128.and(u0, low); w1 = hiNibbles(u0, low); w2 = v128.and(u1, low); w3 = hiNibbles(u1, low);
          w4 = v128.and(u2, low); w5 = hiNibbles(u2, low); w6 = v128.and(u3, low); w7 = hiNibbles(u3, low);
        } else {
          const p = wr + (<usize>b << 5);
          w0 = i8x16.sub(v128.load(p), lov); w1 = i8x16.sub(v128.load(p, 16), lov);
          w2 = i8x16.sub(v128.load(p, 32), lov); w3 = i8x16.sub(v128.load(p, 48), lov);
          w4 = i8x16.sub(v128.load(p, 64), lov); w5 = i8x16.sub(v128.load(p, 80), lov);
          w6 = i8x16.sub(v128.load(p, 96), lov); w7 = i8x16.sub(v128.load(p, 112), lov);
        }
        const d = v128.load(sr + (<usize>b << 2));
        const xb = xq0 + (<usize>b << 5), sb = xs0 + (<usize>b << 2), ib = xi0 + (<usize>b << 2);
        a0 = dot8x32x4(a0, w0, w1, w2, w3, w4, w5, w6, w7, xb, ib, f32x4.mul(d, v128.load(sb)), bits);
        if (m > 1) a1 = dot8x32x4(a1, w0, w1, w2, w3, w4, w5, w6, w7, xb + xrow, ib + srow, f32x4.mul(d, v128.load(sb + srow)), bits);
        if (m > 2) a2 = dot8x32x4(a2, w0, w1, w2, w3, w4, w5, w6, w7, xb + 2 * xrow, ib + 2 * srow, f32x4.mul(d, v128.load(sb + 2 * srow)), bits);
        if (m > 3) a3 = dot8x32x4(a3, w0, w1, w2, w3, w4, w5, w6, w7, xb + 3 * xrow, ib + 3 * srow, f32x4.mul(d, v128.load(sb + 3 * srow)), bits);
      }
      for (; b < nb; b++) {
        let wa: v128, wb: v128;
        if (bits == 4) {
          const v = v128.load(wr + (<usize>b << 4));
          wa = v128.and(v, low);
          wb = hiNibbles(v, low);
        } else {
          wa = i8x16.sub(v128.load(wr + (<usize>b << 5)), lov);
          wb = i8x16.sub(v128.load(wr + (<usize>b << 5), 16), lov);
        }
        const d = load<f32>(sr + (<usize>b << 2));
        const xb = xq0 + (<usize>b << 5), sb = xs0 + (<usize>b << 2), ib = xi0 + (<usize>b << 2);
        a0 = dot8x32(a0, wa, wb, xb, ib, d * load<f32>(sb), bits);
        if (m > 1) a1 = dot8x32(a1, wa, wb, xb + xrow, ib + srow, d * load<f32>(sb + srow), bits);
        if (m > 2) a2 = dot8x32(a2, wa, wb, xb + 2 * xrow, ib + 2 * srow, d * load<f32>(sb + 2 * srow), bits);
        if (m > 3) a3 = dot8x32(a3, wa, wb, xb + 3 * xrow, ib + 3 * srow, d * load<f32>(sb + 3 * srow), bits);
      }
      const yr = y + (<usize>(t * ys + r) << 2), yrow = <usize>ys << 2;
      store<f32>(yr, hsum(a0));
      if (m > 1) store<f32>(yr + yrow, hsum(a1));
      if (m > 2) store<f32>(yr + 2 * yrow, hsum(a2));
      if (m > 3) store<f32>(yr + 3 * yrow, hsum(a3));
    }
  }
}

// One token's four blocks of 32 as eight blocks of 16 (weights w0..w7, each its own scale): acc +
// (the integer sums + the bias sums at ib) * (f0 for the first four, f1 for the rest).
// @ts-ignore: decorator
@inline function dot8x16x8(acc: v128, w0: v128, w1: v128, w2: v128, w3: v128, w4: v128, w5: v128, w6: v128, w7: v128,
  xb: usize, ib: usize, f0: v128, f1: v128): v128 {
  const p = i32sum4(rdot16(w0, xb), rdot16(w1, xb + 16), rdot16(w2, xb + 32), rdot16(w3, xb + 48));
  const q = i32sum4(rdot16(w4, xb + 64), rdot16(w5, xb + 80), rdot16(w6, xb + 96), rdot16(w7, xb + 112));
  return f32x4.add(acc, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.add(p, v128.load(ib))), f0),
    f32x4.mul(f32x4.convert_i32x4_s(i32x4.add(q, v128.load(ib, 16))), f1)));
}

// One token's two blocks of 16 (one of x's blocks of 32), each with its own weight scale:
// acc + (Σ_lo) * f0 + (Σ_hi) * f1, the bias sums at ib.
// @ts-ignore: decorator
@inline function dot8x16x2(acc: v128, wa: v128, wb: v128, xb: usize, ib: usize, f0: f32, f1: f32): v128 {
  const a = i32x4.add(rdot16(wa, xb), v128.load32_zero(ib));
  const b = i32x4.add(rdot16(wb, xb + 16), v128.load32_zero(ib, 4));
  return f32x4.add(acc, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(a), f32x4.splat(f0)), f32x4.mul(f32x4.convert_i32x4_s(b), f32x4.splat(f1))));
}

// matmul8's 8-bit blocks of 16 (Q6_K; layout as matmul16's), without offsets; one token as matmul8x32.
function matmul8x16(w: usize, s: usize, k: i32, lo: i32, r0: i32, r1: i32, T: i32, xq: usize, xs: usize, xi: usize,
  y: usize, ys: i32): void {
  for (let t = 0; t < T; t += 4) {
    const m = min(4, T - t);
    if (m == 1) rows8x16(w, s, k, lo, r0, r1, t, 1, xq, xs, xi, y, ys);
    else rows8x16(w, s, k, lo, r0, r1, t, m, xq, xs, xi, y, ys);
  }
}

// matmul8x16's rows r0 ≤ r < r1 for tokens t..t+m-1 (m ≤ 4).
// @ts-ignore: decorator
@inline function rows8x16(w: usize, s: usize, k: i32, lo: i32, r0: i32, r1: i32, t: i32, m: i32, xq: usize, xs: usize, xi: usize,
  y: usize, ys: i32): void {
  const nb = k >> 5, nb4 = nb & ~3, lov = i8x16.splat(<i8>lo);
  const xrow = <usize>k, srow = <usize>nb << 2, irow = <usize>nb << 3;
  {
    const xq0 = xq + <usize>t * xrow, xs0 = xs + <usize>t * srow, xi0 = xi + <usize>t * irow;
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * <usize>k, sr = s + (<usize>(r * nb) << 3);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b = 0;
      for (; b < nb4; b += 4) {
        const p = wr + (<usize>b << 5);
        const w0 = i8x16.sub(v128.load(p), lov), w1 = i8x16.sub(v128.load(p, 16), lov);
        const w2 = i8x16.sub(v128.load(p, 32), lov), w3 = i8x16.sub(v128.load(p, 48), lov);
        const w4 = i8x16.sub(v128.load(p, 64), lov), w5 = i8x16.sub(v128.load(p, 80), lov);
        const w6 = i8x16.sub(v128.load(p, 96), lov), w7 = i8x16.sub(v128.load(p, 112), lov);
        const d0 = v128.load(sr + (<usize>b << 3)), d1 = v128.load(sr + (<usize>b << 3), 16);
        const xb = xq0 + (<usize>b << 5), sb = xs0 + (<usize>b << 2), ib = xi0 + (<usize>b << 3);
        let f = v128.load(sb);
        a0 = dot8x16x8(a0, w0, w1, w2, w3, w4, w5, w6, w7, xb, ib,
          f32x4.mul(d0, v128.shuffle<i32>(f, f, 0, 0, 1, 1)), f32x4.mul(d1, v128.shuffle<i32>(f, f, 2, 2, 3, 3)));
        if (m > 1) {
          f = v128.load(sb + srow);
          a1 = dot8x16x8(a1, w0, w1, w2, w3, w4, w5, w6, w7, xb + xrow, ib + irow,
            f32x4.mul(d0, v128.shuffle<i32>(f, f, 0, 0, 1, 1)), f32x4.mul(d1, v128.shuffle<i32>(f, f, 2, 2, 3, 3)));
        }
        if (m > 2) {
          f = v128.load(sb + 2 * srow);
          a2 = dot8x16x8(a2, w0, w1, w2, w3, w4, w5, w6, w7, xb + 2 * xrow, ib + 2 * irow,
            f32x4.mul(d0, v128.shuffle<i32>(f, f, 0, 0, 1, 1)), f32x4.mul(d1, v128.shuffle<i32>(f, f, 2, 2, 3, 3)));
        }
        if (m > 3) {
          f = v128.load(sb + 3 * srow);
          a3 = dot8x16x8(a3, w0, w1, w2, w3, w4, w5, w6, w7, xb + 3 * xrow, ib + 3 * irow,
            f32x4.mul(d0, v128.shuffle<i32>(f, f, 0, 0, 1, 1)), f32x4.mul(d1, v128.shuffle<i32>(f, f, 2, 2, 3, 3)));
        }
      }
      for (; b < nb; b++) {
        const wa = i8x16.sub(v128.load(wr + (<usize>b << 5)), lov), wb = i8x16.sub(v128.load(wr + (<usize>b << 5), 16), lov);
        const d0 = load<f32>(sr + (<usize>b << 3)), d1 = load<f32>(sr + (<usize>b << 3), 4);
        const xb = xq0 + (<usize>b << 5), sb = xs0 + (<usize>b << 2), ib = xi0 + (<usize>b << 3);
        let f = load<f32>(sb);
        a0 = dot8x16x2(a0, wa, wb, xb, ib, d0 * f, d1 * f);
        if (m > 1) {
          f = load<f32>(sb + srow);
          a1 = dot8x16x2(a1, wa, wb, xb + xrow, ib + irow, d0 * f, d1 * f);
        }
        if (m > 2) {
          f = load<f32>(sb + 2 * srow);
          a2 = dot8x16x2(a2, wa, wb, xb + 2 * xrow, ib + 2 * irow, d0 * f, d1 * f);
        }
        if (m > 3) {
          f = load<f32>(sb + 3 * srow);
          a3 = dot8x16x2(a3, wa, wb, xb + 3 * xrow, ib + 3 * irow, d0 * f, d1 * f);
        }
      }
      const yr = y + (<usize>(t * ys + r) << 2), yrow = <usize>ys << 2;
      store<f32>(yr, hsum(a0));
      if (m > 1) store<f32>(yr + yrow, hsum(a1));
      if (m > 2) store<f32>(yr + 2 * yrow, hsum(a2));
      if (m > 3) store<f32>(yr + 3 * yrow, hsum(a3));
    }
  }
}

// -- int16 activations against 4-bit weights with relaxed SIMD ------------------------------------------
// The same int16 activations as matmul (quantize), for 4-bit blocks of 32 in the relaxed build: each value
// q (|q| <= 32639) as two signed bytes, q = 256 h + l (h = (q + 128) >> 8 in -127..127, l in -128..127), so
// that one block's dot product is four i16x8.relaxed_dot_i8x16_i7x16_s with the weights' unsigned nibbles
// u (0..15) as the 7-bit operand (deterministic on every engine: its top bit is clear), against matmul's
// eight widenings and four i32x4.dot_i16x8_s. Σ q (u - 8) = 256 Σ h u + Σ l u - 8 Σ q, all exact in integers:
// the same integers as matmul's, in other lanes, each summed whole before the same float steps (scaled):
// matmul16s and matmul give the same floats, bit for bit.

// xq (T, k) i16 (quantize's, perm = 1) → xp (T, k/32, 64) bytes: per block h of its 32 values, then l; and
// xb (T, k/32) i32: -8 × each block's Σ q.
export function split16(xq: usize, k: i32, T: i32, xp: usize, xb: usize): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const c128 = i16x8.splat(128), one = i16x8.splat(1);
    for (let i = 0; i < T * (k >> 5); i++) {
      const src = xq + (<usize>i << 6), dst = xp + (<usize>i << 6);
      const q0 = v128.load(src), q1 = v128.load(src, 16), q2 = v128.load(src, 32), q3 = v128.load(src, 48);
      const h0 = i16x8.shr_s(i16x8.add(q0, c128), 8), h1 = i16x8.shr_s(i16x8.add(q1, c128), 8);
      const h2 = i16x8.shr_s(i16x8.add(q2, c128), 8), h3 = i16x8.shr_s(i16x8.add(q3, c128), 8);
      v128.store(dst, i8x16.narrow_i16x8_s(h0, h1));
      v128.store(dst, i8x16.narrow_i16x8_s(h2, h3), 16);
      v128.store(dst, i8x16.narrow_i16x8_s(i16x8.sub(q0, i16x8.shl(h0, 8)), i16x8.sub(q1, i16x8.shl(h1, 8))), 32);
      v128.store(dst, i8x16.narrow_i16x8_s(i16x8.sub(q2, i16x8.shl(h2, 8)), i16x8.sub(q3, i16x8.shl(h3, 8))), 48);
      const t = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(q0, one), i32x4.dot_i16x8_s(q1, one)),
        i32x4.add(i32x4.dot_i16x8_s(q2, one), i32x4.dot_i16x8_s(q3, one)));
      store<i32>(xb + (<usize>i << 2), -8 * (i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) +
        i32x4.extract_lane(t, 2) + i32x4.extract_lane(t, 3)));
    }
  } else unreachable();
}

// One block of 32 (nibbles wl: its first 16 values, wh: the rest) against x's split block at p, bias at ib:
// Σ q (u - 8) as four partial lane sums.
// @ts-ignore: decorator
@inline function sdot32(wl: v128, wh: v128, p: usize, ib: usize, c256: v128): v128 {
  const hi = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p), wl), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 16), wh));
  const lo = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 32), wl), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 48), wh));
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(hi, c256), i32x4.extadd_pairwise_i16x8_s(lo)), v128.load32_zero(ib));
}

// One token's two blocks (nibbles wl, wh, then vl, vh) against x's split blocks at p: as dot32x2.
// @ts-ignore: decorator
@inline function sdot32x2(acc: v128, wl: v128, wh: v128, vl: v128, vh: v128, p: usize, ib: usize, c256: v128, f: v128): v128 {
  return scaled(acc, fold2(sdot32(wl, wh, p, ib, c256), sdot32(vl, vh, p + 64, ib + 4, c256)), f);
}

// matmul for 4-bit weights in blocks of 32 with x split by split16 (xp, xb) and scaled by quantize's xs (xf:
// its block sums, for the offsets c): rows r0 ≤ r < r1, four tokens at a time, blocks two at a time as
// matmul32. Only in the relaxed build.
export function matmul16s(w: usize, s: usize, c: usize, n: i32, k: i32, r0: i32, r1: i32, T: i32, xp: usize, xb: usize,
  xs: usize, xf: usize, y: usize, ys: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    for (let t = 0; t < T; t += 4) {
      const m = min(4, T - t);
      if (m == 1) rows16s(w, s, k, r0, r1, t, 1, xp, xb, xs, y, ys);
      else rows16s(w, s, k, r0, r1, t, m, xp, xb, xs, y, ys);
    }
    if (c) addOffsets(c, n, k >> 5, r0, r1, T, xf, y, ys);
  } else unreachable();
}

// matmul16s's rows r0 ≤ r < r1 for tokens t..t+m-1 (m ≤ 4).
// @ts-ignore: decorator
@inline function rows16s(w: usize, s: usize, k: i32, r0: i32, r1: i32, t: i32, m: i32, xp: usize, xb: usize, xs: usize,
  y: usize, ys: i32): void {
  const nb = k >> 5, nb2 = nb & ~1;
  const low = i8x16.splat(0x0f), c256 = i16x8.splat(256);
  const prow = <usize>k << 1, srow = <usize>nb << 2; // bytes per token in xp; in xb and xs
  const xp0 = xp + <usize>t * prow, xb0 = xb + <usize>t * srow, xs0 = xs + <usize>t * srow;
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * <usize>nb * 16, sr = s + (<usize>(r * nb) << 2);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b = 0;
    for (; b < nb2; b += 2) {
      const u = v128.load(wr + (<usize>b << 4)), v = v128.load(wr + (<usize>b << 4), 16);
      const wl = v128.and(u, low), wh = hiNibbles(u, low), vl = v128.and(v, low), vh = hiNibbles(v, low);
      const d2 = v128.load64_zero(sr + (<usize>b << 2)); // [d0, d1, 0, 0]
      const p = xp0 + (<usize>b << 6), ib = xb0 + (<usize>b << 2), sb = xs0 + (<usize>b << 2);
      a0 = sdot32x2(a0, wl, wh, vl, vh, p, ib, c256, f32x4.mul(d2, v128.load64_zero(sb)));
      if (m > 1) a1 = sdot32x2(a1, wl, wh, vl, vh, p + prow, ib + srow, c256, f32x4.mul(d2, v128.load64_zero(sb + srow)));
      if (m > 2) a2 = sdot32x2(a2, wl, wh, vl, vh, p + 2 * prow, ib + 2 * srow, c256, f32x4.mul(d2, v128.load64_zero(sb + 2 * srow)));
      if (m > 3) a3 = sdot32x2(a3, wl, wh, vl, vh, p + 3 * prow, ib + 3 * srow, c256, f32x4.mul(d2, v128.load64_zero(sb + 3 * srow)));
    }
    if (b < nb) { // an odd last block
      const u = v128.load(wr + (<usize>b << 4));
      const wl = v128.and(u, low), wh = hiNibbles(u, low), d = v128.load32_zero(sr + (<usize>b << 2)); // [d, 0, 0, 0]
      const p = xp0 + (<usize>b << 6), ib = xb0 + (<usize>b << 2), sb = xs0 + (<usize>b << 2);
      a0 = scaled(a0, fold1(sdot32(wl, wh, p, ib, c256)), f32x4.mul(d, v128.load32_zero(sb)));
      if (m > 1) a1 = scaled(a1, fold1(sdot32(wl, wh, p + prow, ib + srow, c256)), f32x4.mul(d, v128.load32_zero(sb + srow)));
      if (m > 2) a2 = scaled(a2, fold1(sdot32(wl, wh, p + 2 * prow, ib + 2 * srow, c256)), f32x4.mul(d, v128.load32_zero(sb + 2 * srow)));
      if (m > 3) a3 = scaled(a3, fold1(sdot32(wl, wh, p + 3 * prow, ib + 3 * srow, c256)), f32x4.mul(d, v128.load32_zero(sb + 3 * srow)));
    }
    const yr = y + (<usize>(t * ys + r) << 2), yrow = <usize>ys << 2;
    store<f32>(yr, hsum(a0));
    if (m > 1) store<f32>(yr + yrow, hsum(a1));
    if (m > 2) store<f32>(yr + 2 * yrow, hsum(a2));
    if (m > 3) store<f32>(yr + 3 * yrow, hsum(a3));
  }
}

// y[t * ys + r] = Σ_k x[t, k] W[r, k] for an f32 weight W (n, k) (F16/BF16/F32 in the GGUF), rows
// r0 ≤ r < r1, x (T, k) f32; four tokens at a time, four inputs a lane.
export function matmulF32(w: usize, k: i32, r0: i32, r1: i32, T: i32, x: usize, y: usize, ys: i32): void {
  const xrow = <usize>k << 2;
  for (let t = 0; t < T; t += 4) {
    const m = min(4, T - t), x0 = x + <usize>t * xrow;
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * xrow;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      if (m == 4) {
        for (let j: usize = 0; j < xrow; j += 16) {
          const wv = v128.load(wr + j), xb = x0 + j;
          a0 = f32x4.add(a0, f32x4.mul(wv, v128.load(xb)));
          a1 = f32x4.add(a1, f32x4.mul(wv, v128.load(xb + xrow)));
          a2 = f32x4.add(a2, f32x4.mul(wv, v128.load(xb + 2 * xrow)));
          a3 = f32x4.add(a3, f32x4.mul(wv, v128.load(xb + 3 * xrow)));
        }
      } else {
        for (let j: usize = 0; j < xrow; j += 16) {
          const wv = v128.load(wr + j), xb = x0 + j;
          a0 = f32x4.add(a0, f32x4.mul(wv, v128.load(xb)));
          if (m > 1) a1 = f32x4.add(a1, f32x4.mul(wv, v128.load(xb + xrow)));
          if (m > 2) a2 = f32x4.add(a2, f32x4.mul(wv, v128.load(xb + 2 * xrow)));
        }
      }
      const yr = y + (<usize>(t * ys + r) << 2), yrow = <usize>ys << 2;
      store<f32>(yr, hsum(a0));
      if (m > 1) store<f32>(yr + yrow, hsum(a1));
      if (m > 2) store<f32>(yr + 2 * yrow, hsum(a2));
      if (m > 3) store<f32>(yr + 3 * yrow, hsum(a3));
    }
  }
}

// y (T, h) = x / sqrt(mean(x²) + eps) * w
export function rmsnorm(x: usize, w: usize, y: usize, h: i32, T: i32, eps: f32): void {
  for (let t = 0; t < T; t++) {
    const xr = x + (<usize>(t * h) << 2), yr = y + (<usize>(t * h) << 2);
    let ss: f32 = 0;
    for (let j = 0; j < h; j++) {
      const v = load<f32>(xr + (<usize>j << 2));
      ss += v * v;
    }
    const r = <f32>1.0 / sqrt<f32>(ss / <f32>h + eps);
    for (let j = 0; j < h; j++) {
      const o = <usize>j << 2;
      store<f32>(yr + o, load<f32>(xr + o) * r * load<f32>(w + o));
    }
  }
}

// Per-head RMSNorm in place (q/k norms before RoPE): nh heads of hd at float `off` of each of T rows
// of `stride` floats, each head x / sqrt(mean(x²) + eps) * w (w: hd floats).
export function headNorm(x: usize, stride: i32, off: i32, nh: i32, hd: i32, T: i32, w: usize, eps: f32): void {
  for (let t = 0; t < T; t++) {
    const row = x + (<usize>(t * stride + off) << 2);
    rmsnorm(row, w, row, hd, nh, eps);
  }
}

// x (T, n) += b (n) on every row (biases)
export function addRows(x: usize, b: usize, n: i32, T: i32): void {
  for (let t = 0; t < T; t++) add(x + (<usize>(t * n) << 2), b, n);
}

// x *= f, n floats
export function scale(x: usize, n: i32, f: f32): void {
  for (let j = 0; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(x + o, load<f32>(x + o) * f);
  }
}

// x += y, n floats
export function add(x: usize, y: usize, n: i32): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    v128.store(x + o, f32x4.add(v128.load(x + o), v128.load(y + o)));
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(x + o, load<f32>(x + o) + load<f32>(y + o));
  }
}

// e^x for four lanes (Cephes' expf polynomial; inputs clamped to [-87, 88]).
// @ts-ignore: decorator
@inline function exp4(x: v128): v128 {
  x = f32x4.max(f32x4.min(x, f32x4.splat(88.0)), f32x4.splat(-87.0));
  const fx = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(fx, f32x4.splat(0.693359375))), f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1.0));
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(fx), i32x4.splat(127)), 23);
  return f32x4.mul(p, e);
}

// out (T, m) = silu(gu[:, :m]) * gu[:, m:], gu (T, 2m); m a multiple of 4
export function siluMul(gu: usize, m: i32, T: i32, out: usize): void {
  const one = f32x4.splat(1.0);
  for (let t = 0; t < T; t++) {
    const g0 = gu + (<usize>(2 * t * m) << 2), u0 = g0 + (<usize>m << 2), o0 = out + (<usize>(t * m) << 2);
    for (let j = 0; j < m; j += 4) {
      const o = <usize>j << 2;
      const g = v128.load(g0 + o);
      const sg = f32x4.div(g, f32x4.add(one, exp4(f32x4.neg(g))));
      v128.store(o0 + o, f32x4.mul(sg, v128.load(u0 + o)));
    }
  }
}

// out (T, m) = gelu_tanh(gu[:, :m]) * gu[:, m:] (GeGLU, PyTorch's tanh GELU), gu (T, 2m); m a multiple
// of 4. 0.5 g (1 + tanh(u)) = g / (1 + e^(-2u)), u = sqrt(2/pi) (g + 0.044715 g³).
export function geluMul(gu: usize, m: i32, T: i32, out: usize): void {
  const one = f32x4.splat(1.0), c0 = f32x4.splat(-1.5957691216057308), c1 = f32x4.splat(0.044715);
  for (let t = 0; t < T; t++) {
    const g0 = gu + (<usize>(2 * t * m) << 2), u0 = g0 + (<usize>m << 2), o0 = out + (<usize>(t * m) << 2);
    for (let j = 0; j < m; j += 4) {
      const o = <usize>j << 2;
      const g = v128.load(g0 + o);
      const inner = f32x4.mul(c0, f32x4.add(g, f32x4.mul(c1, f32x4.mul(g, f32x4.mul(g, g)))));
      v128.store(o0 + o, f32x4.mul(f32x4.div(g, f32x4.add(one, exp4(inner))), v128.load(u0 + o)));
    }
  }
}

// Rotate-half RoPE in place on the first rd values of nh heads of hd in each of T rows (row stride
// `stride` floats; the other hd - rd values pass unchanged: partial rotary), positions pos0..pos0+T-1;
// cos/sin tables (positions, rd/2).
export function rope(x: usize, stride: i32, nh: i32, hd: i32, rd: i32, T: i32, pos0: i32, cos: usize, sin: usize): void {
  const half = rd >> 1;
  for (let t = 0; t < T; t++) {
    const cb = cos + (<usize>((pos0 + t) * half) << 2), sb = sin + (<usize>((pos0 + t) * half) << 2);
    for (let h = 0; h < nh; h++) {
      const base = x + (<usize>(t * stride + h * hd) << 2);
      for (let i = 0; i < half; i++) {
        const pa = base + (<usize>i << 2), pb = base + (<usize>(i + half) << 2);
        const a = load<f32>(pa), b = load<f32>(pb);
        const co = load<f32>(cb + (<usize>i << 2)), si = load<f32>(sb + (<usize>i << 2));
        store<f32>(pa, a * co - b * si);
        store<f32>(pb, b * co + a * si);
      }
    }
  }
}

// n floats at x (n a multiple of 8) → n int16 at dst: nearest(x * levels / max|x|). Returns max|x|
// (the row's scale is max|x| / levels; 0 for an all-zero row, which then stays 0).
// @ts-ignore: decorator
@inline function toInt16(x: usize, n: i32, levels: f32, dst: usize): f32 {
  let mv = f32x4.splat(0);
  for (let d = 0; d < n; d += 4) mv = f32x4.max(mv, f32x4.abs(v128.load(x + (<usize>d << 2))));
  const amax = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)),
                   max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  const iv = f32x4.splat(amax > 0 ? levels / amax : 0);
  for (let d = 0; d < n; d += 8) {
    const xb = x + (<usize>d << 2);
    v128.store(dst + (<usize>d << 1), i16x8.narrow_i32x4_s(
      i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb), iv))),
      i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 16), iv)))));
  }
  return amax;
}

// Appends T rows of nh heads (from src rows of `stride` floats, starting at float `off`) to a 16-bit
// cache laid out (nh, cap, hd) i16 with one f32 scale per row in ds (nh, cap), at positions
// P..P+T-1: q = nearest(x * levels / max|x|), x ≈ q * scale; levels ≤ 32767. Half an f32 cache's
// bytes; 8-bit rows were tried and cost SmolLM2 up to 0.6 in a logit (its attention scores are
// large, so the keys' rounding shows), 16-bit rows 0.002.
export function kvWrite16(src: usize, stride: i32, off: i32, nh: i32, hd: i32, T: i32, dst: usize, ds: usize,
                          cap: i32, P: i32, levels: f32): void {
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) {
      const x = src + (<usize>(t * stride + off + h * hd) << 2);
      const i = <usize>(h * cap + P + t);
      store<f32>(ds + (i << 2), toInt16(x, hd, levels, dst + (i * <usize>hd << 1)) / levels);
    }
  }
}

// The four lane sums of a, b, c, d as one vector [Σa, Σb, Σc, Σd].
// @ts-ignore: decorator
@inline function sum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

// @ts-ignore: decorator
@inline function dotRow(acc: v128, k: usize, q0: v128, q1: v128): v128 {
  return i32x4.add(acc, i32x4.add(i32x4.dot_i16x8_s(v128.load(k), q0), i32x4.dot_i16x8_s(v128.load(k, 16), q1)));
}

// Key rows are written with levels KEY_LEVELS (kvWrite16) and q is quantized to qlevels such that a
// 4-lane integer dot product of hd dims stays inside i32: (hd / 4) * KEY_LEVELS * qlevels < 2^31
// (hd 64: 16385 levels).
export const KEY_LEVELS: f32 = 8191;

// Σ_i w_i v_i for 1-3 query heads sharing one KV head: the 16-bit value rows vb (len rows of `row`
// bytes, scales folded into the weights) are widened once for every head; weights wa, wb, wc (len
// floats each; unused ones ignored); results to oa, ob, oc (hd floats). 8 dims at a time.
// @ts-ignore: decorator
@inline function valueSum(n: i32, vb: usize, row: usize, len: i32, wa: usize, wb: usize, wc: usize,
                          oa: usize, ob: usize, oc: usize): void {
  for (let d: usize = 0; d < row; d += 16) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
    let c0 = f32x4.splat(0), c1 = f32x4.splat(0);
    for (let i = 0; i < len; i++) {
      const v = v128.load(vb + <usize>i * row + d);
      const lo = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(v)), hi = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(v));
      const o = <usize>i << 2;
      const w0 = v128.load32_splat(wa + o);
      a0 = f32x4.add(a0, f32x4.mul(w0, lo));
      a1 = f32x4.add(a1, f32x4.mul(w0, hi));
      if (n > 1) {
        const w1 = v128.load32_splat(wb + o);
        b0 = f32x4.add(b0, f32x4.mul(w1, lo));
        b1 = f32x4.add(b1, f32x4.mul(w1, hi));
      }
      if (n > 2) {
        const w2 = v128.load32_splat(wc + o);
        c0 = f32x4.add(c0, f32x4.mul(w2, lo));
        c1 = f32x4.add(c1, f32x4.mul(w2, hi));
      }
    }
    const f = d << 1; // bytes of f32 output for d bytes of i16 input
    v128.store(oa + f, a0);
    v128.store(oa + f, a1, 16);
    if (n > 1) {
      v128.store(ob + f, b0);
      v128.store(ob + f, b1, 16);
    }
    if (n > 2) {
      v128.store(oc + f, c0);
      v128.store(oc + f, c1, 16);
    }
  }
}

// Grouped-query attention over the 16-bit cache (kvWrite16) for T new rows at positions P..P+T-1
// (causal; with win > 0 only the last win positions, the row's own included), restricted to cached
// positions jlo ≤ j < jhi, scores scaled by qscalar^-1/2 (query_pre_attn_scalar; head_dim by default):
// per row t and query head h, a partial
// softmax [m, l, 0, 0, acc (hd)] at part + ((t * nq + h) * (hd + 4)) floats, where m is the largest
// score, l = Σ e^(s_j - m) and acc = Σ e^(s_j - m) v_j (attendMerge joins two ranges). q rows of `qs`
// floats (nq heads of hd); caches K, V (nkv, cap, hd) i16 with scales Ks, Vs (nkv, cap) f32; sc
// scratch of hd / 2 + (nq / nkv) * (jhi - jlo + 4) floats. Scores are integer dot products (q
// quantized per head), four keys at a time; the value rows are widened once per KV head for all of
// its query heads (valueSum).
export function attend16(q: usize, qs: i32, K: usize, Ks: usize, V: usize, Vs: usize, cap: i32, nq: i32, nkv: i32,
                         hd: i32, P: i32, T: i32, jlo: i32, jhi: i32, part: usize, sc: usize, win: i32,
                         qscalar: f32): void {
  const group = nq / nkv, ps = hd + 4;
  const qi = sc, s0 = sc + ((<usize>hd << 1) + 15 & ~15), sstride = <usize>((jhi - jlo + 4) & ~3) << 2;
  const rs = <f32>1.0 / sqrt<f32>(qscalar);
  const qlevels = min<f32>(32767, floor<f32>(<f32>2147483000.0 / (KEY_LEVELS * <f32>(hd >> 2))));
  const row = <usize>hd << 1; // bytes
  for (let t = 0; t < T; t++) {
    const a = win > 0 ? max(jlo, P + t + 1 - win) : jlo, len = min(jhi, P + t + 1) - a;
    for (let g = 0; g < nkv; g++) {
      const kb = K + (<usize>g * <usize>cap + <usize>a) * row, ksb = Ks + ((<usize>g * <usize>cap + <usize>a) << 2);
      const vsb = Vs + ((<usize>g * <usize>cap + <usize>a) << 2);
      for (let hh = 0; hh < group; hh++) {
        const h = g * group + hh;
        const pb = part + (<usize>((t * nq + h) * ps) << 2), s = s0 + <usize>hh * sstride;
        if (len <= 0) {
          store<f32>(pb, -Infinity);
          store<f32>(pb, 0, 4);
          memory.fill(pb + 16, 0, <usize>hd << 2);
          continue;
        }
        // q → int16 of qlevels (in qi)
        const qb = q + (<usize>(t * qs + h * hd) << 2);
        const f = f32x4.splat(toInt16(qb, hd, qlevels, qi) / qlevels * rs);
        // scores s_j = (q_i · k_j) * qscale * kscale_j / sqrt(hd), four keys at a time
        let best = f32x4.splat(-Infinity);
        let j = 0;
        for (; j + 4 <= len; j += 4) {
          const r = kb + <usize>j * row;
          let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
          for (let d: usize = 0; d < row; d += 32) {
            const q0 = v128.load(qi + d), q1 = v128.load(qi + d, 16);
            a0 = dotRow(a0, r + d, q0, q1);
            a1 = dotRow(a1, r + row + d, q0, q1);
            a2 = dotRow(a2, r + 2 * row + d, q0, q1);
            a3 = dotRow(a3, r + 3 * row + d, q0, q1);
          }
          const sv = f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(sum4(a0, a1, a2, a3)), v128.load(ksb + (<usize>j << 2))), f);
          v128.store(s + (<usize>j << 2), sv);
          best = f32x4.max(best, sv);
        }
        let m = max(max(f32x4.extract_lane(best, 0), f32x4.extract_lane(best, 1)),
                    max(f32x4.extract_lane(best, 2), f32x4.extract_lane(best, 3)));
        for (; j < len; j++) {
          const r = kb + <usize>j * row;
          let a0 = i32x4.splat(0);
          for (let d: usize = 0; d < row; d += 32) a0 = dotRow(a0, r + d, v128.load(qi + d), v128.load(qi + d, 16));
          const x = <f32>(i32x4.extract_lane(a0, 0) + i32x4.extract_lane(a0, 1) + i32x4.extract_lane(a0, 2) +
                          i32x4.extract_lane(a0, 3)) * load<f32>(ksb + (<usize>j << 2)) * f32x4.extract_lane(f, 0);
          store<f32>(s + (<usize>j << 2), x);
          m = max(m, x);
        }
        // e_j = e^(s_j - m); l = Σ e_j; then w_j = e_j * vscale_j in place
        const mm = f32x4.splat(m);
        let lv = f32x4.splat(0);
        j = 0;
        for (; j + 4 <= len; j += 4) {
          const p = s + (<usize>j << 2);
          const e = exp4(f32x4.sub(v128.load(p), mm));
          lv = f32x4.add(lv, e);
          v128.store(p, f32x4.mul(e, v128.load(vsb + (<usize>j << 2))));
        }
        let l = (f32x4.extract_lane(lv, 0) + f32x4.extract_lane(lv, 1)) + (f32x4.extract_lane(lv, 2) + f32x4.extract_lane(lv, 3));
        for (; j < len; j++) {
          const p = s + (<usize>j << 2);
          const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(p) - m)), 0);
          l += e;
          store<f32>(p, e * load<f32>(vsb + (<usize>j << 2)));
        }
        store<f32>(pb, m);
        store<f32>(pb, l, 4);
      }
      if (len <= 0) continue;
      // acc = Σ_j w_j v_j for the group's heads, up to three at a time
      const vb = V + (<usize>g * <usize>cap + <usize>a) * row;
      for (let hh = 0; hh < group; hh += 3) {
        const n = min(3, group - hh), h = g * group + hh;
        const oa = part + (<usize>((t * nq + h) * ps) << 2) + 16, ostride = <usize>ps << 2;
        const wa = s0 + <usize>hh * sstride;
        if (n == 3) valueSum(3, vb, row, len, wa, wa + sstride, wa + 2 * sstride, oa, oa + ostride, oa + 2 * ostride);
        else if (n == 2) valueSum(2, vb, row, len, wa, wa + sstride, 0, oa, oa + ostride, 0);
        else valueSum(1, vb, row, len, wa, 0, 0, oa, 0, 0);
      }
    }
  }
}

// out rows (T, os floats; nq heads of hd) = the softmax-weighted values joined from two partials of
// attend16 over disjoint position ranges: (acc_a e^(m_a - M) + acc_b e^(m_b - M)) / (l_a e^(m_a - M) + l_b e^(m_b - M)).
export function attendMerge(pa: usize, pb: usize, T: i32, nq: i32, hd: i32, out: usize, os: i32): void {
  const ps = hd + 4;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nq; h++) {
      const off = <usize>((t * nq + h) * ps) << 2;
      const A = pa + off, B = pb + off;
      const ma = load<f32>(A), la = load<f32>(A, 4), mb = load<f32>(B), lb = load<f32>(B, 4);
      const M = max(ma, mb);
      const fa: f32 = la > 0 ? f32x4.extract_lane(exp4(f32x4.splat(ma - M)), 0) : 0;
      const fb: f32 = lb > 0 ? f32x4.extract_lane(exp4(f32x4.splat(mb - M)), 0) : 0;
      const inv = <f32>1.0 / (la * fa + lb * fb);
      const va = f32x4.splat(fa * inv), vb = f32x4.splat(fb * inv);
      const ob = out + (<usize>(t * os + h * hd) << 2);
      for (let d: usize = 0; d < <usize>hd << 2; d += 16) {
        v128.store(ob + d, f32x4.add(f32x4.mul(v128.load(A + 16 + d), va), f32x4.mul(v128.load(B + 16 + d), vb)));
      }
    }
  }
}

// out (T, h) = the 8-bit embedding rows of ids (T i32): (q - 128) * scale per block of 32.
export function embed8(qw: usize, sc: usize, ids: usize, T: i32, h: i32, out: usize): void {
  const nb = h >> 5;
  for (let t = 0; t < T; t++) {
    const id = load<i32>(ids + (<usize>t << 2));
    const qr = qw + <usize>id * <usize>h, sr = sc + (<usize>(id * nb) << 2), o = out + (<usize>(t * h) << 2);
    for (let j = 0; j < h; j++) {
      store<f32>(o + (<usize>j << 2), <f32>(<i32>load<u8>(qr + <usize>j) - 128) * load<f32>(sr + (<usize>(j >> 5) << 2)));
    }
  }
}


// out (T, h) = rows ids (T i32) of a quantized embedding in any matmul layout: qweight qw (V, h/block,
// block * bits / 8) u8, scales sc (V, h/block), offsets c (h/block, V) or 0: (q - 2^(bits-1)) * d + c.
export function embedQ(qw: usize, sc: usize, c: usize, V: i32, bits: i32, block: i32, ids: usize, T: i32, h: i32,
                       out: usize): void {
  const nb = h / block, zero = 1 << (bits - 1), rowBytes = <usize>(h * bits) >> 3;
  for (let t = 0; t < T; t++) {
    const id = load<i32>(ids + (<usize>t << 2));
    const qr = qw + <usize>id * rowBytes, sr = sc + (<usize>(id * nb) << 2), o = out + (<usize>(t * h) << 2);
    for (let j = 0; j < h; j++) {
      let q: i32;
      if (bits == 4) {
        const byte = <i32>load<u8>(qr + (<usize>(j >> 5) << 4) + <usize>((j & 31) >> 1));
        q = j & 1 ? byte >> 4 : byte & 15;
      } else {
        q = <i32>load<u8>(qr + <usize>j);
      }
      const b = j / block;
      let v = <f32>(q - zero) * load<f32>(sr + (<usize>b << 2));
      if (c) v += load<f32>(c + (<usize>(b * V + id) << 2));
      store<f32>(o + (<usize>j << 2), v);
    }
  }
}

// out (T, h) = rows ids (T i32) of an f32 embedding w (V, h).
export function embedF32(w: usize, ids: usize, T: i32, h: i32, out: usize): void {
  const row = <usize>h << 2;
  for (let t = 0; t < T; t++) {
    memory.copy(out + <usize>t * row, w + <usize>load<i32>(ids + (<usize>t << 2)) * row, row);
  }
}

// -- The sentence encoder (BERT, post-LayerNorm; web/src/wasm_encoder.mjs) ---------------------
// Linear weights W (n, k) are 12-bit integers per block of 32 inputs (|q| ≤ 2047, scale max|W| / 2047
// per row and block; cosine 0.999997 of the f32 encoder's sentence vectors, 8 bits: 0.9996), laid out
// so that one v128 holds one input pair of four rows: w (n/4, k/2, 4, 2) i16, scales (n/4, k/32, 4) f32.
// A token's input pair, splatted (load32_splat), against that vector is one i32x4.dot_i16x8_s giving
// four rows' sums; a block's 16 pairs stay inside i32 (32 * 2047 * 32767 < 2^31). Activations are
// int16 per block of 32 as quantize makes them (encQuantize). Padding never reaches these kernels:
// the sequences' tokens lie packed one after another (wasm_encoder.mjs drops masked positions). Every argument is an integer (an f32 one as its bits), so the
// helper thread can call any of these by name with the control block's Int32s.

// One block's four-row sums acc (i32x4) of a token into its y (four floats): y += acc * ws * xs.
// @ts-ignore: decorator
@inline function encAcc(y: usize, acc: v128, ws: v128, xs: usize): void {
  v128.store(y, f32x4.add(v128.load(y), f32x4.mul(f32x4.convert_i32x4_s(acc), f32x4.mul(ws, v128.load32_splat(xs)))));
}

// y (T, n) columns r0 ≤ r < r1 = x Wᵀ + bias (bias: n f32, or 0), x given by encQuantize as xq (T, k)
// i16 and xs (T, k/32); T a multiple of 4, r0 and r1 of 8, k of 32. Tiles of 4 tokens × 8 rows; the
// tokens go 64 at a time so that their activations stay in cache while the weights stream past.
export function encLinear(w: usize, s: usize, bias: usize, n: i32, k: i32, r0: i32, r1: i32, T: i32, xq: usize, xs: usize,
  y: usize): void {
  const nb = k >> 5, kp = <usize>(k >> 1);
  const xrow = <usize>k << 1, srow = <usize>nb << 2, yrow = <usize>n << 2, cols = <usize>(r1 - r0) << 2;
  for (let t = 0; t < T; t++) {
    const yr = y + <usize>t * yrow + (<usize>r0 << 2);
    if (bias) memory.copy(yr, bias + (<usize>r0 << 2), cols);
    else memory.fill(yr, 0, cols);
  }
  for (let t0 = 0; t0 < T; t0 += 64) {
    const t1 = min(T, t0 + 64);
    for (let r = r0; r < r1; r += 8) {
      const wa = w + (<usize>(r >> 2) * kp << 4), wb = wa + (kp << 4);
      const sa = s + (<usize>(r >> 2) * <usize>nb << 4), sb = sa + (<usize>nb << 4);
      for (let t = t0; t < t1; t += 4) {
        const x0 = xq + <usize>t * xrow, s0 = xs + <usize>t * srow, y0 = y + <usize>t * yrow + (<usize>r << 2);
        for (let b = 0; b < nb; b++) {
          const pa = wa + (<usize>b << 8), pb = wb + (<usize>b << 8), xp = x0 + (<usize>b << 6);
          let c0a = i32x4.splat(0), c0b = i32x4.splat(0), c1a = i32x4.splat(0), c1b = i32x4.splat(0);
          let c2a = i32x4.splat(0), c2b = i32x4.splat(0), c3a = i32x4.splat(0), c3b = i32x4.splat(0);
          for (let p: usize = 0; p < 64; p += 4) {
            const va = v128.load(pa + (p << 2)), vb = v128.load(pb + (p << 2));
            let xv = v128.load32_splat(xp + p);
            c0a = i32x4.add(c0a, i32x4.dot_i16x8_s(va, xv));
            c0b = i32x4.add(c0b, i32x4.dot_i16x8_s(vb, xv));
            xv = v128.load32_splat(xp + xrow + p);
            c1a = i32x4.add(c1a, i32x4.dot_i16x8_s(va, xv));
            c1b = i32x4.add(c1b, i32x4.dot_i16x8_s(vb, xv));
            xv = v128.load32_splat(xp + 2 * xrow + p);
            c2a = i32x4.add(c2a, i32x4.dot_i16x8_s(va, xv));
            c2b = i32x4.add(c2b, i32x4.dot_i16x8_s(vb, xv));
            xv = v128.load32_splat(xp + 3 * xrow + p);
            c3a = i32x4.add(c3a, i32x4.dot_i16x8_s(va, xv));
            c3b = i32x4.add(c3b, i32x4.dot_i16x8_s(vb, xv));
          }
          const ga = v128.load(sa + (<usize>b << 4)), gb = v128.load(sb + (<usize>b << 4)), xsb = s0 + (<usize>b << 2);
          encAcc(y0, c0a, ga, xsb);
          encAcc(y0 + 16, c0b, gb, xsb);
          encAcc(y0 + yrow, c1a, ga, xsb + srow);
          encAcc(y0 + yrow + 16, c1b, gb, xsb + srow);
          encAcc(y0 + 2 * yrow, c2a, ga, xsb + 2 * srow);
          encAcc(y0 + 2 * yrow + 16, c2b, gb, xsb + 2 * srow);
          encAcc(y0 + 3 * yrow, c3a, ga, xsb + 3 * srow);
          encAcc(y0 + 3 * yrow + 16, c3b, gb, xsb + 3 * srow);
        }
      }
    }
  }
}

// x (T, k) f32 rows t0 ≤ t < t1 → xq (T, k) i16 and xs (T, k/32) f32, as quantize (perm 0, half 0)
// makes them, four lanes at a time and without the block sums (encLinear has no offsets).
export function encQuantize(x: usize, k: i32, t0: i32, t1: i32, xq: usize, xs: usize): void {
  const lo = i32x4.splat(-32767), hi = i32x4.splat(32767);
  for (let i = t0 * (k >> 5); i < t1 * (k >> 5); i++) {
    const src = x + (<usize>i << 7), dst = xq + (<usize>i << 6);
    const v0 = v128.load(src), v1 = v128.load(src, 16), v2 = v128.load(src, 32), v3 = v128.load(src, 48);
    const v4 = v128.load(src, 64), v5 = v128.load(src, 80), v6 = v128.load(src, 96), v7 = v128.load(src, 112);
    let m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    m = f32x4.max(m, v128.shuffle<i32>(m, m, 2, 3, 0, 1));
    const mx = max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
    const inv = f32x4.splat(mx > 0 ? <f32>32767.0 / mx : 0);
    store<f32>(xs + (<usize>i << 2), mx / <f32>32767.0);
    v128.store(dst, i16x8.narrow_i32x4_s(encRound(v0, inv, lo, hi), encRound(v1, inv, lo, hi)));
    v128.store(dst, i16x8.narrow_i32x4_s(encRound(v2, inv, lo, hi), encRound(v3, inv, lo, hi)), 16);
    v128.store(dst, i16x8.narrow_i32x4_s(encRound(v4, inv, lo, hi), encRound(v5, inv, lo, hi)), 32);
    v128.store(dst, i16x8.narrow_i32x4_s(encRound(v6, inv, lo, hi), encRound(v7, inv, lo, hi)), 48);
  }
}

// nearest(v * inv) clamped to [lo, hi], four lanes.
// @ts-ignore: decorator
@inline function encRound(v: v128, inv: v128, lo: v128, hi: v128): v128 {
  return i32x4.min_s(i32x4.max_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, inv))), lo), hi);
}

// out (T, h) = word[ids[t]] + position[pos[t]] + type (the token type 0 row); ids and pos (T i32)
// checked by the caller.
export function encEmbed(word: usize, position: usize, type: usize, ids: usize, pos: usize, T: i32, h: i32, out: usize): void {
  const row = <usize>h << 2;
  for (let t = 0; t < T; t++) {
    const o = <usize>t << 2, wr = word + <usize>load<i32>(ids + o) * row, pr = position + <usize>load<i32>(pos + o) * row;
    const dst = out + <usize>t * row;
    for (let j: usize = 0; j < row; j += 16) {
      v128.store(dst + j, f32x4.add(f32x4.add(v128.load(wr + j), v128.load(pr + j)), v128.load(type + j)));
    }
  }
}

// y rows t0 ≤ t < t1 (of h floats, h a multiple of 4) = LayerNorm(x + r) * g + b (r: 0 for none),
// eps given as its f32 bits; y may be x.
export function encLayerNorm(x: usize, r: usize, g: usize, b: usize, h: i32, t0: i32, t1: i32, epsBits: i32, y: usize): void {
  const row = <usize>h << 2, eps = reinterpret<f32>(epsBits), inv = <f32>1.0 / <f32>h;
  for (let t = t0; t < t1; t++) {
    const xr = x + <usize>t * row, rr = r + <usize>t * row, yr = y + <usize>t * row;
    let sv = f32x4.splat(0);
    for (let j: usize = 0; j < row; j += 16) {
      let v = v128.load(xr + j);
      if (r) {
        v = f32x4.add(v, v128.load(rr + j));
        v128.store(yr + j, v);
      } else if (y != x) v128.store(yr + j, v);
      sv = f32x4.add(sv, v);
    }
    const mean = f32x4.splat(hsum(sv) * inv);
    let qv = f32x4.splat(0);
    for (let j: usize = 0; j < row; j += 16) {
      const d = f32x4.sub(v128.load(yr + j), mean);
      qv = f32x4.add(qv, f32x4.mul(d, d));
    }
    const rs = f32x4.splat(<f32>1.0 / sqrt<f32>(hsum(qv) * inv + eps));
    for (let j: usize = 0; j < row; j += 16) {
      const d = f32x4.mul(f32x4.sub(v128.load(yr + j), mean), rs);
      v128.store(yr + j, f32x4.add(f32x4.mul(d, v128.load(g + j)), v128.load(b + j)));
    }
  }
}

// x = gelu(x) in place for floats i0 ≤ i < i1 (multiples of 4): the exact (erf) GELU, x (1 + erf(x / √2)) / 2,
// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
export function encGelu(x: usize, i0: i32, i1: i32): void {
  const half = f32x4.splat(0.5), one = f32x4.splat(1.0), rt = f32x4.splat(0.7071067811865476);
  for (let i = i0; i < i1; i += 4) {
    const a = x + (<usize>i << 2), v = v128.load(a);
    const z = f32x4.abs(f32x4.mul(v, rt));
    const t = f32x4.div(one, f32x4.add(one, f32x4.mul(z, f32x4.splat(0.3275911))));
    let p = f32x4.add(f32x4.mul(f32x4.splat(1.061405429), t), f32x4.splat(-1.453152027));
    p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.421413741));
    p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-0.284496736));
    p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.254829592));
    const e = f32x4.sub(one, f32x4.mul(f32x4.mul(p, t), exp4(f32x4.neg(f32x4.mul(z, z)))));
    const erf = v128.bitselect(f32x4.neg(e), e, f32x4.lt(v, f32x4.splat(0)));
    v128.store(a, f32x4.mul(f32x4.mul(v, half), f32x4.add(one, erf)));
  }
}

// The four lane sums of f32 vectors a, b, c, d as one vector [Σa, Σb, Σc, Σd].
// @ts-ignore: decorator
@inline function fsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

// Bidirectional attention, f32, over sequences packed one after another: sequence b is rows
// off[b] ≤ t < off[b + 1] (off: B + 1 i32; padding left out beforehand, so no mask). For each pair
// p0 ≤ p < p1 of (sequence, head) = (p / nh, p % nh), each row i gets softmax_j(q_i · k_j / √hd) v_j over
// the rows j of its sequence, in its head's hd floats of out (T, nh hd). qkv (T, 3 nh hd): q, k, v side
// by side; sc scratch of 2 (longest sequence + 4) floats. Two query rows at a time (each key row loaded
// once for both), four keys at a time.
export function encAttend(qkv: usize, off: usize, nh: i32, hd: i32, p0: i32, p1: i32, out: usize, sc: usize): void {
  const H = nh * hd, row = <usize>(3 * H) << 2, orow = <usize>H << 2, hb = <usize>hd << 2;
  const scale = f32x4.splat(<f32>1.0 / sqrt<f32>(<f32>hd));
  for (let p = p0; p < p1; p++) {
    const b = p / nh, h = p % nh, first = load<i32>(off + (<usize>b << 2)), S = load<i32>(off + (<usize>b << 2), 4) - first;
    if (S <= 0) continue;
    const base = qkv + <usize>first * row, hq = <usize>(h * hd) << 2;
    const kb = base + (<usize>H << 2) + hq, vb = base + (<usize>(2 * H) << 2) + hq;
    const sc1 = sc + (<usize>((S + 4) & ~3) << 2);
    for (let i = 0; i < S; i += 2) {
      const two = i + 1 < S;
      const q0 = base + <usize>i * row + hq, q1 = two ? q0 + row : q0;
      let m0 = f32x4.splat(-3.0e38), m1 = m0;
      for (let j = 0; j < S; j += 4) {
        let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        const k0 = kb + <usize>j * row, k1 = kb + <usize>min(j + 1, S - 1) * row;
        const k2 = kb + <usize>min(j + 2, S - 1) * row, k3 = kb + <usize>min(j + 3, S - 1) * row;
        for (let d: usize = 0; d < hb; d += 16) {
          const x = v128.load(q0 + d), y = v128.load(q1 + d);
          let kv = v128.load(k0 + d);
          a0 = f32x4.add(a0, f32x4.mul(x, kv));
          b0 = f32x4.add(b0, f32x4.mul(y, kv));
          kv = v128.load(k1 + d);
          a1 = f32x4.add(a1, f32x4.mul(x, kv));
          b1 = f32x4.add(b1, f32x4.mul(y, kv));
          kv = v128.load(k2 + d);
          a2 = f32x4.add(a2, f32x4.mul(x, kv));
          b2 = f32x4.add(b2, f32x4.mul(y, kv));
          kv = v128.load(k3 + d);
          a3 = f32x4.add(a3, f32x4.mul(x, kv));
          b3 = f32x4.add(b3, f32x4.mul(y, kv));
        }
        const s0 = f32x4.mul(fsum4(a0, a1, a2, a3), scale), s1 = f32x4.mul(fsum4(b0, b1, b2, b3), scale);
        v128.store(sc + (<usize>j << 2), s0); // lanes past S repeat the last key's score
        v128.store(sc1 + (<usize>j << 2), s1);
        m0 = f32x4.max(m0, s0);
        m1 = f32x4.max(m1, s1);
      }
      const l0 = encSoftmax(sc, S, m0), l1 = encSoftmax(sc1, S, m1);
      const o0 = out + <usize>(first + i) * orow + hq, o1 = two ? o0 + orow : o0;
      for (let d: usize = 0; d < hb; d += 16) {
        let c0 = f32x4.splat(0), c1 = c0;
        for (let j = 0; j < S; j++) {
          const v = v128.load(vb + <usize>j * row + d), e = <usize>j << 2;
          c0 = f32x4.add(c0, f32x4.mul(v128.load32_splat(sc + e), v));
          c1 = f32x4.add(c1, f32x4.mul(v128.load32_splat(sc1 + e), v));
        }
        if (two) v128.store(o1 + d, f32x4.mul(c1, f32x4.splat(<f32>1.0 / l1)));
        v128.store(o0 + d, f32x4.mul(c0, f32x4.splat(<f32>1.0 / l0)));
      }
    }
  }
}

// The S scores at sc (lanes to a multiple of 4 beyond S readable) → e^(s - max) in place, max over the
// lanes of m; returns their sum over the first S.
// @ts-ignore: decorator
@inline function encSoftmax(sc: usize, S: i32, m: v128): f32 {
  m = f32x4.max(m, v128.shuffle<i32>(m, m, 2, 3, 0, 1));
  const mv = f32x4.splat(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)));
  let l: f32 = 0;
  let j = 0;
  for (; j + 4 <= S; j += 4) {
    const a = sc + (<usize>j << 2), e = exp4(f32x4.sub(v128.load(a), mv));
    v128.store(a, e);
    l += hsum(e);
  }
  if (j < S) {
    const a = sc + (<usize>j << 2);
    v128.store(a, exp4(f32x4.sub(v128.load(a), mv)));
    for (let u = 0; u < S - j; u++) l += load<f32>(a + (<usize>u << 2));
  }
  return l;
}

// out (B, h) = the mean of each sequence's rows of x (T, h) (sequence b: rows off[b] ≤ t < off[b + 1]),
// L2-normalised (x / max(|x|, 1e-12)); a sequence of no rows gives zeros.
export function encPool(x: usize, off: usize, B: i32, h: i32, out: usize): void {
  const row = <usize>h << 2;
  for (let b = 0; b < B; b++) {
    const o = out + <usize>b * row, t0 = load<i32>(off + (<usize>b << 2)), t1 = load<i32>(off + (<usize>b << 2), 4);
    memory.fill(o, 0, row);
    for (let t = t0; t < t1; t++) {
      const xr = x + <usize>t * row;
      for (let j: usize = 0; j < row; j += 16) v128.store(o + j, f32x4.add(v128.load(o + j), v128.load(xr + j)));
    }
    const c = f32x4.splat(<f32>1.0 / <f32>max(t1 - t0, 1));
    let ss = f32x4.splat(0);
    for (let j: usize = 0; j < row; j += 16) {
      const v = f32x4.mul(v128.load(o + j), c);
      v128.store(o + j, v);
      ss = f32x4.add(ss, f32x4.mul(v, v));
    }
    const f = f32x4.splat(<f32>1.0 / max(sqrt<f32>(hsum(ss)), <f32>1e-12));
    for (let j: usize = 0; j < row; j += 16) v128.store(o + j, f32x4.mul(v128.load(o + j), f));
  }
}
