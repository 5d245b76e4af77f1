// select_hist.wgsl — one radix pass of a selection query: each workgroup's digit histogram.
//
// Purpose: for the candidates of query state.query (ranked at or before state.bound; with
//   w >= min_p when the query asks) whose key agrees with the digits chosen so far (state.pref_*,
//   passes 0..state.radix_pass-1), count them and sum their weight w = exp((work - max) * inv_temp)
//   per value of the pass's digit. The weight is summed in two 20-bit fixed-point limbs with
//   integer atomics, so the histogram does not depend on the order invocations run in.
// Bindings: 0 params, 4 work (read), 6 hist (write), 7 state (read).
//   Uniforms: vocab, inv_temp, min_p, q_min_p.
// Workgroup size: 256; each invocation handles 4 tokens (ELEMS = 1024 per workgroup).
// Dispatch: (params.groups, 1, 1), then select_scan. Does nothing once state.done = 1.
// Output: hist[(g * 256 + b) * 3 + {0, 1, 2}] = count, mass high limb (units of 2^-20), mass low
//   limb (units of 2^-40, < 2^30 after carrying into the high limb).
// Needs common.wgsl prepended.

@group(0) @binding(4) var<storage, read_write> work: array<f32>;
@group(0) @binding(6) var<storage, read_write> hist: array<u32>;
@group(0) @binding(7) var<storage, read_write> state: State;

var<workgroup> h_count: array<atomic<u32>, 256>;
var<workgroup> h_hi: array<atomic<u32>, 256>;
var<workgroup> h_lo: array<atomic<u32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  atomicStore(&h_count[lid], 0u);
  atomicStore(&h_hi[lid], 0u);
  atomicStore(&h_lo[lid], 0u);
  workgroupBarrier();
  let running = state.done == 0u;
  let p = state.radix_pass;
  let ph = state.pref_hi;
  let pl = state.pref_lo;
  let bh = state.bound_hi;
  let bl = state.bound_lo;
  let m = bitcast<f32>(state.max_bits);
  let q = min(state.query, 3u);
  let use_min_p = params.q_min_p[q] != 0u;
  for (var j = 0u; j < 4u; j++) {
    let i = wg.x * ELEMS + j * 256u + lid;
    if (running && i < params.vocab) {
      let x = work[i];
      let hi = order_key(x);
      let lo = 0xffffffu - i;
      let w = select(exp((x - m) * params.inv_temp), 0.0, x == MASKED);
      let in_bound = hi > bh || (hi == bh && lo >= bl);
      if (in_bound && (!use_min_p || w >= params.min_p) && prefix_match(hi, lo, p, ph, pl)) {
        let d = digit(hi, lo, p);
        let f = w * LIMB;
        let whole = floor(f);
        atomicAdd(&h_count[d], 1u);
        atomicAdd(&h_hi[d], u32(whole));
        atomicAdd(&h_lo[d], u32((f - whole) * LIMB));
      }
    }
  }
  workgroupBarrier();
  let lo_sum = atomicLoad(&h_lo[lid]);
  let o = (wg.x * BINS + lid) * 3u;
  hist[o] = atomicLoad(&h_count[lid]);
  hist[o + 1u] = atomicLoad(&h_hi[lid]) + (lo_sum >> 20u);
  hist[o + 2u] = lo_sum & 0xfffffu;
}
