// @ts-check
// nomoat's own wasm sentence encoder (BERT, post-LayerNorm, as py/nomoat/convert/encoder.py writes
// it: all-MiniLM-L6-v2) on the decoder's kernels (web/src/wasm/decoder.ts, the "sentence encoder"
// section): the same interface as engine_ort.mjs's OrtEncoder (engine.js Encoder).
//
// Weights: read once from the package's onnx/model.onnx (its initializers, inline), then the linear
// layers become 12-bit integers per block of 32 inputs (decoder.ts encLinear's layout; cosine
// 0.999997 of the f32 encoder's vectors) and the embeddings, biases and norms stay f32; the f32 graph
// is dropped. Activations are int16 per block of 32 (quantize), attention, LayerNorm, GELU and
// pooling f32.
//
// Threads: as WasmEngine (wasm_engine.mjs), with shared memory a helper Worker runs half of each
// kernel: the linear layers split their output columns, attention its (sequence, head) pairs, the
// rest their tokens. The arithmetic does not depend on the thread count.

import {named} from "./errors.js";
import {Heap, Helper, defaultThreads, loadDecoder} from "./wasm_engine.mjs";

const GRAPH = "onnx/model.onnx";
const LEVELS = 2047; // weights: |q| ≤ 2047 so that a block's 16 input pairs stay inside i32

/**
 * @typedef {{w: number, s: number, b: number, n: number, k: number}} Linear12 a linear layer in wasm
 * memory: 12-bit weights (n/4, k/2, 4, 2) i16 at w, scales (n/4, k/32, 4) f32 at s, bias (n) f32 at b
 * @typedef {{qkv: Linear12, o: Linear12, up: Linear12, down: Linear12,
 *            ln1: {g: number, b: number}, ln2: {g: number, b: number}}} EncoderLayer
 */

// -- the graph's initializers --------------------------------------------------------------------

/**
 * The float32 initializers of an ONNX ModelProto (ModelProto.graph = field 7, GraphProto.initializer
 * = 5; TensorProto dims = 1, data_type = 2, float_data = 4, name = 8, raw_data = 9, data_location = 14):
 * name → {dims, data}. Other types are skipped; external data is refused.
 * @param {Uint8Array} bytes
 * @returns {Map<string, {dims: number[], data: Float32Array}>}
 */
export function onnxInitializers(bytes) {
  /** @type {Map<string, {dims: number[], data: Float32Array}>} */
  const out = new Map();
  for (const [f, graph] of fields(bytes, 0, bytes.length)) {
    if (f !== 7 || typeof graph === "number") continue;
    for (const [g, init] of fields(bytes, graph[0], graph[1])) {
      if (g !== 5 || typeof init === "number") continue;
      /** @type {number[]} */
      const dims = [];
      let type = 0, name = "", raw = null, floats = null, external = false;
      for (const [t, v] of fields(bytes, init[0], init[1])) {
        if (t === 1) {
          if (typeof v === "number") dims.push(v);
          else for (let p = v[0]; p < v[1];) { const [x, q] = varint(bytes, p); dims.push(x); p = q; }
        } else if (t === 2 && typeof v === "number") type = v;
        else if (t === 8 && typeof v !== "number") name = new TextDecoder().decode(bytes.subarray(v[0], v[1]));
        else if (t === 9 && typeof v !== "number") raw = v;
        else if (t === 4 && typeof v !== "number") floats = v;
        else if (t === 14 && v === 1) external = true;
      }
      if (type !== 1) continue;
      if (external) throw bad(`${name} has its weights in an external file; nomoat's wasm encoder reads them inline`);
      const span = raw || floats, n = dims.reduce((a, b) => a * b, 1);
      if (!span || span[1] - span[0] !== n * 4) throw bad(`${name} holds ${span ? span[1] - span[0] : 0} bytes, not ${n} floats`);
      const data = new Float32Array(n); // copied: the bytes may be unaligned
      new Uint8Array(data.buffer).set(bytes.subarray(span[0], span[1]));
      out.set(name, {dims, data});
    }
  }
  return out;
}

/**
 * The fields of a protobuf message in bytes[start, end): [field number, a varint's value or a
 * length-delimited field's [start, end)]; fixed-width fields are skipped.
 * @param {Uint8Array} bytes @param {number} start @param {number} end
 * @returns {Generator<[number, number | [number, number]]>}
 */
function* fields(bytes, start, end) {
  for (let p = start; p < end;) {
    const [key, q] = varint(bytes, p);
    const f = Math.floor(key / 8), wire = key % 8;
    p = q;
    if (wire === 0) {
      const [v, r] = varint(bytes, p);
      p = r;
      yield [f, v];
    } else if (wire === 2) {
      const [len, r] = varint(bytes, p);
      if (r + len > end) throw bad("a field runs past the end of its message (truncated file?)");
      p = r + len;
      yield [f, [r, p]];
    } else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else throw bad(`wire type ${wire} at byte ${p}`);
  }
}

/** @param {Uint8Array} bytes @param {number} p @returns {[number, number]} the value and the next position */
function varint(bytes, p) {
  let v = 0, scale = 1;
  for (;;) {
    if (p >= bytes.length) throw bad("a number runs past the end of the file (truncated?)");
    const b = bytes[p++];
    v += (b & 127) * scale;
    if (b < 128) return [v, p];
    scale *= 128;
    if (scale > 2 ** 63) throw bad("a number longer than 10 bytes");
  }
}

/** @param {string} why */
function bad(why) {
  return named("DataError", `${GRAPH}: ${why}; convert the model again ('nomoat convert').`);
}

// -- the encoder ---------------------------------------------------------------------------------

export class WasmEncoder {
  /**
   * graph: the bytes of onnx/model.onnx (f32, weights inline); config: config.json parsed;
   * dimensions: nomoat.json's embedding.dimensions; threads: 1 or 2 (default: 2 where shared memory
   * and 2+ cores are available); decoder: the folder of nomoat-decoder[-mt].wasm.
   * @param {{graph: Uint8Array, config: Record<string, any>, dimensions: number, threads?: number, decoder?: URL | string}} options
   */
  static async create({graph, config, dimensions, threads = defaultThreads(), decoder}) {
    const c = shapeOf(config, dimensions);
    const t = onnxInitializers(graph);
    /** @param {string} name @param {number[]} dims */
    const take = (name, dims) => {
      const x = t.get(name);
      if (!x) throw bad(`it has no float initializer ${name}`);
      if (x.dims.join() !== dims.join()) throw bad(`${name} is [${x.dims}], not [${dims}] (config.json)`);
      return x.data;
    };
    const module = await loadDecoder(threads, decoder);
    const memory = new WebAssembly.Memory({initial: 1, maximum: 65536, shared: threads > 1});
    const k = /** @type {Record<string, any>} */ ((await WebAssembly.instantiate(module, {env: {memory, abort() {
      throw new Error("nomoat's wasm decoder aborted");
    }}})).exports);
    const e = new WasmEncoder(c, threads, k, new Heap(memory, k.heapBase()));
    const f32 = (/** @type {Float32Array} */ a) => e.put(a);
    e.word = f32(take("embeddings.word_embeddings.weight", [c.V, c.H]));
    e.pos = f32(take("embeddings.position_embeddings.weight", [c.maxPos, c.H]));
    e.type = f32(take("embeddings.token_type_embeddings.weight", [c.types, c.H]).subarray(0, c.H));
    e.embLn = {g: f32(take("embeddings.LayerNorm.weight", [c.H])), b: f32(take("embeddings.LayerNorm.bias", [c.H]))};
    /** @param {string} name @param {number} k @param {number} n */
    const linear = (name, k, n) => e.linear(take(`${name}.weight`, [k, n]), take(`${name}.bias`, [n]), n, k);
    for (let l = 0; l < c.L; l++) {
      const p = `encoder.layer.${l}`;
      /** @param {string} name */
      const ln = (name) => ({g: f32(take(`${p}.${name}.weight`, [c.H])), b: f32(take(`${p}.${name}.bias`, [c.H]))});
      e.layers.push({qkv: linear(`${p}.attention.self.qkv`, c.H, 3 * c.H), o: linear(`${p}.attention.output.dense`, c.H, c.H),
        ln1: ln("attention.output.LayerNorm"), up: linear(`${p}.intermediate.dense`, c.H, c.I),
        down: linear(`${p}.output.dense`, c.I, c.H), ln2: ln("output.LayerNorm")});
    }
    if (threads > 1) {
      e.pool = await Helper.startOrWarn(module, memory, e.heap);
      if (!e.pool) e.threads = 1;
    }
    return e;
  }

  /**
   * @param {Shape} c
   * @param {number} threads
   * @param {Record<string, any>} k the decoder's exports
   * @param {Heap} heap over its memory
   */
  constructor(c, threads, k, heap) {
    this.device = /** @type {const} */ ("wasm");
    this.threads = threads;
    this.dimensions = c.H;
    this.c = c;
    this.k = k;
    /** @type {Heap | null} null once disposed */
    this.heap = heap;
    this.names = Object.keys(k);
    this.word = this.pos = this.type = 0;
    this.embLn = {g: 0, b: 0};
    /** @type {EncoderLayer[]} */
    this.layers = [];
    /** @type {Helper | null} */
    this.pool = null;
    /** scratch for `tokens` padded tokens: addresses */
    this.s = {tokens: 0, batch: 0, seq: 0, ids: 0, pos: 0, off: 0, x: 0, h: 0, qkv: 0, att: 0, up: 0, xq: 0, xs: 0, sc: 0, sc2: 0, out: 0};
    /** @type {Promise<unknown>} the latest call (calls take turns) */
    this.last = Promise.resolve();
  }

  /** @returns {Heap} */
  live() {
    if (!this.heap) throw named("InvalidStateError", "This model was unloaded; load it again.");
    return this.heap;
  }

  /** f32 values copied into wasm memory. @param {Float32Array} a @returns {number} the address */
  put(a) {
    const heap = this.live(), p = heap.alloc(a.byteLength);
    new Float32Array(heap.memory.buffer, p, a.length).set(a);
    return p;
  }

  /**
   * A linear layer given as the graph's MatMul weight (k, n) f32 (x @ W) and bias (n), in encLinear's
   * 12-bit form: per output row r and block of 32 inputs, scale max|W| / 2047 and q = round(W / scale).
   * @param {Float32Array} wt (k, n) @param {Float32Array} bias (n) @param {number} n @param {number} k
   * @returns {Linear12}
   */
  linear(wt, bias, n, k) {
    const nb = k / 32, q = new Int16Array(n * k), s = new Float32Array(n * nb);
    for (let r = 0; r < n; r++) {
      const g = r >> 2, i = r & 3;
      for (let b = 0; b < nb; b++) {
        let m = 0;
        for (let j = b * 32; j < b * 32 + 32; j++) m = Math.max(m, Math.abs(wt[j * n + r]));
        const d = m / LEVELS, inv = m > 0 ? LEVELS / m : 0;
        s[(g * nb + b) * 4 + i] = d;
        for (let j = b * 32; j < b * 32 + 32; j++) q[((g * (k / 2) + (j >> 1)) * 4 + i) * 2 + (j & 1)] = Math.round(wt[j * n + r] * inv);
      }
    }
    const heap = this.live(), w = heap.alloc(q.byteLength);
    new Int16Array(heap.memory.buffer, w, q.length).set(q);
    return {w, s: this.put(s), b: this.put(bias), n, k};
  }

  /**
   * Scratch for `tokens` padded tokens (a multiple of 4) of `batch` sequences of `seq`, kept for
   * calls of the same size or smaller.
   * @param {number} tokens @param {number} batch @param {number} seq
   */
  scratch(tokens, batch, seq) {
    const s = this.s, heap = this.live();
    if (tokens <= s.tokens && batch <= s.batch && seq <= s.seq) return s;
    if (s.tokens) {
      for (const [key, bytes] of Object.entries(this.sizes(s.tokens, s.batch, s.seq))) heap.release(s[/** @type {keyof typeof s} */ (key)], bytes);
    }
    const T = Math.max(tokens, s.tokens), B = Math.max(batch, s.batch), S = Math.max(seq, s.seq);
    const sizes = this.sizes(T, B, S);
    Object.assign(s, {tokens: T, batch: B, seq: S});
    for (const [key, bytes] of Object.entries(sizes)) {
      const p = heap.alloc(bytes);
      new Uint8Array(heap.memory.buffer, p, bytes).fill(0);
      s[/** @type {keyof typeof s} */ (key)] = p;
    }
    return s;
  }

  /** Bytes of each scratch region. @param {number} T @param {number} B @param {number} S */
  sizes(T, B, S) {
    const {H, I} = this.c, K = Math.max(H, I);
    return {ids: T * 4, pos: T * 4, off: (B + 1) * 4, x: T * H * 4, h: T * H * 4, qkv: T * 3 * H * 4, att: T * H * 4, up: T * I * 4,
      xq: T * K * 2, xs: T * K / 8, sc: 2 * (S + 4) * 4, sc2: 2 * (S + 4) * 4, out: B * H * 4};
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
  encode(ids, mask, batch, seq) {
    const run = this.last.then(() => this.run(ids, mask, batch, seq));
    this.last = run.catch(() => {});
    return run;
  }

  /** @param {ArrayLike<number>} ids @param {ArrayLike<number>} mask @param {number} batch @param {number} seq */
  run(ids, mask, batch, seq) {
    const c = this.c, k = this.k, T = batch * seq;
    if (!Number.isSafeInteger(batch) || !Number.isSafeInteger(seq) || batch < 1 || seq < 1 || ids.length !== T || mask.length !== T) {
      throw named("TypeError", `encode needs batch * seq ids and mask values (${batch} x ${seq}), not ${ids.length} and ${mask.length}.`);
    }
    if (seq > c.maxPos) throw named("QuotaExceededError", `${seq} tokens are more than this model's ${c.maxPos} positions.`);
    for (let i = 0; i < T; i++) {
      if (!(ids[i] >= 0 && ids[i] < c.V && Number.isInteger(ids[i]))) throw named("TypeError", `token id ${ids[i]} is not in [0, ${c.V}).`);
    }
    // Padding is left out: the unmasked tokens of each row, packed (sequence b: tokens off[b] ≤ t < off[b + 1]),
    // keep their positions; rounded up to a multiple of 4 tokens (position 0 of word 0, never read back).
    let n = 0;
    for (let i = 0; i < T; i++) if (mask[i]) n++;
    const Tp = Math.max(4, (n + 3) & ~3), s = this.scratch(Tp, batch, seq), heap = this.live(), H = c.H;
    const i32 = new Int32Array(heap.memory.buffer), ib = s.ids >> 2, pb = s.pos >> 2, ob = s.off >> 2;
    let t = 0;
    for (let b = 0; b < batch; b++) {
      i32[ob + b] = t;
      for (let i = 0; i < seq; i++) {
        if (!mask[b * seq + i]) continue;
        i32[ib + t] = ids[b * seq + i];
        i32[pb + t++] = i;
      }
    }
    i32[ob + batch] = t;
    i32.fill(0, ib + n, ib + Tp);
    i32.fill(0, pb + n, pb + Tp);
    const eps = new Int32Array(Float32Array.of(c.eps).buffer)[0];
    if (this.pool) this.pool.hot(true);
    try {
      k.encEmbed(this.word, this.pos, this.type, s.ids, s.pos, Tp, H, s.x);
      this.rows("encLayerNorm", [s.x, 0, this.embLn.g, this.embLn.b, H], Tp, [eps, s.x]);
      for (const w of this.layers) {
        this.linear12(w.qkv, s.x, Tp, s.qkv);
        this.split("encAttend", [s.qkv, s.off, c.nh, c.hd], batch * c.nh, 1, [s.att], [s.sc], [s.sc2]);
        this.linear12(w.o, s.att, Tp, s.h);
        this.rows("encLayerNorm", [s.h, s.x, w.ln1.g, w.ln1.b, H], Tp, [eps, s.x]);
        this.linear12(w.up, s.x, Tp, s.up);
        this.split("encGelu", [s.up], Tp * c.I, 4, []);
        this.linear12(w.down, s.up, Tp, s.h);
        this.rows("encLayerNorm", [s.h, s.x, w.ln2.g, w.ln2.b, H], Tp, [eps, s.x]);
      }
      k.encPool(s.x, s.off, batch, H, s.out);
    } finally {
      if (this.pool) this.pool.hot(false);
    }
    return Promise.resolve(new Float32Array(heap.memory.buffer, s.out, batch * H).slice());
  }

  /**
   * y (T, n) = x (T, k) W^T + b: x quantized (both threads, by tokens), then the output columns split.
   * @param {Linear12} L @param {number} x @param {number} T @param {number} y
   */
  linear12(L, x, T, y) {
    const s = this.s;
    this.rows("encQuantize", [x, L.k], T, [s.xq, s.xs]);
    this.split("encLinear", [L.w, L.s, L.b, L.n, L.k], L.n, 8, [T, s.xq, s.xs, y]);
  }

  /** A kernel over token rows [t0, t1) of T (args before and after the range). @param {string} name
   * @param {number[]} pre @param {number} T @param {number[]} post */
  rows(name, pre, T, post) {
    this.split(name, pre, T, 1, post);
  }

  /**
   * Runs kernel `name`(...pre, i0, i1, ...post) over [0, n): with a helper thread, the upper part
   * (from a multiple of `step`) there, with its own trailing arguments `postHelper` appended in
   * place of `postMain`'s, and the lower part here.
   * @param {string} name @param {number[]} pre @param {number} n @param {number} step @param {number[]} post
   * @param {number[]} [postMain] @param {number[]} [postHelper]
   */
  split(name, pre, n, step, post, postMain = [], postHelper = postMain) {
    const k = this.k, pool = this.pool;
    if (!pool || n < 2 * step) {
      k[name](...pre, 0, n, ...post, ...postMain);
      return;
    }
    const mid = Math.ceil(n / 2 / step) * step;
    pool.post(5, [this.names.indexOf(name), ...pre, mid, n, ...post, ...postHelper]);
    k[name](...pre, 0, mid, ...post, ...postMain);
    pool.join();
  }

  /** Frees the wasm memory and stops the helper thread. */
  dispose() {
    if (this.pool) this.pool.stop();
    this.pool = null;
    this.heap = null;
    this.k = {};
  }
}

/**
 * @typedef {{V: number, H: number, L: number, nh: number, hd: number, I: number, maxPos: number, types: number, eps: number}} Shape
 */

/**
 * config.json's BERT shape, checked for what the kernels need.
 * @param {Record<string, any>} config @param {number} dimensions
 * @returns {Shape}
 */
function shapeOf(config, dimensions) {
  /** @param {string} key @param {number} [lo] */
  const int = (key, lo = 1) => {
    const v = config[key];
    if (!Number.isSafeInteger(v) || v < lo || v > 2 ** 20) throw named("DataError", `config.json: ${key} is ${JSON.stringify(v)}, not an integer >= ${lo}.`);
    return v;
  };
  const H = int("hidden_size"), nh = int("num_attention_heads"), I = int("intermediate_size");
  const c = {V: int("vocab_size"), H, L: int("num_hidden_layers"), nh, hd: H / nh, I, maxPos: int("max_position_embeddings"),
    types: int("type_vocab_size"), eps: Number(config.layer_norm_eps ?? 1e-12)};
  if (config.hidden_act !== "gelu" || (config.position_embedding_type ?? "absolute") !== "absolute") {
    throw named("NotSupportedError", `config.json: nomoat's wasm encoder runs BERT with hidden_act "gelu" and absolute positions ` +
      `(this model: ${config.hidden_act}, ${config.position_embedding_type}); use wasmEngine: "ort".`);
  }
  if (H % 32 || I % 32 || !Number.isInteger(c.hd) || c.hd % 4 || dimensions !== H || !(c.eps > 0)) {
    throw named("NotSupportedError", `config.json: nomoat's wasm encoder needs hidden and intermediate sizes multiples of 32, ` +
      `head_dim a multiple of 4 and dimensions = hidden_size (this model: ${H}, ${I}, ${c.hd}, ${dimensions}); use wasmEngine: "ort".`);
  }
  return c;
}
