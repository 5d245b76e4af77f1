// @ts-check
// nomoat's wasm sentence encoder (web/src/wasm_encoder.mjs) on a tiny random BERT written as the
// converter writes a package's graph (fixtures/make_tiny_bert.py: model.onnx, weights inline), with
// the decoder built into web/dist (skipped, saying so, when it is not built): its vectors against
// the numpy reference encoder's, its 12-bit linear layer against f32 arithmetic in JS, a row alone
// against the same row in a padded batch, and refusals of bad input.

import assert from "node:assert/strict";
import fs from "node:fs";
import {test} from "node:test";

import {WasmEncoder, onnxInitializers} from "../src/wasm_encoder.mjs";

const DIST = new URL("../dist/", import.meta.url);
const FIX = new URL("fixtures/tiny_bert/", import.meta.url);
const skip = fs.existsSync(new URL("nomoat-decoder.wasm", DIST)) ? false : "web/dist/nomoat-decoder.wasm is not built: run 'make web' first";
const graph = new Uint8Array(fs.readFileSync(new URL("model.onnx", FIX)));
const config = JSON.parse(fs.readFileSync(new URL("config.json", FIX), "utf8"));
const expected = JSON.parse(fs.readFileSync(new URL("expected.json", FIX), "utf8"));
const encoder = () => WasmEncoder.create({graph, config, dimensions: config.hidden_size, threads: 1, decoder: DIST});

/** @param {ArrayLike<number>} a @param {ArrayLike<number>} b */
function cosine(a, b) {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

test("the graph's initializers: every weight, with its shape", () => {
  const t = onnxInitializers(graph);
  assert.deepEqual(t.get("embeddings.word_embeddings.weight")?.dims, [40, 64]);
  assert.deepEqual(t.get("encoder.layer.1.attention.self.qkv.weight")?.dims, [64, 192]);
  assert.deepEqual(t.get("encoder.layer.0.output.dense.weight")?.dims, [96, 64]);
  assert.equal(t.get("encoder.layer.0.output.dense.bias")?.data.length, 64);
});

test("sentence vectors: cosine >= 0.9999 with the numpy reference encoder, each row of a padded batch", {skip}, async () => {
  const e = await encoder();
  try {
    const {batch, seq, ids, mask, vectors} = expected;
    const got = await e.encode(Int32Array.from(ids), Int32Array.from(mask), batch, seq);
    assert.equal(got.length, batch * 64);
    for (let b = 0; b < batch; b++) {
      const c = cosine(got.subarray(b * 64, b * 64 + 64), vectors[b]);
      assert.ok(c >= 0.9999, `row ${b}: cosine ${c}`);
    }
  } finally {
    e.dispose();
  }
});

test("a row alone gives the same vector, bit for bit, as in a padded batch", {skip}, async () => {
  const e = await encoder();
  try {
    const {batch, seq, ids, mask} = expected;
    const all = await e.encode(Int32Array.from(ids), Int32Array.from(mask), batch, seq);
    for (let b = 0; b < batch; b++) {
      const n = mask.slice(b * seq, b * seq + seq).reduce((/** @type {number} */ a, /** @type {number} */ x) => a + x, 0);
      const one = await e.encode(Int32Array.from(ids.slice(b * seq, b * seq + n)), new Int32Array(n).fill(1), 1, n);
      assert.deepEqual(one, all.subarray(b * 64, b * 64 + 64), `row ${b}`);
    }
  } finally {
    e.dispose();
  }
});

test("encLinear (12-bit weights, int16 activations) against f32 arithmetic", {skip}, async () => {
  const e = await encoder();
  try {
    const k = e.k, heap = e.live(), T = 8, K = 96, N = 40;
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 30) - 1;
    const wt = Float32Array.from({length: K * N}, rand), bias = Float32Array.from({length: N}, rand);
    const x = Float32Array.from({length: T * K}, (_, i) => rand() * (i % 32 === 5 ? 20 : 1)); // an outlier per block
    const L = e.linear(wt, bias, N, K);
    const xp = e.put(x), xq = heap.alloc(T * K * 2), xs = heap.alloc(T * K / 8), y = heap.alloc(T * N * 4);
    k.encQuantize(xp, K, 0, T, xq, xs);
    k.encLinear(L.w, L.s, L.b, N, K, 0, N, T, xq, xs, y);
    const got = new Float32Array(heap.memory.buffer, y, T * N);
    for (let t = 0; t < T; t++) {
      for (let n = 0; n < N; n++) {
        let want = bias[n], mag = Math.abs(bias[n]);
        for (let j = 0; j < K; j++) {
          want += x[t * K + j] * wt[j * N + n];
          mag += Math.abs(x[t * K + j] * wt[j * N + n]);
        }
        assert.ok(Math.abs(got[t * N + n] - want) <= 1e-3 * mag, `y[${t}, ${n}] = ${got[t * N + n]}, f32 ${want}`);
      }
    }
  } finally {
    e.dispose();
  }
});

test("refusals: ids out of the vocabulary, sizes that disagree, a truncated graph, a disposed encoder", {skip}, async () => {
  const e = await encoder();
  await assert.rejects(async () => e.encode(Int32Array.of(1, 40), Int32Array.of(1, 1), 1, 2), {name: "TypeError"});
  await assert.rejects(async () => e.encode(Int32Array.of(1, 2), Int32Array.of(1, 1), 1, 3), {name: "TypeError"});
  await assert.rejects(async () => e.encode(new Int32Array(33), new Int32Array(33), 1, 33), {name: "QuotaExceededError"});
  e.dispose();
  await assert.rejects(async () => e.encode(Int32Array.of(1), Int32Array.of(1), 1, 1), {name: "InvalidStateError"});
  await assert.rejects(WasmEncoder.create({graph: graph.subarray(0, graph.length - 1000), config, dimensions: 64, threads: 1, decoder: DIST}),
    {name: "DataError"});
});
