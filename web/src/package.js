// @ts-check
// A model package (py/nomoat/package.py writes it): its manifest nomoat.json lists every file with
// its size and sha256. Files come from the Cache API storage "nomoat-models" (one entry per file
// URL) or the network, with progress, and every file is checked against the manifest before it is
// used, whether it came from the cache or the network: its sha256 is computed, except for a file
// from a cache entry nomoat itself wrote after checking it (the VERIFIED header), whose size alone
// is checked again. fetch and caches are passed in (the worker's own by default), so that this runs
// in Node with stand-ins.

import {named} from "./errors.js";
import {Sha256} from "./sha256.js";
import {begin} from "./timeline.js";

export const CACHE_NAME = "nomoat-models";
/**
 * The header of a cache entry nomoat wrote itself, once the bytes had matched the manifest: their
 * sha256. A file read from an entry whose header equals the manifest's sha256 (whole, or streamed) is
 * not hashed again (its size is still checked, and the storage's own checksums catch a body damaged on
 * disk); an entry without it (written by anything else, or before nomoat kept it) is hashed as before.
 */
export const VERIFIED = "x-nomoat-sha256";
const MANIFEST = "nomoat.json";
const PUT_CHUNK = 1 << 20; // bytes a streamed file is cached per chunk
const POUR_CHUNK = 1 << 20; // bytes a streamed file is read per chunk (byte streams)
const STALL_MS = 30000; // a streamed file's source that sends nothing for this long has stopped (pour)

/**
 * A file's entry in nomoat.json.
 * @typedef {{size: number, sha256: string}} FileInfo
 * @typedef {{files: Record<string, FileInfo>}} Manifest
 * What fetchBytes needs of fetch(): the WHATWG function (a stand-in in tests).
 * @typedef {(url: string, init?: RequestInit) => Promise<Response>} Fetch
 * A "download" progress report, or a "cache" warning.
 * @typedef {Record<string, unknown>} Progress
 */

/**
 * A resource's response body, or the NetworkError / NotFoundError saying why not.
 * @param {Fetch} fetch
 * @param {string} url
 */
async function fetchBody(fetch, url) {
  let r;
  try {
    r = await fetch(url, {cache: "no-cache"});
  } catch (e) {
    throw named("NetworkError", `Could not fetch ${url}: ${/** @type {Error} */ (e).message}. ` +
      "Check the model URL and that the server is running.");
  }
  if (!r.ok || !r.body) {
    throw named("NotFoundError", `The model file ${url} was not found (HTTP ${r.status}). Check the model URL.`);
  }
  return r.body;
}

/**
 * One resource's bytes; onBytes(n) after each chunk with the bytes so far.
 * @param {Fetch} fetch
 * @param {string} url
 * @param {(n: number) => void} onBytes
 */
async function fetchBytes(fetch, url, onBytes) {
  const reader = (await fetchBody(fetch, url)).getReader();
  /** @type {Uint8Array[]} */
  const parts = [];
  let n = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.byteLength;
    onBytes(n);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/**
 * Pours a stream into `view` (exactly the file's size), hashing each chunk as it arrives: "ok" if
 * it held exactly info.size bytes with info.sha256 (with `hashed` false: exactly info.size bytes),
 * "bad" if not (a longer stream is cancelled at the first byte too many; a stream that fails midway
 * is "bad" too), "stalled" if no byte came for stallMs (the stream is cancelled). onBytes(n) after
 * each chunk. With `byob`, a byte stream (what fetch answers in Chromium) is read into one reused
 * 1 MiB buffer (a BYOB reader), so the download leaves no garbage chunks behind to be collected;
 * otherwise (and for other streams) chunk by chunk.
 * @param {ReadableStream<Uint8Array>} body
 * @param {Uint8Array} view
 * @param {FileInfo} info
 * @param {(n: number) => void} onBytes
 * @param {number} stallMs
 * @param {boolean} byob
 * @param {boolean} [hashed]
 * @returns {Promise<"ok" | "bad" | "stalled">}
 */
async function pour(body, view, info, onBytes, stallMs, byob, hashed = true) {
  /** @type {Uint8Array<ArrayBuffer> | null} */
  let buf = null;
  /** @type {ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array> | null} */
  let reader = null;
  if (byob) {
    try {
      reader = body.getReader({mode: "byob"});
      buf = new Uint8Array(POUR_CHUNK);
    } catch (e) {
      // not a byte stream: chunk by chunk
    }
  }
  reader ??= body.getReader();
  const hash = hashed ? new Sha256() : null;
  let n = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const STALLED = Symbol("stalled");
  try {
    for (;;) {
      const read = buf ? /** @type {ReadableStreamBYOBReader} */ (reader).read(buf)
        : /** @type {ReadableStreamDefaultReader<Uint8Array>} */ (reader).read();
      const got = await Promise.race([read, new Promise((resolve) => { timer = setTimeout(resolve, stallMs, STALLED); })]);
      clearTimeout(timer);
      if (got === STALLED) {
        reader.cancel().catch(() => {});
        return "stalled";
      }
      const {done, value} = /** @type {ReadableStreamReadResult<Uint8Array>} */ (got);
      if (done || !value) break;
      if (n + value.byteLength > view.byteLength) {
        reader.cancel().catch(() => {});
        return "bad";
      }
      hash?.update(value);
      view.set(value, n);
      n += value.byteLength;
      if (buf) buf = new Uint8Array(/** @type {ArrayBuffer} */ (value.buffer)); // (the same memory, given back)
      onBytes(n);
    }
  } catch (e) {
    return "bad"; // the network went, or a cached body could not be read (evicted meanwhile)
  } finally {
    clearTimeout(timer);
  }
  return n === info.size && (!hash || hash.hex() === info.sha256) ? "ok" : "bad";
}

/** @param {Uint8Array<ArrayBuffer>} bytes */
async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {Uint8Array<ArrayBuffer>} bytes @param {FileInfo} info */
async function intact(bytes, info) {
  return bytes.byteLength === info.size && (await sha256(bytes)) === info.sha256;
}

// -- the package's texts, checked: a hostile package (its manifest rewritten to match) must end in
// a DataError naming the file and the field. config.json's rules and limits are py/nomoat/config.py's
// (ModelConfig.from_dict), so both sides refuse the same files.

/**
 * RoPE scaling, Hugging Face's rope_scaling: llama3 (Llama 3.x), linear (Gemma 3 4B+: its global layers),
 * longrope (Phi-3.5/Phi-4-mini: per-frequency divisors, long or short, and an attention factor).
 * @typedef {{kind: "llama3", factor: number, lowFreqFactor: number, highFreqFactor: number, originalMaxPos: number}
 *   | {kind: "linear", factor: number}
 *   | {kind: "longrope", long: number[], short: number[], originalMaxPos: number, attentionFactor: number}} RopeScaling
 */

/**
 * A model's shape, from config.json. The architecture's fields (Hugging Face's names in config.json):
 * modelType (model_type), act (hidden_act: "silu" | "gelu_pytorch_tanh"), attnBias (attention_bias: q/k/v
 * biases), qScalar (query_pre_attn_scalar, default hd: the attention scale is qScalar^-1/2), window
 * (sliding_window or null), sliding (per layer: layer_types[i] === "sliding_attention"), localTheta
 * (rope_local_base_freq of sliding layers, default theta), ropeScaling (rope_scaling or null),
 * rd (the rotated values of each head, its first: round(hd * partial_rotary_factor), default hd),
 * ropeAttn (what RoPE's cos and sin are multiplied by: longrope's attention_factor, else 1),
 * embedScale (the embedding's multiplier: Math.fround(sqrt(H)) for gemma3, else 1). ropeInvFreqs(shape,
 * layer) gives a layer's RoPE frequencies.
 * @typedef {{L: number, H: number, I: number, nq: number, nkv: number, hd: number, V: number, eps: number,
 *            theta: number, maxPos: number, modelType: string, act: string, attnBias: boolean, qScalar: number,
 *            window: number | null, sliding: boolean[], localTheta: number, ropeScaling: RopeScaling | null,
 *            rd: number, ropeAttn: number, embedScale: number}} ModelShape
 */

/** config.json's model_type values (py/nomoat/config.py MODEL_TYPES). */
export const MODEL_TYPES = ["llama", "qwen2", "qwen3", "gemma3", "phi3"];

const FIX = "convert the model again ('nomoat convert')";
const CONFIG_FILE = "config.json";
/** The largest config.json values taken (py/nomoat/config.py LIMITS, the same numbers). */
export const LIMITS = {num_hidden_layers: 1024, hidden_size: 65536, intermediate_size: 262144, num_attention_heads: 1024,
  head_dim: 1024, vocab_size: 1 << 24, max_position_embeddings: 1 << 24};

/** A DataError naming the file and what is wrong in it, and the fix. @param {string} file @param {string} what */
export function badFile(file, what) {
  return named("DataError", `${file}: ${what}; ${FIX}.`);
}

/** A value as a message shows it, short. @param {unknown} v */
export function show(v) {
  if (v === undefined) return "missing";
  const s = typeof v === "number" ? String(v) : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? s.slice(0, 40) + "…" : s;
}

/** @param {unknown} v @returns {v is Record<string, unknown>} */
export const isObject = (v) => !!v && typeof v === "object" && !Array.isArray(v);

/**
 * A model's shape from config.json, every field it uses checked (types, ranges, divisibility).
 * @param {unknown} config config.json parsed
 * @returns {ModelShape}
 */
export function modelShape(config) {
  if (!isObject(config)) throw badFile(CONFIG_FILE, `is ${show(config)}, not a JSON object`);
  /** @param {string} name @param {number} [hi] @param {number} [fallback] */
  const int = (name, hi = /** @type {Record<string, number>} */ (LIMITS)[name], fallback = undefined) => {
    const v = config[name] ?? fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > hi) {
      throw badFile(CONFIG_FILE, `${name} is ${show(config[name])}, not an integer in 1..${hi}`);
    }
    return v;
  };
  /** @param {string} name @param {number} hi */
  const real = (name, hi) => {
    const v = config[name];
    if (typeof v !== "number" || !(v > 0 && v <= hi)) throw badFile(CONFIG_FILE, `${name} is ${show(v)}, not a number in (0, ${hi}]`);
    return v;
  };
  const L = int("num_hidden_layers"), H = int("hidden_size"), I = int("intermediate_size");
  const nq = int("num_attention_heads"), nkv = int("num_key_value_heads", nq);
  if (nq % nkv) throw badFile(CONFIG_FILE, `num_attention_heads ${nq} is not a multiple of num_key_value_heads ${nkv}`);
  if (config.head_dim == null && H % nq) {
    throw badFile(CONFIG_FILE, `hidden_size ${H} is not a multiple of num_attention_heads ${nq} (and there is no head_dim)`);
  }
  const hd = int("head_dim", LIMITS.head_dim, config.head_dim == null ? H / nq : undefined);
  if (hd % 2) throw badFile(CONFIG_FILE, `head_dim ${hd} is odd (rotary embeddings turn pairs)`);
  const V = int("vocab_size"), eps = real("rms_norm_eps", 1), theta = real("rope_theta", 1e12);
  const maxPos = int("max_position_embeddings");
  // The architecture (py/nomoat/config.py from_dict: the same rules, the same messages).
  const modelType = config.model_type ?? "llama";
  if (typeof modelType !== "string" || !MODEL_TYPES.includes(modelType)) {
    throw badFile(CONFIG_FILE, `model_type is ${show(config.model_type)}, not one of ${MODEL_TYPES.join(", ")}`);
  }
  const act = config.hidden_act ?? "silu";
  if (act !== "silu" && act !== "gelu_pytorch_tanh") {
    throw badFile(CONFIG_FILE, `hidden_act is ${show(config.hidden_act)}, not one of silu, gelu_pytorch_tanh`);
  }
  const attnBias = config.attention_bias ?? false;
  if (typeof attnBias !== "boolean") throw badFile(CONFIG_FILE, `attention_bias is ${show(config.attention_bias)}, not true or false`);
  const qScalar = config.query_pre_attn_scalar == null ? hd : real("query_pre_attn_scalar", 1 << 24);
  const window = config.sliding_window == null ? null : int("sliding_window", LIMITS.max_position_embeddings);
  const types = config.layer_types;
  if (types != null && !(Array.isArray(types) && types.length === L &&
      types.every((t) => t === "full_attention" || t === "sliding_attention"))) {
    throw badFile(CONFIG_FILE, `layer_types is ${show(types)}, not a list of ${L} of full_attention, sliding_attention`);
  }
  const sliding = Array.from({length: L}, (_, i) => Array.isArray(types) && types[i] === "sliding_attention");
  if (sliding.some(Boolean) && window == null) {
    throw badFile(CONFIG_FILE, "layer_types has sliding_attention layers but sliding_window is null");
  }
  const localTheta = config.rope_local_base_freq == null ? theta : real("rope_local_base_freq", 1e12);
  const partial = config.partial_rotary_factor == null ? null : real("partial_rotary_factor", 1);
  const rd = partial == null ? hd : Math.round(hd * partial);
  if (rd % 2 || rd < 2) {
    throw badFile(CONFIG_FILE, `partial_rotary_factor ${partial} turns ${rd} of head_dim ${hd}, not an even number in 2..${hd}`);
  }
  const rs = ropeScaling(config.rope_scaling, rd);
  return {L, H, I, nq, nkv, hd, V, eps, theta, maxPos, modelType, act, attnBias, qScalar, window, sliding, localTheta,
    ropeScaling: rs, rd, ropeAttn: rs?.kind === "longrope" ? rs.attentionFactor : 1,
    embedScale: modelType === "gemma3" ? Math.fround(Math.sqrt(H)) : 1};
}

/**
 * config.json's rope_scaling: null, or Hugging Face's llama3, linear or longrope object, checked
 * (rd: the rotated values of a head, twice longrope's number of factors).
 * @param {unknown} rs
 * @param {number} rd
 * @returns {RopeScaling | null}
 */
function ropeScaling(rs, rd) {
  if (rs == null) return null;
  const kind = isObject(rs) ? rs.rope_type ?? rs.type : undefined;
  if (!isObject(rs) || (kind !== "llama3" && kind !== "linear" && kind !== "longrope")) {
    throw badFile(CONFIG_FILE, `rope_scaling is ${show(rs)}, not null or a llama3, linear, longrope rope_scaling object`);
  }
  /** @param {string} key */
  const num = (key) => {
    const v = rs[key];
    if (typeof v !== "number" || !(v > 0 && v <= 1e6)) throw badFile(CONFIG_FILE, `rope_scaling.${key} is ${show(v)}, not a number in (0, 1000000]`);
    return v;
  };
  const old = () => {
    const v = rs.original_max_position_embeddings, hi = LIMITS.max_position_embeddings;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > hi) {
      throw badFile(CONFIG_FILE, `rope_scaling.original_max_position_embeddings is ${show(v)}, not an integer in 1..${hi}`);
    }
    return v;
  };
  if (kind === "linear") return {kind, factor: num("factor")};
  if (kind === "longrope") {
    /** @param {string} key */
    const list = (key) => {
      const v = rs[key];
      if (!Array.isArray(v) || v.length !== rd / 2 || !v.every((f) => typeof f === "number" && f > 0 && f <= 1e6)) {
        throw badFile(CONFIG_FILE, `rope_scaling.${key} is ${show(v)}, not a list of ${rd / 2} numbers in (0, 1000000]`);
      }
      return v;
    };
    const long = list("long_factor"), short = list("short_factor");
    return {kind, long, short, originalMaxPos: old(), attentionFactor: num("attention_factor")};
  }
  const factor = num("factor"), lowFreqFactor = num("low_freq_factor"), highFreqFactor = num("high_freq_factor");
  if (!(highFreqFactor > lowFreqFactor)) throw badFile(CONFIG_FILE, "rope_scaling.high_freq_factor is not above its low_freq_factor");
  return {kind, factor, lowFreqFactor, highFreqFactor, originalMaxPos: old()};
}

/**
 * Layer `layer`'s RoPE inverse frequencies (rd / 2 of them, f64), rotate-half pairs (i, i + rd/2):
 * base^(-2i / rd); sliding layers use localTheta, unscaled; the others theta, then rope_scaling:
 * llama3 (Hugging Face's rule: long wavelengths divided by factor, short ones kept, the band between
 * interpolated), linear (all divided by factor), longrope (each divided by its long factor if the
 * window maxPos exceeds the original context, as llama.cpp picks them by its n_ctx, else its short
 * one). py/nomoat/config.py ModelConfig.rope_inv_freqs computes the same.
 * @param {ModelShape} shape
 * @param {number} layer
 * @returns {Float64Array}
 */
export function ropeInvFreqs(shape, layer) {
  const {rd, ropeScaling: rs} = shape, sliding = shape.sliding[layer];
  const base = sliding ? shape.localTheta : shape.theta;
  const inv = Float64Array.from({length: rd / 2}, (_, i) => 1 / base ** ((2 * i) / rd));
  if (!rs || sliding) return inv;
  if (rs.kind === "linear") return inv.map((f) => f / rs.factor);
  if (rs.kind === "longrope") {
    const factors = shape.maxPos > rs.originalMaxPos ? rs.long : rs.short;
    return inv.map((f, i) => f / factors[i]);
  }
  const {factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPos: old} = rs;
  return inv.map((f) => {
    const wave = 2 * Math.PI / f;
    if (wave < old / high) return f;
    if (wave > old / low) return f / factor;
    const smooth = (old / wave - low) / (high - low);
    return (f / factor) * (1 - smooth) + f * smooth;
  });
}

/**
 * An encoder's shape, from a sentence-embedding package's config.json (Hugging Face's BertModel
 * config; py/nomoat/embed.py reads the same fields): layers L, hidden size H, heads nq, feed-forward
 * size I, vocabulary V, positions maxPos; each checked as modelShape checks a decoder's.
 * @typedef {{L: number, H: number, nq: number, I: number, V: number, maxPos: number}} EncoderShape
 * @param {unknown} config config.json parsed
 * @returns {EncoderShape}
 */
export function encoderShape(config) {
  if (!isObject(config)) throw badFile(CONFIG_FILE, `is ${show(config)}, not a JSON object`);
  /** @param {string} name */
  const int = (name) => {
    const v = config[name], hi = /** @type {Record<string, number>} */ (LIMITS)[name];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > hi) {
      throw badFile(CONFIG_FILE, `${name} is ${show(v)}, not an integer in 1..${hi}`);
    }
    return v;
  };
  if (config.model_type !== "bert") throw badFile(CONFIG_FILE, `model_type is ${show(config.model_type)}, not bert (an embedding package)`);
  const L = int("num_hidden_layers"), H = int("hidden_size"), nq = int("num_attention_heads"), I = int("intermediate_size");
  if (H % nq) throw badFile(CONFIG_FILE, `hidden_size ${H} is not a multiple of num_attention_heads ${nq}`);
  return {L, H, nq, I, V: int("vocab_size"), maxPos: int("max_position_embeddings")};
}

/**
 * What nomoat.json's "embedding" says of a sentence-embedding package (kind "embedding"):
 * dimensions (of a vector), maxTokens (per input, [CLS] and [SEP] included), onnx (the graph's file;
 * its external weights, if any, are the file of that name + "_data"), pooling, normalize, weights.
 * @typedef {{dimensions: number, maxTokens: number, onnx: string, pooling: string, normalize: boolean,
 *            weights: string}} EmbeddingSpec
 */

/**
 * A package file's JSON, parsed; a DataError naming the file if it is not JSON.
 * @param {Uint8Array} bytes
 * @param {string} name the file, e.g. "config.json"
 * @returns {unknown}
 */
export function parseJSON(bytes, name) {
  try {
    return JSON.parse(new TextDecoder("utf-8", {fatal: true}).decode(bytes));
  } catch (e) {
    throw named("DataError", `${name} is not valid JSON (${/** @type {Error} */ (e).message.slice(0, 200)}); ` +
      "convert the model again ('nomoat convert').");
  }
}

/** @param {CacheStorage | undefined} caches */
async function openCache(caches) {
  try {
    return caches ? await caches.open(CACHE_NAME) : null;
  } catch (e) {
    return null; // e.g. an opaque origin: no persistent storage, fetch every time
  }
}

/**
 * The manifest's problem, or "" if it is sound: "files" an object of {size: integer >= 0, sha256: 64
 * hex digits} under relative names (py/nomoat/package.py checks the same).
 * @param {unknown} m
 */
function manifestProblem(m) {
  if (!isObject(m)) return "not a JSON object";
  if (!isObject(m.files)) return `"files" is ${show(m.files)}, not an object`;
  for (const [name, info] of Object.entries(m.files)) {
    if (!name || name.startsWith("/") || name.includes("\\") || name.split("/").some((p) => p === ".." || p === "." || !p)) {
      return `file name ${show(name)} is not a relative path inside the package`;
    }
    if (!isObject(info) || typeof info.size !== "number" || !Number.isSafeInteger(info.size) || info.size < 0 ||
        typeof info.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(info.sha256)) {
      return `${name}: ${show(info)} is not {size: bytes, sha256: 64 hex digits}`;
    }
  }
  if (m.kind !== undefined && m.kind !== "llm" && m.kind !== "embedding") {
    return `"kind" is ${show(m.kind)}, not "llm" or "embedding" (a newer nomoat made it?)`;
  }
  if (m.kind === "embedding") return embeddingProblem(m.embedding, m.files);
  return "";
}

/**
 * The problem of a manifest's "embedding" section, or "": dimensions and max_tokens integers,
 * onnx a file the manifest lists.
 * @param {unknown} e
 * @param {Record<string, unknown>} files
 */
function embeddingProblem(e, files) {
  if (!isObject(e)) return `"embedding" is ${show(e)}, not an object`;
  for (const k of ["dimensions", "max_tokens"]) {
    const v = e[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > 65536) return `embedding.${k} is ${show(v)}, not an integer in 1..65536`;
  }
  if (typeof e.onnx !== "string" || !Object.hasOwn(files, e.onnx)) return `embedding.onnx is ${show(e.onnx)}, not a file it lists`;
  if (e.pooling !== undefined && e.pooling !== "mean") return `embedding.pooling is ${show(e.pooling)}, not "mean"`;
  return "";
}

/**
 * Whether nomoat wrote a cache entry with these headers after its bytes matched `info` (its VERIFIED
 * header is info's sha256): such bytes are length-checked, not hashed again.
 * @param {Headers | undefined} headers @param {FileInfo} info
 */
function verifiedAs(headers, info) {
  return headers?.get(VERIFIED) === info.sha256;
}

/**
 * A cached file's bytes and its entry's headers, or null when it is gone or cannot be read (evicted
 * meanwhile).
 * @param {Cache} cache @param {string} url
 */
async function cachedEntry(cache, url) {
  try {
    const hit = await cache.match(url);
    return hit ? {bytes: new Uint8Array(await hit.arrayBuffer()), headers: hit.headers} : null;
  } catch (e) {
    return null;
  }
}

/** A cached file's bytes, or null (cachedEntry). @param {Cache} cache @param {string} url */
async function cachedBytes(cache, url) {
  return (await cachedEntry(cache, url))?.bytes ?? null;
}

export class ModelPackage {
  /**
   * The package at `url` (absolute, ending in "/" or not): its manifest, from the network, else
   * (offline, the server gone) the cached copy. io: the worker's fetch, caches and Web Locks
   * (navigator.locks) by default; stand-ins in tests (locks null: no coordination). stallMs: how long
   * the streamed file's source may send nothing before it is given up (the cache's copy for the
   * network's; the network's after one retry, a NetworkError).
   * @param {string} url
   * @param {{fetch?: Fetch, caches?: CacheStorage, locks?: LockManager | null, stallMs?: number}} [io]
   */
  static async open(url, {fetch = globalThis.fetch, caches = globalThis.caches, locks = globalThis.navigator?.locks ?? null,
    stallMs = STALL_MS} = {}) {
    const base = url.endsWith("/") ? url : url + "/";
    // Cache only web origins: the Cache API refuses e.g. chrome-extension:// URLs (files that are
    // already local anyway).
    const cache = /^https?:/.test(base) ? await openCache(caches) : null;
    const at = base + MANIFEST;
    let bytes;
    try {
      bytes = await fetchBytes(fetch, at, () => {});
    } catch (e) {
      bytes = cache && await cachedBytes(cache, at);
      if (!bytes) throw e;
    }
    let manifest;
    try {
      manifest = JSON.parse(new TextDecoder("utf-8", {fatal: true}).decode(bytes));
    } catch (e) {
      throw named("DataError", `${at} is not a model manifest (${/** @type {Error} */ (e).message.slice(0, 200)}).`);
    }
    const problem = manifestProblem(manifest);
    if (problem) throw named("DataError", `${at} is not a model manifest (${problem}); ${FIX}.`);
    return new ModelPackage(base, manifest, bytes, fetch, cache, locks, stallMs);
  }

  /**
   * @param {string} base
   * @param {Manifest} manifest
   * @param {Uint8Array<ArrayBuffer>} manifestBytes
   * @param {Fetch} fetch
   * @param {Cache | null} cache
   * @param {LockManager | null} [locks]
   * @param {number} [stallMs]
   */
  constructor(base, manifest, manifestBytes, fetch, cache, locks = null, stallMs = STALL_MS) {
    this.base = base;
    this.manifest = manifest;
    this.manifestBytes = manifestBytes;
    this.fetch = fetch;
    this.cache = cache;
    this.locks = locks;
    this.stallMs = stallMs; // a streamed file that sends no byte for this long is given up (pour)
  }

  /** What the package holds: "llm" (a chat or base model; no "kind" in older manifests) or "embedding". */
  get kind() {
    return /** @type {{kind?: string}} */ (this.manifest).kind === "embedding" ? "embedding" : "llm";
  }

  /**
   * A sentence-embedding package's "embedding" section (checked when the manifest was opened).
   * @returns {EmbeddingSpec}
   */
  get embedding() {
    const e = /** @type {any} */ (this.manifest).embedding;
    if (this.kind !== "embedding") throw named("NotSupportedError", `${this.base} is not an embedding model (its nomoat.json has no kind "embedding").`);
    return {dimensions: e.dimensions, maxTokens: e.max_tokens, onnx: e.onnx, pooling: e.pooling ?? "mean",
      normalize: e.normalize ?? true, weights: String(e.weights ?? "f32")};
  }

  /** @param {string} name a path in the package, e.g. "onnx/nomoat_tensors.json" */
  has(name) {
    return Object.hasOwn(this.manifest.files, name);
  }

  /** A listed file's size in bytes, from the manifest (known before it is downloaded). @param {string} name */
  size(name) {
    if (!this.has(name)) throw named("DataError", `${this.base}${MANIFEST} does not list ${name}.`);
    return this.manifest.files[name].size;
  }

  /**
   * The named files, each checked against the manifest, and the JSON ones parsed (config.json's
   * shape checked too: modelShape): a DataError naming the file otherwise. progress(p) hears
   * {stage: "download", file, fileLoaded, fileTotal, loaded, total, fraction, cached} per chunk
   * (and {stage: "download", loaded: 0, total, fraction: 0} first), and {stage: "cache", warning}
   * once when the files could not be stored.
   *
   * The JSON files come first: check(json) (the parsed JSON files by name) may refuse the model
   * (e.g. too large for the device) before any other file is downloaded. A `stream` file is not
   * returned as bytes but poured into place: once the other files are in, stream.consume(files,
   * write) runs, and write(view) fills `view` (a Uint8Array of exactly the file's size, e.g. a
   * region of wasm memory; a view of a SharedArrayBuffer too) chunk by chunk from the cache or the
   * network, hashing the chunks as they arrive (sha256.js; not a VERIFIED cache entry's), so the file
   * is never held whole in JS; it resolves once the bytes match the manifest and rejects otherwise (the same DataError as a
   * downloaded file; the view's bytes must then not be used). consume must call write once.
   *
   * The cache (one entry per file URL, and the manifest's) holds a model wholly or not at all: the
   * manifest's entry, what llm.cache.list() calls `complete`, is deleted before any file is
   * written and put back last, only once every file of this load is cached; a file that cannot be
   * stored (QuotaExceededError) removes the files this load put, so no half model stays behind
   * looking complete, and the model still loads from the network bytes. Every cached file is
   * checked before use: one evicted, unreadable, truncated or corrupt is fetched again, never
   * returned. An entry nomoat put itself, only ever after its bytes matched the manifest, carries
   * that sha256 (VERIFIED); a file whose entry's header equals the manifest's, returned as bytes or
   * streamed, is not hashed again (its length is still checked, the storage's checksums catch damage
   * on disk; any other entry, e.g. one a page put itself, is hashed). Two workers (tabs) loading the
   * same model take turns under one Web Lock per model
   * URL, so the second finds the first's files in the cache instead of downloading them again.
   * @param {string[]} names
   * @param {(p: Progress) => void} [progress]
   * @param {{check?: (json: Record<string, unknown>) => void,
   *          stream?: {name: string, consume: (files: Record<string, Uint8Array<ArrayBuffer>>,
   *                                               write: (view: Uint8Array) => Promise<void>) => Promise<void>}}} [options]
   * @returns {Promise<Record<string, Uint8Array<ArrayBuffer>>>}
   */
  async load(names, progress = () => {}, {check = () => {}, stream} = {}) {
    for (const n of [...names, ...(stream ? [stream.name] : [])]) {
      if (!this.has(n)) throw named("DataError", `${this.base}${MANIFEST} does not list ${n}.`);
    }
    const run = () => this.fill(names, progress, check, stream);
    return this.cache && this.locks ? await this.locks.request(`nomoat-model ${this.base}`, run) : await run();
  }

  /**
   * load()'s work: the JSON files, then the rest, then the streamed file; each from the cache where
   * it is intact, else from the network (then cached).
   * @param {string[]} names
   * @param {(p: Progress) => void} progress
   * @param {(json: Record<string, unknown>) => void} check
   * @param {{name: string, consume: (files: Record<string, Uint8Array<ArrayBuffer>>,
   *                                  write: (view: Uint8Array) => Promise<void>) => Promise<void>}} [stream]
   */
  async fill(names, progress, check, stream) {
    const info = this.manifest.files;
    const total = [...names, ...(stream ? [stream.name] : [])].reduce((s, n) => s + info[n].size, 0);
    /** @type {Record<string, number>} */
    const done = {};
    /** @param {string} file @param {boolean} cached @returns {(n: number) => void} */
    const report = (file, cached) => (fileLoaded) => {
      done[file] = fileLoaded;
      const loaded = Object.values(done).reduce((a, b) => a + b, 0);
      progress({stage: "download", file, fileLoaded, fileTotal: info[file].size, loaded, total,
        fraction: total ? loaded / total : 1, cached});
    };
    progress({stage: "download", loaded: 0, total, fraction: 0});
    const store = new Store(this.cache, this.base, progress);
    const texts = names.filter((n) => n.endsWith(".json"));
    let end = begin("files.json");
    const files = await this.files(texts, report, store);
    end();
    /** @type {Record<string, unknown>} */
    const json = {};
    for (const n of texts) {
      json[n] = parseJSON(files[n], n);
      if (n === "config.json") (this.kind === "embedding" ? encoderShape : modelShape)(json[n]);
    }
    check(json);
    end = begin("files.other");
    Object.assign(files, await this.files(names.filter((n) => !n.endsWith(".json")), report, store));
    end();
    if (stream) {
      let wrote = false;
      await stream.consume(files, async (view) => {
        if (wrote) throw named("InvalidStateError", `${stream.name} was already written.`);
        wrote = true;
        const poured = begin("data.pour", {file: stream.name, bytes: view.byteLength});
        poured({cached: await this.pourInto(stream.name, view, report, store)});
      });
      if (!wrote) throw named("InvalidStateError", `${stream.name} was never written.`);
    }
    await store.complete(this.manifestBytes);
    return files;
  }

  /**
   * Files as bytes, from the cache where intact (checked all at once: the digests run off the JS
   * thread meanwhile), else downloaded and cached.
   * @param {string[]} names
   * @param {(file: string, cached: boolean) => (n: number) => void} report
   * @param {Store} store
   */
  async files(names, report, store) {
    const info = this.manifest.files, cache = this.cache;
    /** @type {Record<string, Uint8Array<ArrayBuffer>>} */
    const files = {};
    /** @type {Promise<boolean>[]} */
    const checks = [];
    for (const name of names) {
      const hit = cache && await cachedEntry(cache, this.base + name);
      if (hit) {
        files[name] = hit.bytes;
        report(name, true)(hit.bytes.byteLength);
      }
      const trusted = hit && verifiedAs(hit.headers, info[name]);
      checks.push(!hit ? Promise.resolve(false) : trusted ? Promise.resolve(hit.bytes.byteLength === info[name].size)
        : intact(hit.bytes, info[name]));
    }
    const verdicts = await Promise.all(checks);
    for (const name of names.filter((_, i) => !verdicts[i])) {
      await store.incomplete();
      if (files[name]) await store.drop(name); // a truncated, corrupt or stale entry
      files[name] = await this.download(name, report(name, false));
      await store.put(name, files[name], info[name].sha256);
    }
    return files;
  }

  /**
   * The streamed file into `view`: from the cache if its entry is intact, else from the network
   * (one retry), then cached from the view; a DataError if the server's bytes do not match.
   * Resolves true when the bytes came from the cache.
   * @param {string} name
   * @param {Uint8Array} view
   * @param {(file: string, cached: boolean) => (n: number) => void} report
   * @param {Store} store
   */
  async pourInto(name, view, report, store) {
    const url = this.base + name, info = this.manifest.files[name];
    if (!(view instanceof Uint8Array) || view.byteLength !== info.size) {
      throw named("TypeError", `${name} is written into a Uint8Array of its ${info.size} bytes, not ${show(view?.byteLength)}.`);
    }
    if (this.cache) {
      let hit = null;
      try {
        hit = await this.cache.match(url);
      } catch (e) {
        hit = null;
      }
      // Read chunk by chunk, not into a BYOB buffer: Chromium's BYOB reads of a cached body stalled for
      // good in warm starts (bench_start.py). An entry nomoat wrote after checking it (VERIFIED equal to
      // the manifest's sha256) is not hashed again, as files read whole are not: its length is checked.
      // Hashing 108 MB in JS held the worker's one thread for ~0.7 s, which Python's boot waited for. A
      // read that still stalls (no byte for stallMs) gives up the entry for the network's copy.
      const verdict = hit?.body
        ? await pour(hit.body, view, info, report(name, true), this.stallMs, false, !verifiedAs(hit.headers, info)) : "bad";
      if (verdict === "ok") return true;
      if (verdict === "stalled") console.warn(`${url}: the cached copy stopped coming (${this.stallMs / 1000} s); downloading it again.`);
      if (hit) await store.drop(name); // a truncated, corrupt, unreadable or stalled entry
    }
    await store.incomplete();
    let stalled = 0;
    for (let attempt = 0; attempt < 2; attempt++) {
      const onBytes = report(name, false);
      const verdict = await pour(await fetchBody(this.fetch, url), view, info, onBytes, this.stallMs, true);
      if (verdict === "ok") {
        await store.putView(name, view, info.sha256);
        return false;
      }
      if (verdict === "stalled") stalled++;
      onBytes(0);
    }
    if (stalled === 2) {
      throw named("NetworkError", `The server stopped sending ${url} (no data for ${this.stallMs / 1000} s, twice). ` +
        "Check the connection and that the server is still running, then try again.");
    }
    throw mismatch(url, info);
  }

  /**
   * One file from the network, checked (one retry).
   * @param {string} name
   * @param {(n: number) => void} onBytes
   */
  async download(name, onBytes) {
    const url = this.base + name, info = this.manifest.files[name];
    for (let attempt = 0; attempt < 2; attempt++) {
      const got = await fetchBytes(this.fetch, url, onBytes);
      if (await intact(got, info)) return got;
      onBytes(0);
    }
    throw mismatch(url, info);
  }
}

/** The DataError of a file the server sends wrong. @param {string} url @param {FileInfo} info */
function mismatch(url, info) {
  return named("DataError", `${url} does not match its manifest (size ${info.size}, sha256 ${info.sha256.slice(0, 12)}…): ` +
    "truncated or corrupt on the server. Convert the model again ('nomoat convert').");
}

/**
 * One load's writes to the cache: the manifest's entry off while files are written (incomplete),
 * the files (put), the manifest back last when all went in (complete). The first put that fails
 * ends caching for this load: the files it put are deleted again and one warning is reported.
 */
class Store {
  /** @param {Cache | null} cache @param {string} base @param {(p: Progress) => void} progress */
  constructor(cache, base, progress) {
    this.cache = cache;
    this.base = base;
    this.progress = progress;
    this.ok = !!cache;
    /** @type {string[]} URLs this load put */
    this.written = [];
    this.opened = false; // the manifest's entry is off
  }
  async incomplete() {
    if (this.cache && !this.opened) await this.cache.delete(this.base + MANIFEST).catch(() => {});
    this.opened = true;
  }
  /** @param {string} name */
  async drop(name) {
    if (this.cache) await this.cache.delete(this.base + name).catch(() => {});
  }
  /** @param {string} name @param {Uint8Array<ArrayBuffer>} bytes @param {string} sha256 what they were verified with */
  async put(name, bytes, sha256) {
    await this.putBody(name, bytes, bytes.byteLength, sha256);
  }
  /**
   * A file that lies in `view` (wasm memory, maybe shared), put as a stream of copied chunks so
   * that no whole second copy is made.
   * @param {string} name @param {Uint8Array} view @param {string} sha256 what it was verified with
   */
  async putView(name, view, sha256) {
    let o = 0;
    const body = new ReadableStream({
      pull(c) {
        if (o >= view.byteLength) return c.close();
        c.enqueue(view.slice(o, o += PUT_CHUNK)); // (a copy: the Cache API takes no shared memory)
      },
    });
    await this.putBody(name, body, view.byteLength, sha256);
  }
  /**
   * Only bytes that matched the manifest are put, with their sha256 as the VERIFIED header.
   * @param {string} name @param {BodyInit} body @param {number} size @param {string} sha256
   */
  async putBody(name, body, size, sha256) {
    if (!this.ok) return;
    const url = this.base + name;
    try {
      await /** @type {Cache} */ (this.cache).put(url, new Response(body, {headers: {"content-type": "application/octet-stream",
        "content-length": String(size), [VERIFIED]: sha256}}));
      this.written.push(url);
    } catch (e) {
      this.ok = false;
      const kind = /** @type {Error | null} */ (e)?.name;
      const why = kind === "QuotaExceededError" ? "the browser's storage quota is too small" : `the cache refused it (${kind})`;
      for (const u of [url, ...this.written]) await /** @type {Cache} */ (this.cache).delete(u).catch(() => {});
      this.progress({stage: "cache", warning: `${url} could not be cached: ${why}. The model runs now (from the network) but ` +
        "is not kept, and will be downloaded again next time; free space (llm.cache.delete(...)) or allow more storage."});
    }
  }
  /** @param {Uint8Array<ArrayBuffer>} manifest */
  async complete(manifest) {
    if (this.ok) await /** @type {Cache} */ (this.cache).put(this.base + MANIFEST, new Response(manifest)).catch(() => {});
  }
}
