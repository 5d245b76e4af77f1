// select_scan.wgsl — one radix pass of a selection query: choose the digit, advance the state.
//
// Purpose: sums the workgroups' histograms per digit (exact 64-bit integer masses), then walks
//   the digits in rank order (255 first) adding counts and masses to the running totals, and picks
//   the first digit at which the query's target is reached: the count target (q_count > 0,
//   top-k) or the mass target (floor(q_frac x 2^-32 x the candidates' total mass), fixed on pass 0:
//   top-p and the draw). If no digit reaches it (fewer candidates than k) the last candidate digit
//   is chosen, as the JS Sampler falls back to its last candidate. After the seventh pass the
//   chosen key is the query's answer: it becomes the bound (the candidates of the next query), and
//   after the last query its id is the sampled token (state.token, done = 1).
// Bindings: 0 params, 6 hist (read), 7 state (read/write).
//   Uniforms: groups, n_queries, q_count, q_frac.
// Workgroup size: 256 (one workgroup: invocation b sums digit b; invocation 0 walks).
// Dispatch: (1, 1, 1) after each select_hist. Does nothing once state.done = 1.
// Needs common.wgsl prepended.

@group(0) @binding(6) var<storage, read_write> hist: array<u32>;
@group(0) @binding(7) var<storage, read_write> state: State;

var<workgroup> b_count: array<u32, 256>;
var<workgroup> b_mass: array<vec2<u32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var c = 0u;
  var mass = vec2<u32>(0u, 0u);
  for (var g = 0u; g < params.groups; g++) {
    let o = (g * BINS + lid) * 3u;
    c += hist[o];
    mass = add64(mass, vec2<u32>(hist[o + 1u], hist[o + 2u]));
  }
  b_count[lid] = c;
  b_mass[lid] = mass;
  workgroupBarrier();
  if (lid != 0u || state.done != 0u) {
    return;
  }
  var q = state.query;
  var p = state.radix_pass;
  let count_target = params.q_count[q];
  if (p == 0u) {
    var total = vec2<u32>(0u, 0u);
    for (var b = 0u; b < BINS; b++) {
      total = add64(total, b_mass[b]);
    }
    let goal = scale64(total, params.q_frac[q]);
    state.total_hi = total.x;
    state.total_lo = total.y;
    state.target_hi = goal.x;
    state.target_lo = goal.y;
  }
  let mass_goal = vec2<u32>(state.target_hi, state.target_lo);
  var cum_c = state.cum_count;
  var cum_m = vec2<u32>(state.cum_hi, state.cum_lo);
  var before_last_c = cum_c; // the totals before the last candidate digit (the fallback)
  var before_last_m = cum_m;
  var chosen = BINS;
  var last = BINS;
  for (var k = 0u; k < BINS; k++) {
    let b = BINS - 1u - k;
    if (b_count[b] == 0u) {
      continue;
    }
    last = b;
    var reached: bool;
    if (count_target > 0u) {
      reached = cum_c + b_count[b] >= count_target;
    } else {
      reached = ge64(add64(cum_m, b_mass[b]), mass_goal);
    }
    if (reached) {
      chosen = b;
      break;
    }
    before_last_c = cum_c;
    before_last_m = cum_m;
    cum_c += b_count[b];
    cum_m = add64(cum_m, b_mass[b]);
  }
  if (last == BINS) { // no candidate at all: cannot happen (the bound is a candidate); be safe
    state.token = state.argmax;
    state.done = 1u;
    return;
  }
  if (chosen == BINS) {
    chosen = last;
    cum_c = before_last_c;
    cum_m = before_last_m;
  }
  state.cum_count = cum_c;
  state.cum_hi = cum_m.x;
  state.cum_lo = cum_m.y;
  if (p < 4u) {
    state.pref_hi |= chosen << (24u - 8u * p);
  } else {
    state.pref_lo |= chosen << (16u - 8u * (p - 4u));
  }
  p += 1u;
  if (p == PASSES) {
    state.bound_hi = state.pref_hi;
    state.bound_lo = state.pref_lo;
    q += 1u;
    if (q >= params.n_queries) {
      state.token = 0xffffffu - state.pref_lo;
      state.done = 1u;
    }
    p = 0u;
    state.pref_hi = 0u;
    state.pref_lo = 0u;
    state.cum_count = 0u;
    state.cum_hi = 0u;
    state.cum_lo = 0u;
  }
  state.radix_pass = p;
  state.query = q;
}
