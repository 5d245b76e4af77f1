// The Prompt-API-shaped session, the same for every transport: nomoat.js's dedicated worker and
// the extension's runtime port (examples/extension/client.js). A transport has
// call(kind, payload, hooks) → {id, promise} (hooks.onChunk gets streamed text) and abort(id).
// build.mjs puts this file in front of llm.js, and also ships it alone as nomoat-session.js,
// which defines globalThis.NomoatSession for other transports.

const DOM_NAMES = new Set(["AbortError", "NotSupportedError", "QuotaExceededError", "NotFoundError", "NetworkError",
  "DataError", "InvalidStateError", "OperationError", "SyntaxError", "SecurityError", "NotAllowedError"]);

// A {name, message, ...} that crossed a message boundary → the exception a page expects.
function toError(p) {
  let e;
  if (p.name === "TypeError") e = new TypeError(p.message);
  else if (DOM_NAMES.has(p.name)) e = new DOMException(p.message, p.name);
  else {
    e = new Error(p.message);
    e.name = p.name || "Error";
  }
  for (const k of ["requested", "contextWindow", "stats"]) if (p[k] !== undefined) e[k] = p[k];
  return e;
}

function abortReason(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException("The operation was aborted.", "AbortError");
}

// info: {session, device, deviceReason, contextWindow, contextUsage}; wireOptions(options) picks
// the per-call options the transport's back end takes. A prompt's reply is its stats (nomoat
// extension: token ids, counts, ttft, prefill/decode tokens/s, context_usage).
class LanguageModelSession {
  constructor(transport, info, wireOptions) {
    this._transport = transport;
    this._id = info.session;
    this._wireOptions = wireOptions;
    this._destroyed = false;
    this.device = info.device;
    this.deviceReason = info.deviceReason;
    this.contextWindow = info.contextWindow;
    this.contextUsage = info.contextUsage;
    this.lastStats = null;
  }
  _run(input, options, onChunk) {
    if (this._destroyed) return Promise.reject(new DOMException("The session was destroyed.", "AbortError"));
    if (typeof input !== "string") return Promise.reject(new TypeError("nomoat takes text prompts (a string)."));
    const signal = options.signal;
    if (signal && signal.aborted) return Promise.reject(abortReason(signal));
    const {id, promise} = this._transport.call("prompt",
      {session: this._id, input, options: this._wireOptions(options)}, {onChunk});
    const onAbort = () => this._transport.abort(id);
    if (signal) signal.addEventListener("abort", onAbort, {once: true});
    const keep = (stats) => {
      this.lastStats = stats;
      this.contextUsage = stats.context_usage;
    };
    return promise.then((stats) => {
      keep(stats);
      return stats;
    }, (e) => {
      if (e.stats) keep(e.stats);
      throw (e.name === "AbortError" && signal && signal.aborted) ? abortReason(signal) : e;
    }).finally(() => signal && signal.removeEventListener("abort", onAbort));
  }
  async prompt(input, options = {}) {
    let text = "";
    await this._run(input, options, (piece) => { text += piece; });
    return text;
  }
  promptStreaming(input, options = {}) {
    let cancelled = false;
    const inner = new AbortController();
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) inner.abort(abortReason(outer));
      else outer.addEventListener("abort", () => inner.abort(abortReason(outer)), {once: true});
    }
    return new ReadableStream({
      start: (c) => {
        this._run(input, {...options, signal: inner.signal}, (piece) => !cancelled && c.enqueue(piece))
          .then(() => !cancelled && c.close(), (e) => !cancelled && c.error(e));
      },
      cancel: () => {
        cancelled = true;
        inner.abort(new DOMException("The stream was cancelled.", "AbortError"));
      },
    });
  }
  async tokenize(texts) { // nomoat extension, used by the tests: the back end's token ids
    return this._transport.call("tokenize", {session: this._id, texts}).promise;
  }
  destroy() {
    if (this._destroyed) return;
    this._destroyed = true;
    this._transport.call("destroy", {session: this._id}).promise.catch(() => {});
  }
}
