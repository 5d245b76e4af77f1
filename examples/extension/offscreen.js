// nomoat's back end, in the extension's offscreen document: window.llm (nomoat.js) hosts the model
// (its module Worker runs Pyodide and onnxruntime-web) and serves it to this extension's popup and
// content scripts over chrome.runtime ports named "nomoat". client.js is the other end.
//
// Protocol, one port per client; every message is {kind, id, payload} (JSON: extension messaging
// serialises to JSON, so no typed arrays, functions or signals cross):
//   back end → client on connect: {kind: "hello"} or {kind: "reject", payload: {name, message, retry}}
//   client → back end: kind "availability" | "create" | "prompt" | "abort" | "destroy"
//     create  {options}                         → return {session, device, deviceReason, contextWindow, contextUsage}
//     prompt  {session, input, options}         → chunk* (text pieces), then return stats
//     abort   {target: <id of a create/prompt>} (no reply)
//     destroy {session}                         → return true
//   back end → client: "return" | "throw" ({name, message, ...}) | "chunk" | "event" (monitor events)
// Sessions belong to the port that created them: another port cannot name them, and they are
// destroyed when their port closes (the popup closes, the tab navigates).

const IDLE_MS = 5 * 60 * 1000; // no client for this long: ask the service worker to close us
const MAX_SESSIONS = 16; // per port
const MAX_INPUT = 100_000; // characters per prompt (the context window refuses far less anyway)
const NUMBER_OPTIONS = ["temperature", "topK", "topP", "minP", "repetitionPenalty", "seed", "maxTokens"];

const clients = new Set();
let closing = false;
let idleTimer = null;

function typeError(message) {
  return Object.assign(new TypeError(message), {name: "TypeError"});
}

function named(name, message) {
  return new DOMException(message, name);
}

function errorPayload(e) {
  const out = {name: (e && e.name) || "Error", message: (e && e.message) || String(e)};
  for (const k of ["requested", "contextWindow", "stats"]) if (e && e[k] !== undefined) out[k] = e[k];
  return out;
}

// Sampling options: only known keys, only numbers (and strings for stop).
// responseConstraint: a JSON Schema object, or a RegExp sent as {regex, flags} (client.js).
function constraintOptions(o) {
  const out = {};
  const rc = o.responseConstraint;
  if (rc !== undefined) {
    if (rc === null || typeof rc !== "object") throw typeError("responseConstraint must be a JSON Schema object or a RegExp.");
    out.responseConstraint = typeof rc.regex === "string" ? new RegExp(rc.regex, typeof rc.flags === "string" ? rc.flags : "") : rc;
  }
  if (o.omitResponseConstraintInput !== undefined) out.omitResponseConstraintInput = Boolean(o.omitResponseConstraintInput);
  return out;
}

function samplingOptions(o) {
  const out = {};
  for (const k of NUMBER_OPTIONS) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== "number" || !Number.isFinite(o[k])) throw typeError(`${k} must be a finite number.`);
    out[k] = o[k];
  }
  if (o.stop !== undefined) {
    const stop = typeof o.stop === "string" ? [o.stop] : o.stop;
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string")) throw typeError("stop must be a string or a list of strings.");
    out.stop = stop;
  }
  return out;
}

function createOptions(o, client) {
  if (!o || typeof o !== "object" || Array.isArray(o)) throw typeError("create() takes an options object.");
  const out = samplingOptions(o);
  if (o.device !== undefined) {
    if (!["auto", "webgpu", "wasm"].includes(o.device)) throw typeError(`device must be "auto", "webgpu" or "wasm", got ${JSON.stringify(o.device)}.`);
    out.device = o.device;
  }
  if (o.model !== undefined) {
    if (client.kind !== "page") throw named("NotAllowedError", "Content scripts use the extension's own model; they cannot choose a model URL.");
    if (typeof o.model !== "string") throw typeError("model must be a URL string.");
    out.model = o.model;
  }
  if (o.systemPrompt !== undefined) {
    if (typeof o.systemPrompt !== "string") throw typeError("systemPrompt must be a string.");
    out.systemPrompt = o.systemPrompt;
  }
  if (o.initialPrompts !== undefined) {
    const ok = Array.isArray(o.initialPrompts) && o.initialPrompts.every((m) => m && ["system", "user", "assistant"].includes(m.role) && typeof m.content === "string");
    if (!ok) throw typeError("initialPrompts must be a list of {role: 'system' | 'user' | 'assistant', content: string}.");
    out.initialPrompts = o.initialPrompts.map((m) => ({role: m.role, content: m.content}));
  }
  return out;
}

function sessionOf(client, p) {
  const s = p && typeof p.session === "string" ? client.sessions.get(p.session) : undefined;
  if (!s) throw named("InvalidStateError", "No such session on this connection (destroyed, or created by another client).");
  return s;
}

function stripped(stats) {
  return stats ? JSON.parse(JSON.stringify(stats)) : null;
}

const handlers = {
  async availability(client, p) {
    return llm.availability({device: p && p.device});
  },

  async create(client, p, id, signal) {
    const options = createOptions(p && p.options, client);
    if (client.sessions.size >= MAX_SESSIONS) throw named("QuotaExceededError", `At most ${MAX_SESSIONS} sessions per client; destroy one first.`);
    const session = await llm.create({
      ...options,
      signal,
      monitor(m) { // forward every monitor event (downloadprogress, nomoatprogress, nomoatdevice) to the client
        const dispatch = m.dispatchEvent.bind(m);
        m.dispatchEvent = (ev) => {
          const e = {type: ev.type};
          if (ev.type === "downloadprogress") Object.assign(e, {loaded: ev.loaded, total: ev.total});
          if (ev.detail !== undefined) e.detail = ev.detail;
          client.post("event", id, e);
          return dispatch(ev);
        };
      },
    });
    if (!client.open) {
      session.destroy();
      throw named("AbortError", "The client went away.");
    }
    const sid = crypto.randomUUID();
    client.sessions.set(sid, session);
    return {session: sid, device: session.device, deviceReason: session.deviceReason,
            contextWindow: session.contextWindow, contextUsage: session.contextUsage};
  },

  async prompt(client, p, id, signal) {
    const session = sessionOf(client, p);
    if (typeof p.input !== "string") throw typeError("nomoat takes text prompts (a string).");
    if (p.input.length > MAX_INPUT) throw named("QuotaExceededError", `The prompt is longer than ${MAX_INPUT} characters.`);
    const reader = session.promptStreaming(p.input, {...samplingOptions(p.options || {}), ...constraintOptions(p.options || {}),
      signal}).getReader();
    try {
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        client.post("chunk", id, value);
      }
    } catch (e) {
      e.stats = stripped(session.lastStats);
      throw e;
    }
    return stripped(session.lastStats); // includes context_usage
  },

  abort(client, p) {
    const c = p ? client.calls.get(p.target) : undefined;
    if (c) c.abort(named("AbortError", "The operation was aborted."));
  },

  async destroy(client, p) {
    const s = sessionOf(client, p);
    client.sessions.delete(p.session);
    s.destroy();
    return true;
  },
};

async function handle(client, msg) {
  if (!msg || typeof msg !== "object" || typeof msg.kind !== "string" || !Number.isSafeInteger(msg.id) || msg.id < 0) {
    return; // not our protocol: ignore it
  }
  const {kind, id, payload} = msg;
  if (kind === "abort") return handlers.abort(client, payload);
  if (!Object.hasOwn(handlers, kind) || id === 0) {
    client.post("throw", id, {name: "TypeError", message: `Unknown message kind ${JSON.stringify(kind)}.`});
    return;
  }
  const controller = new AbortController();
  client.calls.set(id, controller);
  try {
    client.post("return", id, await handlers[kind](client, payload, id, controller.signal));
  } catch (e) {
    client.post("throw", id, errorPayload(e));
  } finally {
    client.calls.delete(id);
  }
}

async function accept(port) {
  let kind = null;
  try {
    kind = port.name === "nomoat" ? nomoatSenderKind(port.sender, await NOMOAT_MATCHES) : null;
  } catch (e) {
    kind = null; // fail closed
  }
  if (!kind || closing) {
    try {
      port.postMessage({kind: "reject", id: 0, payload: closing && kind
        ? {name: "InvalidStateError", message: "nomoat's back end is closing.", retry: true}
        : {name: "SecurityError", message: "nomoat only answers this extension's pages and content scripts.", retry: false}});
      port.disconnect();
    } catch (e) {
      // already gone
    }
    return;
  }
  const client = {
    port, kind, open: true, sessions: new Map(), calls: new Map(),
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
    for (const c of client.calls.values()) c.abort(named("AbortError", "The client went away."));
    for (const s of client.sessions.values()) s.destroy();
    client.sessions.clear();
    clients.delete(client);
    if (clients.size === 0) {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        if (clients.size > 0) return;
        closing = true; // from now on, new clients are told to retry (and get a fresh document)
        const reopen = () => { closing = false; }; // the service worker did not close us: carry on
        chrome.runtime.sendMessage({type: "nomoat:idle"}).then((r) => r && r.ok || reopen(), reopen);
      }, IDLE_MS);
    }
  };
  clients.add(client);
  clearTimeout(idleTimer);
  port.onMessage.addListener((msg) => handle(client, msg));
  port.onDisconnect.addListener(goodbye);
  client.post("hello", 0, {version: llm.version, kind});
  if (!client.open) goodbye(); // it left while we were checking it
}

chrome.runtime.onConnect.addListener(accept);
// Other extensions cannot connect at all (manifest: externally_connectable {ids: []}); should that
// ever change, they meet the same sender check and are refused.
if (chrome.runtime.onConnectExternal) chrome.runtime.onConnectExternal.addListener(accept);
