// select_hist.wgsl — one radix pass of a selection query: each workgroup's digit histogram.
//
// Purpose: for the candidates of query state.query (ranked at or before state.bound; with
//   w >= min_p when the query asks) whose key agrees with the digits chosen so far (state.pref_*,
//   passes 0..state.radix_pass-1), count them and sum their weight w = exp((work - max) * inv_temp)
//   per value of the pass's digit. The weight, rounded to units of 2^-40, is added as two 20-bit
//   limbs with integer atomics: exact, whatever order the invocations run in.
// Bindings: 0 params, 4 work (read), 6 hist (write), 7 state (read).
//   Uniforms: vocab, inv_temp, min_p, q_min_p.
// Workgroup size: 256; each invocation handles 4 tokens (ELEMS = 1024 per workgroup).
// Dispatch: (params.groups, 1, 1), then select_scan. Does nothing once state.done = 1.
// Output: hist[(g * 256 + b) * 3 + {0, 1, 2}] = count, then the mass in units of 2^-40 as a
//   64-bit integer (high word, low word).
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
        atomicAdd(&h_lo[d], u32(round((f - whole) * LIMB))); // <= 2^20: 1024 of them fit
      }
    }
  }
  workgroupBarrier();
  let whole_sum = atomicLoad(&h_hi[lid]); // units of 2^-20, < 2^31
  let o = (wg.x * BINS + lid) * 3u;
  let mass = add64(vec2<u32>(whole_sum >> 12u, whole_sum << 20u), vec2<u32>(0u, atomicLoad(&h_lo[lid])));
  hist[o] = atomicLoad(&h_count[lid]);
  hist[o + 1u] = mass.x;
  hist[o + 2u] = mass.y;
}
