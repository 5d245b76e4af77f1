// @ts-check
// nomoat's GPU sampler: logits → token id on the GPU, with the WGSL kernels of kernels/
// (generated/kernels.js, written by build.mjs), on the device that already holds the logits
// (onnxruntime-web's own GPUDevice, ort.env.webgpu.device). Only the chosen id (4 bytes) is read back.
//
// Same processors, order and answers as the JS Sampler (sampler.js): repetition penalty,
// temperature (0 = argmax), top-k, top-p, min-p, then a draw with u from the same seeded
// mulberry32 stream, so for the same logits and seed both pick the same token (ties → lower id).
// sample(logits, newIds, allowedMask) takes what the JS Sampler takes; logits may be an
// onnxruntime-web tensor on the GPU, a GPUBuffer, or a Float32Array (uploaded first). It returns a
// promise of the id.
//
// Per call: writeBuffer of the uniforms (and of the seen / allowed bitmasks when they are used),
// one compute pass (prep, reduce, then 7 x (select_hist, select_scan) per selection query: top-k,
// top-p, the draw), one submit, one 4-byte mapAsync.

import {KERNELS} from "./generated/kernels.js"; // {name: WGSL source}, from kernels/*.wgsl (web/build.mjs)
import {live} from "./engine.js";
import {mulberry32} from "./sampler.js";

/** @typedef {import("./engine.js").SamplingParams} SamplingParams */
/** @typedef {import("./engine.js").Sampler} SamplerInterface */

const STAGES = ["sample_prep", "sample_reduce", "select_hist", "select_scan"];
const ELEMS = 1024, BINS = 256, PASSES = 7, STATE_BYTES = 80, TOKEN_OFFSET = 44, PARAMS_BYTES = 80;
const FLAG_PENALTY = 1, FLAG_MASK = 2, FLAG_GREEDY = 4;

/**
 * The selection queries for a sampler's options: [[count, fraction, minP?]]; none for argmax.
 * A fraction goes to the GPU in units of 2^-32, rounded down: exact for u (k / 2^32).
 * @param {SamplingParams} p
 * @param {number} vocab
 * @param {number} u the draw
 * @returns {[number, number, number][]}
 */
export function queries(p, vocab, u) {
  if (p.temperature === 0) return [];
  /** @type {[number, number, number][]} */
  const q = [];
  if (p.top_k > 0 && p.top_k < vocab) q.push([p.top_k, 0, 0]);
  if (p.top_p < 1) q.push([0, p.top_p, 0]);
  q.push([0, u, p.min_p > 0 ? 1 : 0]);
  return q;
}

/**
 * A bitmask (Uint32Array words, or any typed array / ArrayBuffer of their little-endian bytes)
 * as a Uint32Array of `words` words; a clear error when it is not one.
 * @param {any} mask
 * @param {number} words
 * @returns {Uint32Array<ArrayBuffer>}
 */
function maskWords(mask, words) {
  let w = mask;
  if (w instanceof ArrayBuffer) w = new Uint8Array(w);
  if (ArrayBuffer.isView(w) && !(w instanceof Uint32Array)) {
    const bytes = new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
    w = new Uint32Array(words);
    new Uint8Array(w.buffer).set(bytes.subarray(0, Math.min(bytes.length, words * 4)));
  }
  if (!(w instanceof Uint32Array)) {
    throw new TypeError("allowedMask must be a Uint32Array bitmask (bit i of word i >> 5 = token i allowed) or null.");
  }
  if (w.length < words) {
    const padded = new Uint32Array(words);
    padded.set(w);
    w = padded;
  }
  return w.length === words ? w : w.subarray(0, words);
}

// Pipelines and the buffers every sampler on one device and vocabulary shares (the queue runs
// each sampler's submit to completion in order, and each submit rewrites what it reads).
export class GpuSampling {
  /** @param {GPUDevice} device @param {number} vocab */
  static async create(device, vocab) {
    if (!(vocab > 0 && vocab < 2 ** 24)) throw new RangeError(`GPU sampling supports 1..2^24-1 tokens, not ${vocab}.`);
    const g = new GpuSampling(device, vocab);
    const layout = device.createPipelineLayout({bindGroupLayouts: [g.layout]});
    for (const name of STAGES) {
      const module = device.createShaderModule({code: KERNELS.common + "\n" + KERNELS[name]});
      g.pipelines[name] = await device.createComputePipelineAsync({layout, compute: {module, entryPoint: "main"}});
    }
    return g;
  }

  /** @param {GPUDevice} device @param {number} vocab (use create(): it also builds the pipelines) */
  constructor(device, vocab) {
    this.device = device;
    this.vocab = vocab;
    this.groups = Math.ceil(vocab / ELEMS);
    this.words = Math.ceil(vocab / 32);
    const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    /** @param {number} size */
    const buf = (size) => device.createBuffer({size: Math.max(16, size), usage: S});
    this.logits = buf(4 * vocab); // for Float32Array logits
    this.allowed = buf(4 * this.words);
    this.work = buf(4 * vocab);
    this.partials = buf(8 * this.groups);
    this.hist = buf(4 * 3 * BINS * this.groups);
    /** @type {GPUBindGroupLayoutEntry[]} */
    const entries = [{binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: {type: "uniform"}}];
    for (let b = 1; b < 8; b++) {
      entries.push({binding: b, visibility: GPUShaderStage.COMPUTE, buffer: {type: b <= 3 ? "read-only-storage" : "storage"}});
    }
    this.layout = device.createBindGroupLayout({entries});
    /** @type {Record<string, GPUComputePipeline>} */
    this.pipelines = {};
  }

  /** @param {SamplingParams} params @param {Iterable<number>} [seen] */
  newSampler(params, seen = []) {
    return new GpuSampler(this, params, seen);
  }

  /** Releases the shared buffers (after every sampler of it is done). */
  dispose() {
    for (const b of [this.logits, this.allowed, this.work, this.partials, this.hist]) b.destroy();
  }
}

/** @implements {SamplerInterface} */
export class GpuSampler {
  /** @param {GpuSampling} shared @param {SamplingParams} params @param {Iterable<number>} [seen] */
  constructor(shared, params, seen = []) {
    const d = shared.device;
    this.g = shared;
    this.p = params;
    this.rand = mulberry32(params.seed);
    this.seenWords = new Uint32Array(shared.words);
    this.seenDirty = false;
    this.params = d.createBuffer({size: PARAMS_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST});
    this.seen = d.createBuffer({size: Math.max(16, 4 * shared.words), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST});
    this.state = d.createBuffer({size: STATE_BYTES, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC});
    this.readback = d.createBuffer({size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST});
    /** @type {Promise<unknown>} the last sample, settled */
    this.busy = Promise.resolve();
    this.see(seen);
    this.disposed = false;
    live.samplers++;
  }

  /** Marks token ids as seen (the repetition penalty's set). @param {Iterable<number>} [ids] */
  see(ids) {
    const g = this.g;
    for (const t of ids || []) {
      const i = Number(t);
      if (i >= 0 && i < g.vocab && !(this.seenWords[i >> 5] & (1 << (i & 31)))) {
        this.seenWords[i >> 5] |= 1 << (i & 31);
        this.seenDirty = true;
      }
    }
  }

  // Releases this sampler's GPU buffers (after its last sample has settled).
  dispose() {
    if (!this.disposed) live.samplers--;
    this.disposed = true;
    return this.busy.then(() => {
      for (const b of [this.params, this.seen, this.state, this.readback]) b.destroy();
    });
  }

  /** The GPU buffer holding the logits (vocab f32 at offset 0). @param {any} logits */
  logitsBuffer(logits) {
    const g = this.g;
    if (logits && logits.location === "gpu-buffer") return logits.gpuBuffer; // onnxruntime-web tensor
    if (typeof GPUBuffer !== "undefined" && logits instanceof GPUBuffer) return logits;
    const x = logits && logits.data instanceof Float32Array ? logits.data : logits; // a CPU tensor
    if (!(x instanceof Float32Array) || x.length < g.vocab) {
      throw new TypeError(`logits must be a GPU tensor, a GPUBuffer or a Float32Array of ${g.vocab} values.`);
    }
    g.device.queue.writeBuffer(g.logits, 0, /** @type {Float32Array<ArrayBuffer>} */ (x), 0, g.vocab);
    return g.logits;
  }

  /**
   * Upload what this call needs and submit the whole selection; returns the number of dispatches.
   * @param {any} logits @param {Iterable<number>} newIds @param {unknown} allowedMask @param {number} [stopAfter]
   */
  encode(logits, newIds, allowedMask, stopAfter) {
    const g = this.g, p = this.p, q = g.device.queue;
    this.see(newIds);
    let flags = 0;
    if (p.repetition_penalty !== 1) {
      flags |= FLAG_PENALTY;
      if (this.seenDirty) q.writeBuffer(this.seen, 0, this.seenWords);
      this.seenDirty = false;
    }
    if (allowedMask !== null && allowedMask !== undefined) {
      const words = maskWords(allowedMask, g.words);
      const tail = g.vocab & 31 ? words[g.words - 1] & ((1 << (g.vocab & 31)) - 1) : words[g.words - 1];
      if (!tail && !words.subarray(0, g.words - 1).some((w) => w !== 0)) {
        throw new RangeError("allowedMask allows no token of the vocabulary: nothing can be sampled.");
      }
      q.writeBuffer(g.allowed, 0, words);
      flags |= FLAG_MASK;
    }
    const buffer = this.logitsBuffer(logits);
    const qs = queries(p, g.vocab, p.temperature === 0 ? 0 : this.rand());
    if (!qs.length) flags |= FLAG_GREEDY;
    const u32 = new Uint32Array(PARAMS_BYTES / 4), f32 = new Float32Array(u32.buffer);
    u32.set([g.vocab, g.groups, flags, qs.length]);
    f32.set([p.repetition_penalty, p.temperature ? 1 / p.temperature : 0, p.min_p], 4);
    qs.forEach(([count, frac, minP], i) => {
      u32[8 + i] = count;
      u32[12 + i] = Math.min(2 ** 32 - 1, Math.floor(frac * 2 ** 32));
      u32[16 + i] = minP;
    });
    q.writeBuffer(this.params, 0, u32);
    const bind = g.device.createBindGroup({layout: g.layout, entries: [
      this.params, buffer, this.seen, g.allowed, g.work, g.partials, g.hist, this.state,
    ].map((b, i) => ({binding: i, resource: {buffer: b, offset: 0, size: i === 1 ? 4 * g.vocab : b.size}}))});
    /** @type {[string, number][]} */
    const steps = [["sample_prep", g.groups], ["sample_reduce", 1]];
    for (let i = 0; i < qs.length * PASSES; i++) steps.push(["select_hist", g.groups], ["select_scan", 1]);
    const enc = g.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setBindGroup(0, bind);
    for (const [name, n] of steps.slice(0, stopAfter ?? steps.length)) {
      pass.setPipeline(g.pipelines[name]);
      pass.dispatchWorkgroups(n);
    }
    pass.end();
    enc.copyBufferToBuffer(this.state, TOKEN_OFFSET, this.readback, 0, 4);
    q.submit([enc.finish()]);
    return steps.length;
  }

  /**
   * The next token id: a promise, settled after one submit and a 4-byte readback. Calls on one
   * sampler run one after another (the readback buffer is reused).
   * @param {any} logits @param {Iterable<number>} newIds @param {Uint32Array | null} [allowedMask]
   * @returns {Promise<number>}
   */
  sample(logits, newIds, allowedMask) {
    const run = this.busy.then(async () => {
      this.encode(logits, newIds, allowedMask);
      await this.readback.mapAsync(GPUMapMode.READ);
      const token = new Uint32Array(this.readback.getMappedRange())[0];
      this.readback.unmap();
      return token;
    });
    this.busy = run.catch(() => {});
    return run;
  }

  /**
   * For tests: run the first `stopAfter` dispatches and read back every intermediate buffer.
   * @param {any} logits @param {Iterable<number>} newIds @param {unknown} allowedMask @param {number} stopAfter
   */
  async inspect(logits, newIds, allowedMask, stopAfter) {
    await this.busy;
    const g = this.g, d = g.device;
    const dispatches = this.encode(logits, newIds, allowedMask, stopAfter);
    /** @type {Record<string, any>} */
    const out = {dispatches};
    for (const [name, b] of Object.entries({work: g.work, partials: g.partials, hist: g.hist, state: this.state})) {
      const r = d.createBuffer({size: b.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST});
      const enc = d.createCommandEncoder();
      enc.copyBufferToBuffer(b, 0, r, 0, b.size);
      d.queue.submit([enc.finish()]);
      await r.mapAsync(GPUMapMode.READ);
      out[name] = Array.from(new Uint32Array(r.getMappedRange().slice(0)));
      r.unmap();
      r.destroy();
    }
    await this.readback.mapAsync(GPUMapMode.READ);
    this.readback.unmap();
    return out;
  }
}
