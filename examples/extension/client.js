// window.llm for the extension's popup and content scripts: nomoat's own createLLM (web/src/llm.js:
// the same llm.create / availability, LanguageModel sessions, chat.completions, errors), whose
// transport is a chrome.runtime port to the offscreen document (offscreen.js) instead of a worker.
// The port carries the worker's own protocol (web/src/protocol.js), which the offscreen document
// relays to its worker. build.py bundles this module and what it imports into one classic script
// (content scripts cannot be ES modules): popup.html gets window.llm; a content script gets `llm`
// in its isolated world, which the web page's own scripts cannot see.
//
// Functions and signals do not cross extension messaging (JSON), so they stay here, as they stay
// in the page with a worker: a monitor gets a local EventTarget fed by "progress" and "event"
// replies, and an AbortSignal becomes an "abort" message.
import {createLLM} from "../../web/src/llm.js";
import {PendingCalls, fromWire} from "../../web/src/protocol.js";

const HELLO_MS = 10_000;

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
      if (!r || !r.ok) throw fromWire((r && r.error) || {name: "OperationError", message: "nomoat's service worker did not answer."});
      const c = await this._connect();
      if (c.ok) return;
      if (!c.retry || attempt >= 4) throw fromWire(c.error);
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
        this.pending.failAll(new DOMException("The connection to nomoat's back end closed.", "OperationError"));
      });
    });
  }
  // The Transport interface (protocol.js), plus "availability", which the back end answers itself.
  call(kind, payload, hooks = {}) {
    const {id, promise} = this.pending.add(hooks);
    this.open().then(() => this.port.postMessage({kind, id, payload}), (e) => this.pending.fail(id, e));
    // an embed's vectors crossed as a plain list (JSON): the Float32Array embeddings.js reads
    if (kind === "embed") return {id, promise: promise.then((out) => ({...out, vectors: Float32Array.from(out.vectors)}))};
    return {id, promise};
  }
  abort(target) {
    if (this.ready) this.ready.then(() => this.port && this.port.postMessage({kind: "abort", id: 0, payload: {target}}), () => {});
  }
}

const conn = new Connection();
// One port for every device: the back end keeps a worker per device and knows which holds a session.
globalThis.llm = createLLM(chrome.runtime.getURL("nomoat/"), {}, {
  connect: () => conn,
  availability: (options) => conn.call("availability", options).promise, // its cache, not this page's
});
