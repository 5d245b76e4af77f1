// @ts-check
// nomoat's own wasm decoder engine for Llama-family models (llama, qwen2, qwen3, gemma3, phi3: archOf
// says what each adds to a Llama decoder): the kernels (web/src/wasm/decoder.ts,
// compiled to nomoat-decoder.wasm with SIMD) read the 4-/8-bit blocks of onnx/model_q4.onnx_data
// in place (every layout of the converter: 4 or 8 bits, blocks of 32 or 16, with or without offsets,
// or f32), the KV cache lives in wasm memory (sliding-window layers keep every position too and
// attend to their window), and logits are a Float32Array view of it, sampled
// by the JS Sampler (sampler.js) within the same step. The engine interface is engine.js's.
//
// Memory (one WebAssembly.Memory): the weights (the whole data file, copied once), cos/sin tables
// (one per distinct set of RoPE frequencies: gemma3's sliding and full layers have two),
// scratch for a chunk of up to CHUNK tokens, the logits, and one KV block per state:
// (layer, key|value, kv head, capacity, head_dim) int16 with an f32 scale per row (half an f32
// cache's bytes: decode at long contexts reads the cache more than the weights), grown by doubling.
//
// Threads: with crossOriginIsolated (SharedArrayBuffer) and 2+ cores, the memory is shared with a
// helper Worker (wasm_thread.mjs) running the same kernels; each matmul splits its rows and each
// attention its cached positions (then the partial softmaxes are merged). The arithmetic does not
// depend on the thread count: the same logits.

import {BlockKVState} from "./engine.js";
import {named} from "./errors.js";
import {badFile as bad, isObject, modelShape, ropeInvFreqs, show} from "./package.js";
import {Sampler} from "./sampler.js";
import {begin, heldMemory} from "./timeline.js";

/** @typedef {import("./engine.js").SamplingParams} SamplingParams */
/** @typedef {import("./engine.js").Engine} Engine */

const CHUNK = 64; // prefill tokens per pass through the layers
const SPLIT_MAX_T = 3; // the most tokens decoder.ts matmul16s takes in one call (decode steps; more: matmul)
const PAGE = 65536;
const HELPER_START_MS = 30000; // a helper thread that has not started by then never will (Helper.start)

/**
 * The compiled decoder: nomoat-decoder.wasm (1 thread) or nomoat-decoder-mt.wasm (shared memory),
 * from the folder `base` (default: next to this module, as web/dist deploys them).
 * @param {number} threads
 * @param {URL | string} [base]
 * @param {boolean} [relaxed] the relaxed-SIMD build, nomoat-decoder[-mt]-relaxed.wasm (8-bit activations)
 * @returns {Promise<WebAssembly.Module>}
 */
export async function loadDecoder(threads = 1, base = new URL(".", import.meta.url), relaxed = false) {
  const url = new URL(`nomoat-decoder${threads > 1 ? "-mt" : ""}${relaxed ? "-relaxed" : ""}.wasm`, base);
  if (url.protocol === "file:") { // Node (tests)
    const fs = await import("node:fs");
    return WebAssembly.compile(fs.readFileSync(url));
  }
  const r = await fetch(url);
  if (!r.ok) throw named("NotFoundError", `Could not fetch nomoat's wasm decoder ${url} (HTTP ${r.status}); rebuild web/dist ('make web').`);
  return WebAssembly.compileStreaming ? WebAssembly.compileStreaming(r) : WebAssembly.compile(await r.arrayBuffer());
}

// A module exporting f() = lane 0 of i32x4.relaxed_dot_i8x16_i7x16_add_s([-128, 2, 3, 4, 0...], [127, 1, 1, 1,
// 0...], [100, 0, 0, 0]) (0xfd 0x113, then i32x4.extract_lane 0): -128 * 127 + 2 + 3 + 4 + 100 = -16147.
const RELAXED_PROBE = Uint8Array.from([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0,
  10, 64, 1, 62, 0, ...[[128, 2, 3, 4], [127, 1, 1, 1], [100]].flatMap((l) => [253, 12, ...l, ...new Array(16 - l.length).fill(0)]),
  253, 147, 2, 253, 27, 0, 11]);
/** @type {boolean | undefined} */
let relaxedSimd;

/**
 * Whether this engine's WebAssembly has relaxed SIMD (the 8-bit-activation kernels need it) and
 * computes the dot product the kernels rely on: the probe module validates and gives its known
 * answer (Firefox and WebKit may lack the feature; Node 20's, behind a flag, drops the accumulator).
 */
export function hasRelaxedSimd() {
  if (relaxedSimd === undefined) {
    try {
      relaxedSimd = WebAssembly.validate(RELAXED_PROBE) &&
        /** @type {() => number} */ (new WebAssembly.Instance(new WebAssembly.Module(RELAXED_PROBE)).exports.f)() === -16147;
    } catch {
      relaxedSimd = false;
    }
  }
  return relaxedSimd;
}

/**
 * Whether a model gets the 8-bit-activation kernels (decoder.ts matmul8): kernels "int8" (a
 * NotSupportedError where relaxed SIMD is missing), "int16" (never), or "auto": where relaxed SIMD is
 * there and the weights take at least INT8_AUTO_BYTES (the 1B-class models, where decode is bound by
 * arithmetic; the small default models keep the int16 path, whose logits match the f32 reference closer).
 * @param {unknown} kernels
 * @param {number} bytes the data file's size
 */
export function useInt8(kernels, bytes) {
  if (kernels !== "auto" && kernels !== "int8" && kernels !== "int16") {
    throw named("TypeError", `kernels must be "auto", "int8" or "int16", not ${show(kernels)}.`);
  }
  if (kernels === "int8" && !hasRelaxedSimd()) {
    throw named("NotSupportedError", "kernels: \"int8\" needs WebAssembly relaxed SIMD, which this browser lacks; " +
      "use kernels: \"auto\" (the int16 kernels here).");
  }
  return kernels === "int8" || (kernels === "auto" && bytes >= INT8_AUTO_BYTES && hasRelaxedSimd());
}
export const INT8_AUTO_BYTES = 512 * 2 ** 20;

// First-fit allocator over the wasm memory, above the module's own data; grows the memory.
export class Heap {
  /**
   * @param {WebAssembly.Memory} memory
   * @param {number} base the first free byte
   */
  constructor(memory, base) {
    this.memory = memory;
    this.top = align(base);
    /** @type {{ptr: number, size: number}[]} sorted by ptr */
    this.free = [];
  }
  /** @param {number} bytes @returns {number} the address */
  alloc(bytes) {
    const size = align(Math.max(16, bytes));
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      if (f.size >= size) {
        const ptr = f.ptr;
        f.ptr += size;
        f.size -= size;
        if (!f.size) this.free.splice(i, 1);
        return ptr;
      }
    }
    const ptr = this.top;
    this.top += size;
    const need = Math.ceil(this.top / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (need > 0) {
      try {
        this.memory.grow(need);
      } catch (e) {
        this.top -= size;
        throw named("QuotaExceededError", `nomoat's wasm decoder is out of memory (${(this.top / 2 ** 20).toFixed(0)} MB used, ` +
          `${(size / 2 ** 20).toFixed(0)} MB more asked): close other sessions or use a shorter context.`);
      }
    }
    return ptr;
  }
  /** @param {number} ptr @param {number} bytes */
  release(ptr, bytes) {
    this.free.push({ptr, size: align(Math.max(16, bytes))});
    this.free.sort((a, b) => a.ptr - b.ptr);
    const merged = [];
    for (const f of this.free) { // coalesce neighbours
      const last = merged[merged.length - 1];
      if (last && last.ptr + last.size === f.ptr) last.size += f.size;
      else merged.push({...f});
    }
    const last = merged[merged.length - 1];
    if (last && last.ptr + last.size === this.top) { // the tail goes back to the bump pointer
      this.top = last.ptr;
      merged.pop();
    }
    this.free = merged;
  }
}

/** @param {number} n */
function align(n) {
  return (n + 63) & ~63;
}

/**
 * @typedef {{w: number, s: number, c: number, n: number, k: number, bits: number, block: number}} Linear
 * A weight (n, k) in memory: quantized, its blocks w, scales s, offsets c (0: none), 4 or 8 bits in
 * blocks of 32 or (8 bits) 16; or f32 (bits 32, block 0): the matrix at w, row-major.
 * @typedef {{data?: string, tensors: Record<string, {offset: number, length?: number, dtype?: string, shape: number[]}>}} TensorDirectory
 * onnx/nomoat_tensors.json: where each weight lies in the data file (as the converter writes it;
 * create() takes any JSON value and checks it)
 */

// -- the model's files, checked before the decoder touches memory ------------------------------
// A hostile package (its manifest rewritten to match) must end in a DataError naming the file and
// the field, never in a wasm trap: every config.json number (package.js modelShape: the rules and
// limits of py/nomoat/config.py) and every tensor the decoder reads (offset, length, dtype and shape against
// config.json and the data file's length; no two overlapping) is checked first.

const CONFIG_FILE = "config.json", DIR_FILE = "nomoat_tensors.json", DATA_FILE = "model_q4.onnx_data";
const ITEM = {uint8: 1, float32: 4};
/** The quantized layouts the kernels read, [bits, block]: Q4_0/Q4_1/Q4_K; Q8_0/Q5_0/Q5_1/Q5_K; Q6_K. */
const LAYOUTS = [[4, 32], [8, 32], [8, 16]];

/**
 * Addresses of the tensors the decoder reads, each checked against its expected dtype and shape
 * and the data file's length (take), then against each other (noOverlap).
 */
class Tensors {
  /**
   * @param {unknown} dir onnx/nomoat_tensors.json parsed
   * @param {number} size the data file's byteLength
   * @param {number} base where the data file will lie in memory
   */
  constructor(dir, size, base = 0) {
    if (!isObject(dir)) throw bad(DIR_FILE, `is ${show(dir)}, not a JSON object`);
    if (!isObject(dir.tensors)) throw bad(DIR_FILE, `"tensors" is ${show(dir.tensors)}, not an object`);
    if (dir.data !== undefined && dir.data !== DATA_FILE) throw bad(DIR_FILE, `"data" is ${show(dir.data)}, not "${DATA_FILE}"`);
    this.t = dir.tensors;
    this.size = size;
    this.base = base;
    /** @type {[number, number, string][]} (start, end, name) of every tensor taken */
    this.ranges = [];
  }
  /** @param {string} name */
  has(name) {
    return Object.hasOwn(this.t, name);
  }
  /**
   * The address of `name`, a tensor of `dtype` whose shape is one of `shapes`.
   * @param {string} name
   * @param {"uint8" | "float32"} dtype
   * @param {number[][]} shapes
   */
  take(name, dtype, shapes) {
    const e = this.t[name];
    if (e === undefined) throw bad(DIR_FILE, `${name} is missing`);
    if (!isObject(e)) throw bad(DIR_FILE, `${name} is ${show(e)}, not an object`);
    const {offset, shape, length} = e;
    if (e.dtype !== undefined && e.dtype !== dtype) throw bad(DIR_FILE, `${name} dtype is ${show(e.dtype)}, not "${dtype}"`);
    if (!Array.isArray(shape) || !shapes.some((s) => s.length === shape.length && s.every((d, i) => d === shape[i]))) {
      throw bad(DIR_FILE, `${name} shape is ${show(shape)}, not ${shapes.map((s) => JSON.stringify(s)).join(" or ")} (from ${CONFIG_FILE})`);
    }
    const bytes = ITEM[dtype] * shape.reduce((a, d) => a * d, 1);
    if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
      throw bad(DIR_FILE, `${name} offset is ${show(offset)}, not a byte offset`);
    }
    if (length !== undefined && length !== bytes) throw bad(DIR_FILE, `${name} length is ${show(length)}, not its shape's ${bytes} bytes`);
    if (offset + bytes > this.size) {
      throw bad(DIR_FILE, `${name} offset ${offset} + ${bytes} bytes runs past the end of ${DATA_FILE} (${this.size} bytes)`);
    }
    this.ranges.push([offset, offset + bytes, name]);
    return this.base + offset;
  }
  /** A norm's weight, (H,) f32. @param {string} name @param {number} H */
  vector(name, H) {
    return this.take(name, "float32", [[H]]);
  }
  /**
   * A weight (n, k): quantized, `{prefix}.qweight` (n, k/block, block * bits / 8) u8 with (bits, block)
   * one of LAYOUTS (read from its shape), scales (n * k/block) f32 and optional block_offsets
   * (k/block, n) f32; or an f32 `{prefix}.weight` (n, k) (F16/BF16/F32 weights in the GGUF).
   * @param {string} prefix @param {number} n @param {number} k
   * @returns {Linear}
   */
  linear(prefix, n, k) {
    if (!this.has(prefix + ".qweight") && this.has(prefix + ".weight")) {
      return {w: this.take(prefix + ".weight", "float32", [[n, k]]), s: 0, c: 0, n, k, bits: 32, block: 0};
    }
    const q = this.t[prefix + ".qweight"], shapes = LAYOUTS.map(([bits, block]) => [n, k / block, block * bits / 8]);
    const i = Math.max(0, shapes.findIndex((s) => isObject(q) && Array.isArray(q.shape) && s.every((d, j) => d === q.shape[j])));
    const [bits, block] = LAYOUTS[i], nb = k / block;
    const w = this.take(prefix + ".qweight", "uint8", shapes);
    const s = this.take(prefix + ".scales", "float32", [[n * nb], [n, nb]]);
    const c = this.has(prefix + ".block_offsets") ? this.take(prefix + ".block_offsets", "float32", [[nb, n]]) : 0;
    return {w, s, c, n, k, bits, block};
  }
  /** Throws if two tensors taken share a byte. */
  noOverlap() {
    const r = [...this.ranges].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < r.length; i++) {
      if (r[i][0] < r[i - 1][1]) {
        throw bad(DIR_FILE, `${r[i][2]} (offset ${r[i][0]}) overlaps ${r[i - 1][2]} (bytes ${r[i - 1][0]}..${r[i - 1][1]}) in ${DATA_FILE}`);
      }
    }
  }
}

/**
 * One layer's weights: norms (0: none), the fused q|k|v and its bias (0: none), per-head q/k norms,
 * post-attention and post-FFN norms (gemma3), and which attention: its window (0: full) and RoPE
 * table (an index into the distinct tables).
 * @typedef {{attnNorm: number, ffnNorm: number, qkv: Linear, bias: number, qNorm: number, kNorm: number, postAttn: number,
 *            postFfn: number, o: Linear, gateUp: Linear, down: Linear, window: number, rope: number}} Layer
 */

/**
 * Every weight's address for the shape c and architecture a, checked (Tensors); a DataError naming
 * the field if one does not fit. The optional tensors of the contract (qkv bias, q/k norms, post
 * norms) are used where the directory has them; attention_bias: true requires the bias.
 * @param {Shape} c
 * @param {Arch} a
 * @param {unknown} dir onnx/nomoat_tensors.json parsed
 * @param {number} size the data file's byteLength
 * @param {number} [base] where the data file lies in memory
 */
export function weightsOf(c, a, dir, size, base = 0) {
  const t = new Tensors(dir, size, base), qkvN = (c.nq + 2 * c.nkv) * c.hd;
  /** @param {string} name @param {number} n @param {boolean} [need] */
  const optional = (name, n, need = false) => need || t.has(name) ? t.vector(name, n) : 0;
  /** @type {Layer[]} */
  const layers = [];
  for (let i = 0; i < c.L; i++) {
    const p = `model.layers.${i}`;
    layers.push({attnNorm: t.vector(`${p}.input_layernorm.weight`, c.H), ffnNorm: t.vector(`${p}.post_attention_layernorm.weight`, c.H),
      qkv: t.linear(`${p}.attn.qkv_proj`, qkvN, c.H), bias: optional(`${p}.attn.qkv_proj.bias`, qkvN, a.bias),
      qNorm: optional(`${p}.attn.q_norm.weight`, c.hd), kNorm: optional(`${p}.attn.k_norm.weight`, c.hd),
      postAttn: optional(`${p}.attn.post_norm.weight`, c.H), postFfn: optional(`${p}.mlp.post_norm.weight`, c.H),
      o: t.linear(`${p}.attn.o_proj`, c.H, c.nq * c.hd), gateUp: t.linear(`${p}.mlp.gate_up_proj`, 2 * c.I, c.H),
      down: t.linear(`${p}.mlp.down_proj`, c.H, c.I), window: a.windows[i], rope: a.ropeOf[i]});
  }
  const finalNorm = t.vector("model.norm.weight", c.H);
  const embed = t.linear("embed", c.V, c.H);
  const head = t.has("lm_head.qweight") || t.has("lm_head.weight") ? t.linear("lm_head", c.V, c.H) : embed;
  t.noOverlap();
  return {layers, finalNorm, embed, head};
}

/**
 * What a model's architecture adds to the Llama decoder, as the decoder runs it, from its shape
 * (package.js modelShape: config.json's architecture fields, checked with py/nomoat/config.py's
 * rules, the contract's defaults): the embedding multiplier (sqrt(hidden_size) in f32 for gemma3,
 * else 1), the activation (silu or gelu_pytorch_tanh), the qkv bias (attention_bias), the attention
 * scalar (query_pre_attn_scalar, default head_dim: scores times its -1/2 power), each layer's window
 * (sliding_window for "sliding_attention" layers; 0 = full) and RoPE inverse frequencies
 * (package.js ropeInvFreqs: rope_theta with the llama3 rule for full layers, rope_local_base_freq
 * for sliding ones), the distinct tables once each (ropes; ropeOf per layer).
 * @param {Shape} c
 */
export function archOf(c) {
  /** @type {Float64Array[]} */
  const ropes = [];
  const ropeOf = c.sliding.map((_, l) => {
    const inv = ropeInvFreqs(c, l), i = ropes.findIndex((r) => r.every((f, j) => f === inv[j]));
    return i >= 0 ? i : ropes.push(inv) - 1;
  });
  return {embedScale: c.embedScale, gelu: c.act === "gelu_pytorch_tanh", bias: c.attnBias, qscalar: c.qScalar,
    windows: c.sliding.map((s) => s && c.window ? Math.min(c.window, c.maxPos) : 0), // a window of maxPos: all of it
    ropes, ropeOf};
}

/** @typedef {ReturnType<typeof archOf>} Arch */

/**
 * A KV cache in wasm memory: one block at `block` (an address) of `cap` positions: the 16-bit rows
 * of every (layer, key|value, kv head) slice, (L, 2, nkv, cap, hd) i16, then their scales,
 * (L, 2, nkv, cap) f32.
 * @extends {BlockKVState<number>}
 */
export class WasmKVState extends BlockKVState {
  /** @param {WasmEngine} engine */
  constructor(engine) {
    super(engine.c.maxPos);
    this.engine = engine;
  }
  /** @param {number} cap */
  bytesFor(cap) {
    const c = this.engine.c;
    return c.L * 2 * c.nkv * cap * (2 * c.hd + 4);
  }
  /** The cache of layer l, key (kv = 0) or value (1): (nkv, cap, hd) i16 at this address ... @param {number} l @param {number} kv */
  at(l, kv) {
    const c = this.engine.c;
    return /** @type {number} */ (this.block) + (l * 2 + kv) * c.nkv * this.cap * c.hd * 2;
  }
  /** ... and its scales, (nkv, cap) f32. @param {number} l @param {number} kv */
  scalesAt(l, kv) {
    const c = this.engine.c;
    return /** @type {number} */ (this.block) + c.L * 2 * c.nkv * this.cap * c.hd * 2 + (l * 2 + kv) * c.nkv * this.cap * 4;
  }
  /** @param {number} cap */
  allocate(cap) {
    return this.engine.live().alloc(this.bytesFor(cap));
  }
  /** @param {number} from @param {number} fromCap @param {number} length */
  copyRows(from, fromCap, length) {
    const c = this.engine.c, u8 = new Uint8Array(this.engine.live().memory.buffer), slices = c.L * 2 * c.nkv;
    const to = /** @type {number} */ (this.block);
    for (const [row, base, fbase] of [[2 * c.hd, to, from],
      [4, to + slices * this.cap * c.hd * 2, from + slices * fromCap * c.hd * 2]]) {
      for (let s = 0; s < slices; s++) {
        const src = fbase + s * fromCap * row;
        u8.copyWithin(base + s * this.cap * row, src, src + length * row);
      }
    }
  }
  /** @param {number} block @param {number} cap */
  free(block, cap) {
    if (this.engine.heap) this.engine.heap.release(block, this.bytesFor(cap)); // else the engine's memory is gone
  }
  empty() {
    return /** @type {this} */ (new WasmKVState(this.engine));
  }
}

/**
 * A model's shape, from config.json.
 * @typedef {import("./package.js").ModelShape} Shape
 * A scratch region of n floats at ptr (0: none yet).
 * @typedef {{ptr: number, n: number}} Region
 */

/** @implements {Engine} */
export class WasmEngine {
  /**
   * data: the bytes of onnx/model_q4.onnx_data, or {byteLength, fill(view)}: its size, and a function
   * that writes it into its place in wasm memory (view: a Uint8Array of byteLength there), called
   * once every check has passed and the memory is allocated (package.js streams the download into
   * it: no second copy); the engine is made only if fill resolves. tensors: onnx/nomoat_tensors.json parsed; config:
   * config.json parsed; threads: 1 or 2 (default: 2 where shared memory and 2+ cores are
   * available); decoder: the folder of nomoat-decoder[-mt].wasm (default: next to this module).
   * tensors and config are checked first (modelShape, weightsOf): a DataError naming the file and
   * field, before any memory is asked for.
   * @param {{data: Uint8Array | {byteLength: number, fill: (view: Uint8Array) => Promise<void>}, tensors: TensorDirectory | unknown, config: Record<string, any> | unknown, threads?: number,
   *          decoder?: URL | string, kernels?: "auto" | "int8" | "int16"}} options
   * kernels: the matmuls' activations (useInt8): "auto" (default), "int8" or "int16".
   */
  static async create({data, tensors, config, threads = defaultThreads(), decoder, kernels = "auto"}) {
    if (!(data instanceof Uint8Array) && !(isObject(data) && typeof data.fill === "function" && Number.isSafeInteger(data.byteLength))) {
      throw named("TypeError", `WasmEngine.create needs the data file as a Uint8Array or {byteLength, fill}, not ${show(data)}.`);
    }
    const c = modelShape(config);
    if (c.hd % 16 || c.H % 32 || c.I % 32 || (c.nq * c.hd) % 32) {
      throw named("NotSupportedError", `${CONFIG_FILE}: nomoat's wasm decoder needs head_dim a multiple of 16 and hidden, ` +
        `intermediate and attention sizes multiples of 32 (this model: ${c.hd}, ${c.H}, ${c.I}, ${c.nq * c.hd}); use wasmEngine: "ort".`);
    }
    const a = archOf(c);
    weightsOf(c, a, tensors, data.byteLength); // every check, before any memory is asked for
    const need = data.byteLength + a.ropes.length * c.maxPos * c.hd * 4 + CHUNK * 4 * (6 * c.H + 4 * c.I + 8 * c.nq * c.hd);
    if (need > 4 * 2 ** 30 - 2 ** 28) {
      throw named("QuotaExceededError", `${CONFIG_FILE}: this model needs ${(need / 2 ** 30).toFixed(1)} GiB of wasm memory ` +
        `(${DATA_FILE} and rotary tables for max_position_embeddings ${c.maxPos}); wasm has 4 GiB. Use WebGPU or a smaller model.`);
    }
    const compiled = begin("wasm.compile", {threads});
    const int8 = useInt8(kernels, data.byteLength);
    const relaxed = int8 || hasRelaxedSimd(); // the relaxed build also has the int16 kernels' split16 path
    const module = await loadDecoder(threads, decoder, relaxed);
    const memory = new WebAssembly.Memory({initial: 1, maximum: 65536, shared: threads > 1});
    heldMemory(memory);
    const k = /** @type {Record<string, any>} */ ((await WebAssembly.instantiate(module, {env: {memory, abort() {
      throw new Error("nomoat's wasm decoder aborted");
    }}})).exports);
    compiled({kernels: int8 ? "int8" : "int16", relaxed});
    const e = new WasmEngine(c, a, threads, k, new Heap(memory, k.heapBase()));
    const heap = e.live();
    const W = heap.alloc(data.byteLength);
    const view = new Uint8Array(memory.buffer, W, data.byteLength);
    if (data instanceof Uint8Array) view.set(data);
    else await data.fill(view);
    Object.assign(e, weightsOf(c, a, tensors, data.byteLength, W));
    e.ropeTables(Math.min(c.maxPos, 1024));
    // Scratch for CHUNK tokens.
    const T = CHUNK, qkvN = e.qkvN, K = Math.max(c.H, c.I, c.nq * c.hd);
    e.s = {ids: heap.alloc(T * 4), x: heap.alloc(T * c.H * 4), h: heap.alloc(T * c.H * 4),
      xq: heap.alloc(T * K * 2), xs: heap.alloc(T * K / 8), xf: heap.alloc(T * K / 4),
      qkv: heap.alloc(T * qkvN * 4), att: heap.alloc(T * c.nq * c.hd * 4), o: heap.alloc(T * c.H * 4),
      gu: heap.alloc(T * 2 * c.I * 4), act: heap.alloc(T * c.I * 4),
      partA: heap.alloc(T * c.nq * (c.hd + 4) * 4), partB: heap.alloc(T * c.nq * (c.hd + 4) * 4)};
    if (relaxed) e.splitKernels(SPLIT_MAX_T * K);
    if (int8) e.int8Kernels(T * K);
    if (threads > 1) {
      const started = begin("wasm.thread");
      e.pool = await Helper.startOrWarn(module, memory, heap);
      if (!e.pool) e.threads = 1;
      started({started: Boolean(e.pool)});
    }
    return e;
  }
  /**
   * @param {Shape} c
   * @param {Arch} a
   * @param {number} threads
   * @param {Record<string, any>} k the decoder's exports
   * @param {Heap} heap over its memory
   */
  constructor(c, a, threads, k, heap) {
    this.device = /** @type {const} */ ("wasm");
    this.threads = threads;
    this.c = c;
    this.a = a;
    this.k = k;
    /** @type {Heap | null} null once disposed */
    this.heap = heap;
    this.qkvN = (c.nq + 2 * c.nkv) * c.hd;
    /** @type {Layer[]} */
    this.layers = [];
    this.finalNorm = 0;
    this.embed = this.head = /** @type {Linear} */ ({w: 0, s: 0, c: 0, n: 0, k: 0, bits: 8, block: 32});
    /** @type {{cos: number, sin: number}[]} the RoPE tables (Arch.ropes), positions 0..tableLength-1 */
    this.tables = [];
    this.tableLength = 0;
    /** @type {Record<string, number>} the chunk's scratch addresses */
    this.s = {};
    this.scores = {ptr: 0, n: 0};
    this.scores2 = {ptr: 0, n: 0}; // the helper thread's (with threads > 1)
    this.logitsRegion = {ptr: 0, n: 0};
    /** @type {Helper | null} */
    this.pool = null;
    /** @type {"int8" | "int16"} the matmuls' activations (int8Kernels) */
    this.kernels = "int16";
    /** @type {Map<Linear, number>} the weights matmul8 takes, each with its lowest integer (4 bits: 0) */
    this.int8 = new Map();
    this.matmul8 = -1; // its index in the decoder's exports (the helper thread's op 5)
    this.matmul16s = -1; // decoder.ts matmul16s's index there (splitKernels), or -1: matmul for every int16 matmul
  }
  /**
   * The int16 path's decode kernels for 4-bit blocks of 32 in the relaxed-SIMD build (decoder.ts split16,
   * matmul16s: the same int16 activations as two signed bytes each, dotted with the weights' nibbles by
   * i16x8.relaxed_dot_i8x16_i7x16_s). n: the scratch's largest T * k.
   * @param {number} n
   */
  splitKernels(n) {
    const heap = this.live();
    this.s.xp = heap.alloc(n * 2);
    this.s.xb = heap.alloc(n / 8);
    this.matmul16s = Object.keys(this.k).indexOf("matmul16s");
  }
  /**
   * The 8-bit-activation kernels (decoder.ts matmul8, the relaxed-SIMD build) for every quantized
   * linear whose integers fit in 7 unsigned bits: all 4-bit ones, 8-bit ones whose bytes span at most
   * 128 values (Q6_K, Q5_*: byteRange); the others (Q8_0) keep the int16 path. n: the scratch's
   * largest T * k.
   * @param {number} n
   */
  int8Kernels(n) {
    const k = this.k;
    if (!k.RELAXED || !k.RELAXED.value) throw new Error("int8Kernels needs the relaxed-SIMD build of nomoat's wasm decoder");
    for (const w of [...this.layers.flatMap((l) => [l.qkv, l.o, l.gateUp, l.down]), this.head]) {
      if (!w.block || this.int8.has(w)) continue;
      if (w.bits === 4) this.int8.set(w, 0);
      else {
        const r = k.byteRange(w.w, w.n * w.k), lo = r & 255;
        if ((r >> 8) - lo <= 127) this.int8.set(w, lo);
      }
    }
    this.s.xi = this.live().alloc(n);
    this.matmul8 = Object.keys(k).indexOf("matmul8");
    this.kernels = "int8";
  }
  /** The heap (and memory) of a live engine. */
  live() {
    if (!this.heap) throw named("InvalidStateError", "This model was unloaded; load it again.");
    return this.heap;
  }
  newState() {
    return new WasmKVState(this);
  }
  /** @param {SamplingParams} params @param {Iterable<number>} [seen] */
  newSampler(params, seen = []) {
    return new Sampler(params, seen);
  }
  /**
   * One generation step, atomic: state back to `start` positions, ids appended, and with a sampler
   * the next token chosen from the last position's logits before any other call can run (the
   * logits region is shared by every state of this engine). Returns the token id, or -1 without a
   * sampler (a prefill only: the LM head is skipped).
   * @param {WasmKVState} state
   * @param {number} start
   * @param {number[]} ids
   * @param {import("./engine.js").Sampler | null} sampler
   * @param {Uint32Array | null} [mask]
   */
  async step(state, start, ids, sampler, mask) {
    state.truncate(start);
    const logits = this.forward(state, ids, false, !sampler);
    return sampler && logits ? sampler.sample(logits, ids, mask) : -1;
  }
  /**
   * Every new position's logits, (len(ids) * vocab), copied out of wasm memory (tests).
   * @param {WasmKVState} state
   * @param {number} start
   * @param {ArrayLike<number>} ids
   */
  async logits(state, start, ids) {
    state.truncate(start);
    return /** @type {Float32Array} */ (this.forward(state, ids, true)).slice();
  }
  /** Frees the wasm memory and stops the helper thread; the engine and its states are unusable after. */
  dispose() {
    if (this.pool) this.pool.stop();
    this.pool = null;
    this.heap = null;
    this.k = {};
  }
  /**
   * RoPE tables (positions, rd/2) for at least n positions, one per distinct set of inverse
   * frequencies, as numpy computes them: angles in f64, cos/sin times the rope attention factor
   * (LongRoPE's; 1 otherwise), rounded to f32. Grown by doubling (up to max_position_embeddings) as
   * positions are used, so a long-context model does not hold tables for positions it never reaches.
   * @param {number} n
   */
  ropeTables(n) {
    if (n <= this.tableLength) return;
    const c = this.c, heap = this.live(), half = c.rd / 2, m = c.ropeAttn, len = Math.min(c.maxPos, Math.max(n, 2 * this.tableLength));
    const tables = this.a.ropes.map((inv) => {
      const t = {cos: heap.alloc(len * half * 4), sin: heap.alloc(len * half * 4)};
      const cos = new Float32Array(heap.memory.buffer, t.cos, len * half), sin = new Float32Array(heap.memory.buffer, t.sin, len * half);
      for (let i = 0; i < half; i++) {
        for (let p = 0; p < len; p++) {
          cos[p * half + i] = Math.cos(p * inv[i]) * m;
          sin[p * half + i] = Math.sin(p * inv[i]) * m;
        }
      }
      return t;
    });
    for (const t of this.tables) {
      heap.release(t.cos, this.tableLength * half * 4);
      heap.release(t.sin, this.tableLength * half * 4);
    }
    this.tables = tables;
    this.tableLength = len;
  }
  /**
   * A scratch region of at least n floats, reused; grown when too small.
   * @param {Region} r
   * @param {number} n
   */
  grow(r, n) {
    if (r.n < n) {
      const heap = this.live();
      if (r.ptr) heap.release(r.ptr, r.n * 4);
      r.n = Math.max(n, 2 * r.n);
      r.ptr = heap.alloc(r.n * 4);
    }
    return r.ptr;
  }
  /**
   * y (T, w.n) = x (T, w.k) @ W.T
   * @param {Linear} w @param {number} x @param {number} T @param {number} y
   */
  linear(w, x, T, y) {
    const s = this.s, pool = this.pool;
    const split = pool && w.n >= 64 ? (w.n >> 3) << 2 : 0; // the helper's rows: [0, split)
    if (!w.block) { // f32
      if (pool && split) pool.post(4, [w.w, w.k, 0, split, T, x, y, w.n]);
      this.k.matmulF32(w.w, w.k, split, w.n, T, x, y, w.n);
    } else if (this.int8.has(w)) { // decoder.ts matmul8: 8-bit activations (relaxed SIMD)
      const lo = /** @type {number} */ (this.int8.get(w)), half = w.block === 16 && w.c ? 1 : 0;
      this.k.quantize8(x, w.k, T, w.bits === 4 ? 1 : 0, half, w.bits === 4 ? -8 : lo - 128, w.block, s.xq, s.xs, s.xf, s.xi);
      const args = [w.w, w.s, w.c, w.n, w.k, w.bits, w.block, lo, 0, split, T, s.xq, s.xs, s.xf, s.xi, y, w.n];
      if (pool && split) pool.post(5, [this.matmul8, ...args]);
      args[8] = split;
      args[9] = w.n;
      this.k.matmul8(...args);
    } else if (this.matmul16s >= 0 && w.bits === 4 && w.block === 32 && T <= SPLIT_MAX_T) {
      // decoder.ts matmul16s (relaxed SIMD): decode steps. Prefill chunks keep matmul, where one widening of
      // a weight block serves four tokens (measured: matmul16s decodes ~6 % faster and prefills ~10 % slower).
      // Both give the same floats, bit for bit.
      this.k.quantize(x, w.k, T, 1, 0, s.xq, s.xs, s.xf);
      this.k.split16(s.xq, w.k, T, s.xp, s.xb);
      const args = [w.w, w.s, w.c, w.n, w.k, 0, split, T, s.xp, s.xb, s.xs, s.xf, y, w.n];
      if (pool && split) pool.post(5, [this.matmul16s, ...args]);
      args[5] = split;
      args[6] = w.n;
      this.k.matmul16s(...args);
    } else {
      this.k.quantize(x, w.k, T, w.bits === 4 ? 1 : 0, w.block === 16 && w.c ? 1 : 0, s.xq, s.xs, s.xf);
      if (pool && split) pool.post(1, [w.w, w.s, w.c, w.n, w.k, w.bits, w.block, 0, split, T, s.xq, s.xs, s.xf, y, w.n]);
      this.k.matmul(w.w, w.s, w.c, w.n, w.k, w.bits, w.block, split, w.n, T, s.xq, s.xs, s.xf, y, w.n);
    }
    if (pool && split) pool.join();
  }
  /**
   * Attention of the chunk's T rows (positions pos..pos+T-1) over the cache in two ranges of
   * positions, [0, J) and [J, pos + T) (splitPoint); the helper thread (if any) takes the first, and
   * attendMerge joins them. The same split with one thread or two: the same logits.
   * A sliding-window layer (window > 0) sees the last `window` positions of each row.
   * @param {WasmKVState} state @param {number} l @param {number} pos @param {number} T @param {number} J
   */
  attention(state, l, pos, T, J) {
    const c = this.c, s = this.s, k = this.k, n = pos + T, pool = this.pool, win = this.layers[l].window;
    const args = [s.qkv, this.qkvN, state.at(l, 0), state.scalesAt(l, 0), state.at(l, 1), state.scalesAt(l, 1),
      state.cap, c.nq, c.nkv, c.hd, pos, T];
    if (pool) pool.post(2, [...args, 0, J, s.partA, this.scores2.ptr, win, f32Bits(this.a.qscalar)]);
    else k.attend16(...args, 0, J, s.partA, this.scores.ptr, win, this.a.qscalar);
    k.attend16(...args, J, n, s.partB, this.scores.ptr, win, this.a.qscalar);
    if (pool) pool.join();
    k.attendMerge(s.partA, s.partB, T, c.nq, c.hd, s.att, c.nq * c.hd);
  }
  /**
   * Where a chunk's causal attention work (row t sees positions [lo_t, pos + t + 1), lo_t = 0, or
   * pos + t + 1 - win in a window of win) is cut in half: the least J with
   * Σ_t |[lo_t, min(pos + t + 1, J))| >= half of it. The same for every layer of the chunk with that window.
   * @param {number} pos @param {number} T @param {number} [win] 0: none
   */
  static splitPoint(pos, T, win = 0) {
    const lo = (/** @type {number} */ t) => win > 0 ? Math.max(0, pos + t + 1 - win) : 0; // row t's first position
    let J = 0, total = 0;
    for (let t = 0; t < T; t++) total += pos + t + 1 - lo(t);
    for (let hi = pos + T, half = total / 2; J < hi;) {
      const mid = (J + hi) >> 1;
      let w = 0;
      for (let t = 0; t < T; t++) w += Math.max(0, Math.min(pos + t + 1, mid) - lo(t));
      if (w >= half) hi = mid;
      else J = mid + 1;
    }
    return J;
  }

  /**
   * Appends ids to state; returns a Float32Array view of the logits, (vocab,) for the last position
   * or (len(ids) * vocab) when allLogits, valid until the next forward or fork of any state (either
   * may grow the memory or reuse the logits region); null with skipHead (a prefill: no LM head).
   * @param {WasmKVState} state
   * @param {ArrayLike<number>} ids
   * @param {boolean} allLogits
   * @param {boolean} [skipHead]
   * @returns {Float32Array | null}
   */
  forward(state, ids, allLogits, skipHead = false) {
    const memory = this.live().memory;
    const c = this.c, S = ids.length, P = state.length;
    if (!S) throw named("TypeError", "forward() needs at least one token id.");
    const idArr = Int32Array.from(ids, (t) => {
      const id = Number(t);
      if (!(Number.isInteger(id) && id >= 0 && id < c.V)) throw named("TypeError", `token id ${t} is outside the vocabulary (0..${c.V - 1}).`);
      return id;
    });
    if (P + S > c.maxPos) {
      throw named("QuotaExceededError", `${P + S} tokens exceed the model's ${c.maxPos} positions.`);
    }
    state.ensure(P + S);
    const logits = this.grow(this.logitsRegion, (allLogits ? S : 1) * c.V);
    const scratch = c.hd + (c.nq / c.nkv) * (state.cap + 4); // attend16's: q as int16, a KV head's query heads' scores
    this.grow(this.scores, scratch);
    this.ropeTables(P + S);
    if (this.pool) this.grow(this.scores2, scratch); // the helper thread's
    if (this.pool) this.pool.hot(true);
    try {
      this.layersForward(state, idArr, allLogits, skipHead ? 0 : logits, memory);
    } finally {
      if (this.pool) this.pool.hot(false);
    }
    if (skipHead) return null;
    return new Float32Array(memory.buffer, logits, (allLogits ? S : 1) * c.V);
  }
  /**
   * The chunk's T embedding rows (token ids at s.ids) into s.x, times the embedding multiplier.
   * @param {number} T
   */
  embedRows(T) {
    const c = this.c, k = this.k, s = this.s, e = this.embed;
    if (!e.block) k.embedF32(e.w, s.ids, T, c.H, s.x);
    else if (e.bits === 8 && e.block === 32 && !e.c) k.embed8(e.w, e.s, s.ids, T, c.H, s.x);
    else k.embedQ(e.w, e.s, e.c, c.V, e.bits, e.block, s.ids, T, c.H, s.x);
    if (this.a.embedScale !== 1) k.scale(s.x, T * c.H, this.a.embedScale);
  }
  /**
   * The layers over ids in chunks of CHUNK tokens; the LM head's logits to `logits` (0: none).
   * @param {WasmKVState} state
   * @param {Int32Array} ids
   * @param {boolean} allLogits
   * @param {number} logits
   * @param {WebAssembly.Memory} memory
   */
  layersForward(state, ids, allLogits, logits, memory) {
    const c = this.c, k = this.k, s = this.s, S = ids.length, P = state.length;
    const qd = c.nq * c.hd, kvd = c.nkv * c.hd;
    for (let c0 = 0; c0 < S; c0 += CHUNK) {
      const T = Math.min(CHUNK, S - c0), pos = P + c0;
      /** @type {Map<number, number>} window → split point (0: full attention) */
      const splits = new Map();
      for (const w of this.a.windows) if (!splits.has(w)) splits.set(w, WasmEngine.splitPoint(pos, T, w));
      new Int32Array(memory.buffer, s.ids, T).set(ids.subarray(c0, c0 + T));
      this.embedRows(T);
      for (let l = 0; l < c.L; l++) {
        const w = this.layers[l], rope = this.tables[w.rope];
        k.rmsnorm(s.x, w.attnNorm, s.h, c.H, T, c.eps);
        this.linear(w.qkv, s.h, T, s.qkv);
        if (w.bias) k.addRows(s.qkv, w.bias, this.qkvN, T);
        if (w.qNorm) k.headNorm(s.qkv, this.qkvN, 0, c.nq, c.hd, T, w.qNorm, c.eps);
        if (w.kNorm) k.headNorm(s.qkv, this.qkvN, qd, c.nkv, c.hd, T, w.kNorm, c.eps);
        k.rope(s.qkv, this.qkvN, c.nq, c.hd, c.rd, T, pos, rope.cos, rope.sin);
        k.rope(s.qkv + qd * 4, this.qkvN, c.nkv, c.hd, c.rd, T, pos, rope.cos, rope.sin);
        k.kvWrite16(s.qkv, this.qkvN, qd, c.nkv, c.hd, T, state.at(l, 0), state.scalesAt(l, 0), state.cap, pos, k.KEY_LEVELS.value);
        k.kvWrite16(s.qkv, this.qkvN, qd + kvd, c.nkv, c.hd, T, state.at(l, 1), state.scalesAt(l, 1), state.cap, pos, 32767);
        this.attention(state, l, pos, T, /** @type {number} */ (splits.get(w.window)));
        this.linear(w.o, s.att, T, s.o);
        if (w.postAttn) k.rmsnorm(s.o, w.postAttn, s.o, c.H, T, c.eps);
        k.add(s.x, s.o, T * c.H);
        k.rmsnorm(s.x, w.ffnNorm, s.h, c.H, T, c.eps);
        this.linear(w.gateUp, s.h, T, s.gu);
        if (this.a.gelu) k.geluMul(s.gu, c.I, T, s.act);
        else k.siluMul(s.gu, c.I, T, s.act);
        this.linear(w.down, s.act, T, s.o);
        if (w.postFfn) k.rmsnorm(s.o, w.postFfn, s.o, c.H, T, c.eps);
        k.add(s.x, s.o, T * c.H);
      }
      if (logits && allLogits) { // logits 0: a prefill only, no LM head
        k.rmsnorm(s.x, this.finalNorm, s.h, c.H, T, c.eps);
        this.linear(this.head, s.h, T, logits + c0 * c.V * 4);
      } else if (logits && c0 + T === S) {
        k.rmsnorm(s.x + (T - 1) * c.H * 4, this.finalNorm, s.h, c.H, 1, c.eps);
        this.linear(this.head, s.h, 1, logits);
      }
      state.length = pos + T;
    }
  }
}

/** An f32's bits as an int32 (a float argument through the helper's Int32 control block). @param {number} x */
function f32Bits(x) {
  return new Int32Array(Float32Array.of(x).buffer)[0];
}

export function defaultThreads() {
  const cores = (globalThis.navigator && globalThis.navigator.hardwareConcurrency) || 1;
  return globalThis.crossOriginIsolated && typeof SharedArrayBuffer === "function" && typeof Worker === "function" &&
    cores >= 2 ? 2 : 1;
}

// The helper thread (wasm_thread.mjs) and its control block in the shared memory.
export class Helper {
  /**
   * @param {WebAssembly.Module} module
   * @param {WebAssembly.Memory} memory shared
   * @param {Heap} heap
   */
  static async start(module, memory, heap, startMs = HELPER_START_MS) {
    const ctrl = heap.alloc(128);
    const h = new Helper(new Int32Array(memory.buffer, ctrl, 32),
      new Worker(new URL("wasm_thread.mjs", import.meta.url), {type: "module"}));
    h.c.fill(0);
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    try {
      await new Promise((resolve, reject) => {
        const fail = (/** @type {string} */ why) => reject(new Error(`nomoat's wasm helper thread failed to start: ${why}`));
        h.worker.onmessage = (ev) => ev.data?.error ? fail(ev.data.error) : resolve(null);
        h.worker.onerror = (ev) => fail(ev.message || "script error");
        timer = setTimeout(() => fail(`no answer in ${startMs / 1000} s`), startMs);
        h.worker.postMessage({module, memory, ctrl});
      });
    } catch (e) {
      h.worker.terminate();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return h;
  }
  /**
   * A started helper, or null (with a console warning) when it could not start: the caller then
   * runs on one thread, with the same answers (no kernel's summation order depends on the split).
   * @param {WebAssembly.Module} module @param {WebAssembly.Memory} memory @param {Heap} heap
   */
  static async startOrWarn(module, memory, heap) {
    try {
      return await Helper.start(module, memory, heap);
    } catch (err) {
      console.warn(`${/** @type {Error} */ (err).message}; running on one thread.`);
      return null;
    }
  }
  /** @param {Int32Array} c the control block (wasm_thread.mjs) @param {Worker} worker */
  constructor(c, worker) {
    this.c = c;
    this.worker = worker;
    this.seq = 0;
    this.since = 0;
  }
  /** @param {number} op @param {number[]} args */
  post(op, args) {
    const c = this.c;
    c[2] = op;
    c.set(args, 3);
    this.seq = (this.seq + 1) | 0;
    Atomics.store(c, 0, this.seq);
    Atomics.notify(c, 0);
  }
  join() {
    for (let spins = 0; Atomics.load(this.c, 1) !== this.seq;) {
      if (++spins === 1 << 20) this.since = performance.now();
      else if (!(spins & 0xfffff) && performance.now() - this.since > 30000) { // never, unless the thread is gone
        throw new Error("nomoat's wasm helper thread stopped answering (30 s); reload the page.");
      }
    }
    if (this.c[31]) {
      this.c[31] = 0;
      throw new Error("nomoat's wasm helper thread failed (a kernel trapped)");
    }
  }
  /** @param {boolean} on */
  hot(on) {
    Atomics.store(this.c, 30, on ? 1 : 0);
  }
  stop() {
    this.post(3, []); // the thread returns from its loop
    this.worker.terminate();
  }
}
