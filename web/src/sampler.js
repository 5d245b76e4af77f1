// @ts-check
// nomoat's JS sampler: logits (a Float32Array of the vocabulary) → one token id, next to the wasm
// decoder (and in place of the GPU sampler when that cannot start). The same processors, order and
// arithmetic as py/nomoat/sampler.py: allowed-token mask, repetition penalty, temperature
// (0 = argmax), top-k, top-p, min-p, then a draw from the seeded mulberry32 stream, which the GPU
// sampler (gpu_sampler.mjs) shares, so all three pick the same token for the same logits and seed.

import {named} from "./errors.js";

/** @typedef {import("./engine.js").SamplingParams} SamplingParams */
/** @typedef {import("./engine.js").Sampler} SamplerInterface */

/**
 * The seeded stream: u in [0, 1), multiples of 2^-32. Seed null/undefined: a random seed.
 * @param {number | null | undefined} seed
 * @returns {() => number}
 */
export function mulberry32(seed) {
  let s = (seed === null || seed === undefined) ? (Math.random() * 2 ** 32) >>> 0 : (seed >>> 0);
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Token ids by logit, highest first (ties: lower id first); only the best k when k > 0, found with
 * a k-sized heap instead of sorting the whole vocabulary (~18 ms per token at 49,152 tokens).
 * @param {Float32Array} x (vocab,)
 * @param {number} k
 * @returns {number[]}
 */
export function ranked(x, k) {
  /** @type {(a: number, b: number) => boolean} a ranks before b */
  const before = (a, b) => x[a] > x[b] || (x[a] === x[b] && a < b);
  if (k <= 0 || k >= x.length) return Array.from(x.keys()).sort((a, b) => (before(a, b) ? -1 : 1));
  /** @type {number[]} the best k so far; heap[0] is the worst of them */
  const heap = [];
  /** @param {number} i */
  const down = (i) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < heap.length && before(heap[w], heap[l])) w = l;
      if (r < heap.length && before(heap[w], heap[r])) w = r;
      if (w === i) return;
      [heap[i], heap[w]] = [heap[w], heap[i]];
      i = w;
    }
  };
  for (let t = 0; t < x.length; t++) {
    if (heap.length < k) {
      heap.push(t);
      for (let i = heap.length - 1; i > 0;) { // sift up: the worse rises to the root
        const up = (i - 1) >> 1;
        if (!before(heap[up], heap[i])) break;
        [heap[up], heap[i]] = [heap[i], heap[up]];
        i = up;
      }
    } else if (before(t, heap[0])) {
      heap[0] = t;
      down(0);
    }
  }
  return heap.sort((a, b) => (before(a, b) ? -1 : 1));
}

/**
 * allowedMask (structured output): bit i & 31 of word i >> 5 set = token i may be chosen; tokens
 * past its end may not. Every other logit becomes -Infinity, in place.
 * @param {Float32Array} x (vocab,)
 * @param {Uint32Array} allowedMask (ceil(vocab / 32),)
 */
export function maskLogits(x, allowedMask) {
  for (let w = 0; w * 32 < x.length; w++) {
    const bits = w < allowedMask.length ? allowedMask[w] : 0;
    if (bits === 0xffffffff) continue;
    for (let i = w * 32, end = Math.min(x.length, i + 32); i < end; i++) if (!((bits >>> (i & 31)) & 1)) x[i] = -Infinity;
  }
}

/** @implements {SamplerInterface} */
export class Sampler {
  /**
   * @param {SamplingParams} p
   * @param {Iterable<number>} [seen] token ids already in the context (the repetition penalty's set)
   */
  constructor(p, seen = []) {
    this.p = p;
    /** @type {Set<number>} */
    this.seen = new Set(Array.from(seen, Number));
    this.rand = mulberry32(p.seed);
  }

  dispose() {} // nothing outside the JS heap

  /**
   * The next token id. logits are processed in place.
   * @param {Float32Array} logits (vocab,)
   * @param {Iterable<number>} newIds the ids fed since the last call (they join the seen set)
   * @param {Uint32Array | null} [allowedMask]
   * @returns {number}
   */
  sample(logits, newIds, allowedMask) {
    for (const t of newIds) this.seen.add(t);
    const p = this.p;
    const x = logits;
    if (allowedMask) maskLogits(x, allowedMask);
    if (p.repetition_penalty !== 1) {
      for (const t of this.seen) x[t] = x[t] > 0 ? x[t] / p.repetition_penalty : x[t] * p.repetition_penalty;
    }
    if (p.temperature === 0) {
      let best = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
      return best;
    }
    let idx = ranked(x, p.top_k);
    if (allowedMask) { // masked tokens have probability 0: drop them, so rounding can never draw one
      idx = idx.filter((i) => x[i] !== -Infinity);
      if (!idx.length) throw named("OperationError", "No allowed token has a finite logit.");
    }
    const m = x[idx[0]] / p.temperature;
    let probs = idx.map((i) => Math.exp(x[i] / p.temperature - m));
    let sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((q) => q / sum);
    if (p.top_p < 1) {
      let c = 0, k = 0;
      while (k < probs.length && c < p.top_p) c += probs[k++];
      idx = idx.slice(0, Math.max(1, k));
      probs = probs.slice(0, Math.max(1, k));
    }
    if (p.min_p > 0) {
      const keep = probs.map((q) => q >= p.min_p * probs[0]);
      idx = idx.filter((_, i) => keep[i]);
      probs = probs.filter((_, i) => keep[i]);
    }
    sum = probs.reduce((a, b) => a + b, 0);
    let r = this.rand() * sum;
    for (let i = 0; i < idx.length; i++) {
      r -= probs[i];
      if (r <= 0) return idx[i];
    }
    return idx[idx.length - 1];
  }
}
