// sample_prep.wgsl — logits processors + each workgroup's max/argmax.
//
// Purpose: work[i] = logits[i] with the repetition penalty applied to seen tokens (a positive logit
//   divided by the penalty, a negative one multiplied) and MASKED (-3e38, weight 0) for tokens
//   the allowed mask clears;
//   partials[g] = (bits of the largest work value in workgroup g's tokens, its lowest id).
//   Temperature is not applied here (the rank order is the processed logit's, as in the JS Sampler).
// Bindings: 0 params, 1 logits (read), 2 seen (read), 3 allowed (read), 4 work (write),
//   5 partials (write). Uniforms: vocab, flags (FLAG_PENALTY, FLAG_MASK), penalty.
// Workgroup size: 256; each invocation handles 4 tokens (ELEMS = 1024 per workgroup).
// Dispatch: (params.groups, 1, 1) with groups = ceil(vocab / 1024).
// Needs common.wgsl prepended.

@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> seen: array<u32>;
@group(0) @binding(3) var<storage, read> allowed: array<u32>;
@group(0) @binding(4) var<storage, read_write> work: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<vec2<u32>>;


@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var bv = MASKED;
  var bi = 0xffffffffu;
  for (var j = 0u; j < 4u; j++) {
    let i = wg.x * ELEMS + j * 256u + lid;
    if (i < params.vocab) {
      var x = logits[i];
      if ((params.flags & FLAG_PENALTY) != 0u && bit_set(seen[i >> 5u], i)) {
        x = select(x * params.penalty, x / params.penalty, x > 0.0);
      }
      if ((params.flags & FLAG_MASK) != 0u && !bit_set(allowed[i >> 5u], i)) {
        x = MASKED;
      }
      work[i] = x;
      if (beats(x, i, bv, bi)) {
        bv = x;
        bi = i;
      }
    }
  }
  reduce_best(lid, bv, bi);
  if (lid == 0u) {
    partials[wg.x] = vec2<u32>(bitcast<u32>(best_val[0]), best_id[0]);
  }
}
