// The Prompt API's LanguageModel instance, the same for every transport: nomoat.js's dedicated
// worker and the extension's runtime port (examples/extension/client.js). A transport has
// call(kind, payload, hooks) → {id, promise} (hooks.onChunk gets streamed text, hooks.onEvent
// events such as contextoverflow) and abort(id).
// build.mjs puts this file in front of llm.js, and also ships it alone as nomoat-session.js,
// which defines globalThis.NomoatSession for other transports.
//
// Spec: https://webmachinelearning.github.io/prompt-api/ (LanguageModel) and the shared
// writing-assistance-apis algorithms (destroy, aggregated/streaming results, abort signals).

const DOM_NAMES = new Set(["AbortError", "NotSupportedError", "QuotaExceededError", "NotFoundError", "NetworkError",
  "DataError", "InvalidStateError", "OperationError", "SyntaxError", "SecurityError", "NotAllowedError",
  "NotReadableError", "UnknownError"]);

// A {name, message, ...} that crossed a message boundary → the exception a page expects.
function toError(p) {
  let e;
  if (p.name === "TypeError") e = new TypeError(p.message);
  else if (p.name === "RangeError") e = new RangeError(p.message);
  else if (p.name === "QuotaExceededError" && typeof globalThis.QuotaExceededError === "function") {
    e = new globalThis.QuotaExceededError(p.message, {requested: p.requested, quota: p.contextWindow});
  } else if (DOM_NAMES.has(p.name)) e = new DOMException(p.message, p.name);
  else {
    e = new Error(p.message);
    e.name = p.name || "Error";
  }
  for (const k of ["requested", "contextWindow", "stats"]) {
    if (p[k] !== undefined && e[k] === undefined) Object.defineProperty(e, k, {value: p[k], enumerable: true});
  }
  return e;
}

// The calls a transport has sent and awaits, by id. Every transport routes the back end's replies
// ({kind: "chunk" | "progress" | "event" | "return" | "throw", id, payload}) through one of these.
class PendingCalls {
  constructor() {
    this.next = 1;
    this.calls = new Map(); // id -> {resolve, reject, onChunk, onProgress, onEvent}
  }
  add(hooks = {}) {
    const id = this.next++;
    const promise = new Promise((resolve, reject) => this.calls.set(id, {resolve, reject, ...hooks}));
    return {id, promise};
  }
  receive({kind, id, payload}) {
    const p = this.calls.get(id);
    if (!p) return;
    if (kind === "chunk") p.onChunk && p.onChunk(payload);
    else if (kind === "progress") p.onProgress && p.onProgress(payload);
    else if (kind === "event") p.onEvent && p.onEvent(payload);
    else if (kind === "return" || kind === "throw") {
      this.calls.delete(id);
      if (kind === "return") p.resolve(payload);
      else p.reject(toError(payload));
    }
  }
  fail(id, error) {
    const p = this.calls.get(id);
    this.calls.delete(id);
    if (p) p.reject(error);
  }
  failAll(error) {
    for (const p of this.calls.values()) p.reject(error);
    this.calls.clear();
  }
}

function abortReason(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException("The operation was aborted.", "AbortError");
}

const ROLES = new Set(["system", "user", "assistant"]);
const CONTENT_TYPES = new Set(["text", "image", "audio", "tool-call", "tool-response"]);

function domString(v, what) { // WebIDL DOMString conversion
  if (typeof v === "symbol") throw new TypeError(`${what} must be a string, got a Symbol.`);
  return String(v);
}

const iterable = (v) => v !== null && typeof v === "object" && typeof v[Symbol.iterator] === "function";

// The spec's "validate and canonicalize a prompt" for nomoat's text-only models: returns
// [{role, content: string, prefix}] (contiguous text parts joined, as the spec collapses them).
function canonicalPrompt(input, hasAppendedInput) {
  if (!iterable(input)) return [{role: "user", content: domString(input, "The prompt"), prefix: false}];
  const list = Array.from(input);
  if (list.length === 0) return [{role: "user", content: "", prefix: false}];
  return list.map((m, i) => {
    const at = `Message ${i}`;
    if (m === null || typeof m !== "object") throw new TypeError(`${at} must be an object {role, content}.`);
    if (m.role === undefined) throw new TypeError(`${at} has no role ("system", "user" or "assistant").`);
    const role = domString(m.role, `${at}'s role`);
    if (!ROLES.has(role)) throw new TypeError(`${at}'s role "${role}" is not one of "system", "user", "assistant".`);
    if (m.content === undefined) throw new TypeError(`${at} has no content.`);
    const prefix = Boolean(m.prefix);
    if (prefix && role !== "assistant") {
      throw new DOMException(`${at} has prefix: true, which only an assistant message may have.`, "SyntaxError");
    }
    if (prefix && i !== list.length - 1) {
      throw new DOMException(`${at} has prefix: true but is not the last message.`, "SyntaxError");
    }
    if (role === "system" && (hasAppendedInput || i > 0)) {
      throw new TypeError(`${at} is a system message; a system message must come first in the conversation ` +
        "(pass it in initialPrompts or as the first message of the first prompt).");
    }
    const parts = typeof m.content !== "string" && iterable(m.content) ? Array.from(m.content)
      : [{type: "text", value: domString(m.content, `${at}'s content`)}];
    let text = "";
    for (const c of parts) {
      if (c === null || typeof c !== "object" || c.type === undefined || c.value === undefined) {
        throw new TypeError(`${at}'s content items must be objects {type, value}.`);
      }
      const type = domString(c.type, "A content type");
      if (!CONTENT_TYPES.has(type)) throw new TypeError(`"${type}" is not a LanguageModelMessageType.`);
      if (type !== "text") {
        throw new DOMException(`${at} has ${type} content; nomoat's models take text only ` +
          "(create the session without expecting other inputs, and send text).", "NotSupportedError");
      }
      if (typeof c.value !== "string") throw new TypeError(`${at}'s text content value must be a string.`);
      text += c.value;
    }
    return {role, content: text, prefix};
  });
}

// What goes over the wire: a single user turn as a plain string (every transport takes that),
// anything else as the message list.
const toWire = (msgs) => (msgs.length === 1 && msgs[0].role === "user" && !msgs[0].prefix ? msgs[0].content : msgs);

function optionsDict(options, method) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" && typeof options !== "function") {
    throw new TypeError(`${method}'s options must be an object.`);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError(`${method}'s options.signal must be an AbortSignal.`);
  }
  return options;
}

function checkConstraint(o, method) {
  const rc = o.responseConstraint;
  if (rc !== undefined && (rc === null || typeof rc !== "object")) {
    throw new TypeError(`${method}: responseConstraint must be a JSON Schema object or a RegExp.`);
  }
  if (o.omitResponseConstraintInput && rc === undefined) {
    throw new TypeError(`${method}: omitResponseConstraintInput needs a responseConstraint.`);
  }
}

// info: {session, device, deviceReason, contextWindow, contextUsage}; wireOptions(options) picks
// the per-call options the transport's back end takes; settings: the resolved create() options
// (topK, temperature, samplingMode, expectedInputs, expectedOutputs). A prompt's reply is its
// stats (nomoat extension: token ids, counts, ttft, prefill/decode tokens/s, context_usage).
class LanguageModelSession extends EventTarget {
  constructor(transport, info, wireOptions, settings = {}) {
    super();
    this._transport = transport;
    this._id = info.session;
    this._wireOptions = wireOptions;
    this._settings = settings;
    this._info = info;
    this._destroyer = new AbortController(); // the spec's destruction abort controller
    this._queue = Promise.resolve(); // prompts, appends and clones run in call order
    this._handlers = {};
    this._window = info.contextWindow;
    this._usage = info.contextUsage;
    this.device = info.device;
    this.deviceReason = info.deviceReason;
    this.lastStats = null;
  }
  get contextWindow() { return this._window; }
  get contextUsage() { return this._usage; }
  get inputQuota() { return this._window; } // deprecated names (extension contexts in Chrome)
  get inputUsage() { return this._usage; }
  get topK() { return this._settings.topK; }
  get temperature() { return this._settings.temperature; }
  get samplingMode() { return this._settings.samplingMode; }
  get expectedInputs() { return this._settings.expectedInputs; }
  get expectedOutputs() { return this._settings.expectedOutputs; }
  get oncontextoverflow() { return this._handlers.contextoverflow || null; }
  set oncontextoverflow(f) { this._setHandler("contextoverflow", f); }
  get onquotaoverflow() { return this._handlers.quotaoverflow || null; }
  set onquotaoverflow(f) { this._setHandler("quotaoverflow", f); }
  _setHandler(type, f) {
    if (this._handlers[type]) this.removeEventListener(type, this._handlers[type]);
    this._handlers[type] = typeof f === "function" ? f : null;
    if (this._handlers[type]) this.addEventListener(type, this._handlers[type]);
  }
  _signal(options) { // the composite of destroy() and the call's own signal
    const own = options.signal;
    return own ? AbortSignal.any([this._destroyer.signal, own]) : this._destroyer.signal;
  }
  _onEvent(e) {
    if (e.type === "contextoverflow") {
      this.dispatchEvent(new Event("contextoverflow"));
      this.dispatchEvent(new Event("quotaoverflow"));
    }
  }
  // Run one back-end call in order after the earlier ones. Aborted while queued: it never runs;
  // aborted while running: the back end is told to stop (and drops the unfinished exchange).
  _op(kind, payload, signal, {queued = true, onChunk = null} = {}) {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      let id = null, settled = false;
      const finish = (f, v) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        f(v);
      };
      const onAbort = () => {
        if (id !== null) this._transport.abort(id);
        finish(reject, abortReason(signal));
      };
      signal.addEventListener("abort", onAbort, {once: true});
      const run = () => {
        if (settled) return undefined;
        const call = this._transport.call(kind, payload, {
          onChunk: (piece) => !settled && onChunk && onChunk(piece),
          onEvent: (e) => this._onEvent(e),
        });
        id = call.id;
        return call.promise.then((v) => finish(resolve, v), (e) => {
          if (e.stats) this._keep(e.stats);
          finish(reject, e);
        });
      };
      if (!queued) run();
      else this._queue = this._queue.then(run, run);
    });
  }
  _keep(stats) {
    this.lastStats = stats;
    if (stats.context_usage !== undefined) this._usage = stats.context_usage;
  }
  async _prompt(input, options, signal, onChunk) {
    checkConstraint(options, "prompt");
    const msgs = canonicalPrompt(input, this._usage > 0);
    const stats = await this._op("prompt", {session: this._id, input: toWire(msgs), options: this._wireOptions(options)},
      signal, {onChunk});
    this._keep(stats);
    return stats;
  }
  prompt(input, options = {}) {
    if (arguments.length === 0) return Promise.reject(new TypeError("prompt() needs an input."));
    let signal;
    try {
      options = optionsDict(options, "prompt");
      signal = this._signal(options);
    } catch (e) {
      return Promise.reject(e);
    }
    if (signal.aborted) return Promise.reject(abortReason(signal));
    let text = "";
    return this._prompt(input, options, signal, (piece) => { text += piece; }).then(() => text);
  }
  promptStreaming(input, options = {}) {
    if (arguments.length === 0) throw new TypeError("promptStreaming() needs an input.");
    options = optionsDict(options, "promptStreaming");
    const outer = this._signal(options);
    if (outer.aborted) throw abortReason(outer);
    const cancel = new AbortController(); // stream.cancel(): stop producing, not an error
    const signal = AbortSignal.any([outer, cancel.signal]);
    let controller, cancelled = false;
    const stream = new ReadableStream({
      start: (c) => { controller = c; },
      cancel: () => {
        cancelled = true;
        cancel.abort(new DOMException("The stream was cancelled.", "AbortError"));
      },
    });
    this._prompt(input, options, signal, (piece) => !cancelled && controller.enqueue(piece))
      .then(() => !cancelled && controller.close(), (e) => !cancelled && controller.error(e));
    return stream;
  }
  append(input, options = {}) {
    if (arguments.length === 0) return Promise.reject(new TypeError("append() needs an input."));
    return (async () => {
      options = optionsDict(options, "append");
      const signal = this._signal(options);
      if (signal.aborted) throw abortReason(signal);
      const msgs = canonicalPrompt(input, this._usage > 0);
      this._usage = await this._op("append", {session: this._id, input: toWire(msgs)}, signal);
    })();
  }
  measureContextUsage(input, options = {}) {
    if (arguments.length === 0) return Promise.reject(new TypeError("measureContextUsage() needs an input."));
    return (async () => {
      options = optionsDict(options, "measureContextUsage");
      checkConstraint(options, "measureContextUsage");
      const signal = this._signal(options);
      if (signal.aborted) throw abortReason(signal);
      const msgs = canonicalPrompt(input, this._usage > 0);
      const wire = this._wireOptions(options);
      const only = {};
      for (const k of ["response_constraint", "omit_response_constraint_input"]) if (wire[k] !== undefined) only[k] = wire[k];
      return this._op("measure", {session: this._id, input: toWire(msgs), options: only}, signal, {queued: false});
    })();
  }
  measureInputUsage(input, options = {}) { // deprecated name
    return this.measureContextUsage(input, options);
  }
  clone(options = {}) {
    return (async () => {
      options = optionsDict(options, "clone");
      const signal = this._signal(options);
      if (signal.aborted) throw abortReason(signal);
      const info = await this._op("clone", {session: this._id}, signal);
      const args = [this._transport, {...this._info, session: info.session, contextWindow: info.context_window,
        contextUsage: info.context_usage}, this._wireOptions, this._settings];
      const copy = this._make ? this._make(...args) : new this.constructor(...args);
      return copy;
    })();
  }
  async tokenize(texts) { // nomoat extension, used by the tests: the back end's token ids
    return this._transport.call("tokenize", {session: this._id, texts}).promise;
  }
  destroy(reason) {
    if (this._destroyer.signal.aborted) return;
    this._destroyer.abort(reason !== undefined ? reason : new DOMException("The session was destroyed.", "AbortError"));
    this._queue.then(() => this._transport.call("destroy", {session: this._id}).promise).catch(() => {});
  }
}
