// @ts-check
// nomoat's wasm decoder (web/src/wasm_engine.mjs) on every architecture and weight layout of issue
// 12's contract, each a tiny random package made here (tiny_package.js), against a plain f64 JS
// forward pass over the same weights (referenceLogits): llama with llama3 rope scaling, qwen2 (qkv
// bias), qwen3 (q/k norms, head_dim != hidden / heads), gemma3 (GeGLU with tanh GELU, q/k norms,
// post-attention and post-FFN norms, the embedding multiplier, query_pre_attn_scalar, sliding-window
// layers with their own rope base, linear rope scaling of the global layers), phi3 (LongRoPE factors and
// attention factor, partial rotary), and the layouts 4-bit/32 (± offsets), 8-bit/32 (± offsets),
// 8-bit/16 (± offsets) and f32, as linears, embeddings and LM heads. Two threads (the helper over
// node:worker_threads) give the same bits as one. Against the numpy reference on converted GGUFs:
// tests/test_wasm_engine.py.
import assert from "node:assert/strict";
import fs from "node:fs";
import {test} from "node:test";

import {mulberry32} from "../src/sampler.js";
import {modelShape, ropeInvFreqs} from "../src/package.js";
import {archOf, WasmEngine} from "../src/wasm_engine.mjs";
import {NodeWorkerShim, referenceLogits, TinyPackage} from "./tiny_package.js";

const DIST = new URL("../dist/", import.meta.url);
const built = fs.existsSync(new URL("nomoat-decoder.wasm", DIST));
const skip = built ? false : "web/dist/nomoat-decoder.wasm is not built: run 'make web' first";

/**
 * @typedef {import("./tiny_package.js").Layout} Layout
 * @typedef {{qkv: Layout, o: Layout, gateUp: Layout, down: Layout, embed: Layout, head?: Layout}} Layouts
 * One case: config.json's fields over the tiny base, each layer's layouts (by layer, cycling), the
 * optional tensors it has.
 * @typedef {{config: Record<string, any>, layers: Layouts[], bias?: boolean, qkNorm?: boolean, postNorms?: boolean}} Case
 */

const BASE = {num_hidden_layers: 3, hidden_size: 64, intermediate_size: 96, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 80, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 256};

/** @type {Record<string, Case>} */
const CASES = {
  llama3: { // llama3 rope scaling (every band for head_dim 16, theta 1e4), Q6_K-like, fused K-quant/Q6_K, f32 linears, f32 tied embedding
    config: {...BASE, model_type: "llama", head_dim: 16,
      rope_scaling: {rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32}},
    layers: [{qkv: "q8b16", o: "f32", gateUp: "q8o", down: "q8b16o", embed: "f32"},
      {qkv: "f32", o: "q8b16", gateUp: "q8b16o", down: "q4o", embed: "f32"}],
  },
  qwen2: { // qkv bias; 4-bit with offsets; Q5_1-like embedding; untied Q6_K-like head
    config: {...BASE, model_type: "qwen2", attention_bias: true, sliding_window: 4096, rope_theta: 1e6},
    layers: [{qkv: "q4o", o: "q4", gateUp: "q8", down: "q8o", embed: "q8o", head: "q8b16"}],
    bias: true,
  },
  qwen3: { // q/k norms, head_dim 32 with 4 heads of hidden 64 (q_dim 128); Q4_0 embedding as the tied head
    config: {...BASE, model_type: "qwen3", head_dim: 32, num_key_value_heads: 1},
    layers: [{qkv: "q8", o: "q4o", gateUp: "q4", down: "q8b16", embed: "q4"}],
    qkNorm: true,
  },
  gemma3: { // as Gemma-3: GeGLU, norms everywhere, embedding x sqrt(hidden), scalar 24, windows of 6, local rope base
    config: {...BASE, model_type: "gemma3", head_dim: 32, num_key_value_heads: 1, hidden_act: "gelu_pytorch_tanh",
      query_pre_attn_scalar: 24, sliding_window: 6, rope_theta: 1e6, rope_local_base_freq: 10000,
      layer_types: ["sliding_attention", "sliding_attention", "full_attention"]},
    layers: [{qkv: "q8", o: "q4o", gateUp: "q8", down: "q8b16", embed: "q8"}, {qkv: "q8b16o", o: "q4o", gateUp: "q8o", down: "q4o", embed: "q8"}],
    qkNorm: true, postNorms: true,
  },
  gemma3linear: { // Gemma-3 4B+: linear rope scaling (factor 8) on the global layer only
    config: {...BASE, model_type: "gemma3", head_dim: 32, num_key_value_heads: 1, hidden_act: "gelu_pytorch_tanh",
      sliding_window: 6, rope_theta: 1e6, rope_local_base_freq: 10000, rope_scaling: {rope_type: "linear", factor: 8},
      layer_types: ["sliding_attention", "full_attention", "sliding_attention"]},
    layers: [{qkv: "q8", o: "q4o", gateUp: "q8", down: "q8b16", embed: "q8"}],
    qkNorm: true, postNorms: true,
  },
  phi4: { // Phi-4-mini: partial rotary (12 of head_dim 16), LongRoPE's long factors (256 > 64) and attention factor
    config: {...BASE, model_type: "phi3", head_dim: 16, partial_rotary_factor: 0.75,
      rope_scaling: {rope_type: "longrope", long_factor: [1, 1.5, 3, 6, 12, 24], short_factor: [1, 1, 1.1, 1.2, 1.4, 1.6],
        original_max_position_embeddings: 64, attention_factor: 1.2}},
    layers: [{qkv: "q4o", o: "q8", gateUp: "q4o", down: "q8", embed: "f32"}],
  },
};

/**
 * A case's package: random weights of about unit gain per layer, in the case's layouts.
 * @param {Case} k @param {number} seed
 */
function model(k, seed) {
  const rand = mulberry32(seed), c = k.config, H = c.hidden_size, I = c.intermediate_size;
  const hd = c.head_dim ?? H / c.num_attention_heads, qkvN = (c.num_attention_heads + 2 * c.num_key_value_heads) * hd;
  const p = new TinyPackage(rand), norm = () => 0.6 + 0.8 * rand();
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const x = `model.layers.${l}`, lay = k.layers[l % k.layers.length];
    p.vector(`${x}.input_layernorm.weight`, H, norm);
    p.linear(`${x}.attn.qkv_proj`, qkvN, H, lay.qkv, 1.5 / Math.sqrt(H));
    if (k.bias) p.vector(`${x}.attn.qkv_proj.bias`, qkvN, () => 0.5 * (rand() - 0.5));
    if (k.qkNorm) {
      p.vector(`${x}.attn.q_norm.weight`, hd, norm);
      p.vector(`${x}.attn.k_norm.weight`, hd, norm);
    }
    p.linear(`${x}.attn.o_proj`, H, c.num_attention_heads * hd, lay.o, 1 / Math.sqrt(c.num_attention_heads * hd));
    if (k.postNorms) p.vector(`${x}.attn.post_norm.weight`, H, norm);
    p.vector(`${x}.post_attention_layernorm.weight`, H, norm);
    p.linear(`${x}.mlp.gate_up_proj`, 2 * I, H, lay.gateUp, 1.5 / Math.sqrt(H));
    p.linear(`${x}.mlp.down_proj`, H, I, lay.down, 1 / Math.sqrt(I));
    if (k.postNorms) p.vector(`${x}.mlp.post_norm.weight`, H, norm);
  }
  p.vector("model.norm.weight", H, norm);
  const lay = k.layers[0], emb = c.model_type === "gemma3" ? 1 / Math.sqrt(H) : 1;
  p.linear("embed", c.vocab_size, H, lay.embed, emb);
  if (lay.head) p.linear("lm_head", c.vocab_size, H, lay.head, 1);
  return {...p.build(), config: c};
}

/** @param {number} n @param {number} k */
const ids = (n, k) => Array.from({length: n}, (_, i) => 3 + ((i * 7 + k * 13 + i * i) % (BASE.vocab_size - 3)));

/**
 * Every position's logits of `tokens` in the wasm decoder: a prefill of `prefill` tokens (two
 * chunks), then one token a step; a fork truncated and stepped again gives the same rows.
 * @param {WasmEngine} e @param {number[]} tokens @param {number} prefill
 */
async function decode(e, tokens, prefill) {
  const s = e.newState(), V = BASE.vocab_size, out = new Float32Array(tokens.length * V);
  out.set(await e.logits(s, 0, tokens.slice(0, prefill)));
  for (let i = prefill; i < tokens.length; i++) out.set(await e.logits(s, i, [tokens[i]]), i * V);
  const f = s.fork(), n = tokens.length;
  for (let i = n - 3; i < n; i++) { // a fork, truncated and stepped again: the same rows
    assert.deepEqual(await e.logits(f, i, [tokens[i]]), out.slice(i * V, (i + 1) * V));
  }
  s.dispose();
  f.dispose();
  return out;
}

for (const [name, k] of Object.entries(CASES)) {
  test(`${name}: the wasm decoder's logits match the JS f64 reference, two threads the same bits`, {skip}, async (t) => {
    const m = model(k, name.length * 7 + 1), tokens = ids(74, name.length);
    const want = referenceLogits(m, tokens);
    const e = await WasmEngine.create({...m, threads: 1, decoder: DIST});
    const got = await decode(e, tokens, 70);
    e.dispose();
    const V = BASE.vocab_size;
    let worst = 0, top = 0, same = 0;
    for (let r = 0; r < tokens.length; r++) {
      let a = 0, b = 0;
      for (let v = 0; v < V; v++) {
        const i = r * V + v;
        worst = Math.max(worst, Math.abs(got[i] - want[i]));
        top = Math.max(top, Math.abs(want[i]));
        if (got[i] > got[r * V + a]) a = v;
        if (want[i] > want[r * V + b]) b = v;
      }
      same += a === b ? 1 : 0;
    }
    t.diagnostic(`${name}: max |logit error| ${worst.toExponential(2)} (largest logit ${top.toFixed(2)}), argmax equal ${same}/${tokens.length}`);
    assert.ok(worst <= 3e-3 * Math.max(1, top), `max error ${worst}`);
    assert.ok(same >= tokens.length - 2, `argmax differs at ${tokens.length - same} positions`);
    assert.ok(top > 1, "degenerate model");
    // the helper thread (a Worker over node:worker_threads): the same bits
    const saved = globalThis.Worker;
    globalThis.Worker = /** @type {any} */ (NodeWorkerShim);
    try {
      const e2 = await WasmEngine.create({...m, threads: 2, decoder: DIST});
      assert.equal(e2.threads, 2);
      assert.deepEqual(await decode(e2, tokens, 70), got);
      e2.dispose();
    } finally {
      globalThis.Worker = saved;
    }
  });
}

test("the architecture as the decoder runs it (archOf), from modelShape's checked fields", () => {
  const a = archOf(modelShape(BASE));
  assert.deepEqual({...a, ropes: a.ropes.length}, {embedScale: 1, gelu: false, bias: false, qscalar: 16, windows: [0, 0, 0],
    ropes: 1, ropeOf: [0, 0, 0]});
  const g = modelShape(CASES.gemma3.config), ga = archOf(g);
  assert.equal(ga.embedScale, Math.fround(8));
  assert.deepEqual([ga.gelu, ga.qscalar, ga.windows, ga.ropeOf], [true, 24, [6, 6, 0], [0, 0, 1]]);
  assert.deepEqual([ga.ropes[0], ga.ropes[1]], [ropeInvFreqs(g, 0), ropeInvFreqs(g, 2)]);
  assert.notDeepEqual(ga.ropes[0], ga.ropes[1]); // rope_local_base_freq 1e4 against rope_theta 1e6
  const l3 = modelShape(CASES.llama3.config), la = archOf(l3), plain = ropeInvFreqs(modelShape(BASE), 0);
  assert.equal(la.ropes[0][0], plain[0]); // llama3: high frequencies kept, low ones divided, the band between interpolated
  assert.equal(la.ropes[0][7], plain[7] / 8);
  assert.ok(la.ropes[0].some((f, i) => f < plain[i] && f > plain[i] / 8));
  const gl = modelShape(CASES.gemma3linear.config); // linear: the global layer's frequencies / 8, the sliding ones' kept
  assert.deepEqual([ropeInvFreqs(gl, 1)[1], ropeInvFreqs(gl, 0)[1]], [1 / 1e6 ** (2 / 32) / 8, 1 / 1e4 ** (2 / 32)]);
  const p4 = modelShape(CASES.phi4.config), p4a = archOf(p4); // partial rotary: 6 frequencies over rd 12, long factors
  assert.deepEqual([p4.rd, p4.ropeAttn, p4a.ropes[0].length], [12, 1.2, 6]);
  assert.equal(p4a.ropes[0][5], 1 / 1e4 ** (10 / 12) / 24);
  assert.equal(ropeInvFreqs(modelShape({...CASES.phi4.config, max_position_embeddings: 64}), 0)[5], 1 / 1e4 ** (10 / 12) / 1.6);
  assert.deepEqual(archOf(modelShape({...BASE, sliding_window: 1e6, layer_types: Array(3).fill("sliding_attention")})).windows,
    [256, 256, 256]); // a window past max_position_embeddings: all of it
  for (const [change, re] of [
    [{hidden_act: "relu"}, /hidden_act is "relu"/],
    [{attention_bias: 1}, /attention_bias is 1/],
    [{sliding_window: 0}, /sliding_window is 0/],
    [{layer_types: ["full_attention"]}, /layer_types is \["full_attention"\]/],
    [{layer_types: ["sliding_attention", "full_attention", "full_attention"]}, /sliding_window is null/],
    [{query_pre_attn_scalar: -1}, /query_pre_attn_scalar is -1/],
    [{rope_local_base_freq: "x"}, /rope_local_base_freq is "x"/],
    [{rope_scaling: {rope_type: "yarn", factor: 2}}, /rope_scaling is/],
    [{partial_rotary_factor: 0.3}, /partial_rotary_factor 0.3 turns 5 of head_dim 16/],
    [{rope_scaling: {...CASES.phi4.config.rope_scaling, long_factor: [1]}}, /rope_scaling.long_factor is \[1\], not a list of 8 numbers/],
    [{model_type: 3}, /model_type is 3/],
  ]) assert.throws(() => archOf(modelShape({...BASE, ...change})), {name: "DataError", message: re});
});

test("splitPoint halves a chunk's attention work, sliding windows included", () => {
  for (const [pos, T, win] of [[0, 64, 0], [130, 1, 0], [100, 64, 0], [600, 1, 512], [600, 64, 512], [5, 40, 8], [0, 70, 6]]) {
    const J = WasmEngine.splitPoint(pos, T, win), lo = (/** @type {number} */ t) => win ? Math.max(0, pos + t + 1 - win) : 0;
    const work = (/** @type {number} */ j) => Array.from({length: T}, (_, t) => Math.max(0, Math.min(pos + t + 1, j) - lo(t)))
      .reduce((a, b) => a + b, 0);
    const total = work(pos + T);
    assert.ok(work(J) >= total / 2 && (J === 0 || work(J - 1) < total / 2), `${pos} ${T} ${win}: J ${J}`);
    if (win && pos > win) assert.ok(J > pos + 1 - win, `${pos} ${T} ${win}: J ${J} leaves the helper nothing`);
  }
});

test("RoPE tables grow with the positions used: the same logits as tables made whole at the start", {skip}, async () => {
  const k = {...CASES.gemma3, config: {...CASES.gemma3.config, max_position_embeddings: 4096}}, m = model(k, 5);
  const tokens = ids(1100, 3), a = await WasmEngine.create({...m, threads: 1, decoder: DIST});
  const b = await WasmEngine.create({...m, threads: 1, decoder: DIST});
  assert.equal(a.tableLength, 1024);
  b.ropeTables(4096);
  const sa = a.newState(), sb = b.newState();
  const la = [await a.logits(sa, 0, tokens.slice(0, 1000)), await a.logits(sa, 1000, tokens.slice(1000))]; // 1100 > 1024: grown
  assert.equal(a.tableLength, 2048);
  assert.deepEqual(la, [await b.logits(sb, 0, tokens.slice(0, 1000)), await b.logits(sb, 1000, tokens.slice(1000))]);
  a.dispose();
  b.dispose();
});
