// @ts-check
// nomoat's wasm decoder engine (web/src/wasm_engine.mjs) on a tiny random model made here, with
// the decoder built into web/dist (skipped, saying so, when it is not built): greedy step() is the
// argmax of logits(), fork and truncate equal a fresh state, two states stepped at once each get
// their own tokens, dispose releases. Its logits against the numpy reference: tests/test_wasm_engine.py.
import assert from "node:assert/strict";
import fs from "node:fs";
import {test} from "node:test";

import {Sampler} from "../src/sampler.js";
import {hasRelaxedSimd, Heap, Helper, INT8_AUTO_BYTES, useInt8, WasmEngine} from "../src/wasm_engine.mjs";
import {TinyPackage} from "./tiny_package.js";

const DIST = new URL("../dist/", import.meta.url);
const built = fs.existsSync(new URL("nomoat-decoder.wasm", DIST));
const skip = built ? false : "web/dist/nomoat-decoder.wasm is not built: run 'make web' first";

const CONFIG = {num_hidden_layers: 2, hidden_size: 64, intermediate_size: 128, num_attention_heads: 4,
  num_key_value_heads: 2, head_dim: 16, vocab_size: 96, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 256};

/**
 * A random model in the package's layout (tiny_package.js): 4-bit linear layers, an 8-bit
 * embedding and LM head.
 * @param {number} seed
 */
function tinyModel(seed) {
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const p = new TinyPackage(rand), c = CONFIG, H = c.hidden_size, hd = c.head_dim;
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const x = `model.layers.${l}`;
    p.vector(`${x}.input_layernorm.weight`, H, () => 0.5 + rand());
    p.vector(`${x}.post_attention_layernorm.weight`, H, () => 0.5 + rand());
    p.linear(`${x}.attn.qkv_proj`, (c.num_attention_heads + 2 * c.num_key_value_heads) * hd, H, "q4", 0.14);
    p.linear(`${x}.attn.o_proj`, H, c.num_attention_heads * hd, "q4", 0.046);
    p.linear(`${x}.mlp.gate_up_proj`, 2 * c.intermediate_size, H, "q4", 0.14);
    p.linear(`${x}.mlp.down_proj`, H, c.intermediate_size, "q4", 0.046);
  }
  p.vector("model.norm.weight", H, () => 1);
  p.linear("embed", c.vocab_size, H, "q8", 0.74);
  p.linear("lm_head", c.vocab_size, H, "q8", 0.3);
  return {...p.build(), config: CONFIG};
}

const engine = () => WasmEngine.create({...tinyModel(1), threads: 1, decoder: DIST});
const greedy = () => new Sampler({temperature: 0, top_k: 0, top_p: 1, min_p: 0, repetition_penalty: 1, seed: 0});
/** @param {number} n @param {number} k */
const ids = (n, k) => Array.from({length: n}, (_, i) => 3 + ((i * 7 + k * 13) % (CONFIG.vocab_size - 3)));
/** The last row's argmax (ties: the lower id). @param {Float32Array} all */
const lastArgmax = (all) => {
  const V = CONFIG.vocab_size, x = all.subarray(all.length - V);
  let best = 0;
  for (let i = 1; i < V; i++) if (x[i] > x[best]) best = i;
  return best;
};

test("greedy step() is the argmax of logits(), prefill and decode", {skip}, async () => {
  const e = await engine();
  const a = e.newState(), b = e.newState();
  let tok = await e.step(a, 0, ids(70, 1), greedy()); // > one 64-token chunk
  assert.equal(tok, lastArgmax(await e.logits(b, 0, ids(70, 1))));
  const sampler = greedy(), tokens = new Set();
  for (let t = 0; t < 6; t++) {
    const want = lastArgmax(await e.logits(b, b.length, [tok]));
    tok = await e.step(a, a.length, [tok], sampler);
    assert.equal(tok, want);
    tokens.add(tok);
  }
  assert.ok(tokens.size > 2, `degenerate model: ${[...tokens]}`);
  assert.equal(a.length, 76);
  assert.equal(await e.step(a, 10, [5, 6], null), -1); // a prefill only: no token
  assert.equal(a.length, 12);
  e.dispose();
});

test("fork and truncate (and growth past 64 positions) equal a fresh state", {skip}, async () => {
  const e = await engine();
  const A = ids(40, 1), B = ids(30, 2), C = ids(5, 3);
  const s = e.newState();
  await e.logits(s, 0, A);
  const f = s.fork();
  const ab = await e.logits(s, 40, B); // 70 positions: the block grows
  assert.ok(s.cap > 64);
  const fresh = e.newState();
  await e.logits(fresh, 0, A);
  const ac = await e.logits(fresh, 40, C);
  assert.deepEqual(await e.logits(f, 40, C), ac); // the fork: A's rows, copied
  assert.deepEqual(await e.logits(s, 40, C), ac); // truncated back to A (start 40)
  const g = s.fork(); // a fork of a grown, truncated state
  assert.equal(g.length, 45);
  assert.deepEqual(await e.logits(g, 40, C), ac);
  await e.logits(fresh, 40, B);
  assert.deepEqual(await e.logits(s, 40, B), ab);
  e.dispose();
});

test("two states stepped at once each get their own tokens", {skip}, async () => {
  const e = await engine();
  const params = {temperature: 0.9, top_k: 20, top_p: 0.95, min_p: 0, repetition_penalty: 1.1};
  /** Tokens of one conversation alone. @param {number[]} prompt @param {number} seed */
  const alone = async (prompt, seed) => {
    const st = e.newState(), sm = new Sampler({...params, seed}), out = [await e.step(st, 0, prompt, sm)];
    for (let t = 0; t < 8; t++) out.push(await e.step(st, st.length, [out.at(-1)], sm));
    st.dispose();
    return out;
  };
  const want = [await alone(ids(20, 1), 1), await alone(ids(9, 2), 2)];
  const states = [e.newState(), e.newState()], samplers = [1, 2].map((seed) => new Sampler({...params, seed}));
  /** @type {number[][]} */
  const got = [[], []];
  /** @type {number[]} */
  let next = await Promise.all([e.step(states[0], 0, ids(20, 1), samplers[0]), e.step(states[1], 0, ids(9, 2), samplers[1])]);
  for (let t = 0; t < 9; t++) {
    got[0].push(next[0]);
    got[1].push(next[1]);
    if (t < 8) next = await Promise.all(states.map((st, i) => e.step(st, st.length, [next[i]], samplers[i])));
  }
  assert.deepEqual(got, want);
  assert.notDeepEqual(got[0], got[1]);
  assert.ok(new Set(got[0]).size > 2);
  e.dispose();
});

test("dispose: a state's block is reused; the engine refuses work after", {skip}, async () => {
  const e = await engine();
  const s = e.newState();
  await e.step(s, 0, ids(100, 1), null);
  const block = s.block, bytes = e.heap.memory.buffer.byteLength;
  s.dispose();
  assert.equal(s.block, null);
  assert.equal(s.length, 0);
  const t = e.newState();
  await e.step(t, 0, ids(100, 2), null);
  assert.equal(t.block, block); // the same memory, not more
  assert.equal(e.heap.memory.buffer.byteLength, bytes);
  e.dispose();
  assert.equal(e.heap, null);
  await assert.rejects(e.step(t, 0, [1], greedy()), {name: "InvalidStateError", message: /load it again/});
  t.dispose(); // after the engine: nothing to free, no error
});

test("bad input: clear errors", {skip}, async () => {
  const e = await engine();
  const s = e.newState();
  await assert.rejects(e.step(s, 0, [CONFIG.vocab_size], greedy()), {name: "TypeError", message: /outside the vocabulary/});
  await assert.rejects(e.step(s, 0, [], greedy()), {name: "TypeError"});
  await assert.rejects(e.step(s, 0, ids(257, 1), null), {name: "QuotaExceededError", message: /256 positions/});
  e.dispose();
});

test("kernels: int16 unless relaxed SIMD answers right; bad values are clear errors", {skip}, async () => {
  // Node 20 has relaxed SIMD only behind --experimental-wasm-relaxed-simd, and that version drops the
  // dot product's accumulator: the probe's known answer refuses it either way (Chromium: tests/test_wasm_engine.py).
  const relaxed = hasRelaxedSimd();
  assert.equal(typeof relaxed, "boolean");
  assert.equal(useInt8("int16", 2 ** 31), false);
  assert.equal(useInt8("auto", INT8_AUTO_BYTES - 1), false);
  assert.equal(useInt8("auto", INT8_AUTO_BYTES), relaxed);
  assert.throws(() => useInt8("fast", 0), {name: "TypeError", message: /kernels must be "auto", "int8" or "int16"/});
  const e = await WasmEngine.create({...tinyModel(1), threads: 1, decoder: DIST, kernels: "int16"});
  assert.equal(e.kernels, "int16");
  e.dispose();
  if (!relaxed) {
    await assert.rejects(WasmEngine.create({...tinyModel(1), threads: 1, decoder: DIST, kernels: "int8"}),
      {name: "NotSupportedError", message: /relaxed SIMD/});
  }
});

/** A Worker stand-in for the helper thread that never answers, or answers as wasm_thread.mjs does when it fails. */
class HelperStandIn {
  static answer = /** @type {unknown} */ (null);
  static made = /** @type {HelperStandIn[]} */ ([]);
  constructor() {
    /** @type {((ev: {data: unknown}) => void) | null} */
    this.onmessage = null;
    /** @type {((ev: {message: string}) => void) | null} */
    this.onerror = null;
    this.terminated = false;
    HelperStandIn.made.push(this);
  }
  postMessage() {
    const answer = HelperStandIn.answer;
    if (answer) setTimeout(() => this.onmessage?.({data: answer}), 0);
  }
  terminate() {
    this.terminated = true;
  }
}

test("a helper thread that fails or never starts: a clear error, the worker ended; the engine runs on one thread, same logits",
  {skip}, async () => {
    const saved = globalThis.Worker;
    globalThis.Worker = /** @type {any} */ (HelperStandIn);
    const memory = new WebAssembly.Memory({initial: 1, maximum: 16, shared: true});
    try {
      HelperStandIn.answer = null; // silent: the start gives up after startMs instead of waiting for ever
      await assert.rejects(Helper.start(/** @type {any} */ (null), memory, new Heap(memory, 1024), 50),
        /helper thread failed to start: no answer in 0.05 s/);
      assert.ok(HelperStandIn.made.at(-1)?.terminated);
      HelperStandIn.answer = {error: "CompileError: out of memory"}; // wasm_thread.mjs's answer when instantiate fails
      await assert.rejects(Helper.start(/** @type {any} */ (null), memory, new Heap(memory, 1024)),
        /helper thread failed to start: CompileError: out of memory/);
      const two = await WasmEngine.create({...tinyModel(1), threads: 2, decoder: DIST});
      assert.equal(two.threads, 1);
      assert.equal(two.pool, null);
      const one = await engine(), tokens = ids(70, 2);
      assert.deepEqual(await two.logits(two.newState(), 0, tokens), await one.logits(one.newState(), 0, tokens));
      two.dispose();
      one.dispose();
    } finally {
      globalThis.Worker = saved;
    }
  });
