// window.llm for the extension's popup and content scripts: the same calls as nomoat.js
// (llm.create / availability, session.prompt / promptStreaming / destroy), answered by the model in
// the offscreen document (offscreen.js) over a chrome.runtime port. Loaded as a classic script:
// popup.html gets window.llm; a content script gets `llm` in its isolated world, which the web
// page's own scripts cannot see.
//
// Functions and signals do not cross extension messaging, so they stay here: a monitor callback
// gets a local EventTarget that re-dispatches the back end's events, and an AbortSignal becomes an
// "abort" message.
(function () {
  "use strict";
  const SAMPLING_KEYS = ["temperature", "topK", "topP", "minP", "repetitionPenalty", "seed", "maxTokens", "stop"];
  const HELLO_MS = 10_000;
  const CREATE_KEYS = [...SAMPLING_KEYS, "device", "model", "systemPrompt", "initialPrompts"];

  // The Prompt-API session, the pending-call routing, toError and abortReason are nomoat's own
  // (web/src/session.js, shipped as nomoat/nomoat-session.js and loaded before this file); this
  // file is only the transport.
  const {LanguageModelSession, PendingCalls, toError, abortReason} = globalThis.NomoatSession;
  const wireOptions = (options) => {
    const out = {};
    for (const k of SAMPLING_KEYS) if (options[k] !== undefined) out[k] = options[k];
    // A RegExp does not survive extension messaging (JSON): it travels as {regex, flags}.
    const rc = options.responseConstraint;
    if (rc !== undefined) out.responseConstraint = rc instanceof RegExp ? {regex: rc.source, flags: rc.flags} : rc;
    if (options.omitResponseConstraintInput !== undefined) out.omitResponseConstraintInput = Boolean(options.omitResponseConstraintInput);
    return out;
  };

  // The port to the back end, opened on first use; reopened (new sessions needed) if it closes.
  class Connection {
    constructor() {
      this.port = null;
      this.ready = null;
      this.pending = new PendingCalls();
    }
    open() {
      if (!this.ready) this.ready = this._open().catch((e) => { this.ready = null; throw e; });
      return this.ready;
    }
    async _open() {
      for (let attempt = 1; ; attempt++) {
        let r;
        try {
          r = await chrome.runtime.sendMessage({type: "nomoat:ensure"});
        } catch (e) {
          r = {ok: false, error: {name: "OperationError", message: `nomoat's service worker is not reachable: ${e.message}`}};
        }
        if (!r || !r.ok) throw toError((r && r.error) || {name: "OperationError", message: "nomoat's service worker did not answer."});
        const c = await this._connect();
        if (c.ok) return;
        if (!c.retry || attempt >= 4) throw toError(c.error);
        await new Promise((res) => setTimeout(res, 100 * attempt));
      }
    }
    _connect() {
      return new Promise((resolve) => {
        const port = chrome.runtime.connect({name: "nomoat"});
        let hello = false;
        const timer = setTimeout(() => { // the back end neither greeted nor refused us
          if (hello) return;
          port.disconnect();
          resolve({ok: false, retry: true, error: {name: "OperationError", message: "nomoat's back end did not answer."}});
        }, HELLO_MS);
        port.onMessage.addListener((m) => {
          if (hello) return this.pending.receive(m);
          if (m && m.kind === "hello") {
            clearTimeout(timer);
            hello = true;
            this.port = port;
            resolve({ok: true});
          } else if (m && m.kind === "reject") {
            clearTimeout(timer);
            resolve({ok: false, retry: !!m.payload.retry, error: m.payload});
          }
        });
        port.onDisconnect.addListener(() => {
          const why = chrome.runtime.lastError; // read it, or Chrome logs it as unchecked
          if (!hello) {
            clearTimeout(timer);
            resolve({ok: false, retry: true, error: {name: "OperationError",
              message: "nomoat's back end is not reachable" + (why ? `: ${why.message}` : ".")}});
            return;
          }
          if (this.port === port) {
            this.port = null;
            this.ready = null;
          }
          const err = new DOMException("The connection to nomoat's back end closed.", "OperationError");
          this.pending.failAll(err);
        });
      });
    }
    call(kind, payload, hooks = {}) {
      const {id, promise} = this.pending.add(hooks);
      this.open().then(() => this.port.postMessage({kind, id, payload}), (e) => this.pending.fail(id, e));
      return {id, promise};
    }
    abort(target) {
      if (this.ready) this.ready.then(() => this.port && this.port.postMessage({kind: "abort", id: 0, payload: {target}}), () => {});
    }
  }
  const conn = new Connection();

  async function create(options = {}) {
    const signal = options.signal;
    if (signal && signal.aborted) throw abortReason(signal);
    const monitor = new EventTarget();
    if (typeof options.monitor === "function") options.monitor(monitor);
    const sent = {};
    for (const k of CREATE_KEYS) if (options[k] !== undefined) sent[k] = options[k];
    if (sent.model !== undefined) sent.model = new URL(sent.model, location.href).href;
    const onEvent = (e) => monitor.dispatchEvent(e.type === "downloadprogress"
      ? new ProgressEvent(e.type, {loaded: e.loaded, total: e.total})
      : new CustomEvent(e.type, {detail: e.detail}));
    const {id, promise} = conn.call("create", {options: sent}, {onEvent});
    let info;
    if (signal) {
      const onAbort = () => conn.abort(id);
      signal.addEventListener("abort", onAbort, {once: true});
      const aborted = new Promise((_, reject) => signal.addEventListener("abort", () => reject(abortReason(signal)), {once: true}));
      aborted.catch(() => {}); // an abort after create() resolved is nobody's error
      try {
        info = await Promise.race([promise, aborted]);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    } else {
      info = await promise;
    }
    return new LanguageModelSession(conn, info, wireOptions);
  }

  async function availability(options = {}) {
    return conn.call("availability", {device: options.device || "auto"}).promise;
  }

  globalThis.llm = {create, availability, version: "0.1.0"};
})();
