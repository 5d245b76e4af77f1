// @ts-check
// llm.embeddings — OpenAI's embeddings API over nomoat's back end:
//   await llm.embeddings.create({model: "all-MiniLM-L6-v2", input: "text" | ["a", "b", ...],
//                                encoding_format: "float" | "base64"})
//   → {object: "list", data: [{object: "embedding", index, embedding}], model, usage: {prompt_tokens, total_tokens}}
// The input is checked here (TypeError), sent as one "embed" message (protocol.js) to the worker of
// the device, and batched there (py/nomoat/embed.py: sorted by length, padded per batch). The
// vectors come back as one Float32Array, row after row; "base64" is each row's little-endian
// float32 bytes, as OpenAI sends them.

import {abortReason, checkSendable} from "./protocol.js";

/**
 * @typedef {import("./protocol.js").Transport} Transport
 * @typedef {import("./protocol.js").CallHooks} CallHooks
 *
 * @typedef {object} EmbeddingRequest llm.embeddings.create(request)
 * @property {string} [model] a model's name ("all-MiniLM-L6-v2": models/NAME/ next to nomoat.js), a package path or URL;
 *   an OpenAI embedding model's name (text-embedding-…) or none means all-MiniLM-L6-v2
 * @property {string | string[]} input the texts (a list is embedded in batches)
 * @property {"float" | "base64"} [encoding_format] default "float"
 * @property {boolean} [truncate] nomoat: cut an input longer than the model's limit (256 tokens) instead of refusing it
 * @property {"auto" | "webgpu" | "wasm"} [device] nomoat: default as llm.create's
 * @property {"nomoat" | "ort"} [wasmEngine] nomoat: which wasm engine (for comparisons), as llm.create's; default "nomoat"
 * @property {(monitor: EventTarget) => void} [monitor] nomoat: downloadprogress (and nomoatprogress) while the model loads
 * @property {AbortSignal} [signal]
 * @property {string} [user] accepted, unused
 * @property {number} [dimensions] refused (NotSupportedError): the model's vectors have one length
 * @typedef {{object: "embedding", index: number, embedding: number[] | string}} Embedding
 * @typedef {object} EmbeddingResponse
 * @property {"list"} object
 * @property {Embedding[]} data in the order of the input
 * @property {string} model the package's name
 * @property {{prompt_tokens: number, total_tokens: number}} usage tokens read, [CLS] and [SEP] included
 * @typedef {{create(request: EmbeddingRequest, requestOptions?: {signal?: AbortSignal}): Promise<EmbeddingResponse>}} Embeddings
 *
 * @typedef {object} EmbeddingsHost what this layer needs of llm
 * @property {(device: string) => Transport} transport the worker of a device ("auto", "wasm", "webgpu")
 * @property {(model: string) => string} resolve a model option → its package URL (llm.js modelURL)
 * @property {Record<string, unknown>} assets the runtime's files, as the worker needs them
 * @property {string} defaultDevice
 * @property {(monitor: EventTarget) => {onProgress: (p: any) => void, done: (ok: boolean) => void}} progress
 *   download progress as llm.create reports it (downloadprogress events on monitor)
 */

/** The embedding model a request without one (or with an OpenAI name) gets. */
export const DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2";
const OPENAI_EMBEDDING = /^text-(embedding|similarity|search)-/i;

/** @param {string} message */
const bad = (message) => new TypeError(`embeddings.create: ${message}`);

/**
 * The request's texts, checked: a string, or a non-empty list of strings.
 * @param {unknown} input
 * @returns {string[]}
 */
export function inputTexts(input) {
  if (typeof input === "string") return [input];
  if (!Array.isArray(input)) throw bad(`input must be a string or a list of strings, got ${input === null ? "null" : typeof input}.`);
  if (input.length === 0) throw bad("input is an empty list; give at least one string.");
  input.forEach((t, i) => {
    if (typeof t === "string") return;
    if (typeof t === "number" || Array.isArray(t)) {
      throw bad(`input[${i}] is ${Array.isArray(t) ? "a list" : "a number"}: token ids are not taken; give the text.`);
    }
    throw bad(`input[${i}] is ${t === null ? "null" : typeof t}, not a string.`);
  });
  return /** @type {string[]} */ (input);
}

/**
 * A vector as OpenAI's base64: its float32 values as little-endian bytes.
 * @param {Float32Array} v
 */
export function toBase64(v) {
  const bytes = new Uint8Array(v.length * 4), view = new DataView(bytes.buffer);
  for (let i = 0; i < v.length; i++) view.setFloat32(i * 4, v[i], true);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * base64 (OpenAI's encoding) → the vector: the inverse of toBase64.
 * @param {string} b64
 */
export function fromBase64(b64) {
  const s = atob(b64), view = new DataView(new ArrayBuffer(s.length));
  for (let i = 0; i < s.length; i++) view.setUint8(i, s.charCodeAt(i));
  return Float32Array.from({length: s.length / 4}, (_, i) => view.getFloat32(i * 4, true));
}

/**
 * llm.embeddings for `host`.
 * @param {EmbeddingsHost} host
 * @returns {Embeddings}
 */
export function createEmbeddings(host) {
  /** @param {EmbeddingRequest} params @param {{signal?: AbortSignal}} [requestOptions] @returns {Promise<EmbeddingResponse>} */
  async function create(params, requestOptions = {}) {
    if (!params || typeof params !== "object") throw bad("takes a request object {model, input, encoding_format}.");
    const texts = inputTexts(params.input);
    const format = params.encoding_format ?? "float";
    if (format !== "float" && format !== "base64") throw bad(`encoding_format must be "float" or "base64", got ${JSON.stringify(format)}.`);
    if (params.dimensions !== undefined && params.dimensions !== null) {
      throw new DOMException("dimensions is not supported: the model's vectors have the length it was trained for.", "NotSupportedError");
    }
    if (params.truncate !== undefined && typeof params.truncate !== "boolean") throw bad("truncate must be true or false.");
    const device = params.device ?? host.defaultDevice;
    if (!["auto", "webgpu", "wasm"].includes(device)) throw bad(`device must be "auto", "webgpu" or "wasm", got ${JSON.stringify(device)}.`);
    const engine = params.wasmEngine;
    if (engine !== undefined && !["nomoat", "ort"].includes(engine)) throw bad(`wasmEngine must be "nomoat" or "ort", got ${JSON.stringify(engine)}.`);
    const signal = requestOptions.signal ?? params.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw bad("signal must be an AbortSignal.");
    if (signal?.aborted) throw abortReason(signal);
    const asked = typeof params.model === "string" && params.model && !OPENAI_EMBEDDING.test(params.model)
      ? params.model : DEFAULT_EMBEDDING_MODEL;
    if (params.model !== undefined && typeof params.model !== "string") throw bad("model must be a string (a name, path or URL).");
    const model = host.resolve(asked);
    const payload = {assets: engine ? {...host.assets, wasmEngine: engine} : host.assets, model, device, input: texts, options: params.truncate ? {truncate: true} : {}};
    checkSendable("embeddings.create", payload);
    const monitor = new EventTarget();
    if (typeof params.monitor === "function") params.monitor(monitor);
    const progress = host.progress(monitor);
    const transport = host.transport(engine ? `${device}|${engine}` : device);
    const {id, promise} = transport.call("embed", payload, {onProgress: progress.onProgress});
    /** @type {{vectors: Float32Array, dimensions: number, prompt_tokens: number}} */
    let out;
    try {
      if (!signal) out = await promise;
      else {
        out = await Promise.race([promise, new Promise((_, reject) => signal.addEventListener("abort", () => {
          transport.abort(id);
          reject(abortReason(signal));
        }, {once: true}))]);
      }
    } catch (e) {
      progress.done(false);
      throw e;
    }
    progress.done(true);
    const d = out.dimensions, vectors = out.vectors;
    const data = texts.map((_, index) => {
      const v = vectors.subarray(index * d, (index + 1) * d);
      return /** @type {Embedding} */ ({object: "embedding", index, embedding: format === "base64" ? toBase64(v) : Array.from(v)});
    });
    const name = new URL(model).pathname.split("/").filter(Boolean).pop() || asked;
    return {object: "list", data, model: name, usage: {prompt_tokens: out.prompt_tokens, total_tokens: out.prompt_tokens}};
  }
  return {create};
}
