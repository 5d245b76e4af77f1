// sample_reduce.wgsl — the global max/argmax, and the start of the selection.
//
// Purpose: reduces prep's partials to the largest processed logit and its lowest id (the greedy
//   answer), and resets the selection state: query 0, pass 0, no bound, zero totals. With
//   FLAG_GREEDY the answer is final (state.token = argmax, done = 1) and the select passes that
//   follow do nothing.
// Bindings: 0 params, 5 partials (read), 7 state (write). Uniforms: groups, flags.
// Workgroup size: 256 (one workgroup; each invocation folds partials lid, lid+256, ...).
// Dispatch: (1, 1, 1).
// Needs common.wgsl prepended.

@group(0) @binding(5) var<storage, read_write> partials: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read_write> state: State;


@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var bv = MASKED;
  var bi = 0xffffffffu;
  for (var g = lid; g < params.groups; g += 256u) {
    let p = partials[g];
    let v = bitcast<f32>(p.x);
    if (beats(v, p.y, bv, bi)) {
      bv = v;
      bi = p.y;
    }
  }
  reduce_best(lid, bv, bi);
  if (lid == 0u) {
    let greedy = (params.flags & FLAG_GREEDY) != 0u || params.n_queries == 0u;
    var st: State; // zero: query 0, pass 0, no bound, no prefix, zero totals
    st.max_bits = bitcast<u32>(best_val[0]);
    st.argmax = best_id[0];
    st.token = select(0xffffffffu, best_id[0], greedy);
    st.done = select(0u, 1u, greedy);
    state = st;
  }
}
