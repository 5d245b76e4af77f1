// @ts-check
// The onnxruntime-web engines: one ort InferenceSession of nomoat's graph (onnx/nomoat_q4.onnx on
// WebGPU; onnx/nomoat_wasm.onnx, f32 Gemms, on its wasm EP for comparison: wasmEngine "ort"), its
// KV states, and its samplers (the GPU sampler on WebGPU, else the JS Sampler); and the sentence
// encoder of an embedding package (OrtEncoder, at the end). The only module that imports
// onnxruntime-web; runtime.mjs imports this one only when such an engine is made. The engine
// interfaces are engine.js's.

import {BlockKVState} from "./engine.js";
import {named} from "./errors.js";
import {Sampler} from "./sampler.js";

/** @typedef {import("./engine.js").SamplingParams} SamplingParams */
/** @typedef {import("./engine.js").Sampler} AnySampler */
/** @typedef {import("./engine.js").State} State */
/** @typedef {import("./engine.js").Engine} Engine */
/** @typedef {import("./engine.js").Encoder} Encoder */

/** @type {any} onnxruntime-web, the build chosen for the first device (loadOrt) */
let ort = null;

/**
 * onnxruntime-web from the folder assets.ort: for wasm the plain threaded build (faster than
 * asyncify on CPU), for webgpu the native WebGPU EP. One build per JS realm: the first device
 * asked for decides it.
 * @param {{ort: string}} assets
 * @param {"wasm" | "webgpu"} device
 */
export async function loadOrt(assets, device) {
  if (ort) return ort;
  const file = device === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
  ort = await import(assets.ort + file);
  ort.env.wasm.wasmPaths = assets.ort;
  ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.max(1, Math.min(8, globalThis.navigator?.hardwareConcurrency || 1)) : 1;
  ort.env.logLevel = "error";
  return ort;
}

/**
 * onnx/nomoat_wasm.json: how to build the wasm graph's f32 weights from the 4- or 8-bit blocks.
 * @typedef {{size: number, f32: string, tensors: {n: number, k: number, bits: number, block?: number,
 *            offset: number, qweight: [number, number], scales: [number, number],
 *            offsets?: [number, number]}[]}} Recipe
 */

/**
 * The wasm graph's f32 weights, built from the blocks as the recipe says (the same arithmetic
 * as nomoat.convert.quant.QLinear.dequantize): w = (q - 2^(bits-1)) * d (+ c), for blocks of
 * `block` (16 or 32; 32 in recipes that predate it) columns of 4- or 8-bit integers.
 * @param {Recipe} recipe
 * @param {Uint8Array} data onnx/model_q4.onnx_data
 */
export function buildF32(recipe, data) {
  const out = new Float32Array(recipe.size / 4);
  /** @param {[number, number]} at offset, length */
  const f32At = ([off, len]) => new Float32Array(data.slice(off, off + len).buffer);
  for (const t of recipe.tensors) {
    const block = t.block ?? 32, nb = t.k / block, zero = t.bits === 4 ? 8 : 128;
    const blob = t.bits === 4 ? block / 2 : block; // bytes per block
    const q = data.subarray(t.qweight[0], t.qweight[0] + t.qweight[1]); // (n, nb, blob)
    const d = f32At(t.scales); // (n, nb)
    const c = t.offsets ? f32At(t.offsets) : null; // (nb, n)
    let o = t.offset / 4;
    for (let r = 0; r < t.n; r++) {
      for (let b = 0; b < nb; b++) {
        const s = d[r * nb + b], add = c ? c[b * t.n + r] : 0, base = (r * nb + b) * blob;
        if (t.bits === 4) {
          for (let j = 0; j < blob; j++) {
            const byte = q[base + j];
            out[o++] = ((byte & 15) - zero) * s + add;
            out[o++] = ((byte >> 4) - zero) * s + add;
          }
        } else {
          for (let j = 0; j < blob; j++) out[o++] = (q[base + j] - zero) * s + add;
        }
      }
    }
  }
  return new Uint8Array(out.buffer);
}

// WebGPU prompts go through the graph GPU_CHUNK tokens at a time: onnxruntime-web 1.30's WebGPU
// GroupQueryAttention returns wrong values for rows 4+ once a pass holds 32 or more new tokens
// (tests/test_kernels.py::test_webgpu_group_query_attention_long_pass pins this; ORT issue
// microsoft/onnxruntime#26064 reports its flash-attention path going wrong), while up to 31 match
// the CPU exactly. Chunks of 24 keep a margin below that.
export const GPU_CHUNK = 24;

// onnxruntime-web creates one session at a time per device ("another WebGPU EP inference session
// is being created"): creations wait for each other here (OrtEngine.create), so two at once both work.
let sessionCreation = Promise.resolve();

/**
 * An onnxruntime-web session for `graph`, created after any other creation has finished; a graph it
 * cannot load is a DataError naming the fix.
 * @param {Uint8Array | string} graph @param {any} opts @param {string} what "model graph" | "encoder graph"
 * @returns {Promise<any>}
 */
async function createSession(graph, opts, what) {
  const creating = sessionCreation.then(() => ort.InferenceSession.create(graph, opts));
  sessionCreation = creating.catch(() => {});
  try {
    return await creating;
  } catch (err) {
    throw named("DataError", `onnxruntime-web could not load the ${what} (${String(err.message || err).slice(0, 300)}). ` +
      "The file is corrupt or truncated: convert the model again ('nomoat convert').");
  }
}

/**
 * onnxruntime-web's wasm path: past is name -> ort.Tensor (1, n_kv, T, head_dim) in JS memory,
 * replaced (never written in place) by each step's present.*, so a fork shares them.
 * @implements {State}
 */
export class CpuKVState {
  /** @param {Record<string, any>} past @param {number} length */
  constructor(past, length) {
    this.past = past;
    this.length = length;
  }
  fork() {
    return new CpuKVState({...this.past}, this.length);
  }
  /** @param {number} n */
  truncate(n) {
    if (n >= this.length) return;
    /** @type {Record<string, any>} */
    const past = {};
    for (const [name, t] of Object.entries(this.past)) {
      const [b, h, T, d] = t.dims;
      const out = new Float32Array(b * h * n * d);
      for (let i = 0; i < b * h; i++) out.set(t.data.subarray(i * T * d, i * T * d + n * d), i * n * d);
      past[name] = new ort.Tensor("float32", out, [b, h, n, d]);
    }
    this.past = past;
    this.length = Math.max(0, n);
  }
  dispose() {
    this.past = {};
    this.length = 0;
  }
}

/**
 * WebGPU: the KV cache in preallocated GPU buffers, one per past input, (1, n_kv, cap, head_dim)
 * f32, grown by doubling (a GPU copy of the used rows). Each step feeds them as past_key_values.*
 * and binds the same tensors as the present.* outputs, so GroupQueryAttention runs in its
 * share-buffer mode: it writes the new rows in place (attention_mask gives the valid length) and
 * nothing is allocated, copied or read back per token. A fork copies the used rows (GPU to GPU);
 * truncate only shortens the length.
 * @typedef {{buffers: Record<string, GPUBuffer>, past: Record<string, any>}} GpuBlock
 *   name -> GPUBuffer, and name -> ort.Tensor over it
 * @extends {BlockKVState<GpuBlock>}
 */
export class GpuKVState extends BlockKVState {
  /** @param {OrtEngine} engine */
  constructor(engine) {
    super(engine.config.max_position_embeddings || 0);
    this.engine = engine;
    /** @type {any} the last forward's logits on the GPU (an ort tensor), kept for the GPU sampler */
    this.logits = null;
  }
  /** @param {number} cap */
  allocate(cap) {
    const e = this.engine, c = e.config;
    /** @type {GpuBlock} */
    const block = {buffers: {}, past: {}};
    for (const name of e.pastNames) {
      const b = e.gpuDevice().createBuffer({size: c.num_key_value_heads * cap * c.head_dim * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST});
      block.buffers[name] = b;
      block.past[name] = ort.Tensor.fromGpuBuffer(b, {dataType: "float32", dims: [1, c.num_key_value_heads, cap, c.head_dim]});
    }
    return block;
  }
  /** @param {GpuBlock} from @param {number} fromCap @param {number} length */
  copyRows(from, fromCap, length) {
    const c = this.engine.config, row = c.head_dim * 4, gpu = this.engine.gpuDevice(), enc = gpu.createCommandEncoder();
    const to = /** @type {GpuBlock} */ (this.block);
    for (const name of this.engine.pastNames) {
      for (let h = 0; h < c.num_key_value_heads; h++) {
        enc.copyBufferToBuffer(from.buffers[name], h * fromCap * row, to.buffers[name], h * this.cap * row, length * row);
      }
    }
    gpu.queue.submit([enc.finish()]);
  }
  /** @param {GpuBlock} block */
  free(block) {
    for (const t of Object.values(block.past)) t.dispose();
    for (const b of Object.values(block.buffers)) b.destroy(); // destroy() waits for copies already submitted
  }
  empty() {
    return /** @type {this} */ (new GpuKVState(this.engine));
  }
  dispose() {
    super.dispose();
    this.dropLogits();
  }
  dropLogits() {
    if (this.logits) this.logits.dispose();
    this.logits = null;
  }
}

/** @implements {Engine} */
export class OrtEngine {
  /**
   * graph: the .onnx bytes; data: onnx/model_q4.onnx_data; recipe: onnx/nomoat_wasm.json parsed
   * (the wasm graph: its f32 weights are built here), else null; config: config.json parsed.
   * @param {{assets: {ort: string}, device: "wasm" | "webgpu", config: Record<string, any>, graph: Uint8Array,
   *          data: Uint8Array, recipe: Recipe | null}} options
   */
  static async create({assets, device, config, graph, data, recipe}) {
    await loadOrt(assets, device);
    const external = [{path: "model_q4.onnx_data", data}];
    if (recipe) external.push({path: recipe.f32, data: buildF32(recipe, data)});
    /** @type {Record<string, any>} */
    const opts = {
      executionProviders: device === "webgpu" ? [{name: "webgpu"}] : [{name: "wasm"}],
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      externalData: external,
    };
    if (device === "webgpu") {
      // Keep the KV cache on the GPU (GpuKVState binds present.* to its own buffers). The logits
      // stay there too: the GPU sampler (gpu_sampler.mjs) reads them in place.
      opts.preferredOutputLocation = {logits: "gpu-buffer"};
    }
    const session = await createSession(graph, opts, "model graph");
    const e = new OrtEngine(device, config, session);
    if (device === "webgpu") await e.startGpuSampling();
    return e;
  }

  /**
   * @param {"wasm" | "webgpu"} device
   * @param {Record<string, any>} config
   * @param {any} session an ort.InferenceSession
   */
  constructor(device, config, session) {
    this.device = device;
    this.threads = device === "webgpu" ? 1 : ort.env.wasm.numThreads;
    this.config = config;
    this.session = session;
    /** @type {string[]} */
    this.pastNames = session.inputNames.filter((/** @type {string} */ n) => n.startsWith("past_key_values."));
    this.empty = new ort.Tensor("float32", new Float32Array(0), [1, config.num_key_value_heads, 0, config.head_dim]);
    /** @type {GPUDevice | null} onnxruntime-web's own GPUDevice: the KV buffers and the sampler live there */
    this.gpu = device === "webgpu" ? ort.env.webgpu.device : null;
    /** @type {import("./gpu_sampler.mjs").GpuSampling | null} */
    this.gpuSampling = null;
    this.sampling = "cpu";
    /** @type {Promise<unknown>} the session's latest run (runs wait for each other: run()) */
    this.lastRun = Promise.resolve();
    /** @type {Error | null} once the GPUDevice is lost: what every step of every state throws */
    this.lostError = null;
    /** @type {Promise<string> | null} resolves with why, once the GPUDevice is lost (runtime.mjs then picks wasm) */
    this.lost = null;
    /** @type {Promise<never> | null} rejects with lostError then: a step races it (a run on a lost device may never end) */
    this.lostSignal = null;
    if (this.gpu) {
      this.lost = this.gpu.lost.then((info) => {
        const why = `${info.reason || "unknown"}${info.message ? `: ${info.message}` : ""}`;
        this.lostError = named("OperationError", `The WebGPU device was lost (${why}); this session is ` +
          "gone: create a new one (device 'auto' then runs on wasm).");
        return `this worker's WebGPU device was lost (${why})`;
      });
      this.lostSignal = this.lost.then(() => Promise.reject(this.lostError));
      this.lostSignal.catch(() => {});
    }
  }

  /**
   * `work`, unless the GPU device is (or gets) lost: then lostError, at once. An error of `work`
   * that comes with a loss (a failed mapAsync, say) is reported as the loss.
   * @template T
   * @param {() => Promise<T>} work
   * @returns {Promise<T>}
   */
  async guarded(work) {
    if (this.lostError) throw this.lostError;
    if (!this.lostSignal) return work();
    const running = work();
    running.catch(() => {});
    try {
      return await Promise.race([running, this.lostSignal]);
    } catch (err) {
      if (!this.lostError) await Promise.race([this.lost, new Promise((r) => setTimeout(r, 100))]);
      throw this.lostError || err;
    }
  }

  /**
   * session.run, one at a time: onnxruntime-web does not run two inferences of one session at once
   * (concurrent sessions on WebGPU hung), so each run waits for the one before it.
   * @param {Record<string, any>} feeds
   * @param {Record<string, any>} [fetches]
   * @returns {Promise<any>}
   */
  run(feeds, fetches) {
    const session = this.session;
    const run = this.lastRun.then(() => (fetches ? session.run(feeds, fetches) : session.run(feeds)));
    this.lastRun = run.catch(() => {});
    return run;
  }

  gpuDevice() {
    if (!this.gpu) throw named("InvalidStateError", "This engine has no GPU device (it runs on wasm).");
    return this.gpu;
  }

  // WebGPU: the sampling kernels on onnxruntime-web's own GPUDevice. Should that fail (the module
  // missing from a copied runtime, a device without the limits), the logits are read back and the
  // JS Sampler runs: slower, same tokens. `sampling` says which and why.
  async startGpuSampling() {
    try {
      const {GpuSampling} = await import("./gpu_sampler.mjs");
      this.gpuSampling = await GpuSampling.create(this.gpuDevice(), this.config.vocab_size);
      this.sampling = "gpu";
    } catch (err) {
      this.gpuSampling = null;
      this.sampling = `cpu (GPU sampling unavailable: ${String(/** @type {Error} */ (err)?.message || err).slice(0, 200)})`;
    }
  }

  newState() {
    return this.gpu ? new GpuKVState(this) : new CpuKVState({}, 0);
  }

  /** @param {SamplingParams} params @param {Iterable<number>} [seen] @returns {AnySampler} */
  newSampler(params, seen = []) {
    return this.gpuSampling ? this.gpuSampling.newSampler(params, seen) : new Sampler(params, seen);
  }

  /**
   * One generation step (what Python calls): state back to `start` positions, ids appended, and
   * with a sampler the next token id chosen from this state's own logits (-1 without one). Logits
   * never leave this call.
   * @param {CpuKVState | GpuKVState} state
   * @param {number} start
   * @param {number[]} ids
   * @param {AnySampler | null} sampler
   * @param {Uint32Array | null} [mask]
   */
  step(state, start, ids, sampler, mask) {
    return this.guarded(async () => {
      state.truncate(start);
      const logits = await this.forward(state, ids, false);
      return sampler ? sampler.sample(logits, ids, mask) : -1;
    });
  }

  /**
   * Every new position's logits, (len(ids) * vocab), as a Float32Array of its own (tests).
   * @param {CpuKVState | GpuKVState} state
   * @param {number} start
   * @param {number[]} ids
   */
  logits(state, start, ids) {
    return this.guarded(async () => {
      state.truncate(start);
      return (await this.forward(state, ids, true)).slice();
    });
  }

  dispose() {
    if (this.gpuSampling) this.gpuSampling.dispose();
    this.gpuSampling = null;
    const session = this.session;
    this.session = null;
    if (session) return session.release();
  }

  /**
   * Appends ids to state; returns a Float32Array of logits: (vocab,) for the last position, or
   * (len(ids) * vocab) when allLogits. With GPU sampling, the last position's logits stay on the
   * GPU: an onnxruntime-web tensor for the sampler, owned by the state until its next forward.
   * @param {CpuKVState | GpuKVState} state
   * @param {ArrayLike<number>} ids
   * @param {boolean} allLogits
   * @returns {Promise<any>}
   */
  async forward(state, ids, allLogits) {
    if (!this.session) throw named("InvalidStateError", "This model was unloaded; load it again.");
    if (this.gpu && ids.length > GPU_CHUNK) return this.forwardChunked(state, Array.from(ids), allLogits);
    const P = state.length, S = ids.length;
    /** @param {number} n @param {(i: number) => number} f */
    const i64 = (n, f) => BigInt64Array.from({length: n}, (_, i) => BigInt(f(i)));
    /** @type {Record<string, any>} */
    const feeds = {
      input_ids: new ort.Tensor("int64", i64(S, (i) => ids[i]), [1, S]),
      attention_mask: new ort.Tensor("int64", i64(P + S, () => 1), [1, P + S]),
      position_ids: new ort.Tensor("int64", i64(S, (i) => P + i), [1, S]),
      logits_to_keep: new ort.Tensor("int64", BigInt64Array.from([allLogits ? 0n : 1n]), []),
    };
    let out;
    if (state instanceof GpuKVState) {
      state.ensure(P + S);
      const past = /** @type {GpuBlock} */ (state.block).past;
      /** @type {Record<string, any>} */
      const fetches = {logits: null};
      for (const n of this.pastNames) {
        feeds[n] = past[n];
        fetches["present." + n.slice("past_key_values.".length)] = past[n]; // the same buffer: written in place
      }
      out = await this.run(feeds, fetches);
      state.length = P + S;
      state.dropLogits(); // the previous forward's GPU logits, consumed by now
    } else {
      for (const n of this.pastNames) feeds[n] = state.past[n] || this.empty;
      out = await this.run(feeds);
      /** @type {Record<string, any>} */
      const past = {};
      for (const n of this.pastNames) past[n] = out["present." + n.slice("past_key_values.".length)];
      state.past = past;
      state.length = P + S;
    }
    if (out.logits.location !== "gpu-buffer") return out.logits.data;
    if (this.gpuSampling && !allLogits && state instanceof GpuKVState) return (state.logits = out.logits);
    return out.logits.getData(true); // read back and release the GPU buffer
  }

  /**
   * forward() GPU_CHUNK tokens at a time (WebGPU).
   * @param {CpuKVState | GpuKVState} state
   * @param {number[]} ids
   * @param {boolean} allLogits
   */
  async forwardChunked(state, ids, allLogits) {
    const V = this.config.vocab_size, out = allLogits ? new Float32Array(ids.length * V) : null;
    let last;
    for (let i = 0; i < ids.length; i += GPU_CHUNK) {
      last = await this.forward(state, ids.slice(i, i + GPU_CHUNK), allLogits);
      if (out) out.set(last, i * V);
    }
    return out || last; // without allLogits, the earlier chunks' GPU logits were dropped by the next forward
  }
}

// ---------------------------------------------------------------------------------------------
// The sentence encoder (embedding packages)
// ---------------------------------------------------------------------------------------------

/**
 * A sentence-embedding model's graph (BERT in Optimum's encoder I/O: input_ids, attention_mask,
 * token_type_ids int64 (batch, seq) → last_hidden_state (batch, seq, H) and sentence_embedding
 * (batch, dimensions): the masked mean, L2-normalised) on onnxruntime-web, wasm (threaded when
 * the page is cross-origin isolated) or WebGPU. encode() fetches only sentence_embedding, so the
 * (batch, seq, H) hidden states never leave onnxruntime's memory.
 * @implements {Encoder}
 */
export class OrtEncoder {
  /**
   * graph: the .onnx bytes; external: its external data files ({path: the name the graph refers
   * to, data}); dimensions: nomoat.json's embedding.dimensions.
   * @param {{assets: {ort: string}, device: "wasm" | "webgpu", graph: Uint8Array, external: {path: string, data: Uint8Array}[],
   *          dimensions: number}} options
   */
  static async create({assets, device, graph, external, dimensions}) {
    await loadOrt(assets, device);
    const opts = {executionProviders: [{name: device}], graphOptimizationLevel: "all", logSeverityLevel: 3, externalData: external};
    const session = await createSession(graph, opts, "encoder graph");
    const missing = ["input_ids", "attention_mask"].filter((n) => !session.inputNames.includes(n));
    if (!session.outputNames.includes("sentence_embedding")) missing.push("sentence_embedding (an output)");
    if (missing.length) {
      await session.release();
      throw named("DataError", `The encoder graph has no ${missing.join(", ")}: it is not a nomoat embedding package's graph; ` +
        "convert the model again ('nomoat convert').");
    }
    return new OrtEncoder(device, session, dimensions);
  }

  /** @param {"wasm" | "webgpu"} device @param {any} session an ort.InferenceSession @param {number} dimensions */
  constructor(device, session, dimensions) {
    this.device = device;
    this.threads = device === "webgpu" ? 1 : ort.env.wasm.numThreads;
    this.session = session;
    this.dimensions = dimensions;
    this.types = session.inputNames.includes("token_type_ids");
    /** @type {Promise<unknown>} the latest run (runs take turns, as OrtEngine's) */
    this.lastRun = Promise.resolve();
    /** @type {Error | null} once the GPUDevice is lost: what every encode throws */
    this.lostError = null;
    /** @type {Promise<string> | null} resolves with why, once the GPUDevice is lost (runtime.mjs then picks wasm) */
    this.lost = null;
    const gpu = device === "webgpu" ? /** @type {GPUDevice} */ (ort.env.webgpu.device) : null;
    if (gpu) {
      this.lost = gpu.lost.then((info) => {
        const why = `${info.reason || "unknown"}${info.message ? `: ${info.message}` : ""}`;
        this.lostError = named("OperationError", `The WebGPU device was lost (${why}); embed again (device 'auto' then runs on wasm).`);
        return `this worker's WebGPU device was lost (${why})`;
      });
    }
  }

  /**
   * The sentence embeddings of `batch` rows of `seq` tokens (padded: mask 0 past each row's end):
   * (batch * dimensions) floats, row after row.
   * @param {Int32Array | ArrayLike<number>} ids (batch * seq) token ids
   * @param {Int32Array | ArrayLike<number>} mask (batch * seq) 1 for a token, 0 for padding
   * @param {number} batch
   * @param {number} seq
   * @returns {Promise<Float32Array>}
   */
  async encode(ids, mask, batch, seq) {
    if (!this.session) throw named("InvalidStateError", "This encoder was unloaded; load the model again.");
    if (this.lostError) throw this.lostError;
    const n = batch * seq;
    if (!(Number.isSafeInteger(batch) && batch >= 1 && Number.isSafeInteger(seq) && seq >= 1) || ids.length !== n || mask.length !== n) {
      throw named("TypeError", `encode: ids and mask must hold batch * seq = ${batch} * ${seq} values (got ${ids.length}, ${mask.length}).`);
    }
    /** @param {ArrayLike<number>} a */
    const i64 = (a) => new ort.Tensor("int64", BigInt64Array.from(/** @type {ArrayLike<number>} */ (a), BigInt), [batch, seq]);
    /** @type {Record<string, any>} */
    const feeds = {input_ids: i64(ids), attention_mask: i64(mask)};
    if (this.types) feeds.token_type_ids = new ort.Tensor("int64", new BigInt64Array(n), [batch, seq]);
    const session = this.session;
    const run = this.lastRun.then(() => session.run(feeds, ["sentence_embedding"]));
    this.lastRun = run.catch(() => {});
    const out = (await (this.lost ? Promise.race([run, this.lost.then(() => Promise.reject(this.lostError))]) : run)).sentence_embedding;
    const [b, d] = out.dims;
    if (b !== batch || d !== this.dimensions || out.type !== "float32") {
      throw named("DataError", `The encoder graph returned sentence_embedding ${out.type} [${out.dims}], not float32 [${batch}, ${this.dimensions}] ` +
        "(nomoat.json's embedding.dimensions); convert the model again ('nomoat convert').");
    }
    return /** @type {Float32Array} */ (out.data);
  }

  dispose() {
    const session = this.session;
    this.session = null;
    if (session) return session.release();
  }
}
