// A Transport (protocol.js) whose back end is the test: every call is recorded in `sent`, and
// the test answers it with reply(id, kind, payload) — as the worker's messages would arrive.
import {PendingCalls} from "../src/protocol.js";

/** @typedef {import("../src/protocol.js").RequestKind} RequestKind */

/** @implements {import("../src/protocol.js").Transport} */
export class FakeTransport {
  constructor() {
    this.pending = new PendingCalls();
    /** @type {{kind: RequestKind, id: number, payload: any}[]} */
    this.sent = [];
    /** @type {number[]} */
    this.aborted = [];
    /** @type {((call: {kind: RequestKind, id: number, payload: any}) => void) | null} */
    this.onCall = null;
  }
  /** @param {RequestKind} kind @param {any} payload @param {import("../src/protocol.js").CallHooks} [hooks] */
  call(kind, payload, hooks = {}) {
    const {id, promise} = this.pending.add(hooks);
    const call = {kind, id, payload};
    this.sent.push(call);
    if (this.onCall) queueMicrotask(() => this.onCall(call));
    return {id, promise};
  }
  /** @param {number} id */
  abort(id) {
    this.aborted.push(id);
  }
  /** @param {number} id @param {import("../src/protocol.js").ReplyKind} kind @param {any} [payload] */
  reply(id, kind, payload) {
    this.pending.receive({kind, id, payload});
  }
  /** The kinds sent so far. */
  kinds() {
    return this.sent.map((c) => c.kind);
  }
}

/** Lets queued promise reactions run. */
export const settle = () => new Promise((r) => setTimeout(r, 0));
