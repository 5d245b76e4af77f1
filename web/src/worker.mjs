// @ts-check
// nomoat worker: boots Pyodide, then runs nomoat's Python generation loop.
//
// The page talks to it only through the typed messages of protocol.js (see llm.js):
//   in:  {kind: "create" | "prompt" | "complete" | "append" | "measure" | "clone" | "abort" | "destroy" | "tokenize", id, payload}
//   out: {kind: "return" | "throw" | "progress" | "chunk" | "event", id, payload}
// The JS side that Python drives (fetching, engines) is runtime.mjs, registered in Pyodide as the
// module `nomoat_js`.

import {named} from "./errors.js";
import {wireError} from "./protocol.js";
import {chooseDevice, createRuntime} from "./runtime.mjs";

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
/** @type {Map<number, {aborted: boolean}>} request id -> its stream */
const streams = new Map();
/** @type {Map<number, number>} session id -> the request id of its latest prompt or append, done here */
const finished = new Map();

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
  const {loadPyodide} = await import(assets.pyodide + "pyodide.mjs");
  py = await loadPyodide({indexURL: assets.pyodide});
  py.registerJsModule("nomoat_js", rt);
  await py.loadPackage(assets.wheels, {messageCallback: () => {}});
  api = py.pyimport("nomoat.worker");
  post("progress", requestId, {stage: "runtime", loaded: 1, total: 1});
}

/**
 * An error as the page gets it: {name, message, ...extra} (protocol.js). Until py/nomoat/worker.py
 * raises JS errors itself, its errors arrive as a PythonError whose text ends in
 * "nomoat-error {name, message, extra}".
 * @param {unknown} e
 */
function errorPayload(e) {
  const wire = wireError(e);
  const m = wire.name === "PythonError" ? /nomoat-error (\{.*\})\s*$/m.exec(wire.message) : null;
  if (!m) return wire;
  const info = JSON.parse(m[1]);
  return wireError(named(info.name, info.message, info.extra));
}

/**
 * A callback Python calls with session events (contextoverflow), posted to request id.
 * @param {number} id
 */
const eventsTo = (id) => (/** @type {any} */ e) => post("event", id, e.toJs ? e.toJs({dict_converter: Object.fromEntries}) : e);

/**
 * Post each piece of a Python async iterator as a chunk until it ends or the request is aborted;
 * then the result (as stats on the AbortError when aborted).
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
      if (state.aborted) break;
      post("chunk", id, piece);
    }
  } finally {
    try {
      await iter.aclose(); // runs the generator's cleanup now (an aborted exchange leaves the history)
    } finally {
      iter.destroy();
      streams.delete(id);
    }
  }
  const stats = result().toJs({dict_converter: Object.fromEntries});
  if (state.aborted) throw named("AbortError", abortMessage, {stats});
  return stats;
}

/** @type {Record<string, (p: any, id: number) => unknown>} */
const handlers = {
  async create(p, id) {
    const choice = await chooseDevice(p.device || "auto");
    if (!runtime) runtime = createRuntime({assets: p.assets, progress: (rid, q) => post("progress", rid, q)});
    const rt = runtime;
    const key = `${p.model}|${choice.device}`;
    if (!loadedModels.has(key)) rt.prefetch(p.model, choice.device, id); // download while Python boots
    if (!bootPromise) bootPromise = boot(p.assets, id, rt);
    await bootPromise;
    post("progress", id, {stage: "init", loaded: 0, total: 1});
    const info = (await api.create(p.model, choice.device, py.toPy(p.options || {}), id)).toJs({dict_converter: Object.fromEntries});
    loadedModels.add(key);
    post("event", id, {type: "device", ...choice, threads: info.threads, crossOriginIsolated: self.crossOriginIsolated});
    post("progress", id, {stage: "init", loaded: 1, total: 1});
    delete info.threads;
    return {...info, device: choice.device, deviceReason: choice.reason};
  },
  async prompt(p, id) {
    finished.delete(p.session);
    const stats = await stream(id, api.prompt_streaming(p.session, py.toPy(p.input), py.toPy(p.options || {}), eventsTo(id)),
      () => api.stats(p.session), "The prompt was aborted.");
    finished.set(p.session, id);
    return stats;
  },
  async complete(p, id) { // OpenAI chat.completions (web/src/openai.js)
    return stream(id, api.complete_streaming(p.session, py.toPy(p.messages), py.toPy(p.options || {}), py.toPy(p.tools || null)),
      () => api.completion(p.session), "The request was aborted.");
  },
  async append(p, id) {
    finished.delete(p.session);
    const usage = await api.append(p.session, py.toPy(p.input), eventsTo(id));
    finished.set(p.session, id);
    return usage;
  },
  async measure(p) {
    return api.measure(p.session, py.toPy(p.input), py.toPy(p.options || {}));
  },
  async clone(p) {
    return (await api.clone(p.session)).toJs({dict_converter: Object.fromEntries});
  },
  // The page has already rejected the call: a stream stops at its next piece; a prompt or append
  // that finished before the abort arrived is dropped from its session's history.
  abort(p) {
    const s = streams.get(p.target);
    if (s) s.aborted = true;
    for (const [session, id] of finished) {
      if (id === p.target) {
        finished.delete(session);
        api.undo_last(session);
      }
    }
    return true;
  },
  destroy(p) {
    finished.delete(p.session);
    api.close_session(p.session);
    return true;
  },
  async tokenize(p) {
    return api.tokenize(p.session, py.toPy(p.texts)).toJs();
  },
};

self.onmessage = async (/** @type {MessageEvent} */ ev) => {
  const {kind, id, payload} = ev.data;
  try {
    const h = handlers[kind];
    if (!h) throw named("TypeError", `Unknown message kind ${kind}`);
    post("return", id, await h(payload, id));
  } catch (e) {
    post("throw", id, errorPayload(e));
  }
};
