// @ts-check
// The engine interface: what Python (py/nomoat/backends/ort_web.py) drives, implemented by
// nomoat's wasm decoder (wasm_engine.mjs) and by onnxruntime-web (engine_ort.mjs); and the one
// growth-and-fork logic of a KV cache held in a block of a capacity (the wasm decoder's memory,
// WebGPU buffers).

/**
 * Sampling options, as py/nomoat/sampling.py's SamplingParams (snake_case, from Python).
 * @typedef {object} SamplingParams
 * @property {number} temperature 0 = argmax
 * @property {number} top_k 0 = off
 * @property {number} top_p 1 = off
 * @property {number} min_p 0 = off
 * @property {number} repetition_penalty 1 = off
 * @property {number | null} [seed] null: a random seed
 */

/**
 * A KV cache: the positions one conversation has fed.
 * @typedef {object} State
 * @property {number} length positions held
 * @property {() => State} fork an independent copy
 * @property {(n: number) => void} truncate keep the first n positions
 * @property {() => void} dispose release its memory (the state is empty after)
 */

/**
 * Logits → a token id (the JS Sampler, or the GPU sampler: a promise of the id).
 * @typedef {object} Sampler
 * @property {(logits: any, newIds: Iterable<number>, allowedMask?: Uint32Array | null) => number | Promise<number>} sample
 * @property {() => void | Promise<void>} dispose
 */

/**
 * One loaded model.
 * @typedef {object} Engine
 * @property {"wasm" | "webgpu"} device
 * @property {number} threads
 * @property {() => State} newState
 * @property {(params: SamplingParams, seen?: Iterable<number>) => Sampler} newSampler
 * @property {(state: any, start: number, ids: ArrayLike<number>, sampler: Sampler | null, mask?: Uint32Array | null) => Promise<number>} step
 *   state truncated to `start`, ids appended, then the next token sampled from that state's own
 *   logits before anything else runs on this engine; without a sampler: a prefill only, -1
 * @property {(state: any, start: number, ids: ArrayLike<number>) => Promise<Float32Array>} logits
 *   the same, returning every new position's logits, (ids.length * vocab), as a copy (tests)
 * @property {() => void | Promise<void>} dispose
 */

/**
 * One loaded sentence-embedding model (an embedding package's graph).
 * @typedef {object} Encoder
 * @property {"wasm" | "webgpu"} device
 * @property {number} threads
 * @property {number} dimensions the length of a vector
 * @property {(ids: ArrayLike<number>, mask: ArrayLike<number>, batch: number, seq: number) => Promise<Float32Array>} encode
 *   `batch` rows of `seq` token ids, padded (mask 0 past each row's end) → (batch * dimensions)
 *   sentence embeddings (mean-pooled over the mask, L2-normalised), row after row
 * @property {() => void | Promise<void>} dispose
 */

/**
 * What this worker's engines hold now (llm.resources()): KV caches holding memory (a wasm block or
 * GPU buffers) and GPU samplers (their buffers). Both return to 0 once every session is destroyed.
 * @type {{states: number, samplers: number}}
 */
export const live = {states: 0, samplers: 0};

/**
 * A KV cache in one block of `cap` positions, grown by doubling: a subclass says how a block is
 * allocated, copied (the used rows) and freed; fork, growth and truncation are here.
 * @template Block
 */
export class BlockKVState {
  /** @param {number} maxPositions the model's context (a block never grows past it) */
  constructor(maxPositions) {
    this.maxPositions = maxPositions;
    this.length = 0; // positions held
    this.cap = 0; // positions allocated
    /** @type {Block | null} */
    this.block = null;
  }

  /**
   * @abstract
   * @param {number} cap
   * @returns {Block}
   */
  allocate(cap) {
    throw new Error(`${this.constructor.name} must implement allocate(${cap})`);
  }

  /**
   * Copies the first `length` positions of `from` (a block of fromCap) into this state's block.
   * @abstract
   * @param {Block} from
   * @param {number} fromCap
   * @param {number} length
   */
  copyRows(from, fromCap, length) {
    throw new Error(`${this.constructor.name} must implement copyRows(${from}, ${fromCap}, ${length})`);
  }

  /**
   * @abstract
   * @param {Block} block
   * @param {number} cap
   */
  free(block, cap) {
    throw new Error(`${this.constructor.name} must implement free(${block}, ${cap})`);
  }

  /**
   * An empty state of the same kind.
   * @abstract
   * @returns {this}
   */
  empty() {
    throw new Error(`${this.constructor.name} must implement empty()`);
  }

  /** Room for n positions (doubling; the used rows move to the new block). @param {number} n */
  ensure(n) {
    if (n <= this.cap) return;
    const cap = Math.min(Math.max(n, 2 * this.cap, 64), Math.max(n, this.maxPositions));
    const old = this.block, oldCap = this.cap;
    this.block = this.allocate(cap);
    this.cap = cap;
    if (old === null) live.states++;
    if (old !== null) {
      if (this.length) this.copyRows(old, oldCap, this.length);
      this.free(old, oldCap);
    }
  }

  fork() {
    const s = this.empty();
    if (this.length && this.block !== null) {
      s.ensure(this.length);
      s.copyRows(this.block, this.cap, this.length);
      s.length = this.length;
    }
    return s;
  }

  /** @param {number} n */
  truncate(n) {
    if (n < this.length) this.length = Math.max(0, n);
  }

  dispose() {
    if (this.block !== null) {
      this.free(this.block, this.cap);
      live.states--;
    }
    this.block = null;
    this.cap = this.length = 0;
  }
}
