// select_scan.wgsl — one radix pass of a selection query: choose the digit, advance the state.
//
// Purpose: sums the workgroups' histograms per digit (exact 64-bit integer masses), then takes
//   prefix sums of counts and masses over the digits in rank order (255 first; a parallel scan:
//   one invocation walking them in turn was 8-24 % slower per call on an NVIDIA H100), and picks
//   the first digit at which the query's target is reached: the count target (q_count > 0,
//   top-k) or the mass target (floor(q_frac x 2^-32 x the candidates' total mass), fixed on pass 0:
//   top-p and the draw). If no digit reaches it (fewer candidates than k) the last candidate digit
//   is chosen, as the JS Sampler falls back to its last candidate. After the seventh pass the
//   chosen key is the query's answer: it becomes the bound (the candidates of the next query), and
//   after the last query its id is the sampled token (state.token, done = 1).
// Bindings: 0 params, 6 hist (read), 7 state (read/write).
//   Uniforms: groups, n_queries, q_count, q_frac.
// Workgroup size: 256 (one workgroup: invocation b sums digit b and holds rank b of the scan).
// Dispatch: (1, 1, 1) after each select_hist. Does nothing once state.done = 1.
// Needs common.wgsl prepended.

@group(0) @binding(6) var<storage, read_write> hist: array<u32>;
@group(0) @binding(7) var<storage, read_write> state: State;

var<workgroup> b_count: array<u32, 256>;        // this pass's histogram, by digit
var<workgroup> b_mass: array<vec2<u32>, 256>;
var<workgroup> s_count: array<u32, 256>;        // inclusive prefix sums, in rank order
var<workgroup> s_mass: array<vec2<u32>, 256>;
var<workgroup> s_first: atomic<u32>;            // the first rank with a candidate that reaches the target
var<workgroup> s_last: atomic<u32>;             // 1 + the last rank with a candidate (0: none)

// The pass's decision for state_in; all 256 invocations call it (barriers). The returned state is
// meaningful in invocation 0.
fn scan_pass(lid: u32, state_in: State) -> State {
  var st = state_in;
  let b = BINS - 1u - lid; // invocation lid holds rank lid: digit 255 - lid
  let own = b_count[b];
  s_count[lid] = own;
  s_mass[lid] = b_mass[b];
  if (lid == 0u) {
    atomicStore(&s_first, BINS);
    atomicStore(&s_last, 0u);
  }
  workgroupBarrier();
  for (var off = 1u; off < BINS; off <<= 1u) {
    var c = s_count[lid];
    var m = s_mass[lid];
    if (lid >= off) {
      c += s_count[lid - off];
      m = add64(m, s_mass[lid - off]);
    }
    workgroupBarrier();
    s_count[lid] = c;
    s_mass[lid] = m;
    workgroupBarrier();
  }
  let q = st.query;
  let count_target = params.q_count[q];
  var mass_goal = vec2<u32>(st.target_hi, st.target_lo);
  if (st.radix_pass == 0u) {
    let total = s_mass[BINS - 1u];
    mass_goal = scale64(total, params.q_frac[q]);
    st.total_hi = total.x;
    st.total_lo = total.y;
    st.target_hi = mass_goal.x;
    st.target_lo = mass_goal.y;
  }
  let cum_m = vec2<u32>(st.cum_hi, st.cum_lo);
  var reached: bool;
  if (count_target > 0u) {
    reached = st.cum_count + s_count[lid] >= count_target;
  } else {
    reached = ge64(add64(cum_m, s_mass[lid]), mass_goal);
  }
  if (own > 0u) {
    atomicMax(&s_last, lid + 1u);
    if (reached) {
      atomicMin(&s_first, lid);
    }
  }
  workgroupBarrier();
  let first = atomicLoad(&s_first);
  let last = atomicLoad(&s_last);
  if (lid != 0u || st.done != 0u) {
    return st;
  }
  if (last == 0u) { // no candidate at all: cannot happen (the bound is a candidate); be safe
    st.token = st.argmax;
    st.done = 1u;
    return st;
  }
  let r = select(last - 1u, first, first < BINS); // the chosen rank, else the last candidate's
  var before_c = 0u; // totals of the candidates ranked before it
  var before_m = vec2<u32>(0u, 0u);
  if (r > 0u) {
    before_c = s_count[r - 1u];
    before_m = s_mass[r - 1u];
  }
  let cum_c = st.cum_count + before_c;
  let cum = add64(cum_m, before_m);
  let chosen = BINS - 1u - r;
  st.cum_count = cum_c;
  st.cum_hi = cum.x;
  st.cum_lo = cum.y;
  var p = st.radix_pass;
  var qn = q;
  if (p < 4u) {
    st.pref_hi |= chosen << (24u - 8u * p);
  } else {
    st.pref_lo |= chosen << (16u - 8u * (p - 4u));
  }
  p += 1u;
  if (p == PASSES) {
    st.bound_hi = st.pref_hi;
    st.bound_lo = st.pref_lo;
    qn += 1u;
    if (qn >= params.n_queries) {
      st.token = 0xffffffu - st.pref_lo;
      st.done = 1u;
    }
    p = 0u;
    st.pref_hi = 0u;
    st.pref_lo = 0u;
    st.cum_count = 0u;
    st.cum_hi = 0u;
    st.cum_lo = 0u;
  }
  st.radix_pass = p;
  st.query = qn;
  return st;
}

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
  let st = state;
  let next = scan_pass(lid, st);
  if (lid == 0u && st.done == 0u) {
    state = next;
  }
}
