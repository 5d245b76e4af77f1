// nomoat's back end, in the extension's offscreen document: it runs nomoat's workers (worker.mjs:
// Pyodide, onnxruntime-web, the model) and relays window.llm's own protocol (web/src/protocol.js,
// what a page's llm.js sends its worker) between them and this extension's popup and content
// pages (the popup, the "Ask nomoat" panel), over chrome.runtime ports named "nomoat". client.js is
// the other end.
//
// Per port: {kind: "hello"} or {kind: "reject", payload: {name, message, retry}} on connect; then
// the client's {kind, id, payload} requests go to the worker unchanged but for three fields:
//   id        the client's call id ↔ the worker's (every port numbers its calls from 1)
//   session   the port's own session handle ↔ the worker's session, so sessions belong to the port
//             that created them (another port cannot name them) and are destroyed when it closes
//   assets    always this extension's own runtime files (a client cannot choose code)
// and the worker's replies ("chunk", "progress", "event", "return", "throw") go back under the
// client's id. "availability" is answered here (this extension's cache). Only this extension's
// own pages may connect (trust.js); content scripts may not.
import {WorkerTransport, assetsAt, createLLM} from "./nomoat/llm.js";
import {wireError} from "./nomoat/protocol.js";

const IDLE_MS = 5 * 60 * 1000; // no client for this long: ask the service worker to close us
const MAX_SESSIONS = 16; // per port
const MAX_MESSAGE = 200_000; // characters of JSON per request (the context window refuses far less anyway)
const BASE = new URL("nomoat/", location.href).href;
const RELAYED = new Set(["create", "prompt", "complete", "append", "measure", "clone", "destroy", "tokenize", "embed"]);
const DEVICES = ["auto", "webgpu", "wasm"];

// One worker per device (and wasm engine), shared by every client: the model loads once. A worker
// that stopped (crashed, out of memory) is replaced by a fresh one at the next create.
const workers = new Map();
const live = (key) => workers.has(key) && workers.get(key).failure === null;
const workerFor = (key) => {
  if (!live(key)) workers.set(key, new WorkerTransport(BASE));
  return workers.get(key);
};
// This document's own llm: its default model, assets and cache, for create() checks and availability.
const local = createLLM(BASE, {}, {connect: workerFor});
const ASSETS = assetsAt(BASE);

const clients = new Set();
let closing = false;
let idleTimer = null;

const fail = (name, message) => new DOMException(message, name);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// The worker a create() goes to, and its payload with this extension's assets.
function createRequest(p, assets) {
  if (!DEVICES.includes(p.device)) throw new TypeError(`device must be "auto", "webgpu" or "wasm", got ${JSON.stringify(p.device)}.`);
  const engine = isObject(p.assets) ? p.assets.wasmEngine : undefined;
  if (engine !== undefined && !["nomoat", "ort"].includes(engine)) {
    throw new TypeError(`wasmEngine must be "nomoat" or "ort", got ${JSON.stringify(engine)}.`);
  }
  if (typeof p.model !== "string") throw new TypeError("create's model must be a model package URL.");
  if (!isObject(p.options)) throw new TypeError("create's options must be an object.");
  return {worker: workerFor(engine ? `${p.device}|${engine}` : p.device),
    payload: {...p, assets: engine ? {...assets, wasmEngine: engine} : assets}};
}

// llm.embeddings' "embed" (no session): the worker of its device, with this extension's assets. The
// vectors (a Float32Array) go back as a plain list: the port carries JSON (client.js rebuilds them).
function embedRequest(p, assets) {
  if (typeof p.model !== "string") throw new TypeError("embed's model must be a model package URL.");
  if (!Array.isArray(p.input) || p.input.some((t) => typeof t !== "string")) throw new TypeError("embed's input must be a list of strings.");
  return createRequest({...p, options: isObject(p.options) ? p.options : {}}, assets);
}

function sessionOf(client, p) {
  const s = client.sessions.get(p.session);
  if (!s) throw fail("InvalidStateError", "No such session on this connection (destroyed, or created by another client).");
  return s;
}

function roomFor(client) {
  if (client.sessions.size >= MAX_SESSIONS) throw fail("QuotaExceededError", `At most ${MAX_SESSIONS} sessions per client; destroy one first.`);
}

function ownSession(client, worker, info) {
  const handle = client.nextSession++;
  client.sessions.set(handle, {worker, session: info.session});
  return {...info, session: handle};
}

// Relay one request to its worker; resolves to the reply's payload, in the client's terms.
async function relay(client, kind, id, p) {
  let worker, payload = p, after = (v) => v;
  if (kind === "create") {
    ({worker, payload} = createRequest(p, ASSETS));
    roomFor(client);
    after = (info) => ownSession(client, worker, info);
  } else if (kind === "embed") {
    ({worker, payload} = embedRequest(p, ASSETS));
    after = (out) => ({...out, vectors: Array.from(out.vectors)});
  } else {
    const s = sessionOf(client, p);
    worker = s.worker;
    payload = {...p, session: s.session};
    if (kind === "clone") {
      roomFor(client);
      after = (info) => ownSession(client, worker, info);
    }
    if (kind === "destroy") client.sessions.delete(p.session);
  }
  const call = worker.call(kind, payload, {
    onChunk: (piece) => client.post("chunk", id, piece),
    onProgress: (q) => client.post("progress", id, q),
    onEvent: (e) => client.post("event", id, e),
  });
  client.calls.set(id, {worker, id: call.id});
  try {
    const value = await call.promise;
    if (!client.open && (kind === "create" || kind === "clone")) worker.call("destroy", {session: value.session});
    return after(value);
  } finally {
    client.calls.delete(id);
  }
}

// As a page's llm.availability() says it, for this document: "available" once a worker for the
// device runs (extension files are not kept in the Cache API, which takes http(s) URLs only).
async function availability(p) {
  const device = DEVICES.includes(p.device) ? p.device : "auto";
  if (live(device)) return "available";
  return local.availability({device, model: typeof p.model === "string" ? p.model : undefined});
}

async function handle(client, msg) {
  if (!isObject(msg) || typeof msg.kind !== "string" || !Number.isSafeInteger(msg.id) || msg.id < 0) {
    return; // not our protocol: ignore it
  }
  const {kind, id, payload} = msg;
  if (kind === "abort") {
    const c = isObject(payload) ? client.calls.get(payload.target) : undefined;
    if (c) c.worker.abort(c.id);
    return;
  }
  try {
    if (id === 0 || (kind !== "availability" && !RELAYED.has(kind))) throw new TypeError(`Unknown message kind ${JSON.stringify(kind)}.`);
    if (!isObject(payload)) throw new TypeError(`A ${kind} request needs a payload object.`);
    if (JSON.stringify(payload).length > MAX_MESSAGE) throw fail("QuotaExceededError", `The request is longer than ${MAX_MESSAGE} characters.`);
    const value = kind === "availability" ? await availability(payload) : await relay(client, kind, id, payload);
    client.post("return", id, value);
  } catch (e) {
    client.post("throw", id, wireError(e));
  }
}

function accept(port) {
  const trusted = port.name === "nomoat" && nomoatTrusted(port.sender);
  if (!trusted || closing) {
    try {
      port.postMessage({kind: "reject", id: 0, payload: trusted
        ? {name: "InvalidStateError", message: "nomoat's back end is closing.", retry: true}
        : {name: "SecurityError", message: "nomoat only answers this extension's own pages.", retry: false}});
      port.disconnect();
    } catch (e) {
      // already gone
    }
    return;
  }
  const client = {
    port, open: true, sessions: new Map(), nextSession: 1, calls: new Map(),
    post(k, id, payload) {
      if (!this.open) return;
      try {
        port.postMessage({kind: k, id, payload});
      } catch (e) {
        this.open = false; // the port closed under us; onDisconnect cleans up
      }
    },
  };
  const goodbye = () => {
    client.open = false;
    for (const c of client.calls.values()) c.worker.abort(c.id);
    for (const s of client.sessions.values()) s.worker.call("destroy", {session: s.session}).promise.catch(() => {});
    client.sessions.clear();
    clients.delete(client);
    if (clients.size === 0) {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        if (clients.size > 0) return;
        closing = true; // from now on, new clients are told to retry (and get a fresh document)
        const reopen = () => { closing = false; }; // the service worker did not close us: carry on
        chrome.runtime.sendMessage({type: "nomoat:idle"}).then((r) => (r && r.ok) || reopen(), reopen);
      }, IDLE_MS);
    }
  };
  clients.add(client);
  clearTimeout(idleTimer);
  port.onMessage.addListener((msg) => handle(client, msg));
  port.onDisconnect.addListener(goodbye);
  client.post("hello", 0, {});
  if (!client.open) goodbye(); // it left before we could greet it
}

chrome.runtime.onConnect.addListener(accept);
// Other extensions cannot connect at all (manifest: externally_connectable {ids: []}); should that
// ever change, they meet the same sender check and are refused.
if (chrome.runtime.onConnectExternal) chrome.runtime.onConnectExternal.addListener(accept);
