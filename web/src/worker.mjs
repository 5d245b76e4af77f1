// @ts-check
// nomoat worker: boots Pyodide, then runs nomoat's Python generation loop.
//
// The page talks to it only through the typed messages of protocol.js (see llm.js):
//   in:  {kind: "create" | "prompt" | "complete" | "append" | "measure" | "clone" | "abort" | "destroy" | "tokenize"
//         | "embed", id, payload}
//   out: {kind: "return" | "throw" | "progress" | "chunk" | "event", id, payload}
// The JS side that Python drives (fetching, engines) is runtime.mjs, registered in Pyodide as the
// module `nomoat_js`.

import {named} from "./errors.js";
import {wireError} from "./protocol.js";
import {live} from "./engine.js";
import {bootPython} from "./pyodide_boot.mjs";
import {chooseDevice, createRuntime} from "./runtime.mjs";
import {begin, span, timeline, wasmMemoryBytes} from "./timeline.js";

/** @type {any} Pyodide */
let py = null;
/** @type {any} the Python module nomoat.worker */
let api = null;
/** @type {Promise<void> | null} */
let bootPromise = null;
/** @type {ReturnType<typeof createRuntime> | null} registered in Pyodide as `nomoat_js` */
let runtime = null;
/** @type {Set<string>} "url|device" already loaded by Python (no download needed) */
const loadedModels = new Set();
/** @type {boolean} whether this worker had a prompt (the timeline spans the first one's first token) */
let prompted = false;
/** @type {(() => void) | null} ends the timeline's "prompt.first-token" span */
let firstToken = null;
/** @type {Map<number, {aborted: boolean}>} request id -> its stream */
const streams = new Map();

/** @param {string} kind @param {number} id @param {unknown} payload */
function post(kind, id, payload) {
  self.postMessage({kind, id, payload});
}

// ---------------------------------------------------------------------------------------------
// Boot and message handling
// ---------------------------------------------------------------------------------------------

/**
 * @param {{pyodide: string, wheels: string[]}} assets
 * @param {number} requestId
 * @param {ReturnType<typeof createRuntime>} rt registered as `nomoat_js`
 */
async function boot(assets, requestId, rt) {
  post("progress", requestId, {stage: "runtime", loaded: 0, total: 1});
  // From a saved memory snapshot unless the page opted out (data-snapshot="false" / createLLM's {snapshot: false}).
  const booted = await bootPython(assets, rt, {snapshot: /** @type {any} */ (assets).snapshot !== false});
  py = booted.py;
  begin("python.ready", {snapshot: booted.snapshot})(); // "restored" | "made" | "none": llm.timeline() says which
  api = py.pyimport("nomoat.worker");
  post("progress", requestId, {stage: "runtime", loaded: 1, total: 1});
}

/**
 * An error as the page gets it: {name, message, ...extra} (protocol.js). A Python call that fails
 * (py/nomoat/worker.py) records how, as data, under its request id: failure(id) takes it.
 * @param {unknown} e
 * @param {number} id
 */
function errorPayload(e, id) {
  const failed = api && !fatal(e) ? plain(api.failure(id)) : null;
  return wireError(failed ? named(failed.name, failed.message, failed.extra) : e);
}

/**
 * Whether `e` is Pyodide's fatal error (a trap or an abort inside the interpreter): Python can run
 * nothing more in this worker.
 * @param {unknown} e
 */
const fatal = (e) => Boolean(e && typeof e === "object" &&
  (/** @type {any} */ (e).pyodide_fatal_error || /fatally failed/.test(String(/** @type {any} */ (e).message))));

/**
 * A Python value as plain JS (dicts as objects), its proxy released.
 * @param {any} x
 */
function plain(x) {
  if (!x || typeof x.toJs !== "function") return x;
  try {
    return x.toJs({dict_converter: Object.fromEntries});
  } finally {
    x.destroy();
  }
}

/**
 * api[fn](...args), JS values given to Python as Python objects, whose proxies are released once
 * `use` (of the result) settles.
 * @param {string} fn
 * @param {unknown[]} args
 * @param {(result: any) => unknown} [use]
 * @returns {Promise<any>}
 */
async function call(fn, args, use = plain) {
  const given = args.map((a) => (a !== null && typeof a === "object" ? py.toPy(a) : a));
  try {
    return await use(await api[fn](...given));
  } finally {
    given.forEach((x, i) => x !== args[i] && x.destroy());
  }
}

/**
 * A callback Python calls with session events (contextoverflow, a JS object), posted to request id.
 * @param {number} id
 */
const eventsTo = (id) => (/** @type {unknown} */ e) => post("event", id, e);

/**
 * Post each piece of a Python async iterator as a chunk until it ends; then the result. Once the
 * request is aborted, pieces are no longer posted, Python stops at its next prefill chunk or token
 * (abort()) and the call rejects with an AbortError (stats on it when Python had finished first).
 * @param {number} id
 * @param {any} iter a PyProxy of an async generator
 * @param {() => any} result a PyProxy of the stats dict
 * @param {string} abortMessage
 */
async function stream(id, iter, result, abortMessage) {
  const state = {aborted: false};
  streams.set(id, state);
  try {
    for await (const piece of iter) {
      firstToken?.();
      firstToken = null;
      if (!state.aborted) post("chunk", id, piece);
    }
  } finally {
    iter.destroy();
    streams.delete(id);
  }
  const stats = plain(result());
  if (state.aborted) throw named("AbortError", abortMessage, {stats});
  return stats;
}

/**
 * The device for request `id`'s model, with Python booted: the model's download starts first
 * (prefetch), overlapping the boot, unless Python already has that model.
 * @param {{assets: any, model: string, device?: string}} p
 * @param {number} id
 */
async function ready(p, id) {
  const choice = await span("device.choose", () => chooseDevice(p.device || "auto"));
  if (!runtime) runtime = createRuntime({assets: p.assets, progress: (rid, q) => post("progress", rid, q)});
  const rt = runtime;
  const key = `${p.model}|${choice.device}`;
  if (!loadedModels.has(key)) rt.prefetch(p.model, choice.device, id); // download while Python boots
  if (!bootPromise) bootPromise = boot(p.assets, id, rt);
  await bootPromise;
  return {choice, key};
}

/** @type {Record<string, (p: any, id: number) => unknown>} */
const handlers = {
  async create(p, id) {
    const {choice, key} = await ready(p, id);
    post("progress", id, {stage: "init", loaded: 0, total: 1});
    const info = await span("model.create", () => call("create", [p.model, choice.device, p.options || {}, id]));
    loadedModels.add(key);
    post("event", id, {type: "device", ...choice, threads: info.threads, crossOriginIsolated: self.crossOriginIsolated});
    post("progress", id, {stage: "init", loaded: 1, total: 1});
    delete info.threads;
    return {...info, device: choice.device, deviceReason: choice.reason};
  },
  async prompt(p, id) {
    if (!prompted) firstToken = begin("prompt.first-token"); // this worker's first prompt: prefill, first token
    prompted = true;
    return call("prompt_streaming", [p.session, p.input, p.options || {}, eventsTo(id), id],
      (iter) => stream(id, iter, () => api.stats(p.session), "The prompt was aborted."));
  },
  async complete(p, id) { // OpenAI chat.completions (web/src/openai.js)
    return call("complete_streaming", [p.session, p.messages, p.options || {}, p.tools || null, id],
      (iter) => stream(id, iter, () => api.completion(p.session), "The request was aborted."));
  },
  async append(p, id) {
    return call("append", [p.session, p.input, eventsTo(id), id]);
  },
  async measure(p, id) {
    return call("measure", [p.session, p.input, p.options || {}, id]);
  },
  async clone(p, id) {
    return call("clone", [p.session, id]);
  },
  // The page has already rejected the call: a running prompt or append stops at its next prefill
  // chunk or token, one that finished before the abort arrived is dropped from its session's
  // history (Python decides which), and a stream posts no more pieces.
  abort(p) {
    const s = streams.get(p.target);
    if (s) s.aborted = true;
    api.abort(p.target);
    return true;
  },
  destroy(p) {
    api.close_session(p.session);
    return true;
  },
  async tokenize(p) {
    return call("tokenize", [p.session, p.texts]);
  },
  // llm.embeddings.create (embeddings.js): the vectors as one Float32Array, row after row.
  async embed(p, id) {
    const {choice, key} = await ready(p, id);
    const out = await call("embed", [p.model, choice.device, p.input, p.options || {}, id]);
    loadedModels.add(key);
    return {...out, device: choice.device};
  },
  // llm.timeline(): this worker's start-up stages (timeline.js), epoch-clock ms.
  timeline() {
    return timeline;
  },
  // llm.resources(): Python's sessions and handles, the engines' KV caches and GPU samplers.
  resources() {
    const held = api ? plain(api.resources()) : {sessions: 0, running: 0, handles: 0};
    const pyodideHeapBytes = py?._module?.HEAPU8?.byteLength ?? 0; // Python's wasm memory (it never shrinks)
    return {...held, ...live, wasmMemoryBytes: wasmMemoryBytes(), pyodideHeapBytes};
  },
};

// Liveness (WorkerTransport in llm.js): this worker holds the page's Web Lock until it ends, so the
// page learns at once when it is gone (terminated, closed, crashed); a ping is answered at once.
/** @type {Record<string, (p: any) => void>} */
const liveness = {
  live(p) {
    const locks = /** @type {any} */ (self.navigator)?.locks;
    if (locks) locks.request(p.lock, () => { post("live", 0, null); return new Promise(() => {}); }).catch(() => {});
  },
  ping() {
    post("pong", 0, null);
  },
};

self.onmessage = async (/** @type {MessageEvent} */ ev) => {
  const {kind, id, payload} = ev.data;
  if (liveness[kind]) return liveness[kind](payload);
  try {
    const h = handlers[kind];
    if (!h) throw named("TypeError", `Unknown message kind ${kind}`);
    post("return", id, await h(payload, id));
  } catch (e) {
    post("throw", id, errorPayload(e, id));
    if (fatal(e)) { // every later call would fail the same way: stop, so the page starts a fresh worker
      post("fatal", 0, wireError(e));
      self.close();
    }
  }
};
