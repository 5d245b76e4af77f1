// @ts-check
// The JS Sampler (web/src/sampler.js), hand-checked: greedy, ties, top-k/top-p/min-p, the allowed
// mask, the repetition penalty, the seeded stream. Run: node --test web/test/
import assert from "node:assert/strict";
import {test} from "node:test";

import {maskLogits, mulberry32, ranked, Sampler} from "../src/sampler.js";

/** @param {Partial<import("../src/engine.js").SamplingParams>} o */
const params = (o = {}) => ({temperature: 1, top_k: 0, top_p: 1, min_p: 0, repetition_penalty: 1, seed: 0, ...o});
/** @param {number[]} x */
const f32 = (x) => Float32Array.from(x);
/** A sampler whose draws are `us`, in order. @param {Sampler} s @param {number[]} us */
const drawing = (s, us) => Object.assign(s, {rand: () => /** @type {number} */ (us.shift())});

test("mulberry32: known values of seed 123456789", () => {
  const r = mulberry32(123456789);
  assert.deepEqual([r(), r(), r()], [0.2577907438389957, 0.9707721115555614, 0.7853280142880976]);
});

test("mulberry32: multiples of 2^-32 in [0, 1); no seed is a random one", () => {
  const r = mulberry32(7);
  for (let i = 0; i < 1000; i++) {
    const u = r();
    assert.ok(u >= 0 && u < 1 && Number.isInteger(u * 2 ** 32));
  }
  const a = mulberry32(null), b = mulberry32(undefined);
  assert.notDeepEqual([a(), a()], [b(), b()]);
});

test("greedy: the argmax, ties to the lower id", () => {
  const s = new Sampler(params({temperature: 0}));
  assert.equal(s.sample(f32([1, 3, 3, 2]), []), 1);
  assert.equal(s.sample(f32([-5, -1, -2]), []), 1);
});

test("ranked: by logit, ties by id; top k with the heap", () => {
  const x = f32([1, 3, 3, 0, 5, 3]);
  assert.deepEqual(ranked(x, 0), [4, 1, 2, 5, 0, 3]);
  assert.deepEqual(ranked(x, 3), [4, 1, 2]);
  assert.deepEqual(ranked(x, 6), ranked(x, 0));
});

test("temperature 1: u walks the probabilities in rank order", () => {
  const x = [1, 2, 3, 3, 0]; // rank order 2, 3, 1, 0, 4
  const p = x.map((v) => Math.exp(v - 3)), sum = p.reduce((a, b) => a + b, 0);
  const first = p[2] / sum;
  assert.equal(drawing(new Sampler(params()), [first * 0.999]).sample(f32(x), []), 2);
  assert.equal(drawing(new Sampler(params()), [first * 1.001]).sample(f32(x), []), 3);
  assert.equal(drawing(new Sampler(params()), [0.999999]).sample(f32(x), []), 4);
});

test("top-k 1 is the argmax whatever u; top-k 2 never draws the third", () => {
  const x = [1, 2, 3, 3, 0];
  assert.equal(drawing(new Sampler(params({top_k: 1})), [0.999]).sample(f32(x), []), 2);
  assert.equal(drawing(new Sampler(params({top_k: 2})), [0.999]).sample(f32(x), []), 3);
});

test("top-p: the smallest prefix whose mass reaches p", () => {
  const x = [1, 2, 3, 3, 0];
  // token 2 alone has ~0.4 of the mass: p 0.3 keeps only it
  assert.equal(drawing(new Sampler(params({top_p: 0.3})), [0.99]).sample(f32(x), []), 2);
  // p 0.5 keeps 2 and 3 (0.4 + 0.4): u 0.99 of their mass is 3, never 1
  assert.equal(drawing(new Sampler(params({top_p: 0.5})), [0.99]).sample(f32(x), []), 3);
});

test("min-p: tokens with p >= min_p * p_max", () => {
  const x = [1, 2, 3, 3, 0]; // p(1) / p_max = e^-1 < 0.5
  assert.equal(drawing(new Sampler(params({min_p: 0.5})), [0.99]).sample(f32(x), []), 3);
  assert.equal(drawing(new Sampler(params({min_p: 0.3})), [0.99]).sample(f32(x), []), 1);
});

test("the allowed mask: other tokens are -Infinity and never drawn", () => {
  const x = f32([1, 2, 3, 3, 0]);
  maskLogits(x, Uint32Array.from([0b10001]));
  assert.deepEqual(Array.from(x), [1, -Infinity, -Infinity, -Infinity, 0]);
  const mask = Uint32Array.from([0b10001]);
  assert.equal(new Sampler(params({temperature: 0})).sample(f32([1, 2, 3, 3, 0]), [], mask), 0);
  assert.equal(drawing(new Sampler(params()), [0.999999]).sample(f32([1, 2, 3, 3, 9]), [], Uint32Array.from([0b10])), 1);
  // tokens past the mask's end are not allowed
  assert.equal(new Sampler(params({temperature: 0})).sample(f32(new Array(40).fill(0).map((_, i) => i)), [],
    Uint32Array.from([0b100])), 2);
  assert.throws(() => new Sampler(params()).sample(f32([1, 2]), [], Uint32Array.from([0])), {name: "OperationError"});
});

test("repetition penalty: seen positive logits divided, negative multiplied", () => {
  const s = new Sampler(params({temperature: 0, repetition_penalty: 2}), [0]);
  const x = f32([4, 3, -1]);
  assert.equal(s.sample(x, [2]), 1); // 4 / 2 = 2 < 3
  assert.deepEqual(Array.from(x), [2, 3, -2]);
  // ids fed since the last call join the seen set
  const y = f32([4, 3, -1]);
  assert.equal(s.sample(y, [1]), 0); // 2 vs 3 / 2
});

test("same seed, same draws; another seed, others", () => {
  const run = (/** @type {number} */ seed) => {
    const s = new Sampler(params({temperature: 0.8, top_k: 40, top_p: 0.95, seed}));
    const r = mulberry32(99), out = [];
    for (let t = 0; t < 50; t++) out.push(s.sample(Float32Array.from({length: 500}, () => (r() - 0.5) * 8), [out.at(-1) ?? 0]));
    return out;
  };
  assert.deepEqual(run(5), run(5));
  assert.notDeepEqual(run(5), run(6));
});
