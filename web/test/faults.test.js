// Faults of the worker (llm.js WorkerTransport) over a fake Worker and a fake LockManager: a worker
// that dies, hangs, throws, sends an unreadable reply or whose Python fails fatally rejects its
// calls with a named OperationError, at once and for good, and createLLM starts a fresh one.
import assert from "node:assert/strict";
import {test} from "node:test";
import {PendingCalls} from "../src/protocol.js";
import {LanguageModelSession} from "../src/session.js";
import {WorkerTransport, createLLM} from "../src/llm.js";
import {settle} from "./fake_transport.js";

// Web Locks as the browser keeps them: a request waits until the holder lets go.
class FakeLocks {
  constructor() {
    /** @type {Map<string, (() => void)[]>} name -> waiters, while held */
    this.held = new Map();
  }
  /** @param {string} name */
  hold(name) {
    this.held.set(name, []);
  }
  /** @param {string} name */
  release(name) {
    const waiters = this.held.get(name) || [];
    this.held.delete(name);
    for (const w of waiters) w();
  }
  /** @param {string} name @param {() => unknown} cb */
  request(name, cb) {
    return new Promise((resolve) => {
      const run = () => resolve(cb());
      if (this.held.has(name)) this.held.get(name).push(run);
      else queueMicrotask(run);
    });
  }
}

// A dedicated worker's page side, driven by the test: `sent` what the page posted; the worker takes
// the lock it is asked to hold (unless `silent`), and answers pings unless `hung`.
class FakeWorker {
  /** @param {FakeLocks | null} locks */
  constructor(locks) {
    this.locks = locks;
    /** @type {any[]} */
    this.sent = [];
    this.terminated = false;
    this.hung = false;
    /** @type {string | null} */
    this.lock = null;
    /** @type {((ev: any) => void) | null} */ this.onmessage = null;
    /** @type {((ev: any) => void) | null} */ this.onerror = null;
    /** @type {((ev: any) => void) | null} */ this.onmessageerror = null;
  }
  /** @param {any} msg */
  postMessage(msg) {
    if (this.terminated) return;
    this.sent.push(msg);
    if (msg.kind === "live" && this.locks) {
      this.lock = msg.payload.lock;
      this.locks.hold(this.lock);
      queueMicrotask(() => this.reply({kind: "live", id: 0, payload: null}));
    }
    if (msg.kind === "ping" && !this.hung) queueMicrotask(() => this.reply({kind: "pong", id: 0, payload: null}));
  }
  /** @param {any} data */
  reply(data) {
    if (!this.terminated) this.onmessage?.({data});
  }
  /** The worker's thread ends (killed, closed, out of memory): its lock is freed, nothing is sent. */
  die() {
    this.terminated = true;
    if (this.lock) this.locks?.release(this.lock);
  }
  terminate() {
    this.die();
  }
  /** The calls posted (no liveness messages). */
  calls() {
    return this.sent.filter((m) => !["live", "ping", "abort"].includes(m.kind));
  }
}

// Node has no ProgressEvent (create() fires downloadprogress 0 and 1 even with nothing to download).
globalThis.ProgressEvent ??= /** @type {any} */ (class extends Event {
  /** @param {string} type @param {{loaded?: number, total?: number, lengthComputable?: boolean}} [init] */
  constructor(type, init = {}) {
    super(type);
    Object.assign(this, {loaded: 0, total: 0, lengthComputable: false, ...init});
  }
});

const BASE = "http://localhost/";
const transport = (options = {}) => {
  const locks = new FakeLocks();
  const worker = new FakeWorker(options.locks === null ? null : locks);
  const t = new WorkerTransport(BASE, {worker: /** @type {any} */ (worker), locks: options.locks === null ? null : /** @type {any} */ (locks), ...options});
  return {t, worker, locks};
};
const INFO = {session: 1, device: "wasm", deviceReason: "asked", contextWindow: 512, contextUsage: 0};
/** @param {unknown} e */
const named = (e, pattern) => e instanceof DOMException && e.name === "OperationError" && pattern.test(e.message);

test("a worker that dies mid-answer (its lock freed) rejects pending calls, then every later call at once", async () => {
  const {t, worker} = transport();
  await settle(); // the worker holds its lock
  const s = new LanguageModelSession(t, {...INFO});
  const chunks = [];
  const answer = s.promptStreaming("a long story");
  const reader = answer.getReader();
  await settle();
  const [call] = worker.calls();
  worker.reply({kind: "chunk", id: call.id, payload: "Once"});
  chunks.push((await reader.read()).value);
  const queued = s.prompt("next"); // waits behind the stream
  worker.die();
  await assert.rejects(reader.read(), (e) => named(e, /nomoat's worker stopped \(it was terminated, or it crashed: it may have run out of memory\); its sessions are gone: create a new one\./));
  await assert.rejects(queued, (e) => e === t.failure);
  assert.deepEqual(chunks, ["Once"]);
  const posted = worker.sent.length;
  await assert.rejects(s.prompt("again"), (e) => e === t.failure); // the session is broken: at once
  await assert.rejects(s.append("more"), (e) => e === t.failure);
  assert.equal(worker.sent.length, posted); // nothing more was sent to the dead worker
  assert.ok(worker.terminated);
  s.destroy(); // no unhandled rejection
});

test("a busy worker is pinged; one silent past hungMs is stopped and its calls rejected; an idle one is not pinged", async () => {
  const {t, worker} = transport({locks: null, pingMs: 5, hungMs: 40});
  const first = t.call("measure", {session: 1, input: "x"});
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(worker.sent.some((m) => m.kind === "ping"));
  worker.reply({kind: "return", id: first.id, payload: 3});
  assert.equal(await first.promise, 3);
  await new Promise((r) => setTimeout(r, 20)); // idle: the pings stop
  const pings = worker.sent.filter((m) => m.kind === "ping").length;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(worker.sent.filter((m) => m.kind === "ping").length, pings);
  assert.equal(t.failure, null); // idle for longer than hungMs: not hung
  worker.hung = true;
  const second = t.call("prompt", {session: 1, input: "y"});
  await assert.rejects(second.promise, (e) => named(e, /nomoat's worker stopped answering for 0 s and was stopped/));
  assert.ok(worker.terminated);
});

test("an answering worker is never taken for hung, however long the call", async () => {
  const {t, worker} = transport({locks: null, pingMs: 5, hungMs: 30});
  const call = t.call("prompt", {session: 1, input: "y"});
  await new Promise((r) => setTimeout(r, 120));
  worker.reply({kind: "return", id: call.id, payload: {}});
  assert.deepEqual(await call.promise, {});
  assert.equal(t.failure, null);
});

test("an uncaught error, an unreadable reply and a fatal Python error each stop the worker, named", async () => {
  const cases = [
    [(w) => w.onerror({message: "Uncaught RuntimeError: unreachable"}), /nomoat's worker failed \(Uncaught RuntimeError: unreachable\) and was stopped/],
    [(w) => w.onmessageerror({}), /nomoat's worker sent a reply that could not be read, and was stopped/],
    [(w) => w.reply({kind: "fatal", id: 0, payload: {name: "Error", message: "Pyodide has suffered a fatal error"}}),
      /nomoat's worker stopped: its Python failed fatally \(Pyodide has suffered a fatal error\)/],
  ];
  for (const [fault, pattern] of cases) {
    const {t, worker} = transport();
    const call = t.call("create", {});
    fault(worker);
    await assert.rejects(call.promise, (e) => named(e, pattern));
    assert.ok(worker.terminated);
    assert.ok(!/model|file|convert/i.test(String(t.failure.message))); // never blames the model file
  }
});

test("PendingCalls.close: pending and later calls reject with the first error", async () => {
  const p = new PendingCalls();
  const a = p.add();
  const first = new Error("first");
  p.close(first);
  p.close(new Error("second"));
  await assert.rejects(a.promise, (e) => e === first);
  await assert.rejects(p.add().promise, (e) => e === first);
  assert.equal(p.size, 0);
});

test("createLLM starts a fresh worker for the next create() once its worker is gone", async () => {
  globalThis.document ??= /** @type {any} */ ({baseURI: BASE});
  /** @type {{t: WorkerTransport, worker: FakeWorker}[]} */
  const made = [];
  const llm = createLLM(BASE, {}, {connect: () => {
    const m = transport();
    made.push(m);
    // the fake back end answers create() with a session
    const post = m.worker.postMessage.bind(m.worker);
    m.worker.postMessage = (msg) => {
      post(msg);
      if (msg.kind === "create") {
        queueMicrotask(() => m.worker.reply({kind: "return", id: msg.id, payload: {session: made.length, device: "wasm",
          deviceReason: "asked for wasm", context_window: 512, context_usage: 0}}));
      }
    };
    return m.t;
  }});
  const s1 = await llm.create({device: "wasm"});
  await settle();
  made[0].worker.die();
  await settle();
  await assert.rejects(s1.prompt("hi"), (e) => named(e, /its sessions are gone: create a new one/));
  const s2 = await llm.create({device: "wasm"});
  assert.equal(made.length, 2);
  const answer = s2.prompt("hi");
  await settle();
  const call = made[1].worker.calls().find((m) => m.kind === "prompt");
  made[1].worker.reply({kind: "chunk", id: call.id, payload: "hello"});
  made[1].worker.reply({kind: "return", id: call.id, payload: {context_usage: 3}});
  assert.equal(await answer, "hello");
});
