// common.wgsl — declarations shared by every sampling kernel (prepended to each kernel's source by
// web/src/gpu_sampler.mjs and bench/bench_kernels.py; it has no entry point of its own).
//
// One bind group (group 0) serves all four kernels; each kernel uses the bindings it needs:
//   0 params   uniform         Params (below), written by the host before each sampling call
//   1 logits   storage, read   f32[vocab]: the model's logits (onnxruntime-web's output buffer)
//   2 seen     storage, read   u32[ceil(vocab/32)]: bit i of word i>>5 = token i was seen (penalty)
//   3 allowed  storage, read   u32[ceil(vocab/32)]: bit set = token allowed (when FLAG_MASK)
//   4 work     storage, rw     f32[vocab]: the processed logits (penalty applied, masked = MASKED)
//   5 partials storage, rw     vec2<u32>[groups]: each workgroup's (max bits, argmax) from prep
//   6 hist     storage, rw     u32[groups * 256 * 3]: each workgroup's digit histogram
//                              (count, mass high word, mass low word) per bin
//   7 state    storage, rw     State (below): the running selection; `token` is the answer
//
// Each workgroup covers ELEMS consecutive tokens (256 invocations x 4); groups = ceil(vocab/ELEMS).
//
// The selection model. Tokens are ordered as the JS Sampler ranks them: by processed logit,
// highest first, ties by lower id. A token's place in that order is its 56-bit key
// (hi = order-preserving bits of the logit, lo = 0xFFFFFF - id): a larger key ranks first.
// Its weight is w = exp((x - max) / temperature), in (0, 1] (0 for a masked token). A query finds the first token, in rank
// order, at which a running total reaches a target: a count (top-k: the k-th token) or a fraction of
// the weight of the candidates (top-p: top_p of the mass; the draw: u of the mass). Candidates are
// the tokens ranked at or before the previous query's answer (`bound`), and, when the query says
// so, with w >= min_p (min-p). Seven radix passes of 8 bits over the key (hist + scan) answer one
// query, with no sort of the vocabulary.
//
// Exactness: masses are exact integer sums of weights rounded to units of 2^-40 (64-bit fixed
// point, held as two u32 words), and the targets are exact too (fractions in units of 2^-32:
// the JS Sampler's u is k / 2^32), so no rounding depends on summation order; what remains is each
// weight's own f32 rounding (exp in f32, ~1e-7 relative) against the JS Sampler's float64.

const ELEMS: u32 = 1024u;       // tokens per workgroup
const BINS: u32 = 256u;         // radix digit: 8 bits
const PASSES: u32 = 7u;         // 56-bit key = 4 digits of the logit + 3 digits of the id
const FLAG_PENALTY: u32 = 1u;
const FLAG_MASK: u32 = 2u;
const FLAG_GREEDY: u32 = 4u;
const MASKED: f32 = -3.0e38;   // a masked token's logit (finite: WGSL may assume no infinities)
const LIMB: f32 = 1048576.0;    // 2^20: a weight is added as two 20-bit fixed-point limbs

struct Params {
  vocab: u32,
  groups: u32,
  flags: u32,
  n_queries: u32,       // 0..4; the last one is the draw
  penalty: f32,         // repetition penalty (FLAG_PENALTY)
  inv_temp: f32,        // 1 / temperature
  min_p: f32,
  _pad: f32,
  q_count: vec4<u32>,   // per query: 0 = a mass query, else the count target (top-k)
  q_frac: vec4<u32>,    // per query: the mass target, a fraction of the candidates' mass (x 2^-32)
  q_min_p: vec4<u32>,   // per query: 1 = candidates must have w >= min_p
}

struct State {
  max_bits: u32,        // bits of the largest processed logit
  argmax: u32,          // its id (lowest id on ties)
  query: u32,           // the query being answered
  radix_pass: u32,      // its radix pass, 0..PASSES-1
  pref_hi: u32,         // key digits chosen so far
  pref_lo: u32,
  bound_hi: u32,        // candidates rank at or before this key (0, 0 = all)
  bound_lo: u32,
  cum_count: u32,       // count and mass (hi, lo words) of candidates ranked before the prefix
  cum_hi: u32,
  cum_lo: u32,
  token: u32,           // the answer (valid once done = 1); byte offset 44
  done: u32,
  target_hi: u32,       // this query's mass target (set on pass 0)
  target_lo: u32,
  total_hi: u32,        // mass of this query's candidates (set on pass 0)
  total_lo: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// Order-preserving map of an f32 to a u32: a larger float gives a larger key.
fn order_key(x: f32) -> u32 {
  let u = bitcast<u32>(x);
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

fn bit_set(word: u32, i: u32) -> bool {
  return ((word >> (i & 31u)) & 1u) == 1u;
}

// The 8-bit digit of key (hi, lo) that radix pass p decides (most significant first).
fn digit(hi: u32, lo: u32, p: u32) -> u32 {
  if (p < 4u) {
    return (hi >> (24u - 8u * p)) & 0xffu;
  }
  return (lo >> (16u - 8u * (p - 4u))) & 0xffu;
}

// Whether key (hi, lo) agrees with the prefix on the digits passes 0..p-1 decided.
fn prefix_match(hi: u32, lo: u32, p: u32, ph: u32, pl: u32) -> bool {
  if (p == 0u) {
    return true;
  }
  if (p < 4u) {
    let s = 32u - 8u * p;
    return (hi >> s) == (ph >> s);
  }
  if (hi != ph) {
    return false;
  }
  if (p == 4u) {
    return true;
  }
  let s = 24u - 8u * (p - 4u);
  return (lo >> s) == (pl >> s);
}

// Whether (va, ia) beats (vb, ib): larger value, ties to the lower id; an invalid id
// (0xffffffff: no token yet) loses to every token.
fn beats(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  if (ia == 0xffffffffu) {
    return false;
  }
  if (ib == 0xffffffffu) {
    return true;
  }
  return va > vb || (va == vb && ia < ib);
}

// The workgroup's best (value, id) pair, for the argmax reductions of sample_prep and sample_reduce
// (unused workgroup variables cost the other kernels nothing).
var<workgroup> best_val: array<f32, 256>;
var<workgroup> best_id: array<u32, 256>;

// Tree-reduces each invocation's (bv, bi) with beats(); the workgroup's best ends in best_val[0],
// best_id[0]. All 256 invocations must call it (it holds workgroup barriers).
fn reduce_best(lid: u32, bv: f32, bi: u32) {
  best_val[lid] = bv;
  best_id[lid] = bi;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s && beats(best_val[lid + s], best_id[lid + s], best_val[lid], best_id[lid])) {
      best_val[lid] = best_val[lid + s];
      best_id[lid] = best_id[lid + s];
    }
    workgroupBarrier();
  }
}

// 64-bit unsigned integers as vec2<u32>(high word, low word).
fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.y + b.y;
  return vec2<u32>(a.x + b.x + select(0u, 1u, lo < a.y), lo);
}

fn ge64(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.x > b.x || (a.x == b.x && a.y >= b.y);
}

// a * b as a 64-bit integer.
fn mul32(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return vec2<u32>(a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), (p00 & 0xffffu) | (mid << 16u));
}

// floor(frac * 2^-32 * x) for a 64-bit x: the mass target of a fraction.
fn scale64(x: vec2<u32>, frac: u32) -> vec2<u32> {
  let high = mul32(frac, x.x); // * 2^32 * 2^-32: whole
  return add64(high, vec2<u32>(0u, mul32(frac, x.y).x));
}
