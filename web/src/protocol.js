// @ts-check
// The one wire protocol between window.llm and its back end, for every transport (the page's
// dedicated worker, the extension's runtime port, which relays it unchanged): requests
// {kind, id, payload}; replies {kind: "return" | "throw" | "chunk" | "progress" | "event", id, payload}.
// Errors cross as plain {name, message, ...extra} (wireError) and become the exceptions a page
// expects (fromWire). Prompt-API names (camelCase) become the back end's snake_case here (wireOptions).

/**
 * @typedef {"create" | "prompt" | "complete" | "append" | "measure" | "clone" | "abort" | "destroy" | "tokenize"
 *   | "embed" | "resources" | "timeline" | "live" | "ping"} RequestKind
 *   "embed" {assets, model, device, input: string[], options: {truncate?}} → {vectors: Float32Array (row after row),
 *   dimensions, prompt_tokens, device}: a sentence-embedding model's vectors (llm.embeddings, embeddings.js)
 * @typedef {"return" | "throw" | "chunk" | "progress" | "event" | "live" | "pong" | "fatal"} ReplyKind
 * @typedef {{kind: RequestKind, id: number, payload: any}} Request
 *   abort's id is 0 and its payload {target: the id of the call to stop}; it has no reply.
 *   Liveness (WorkerTransport, id 0): "live" {lock} asks the worker to hold that Web Lock for its
 *   whole life and answers "live" once it does (from then on the page learns of its death when the lock
 *   is freed); "ping" is answered by "pong".
 *   "fatal" (id 0, a WireError): the back end can serve no more calls (Python failed fatally) and stops.
 * @typedef {{kind: ReplyKind, id: number, payload: any}} Reply
 * @typedef {{name: string, message: string} & Record<string, unknown>} WireError
 * @typedef {object} WireMessage a canonical prompt message as it crosses (Python's Session messages)
 * @property {"system" | "user" | "assistant" | "tool"} role
 * @property {string} content
 * @property {boolean} [prefix] the final assistant message, which the answer continues
 * @property {{id: string, type: "function", function: {name: string, arguments: object}}[]} [tool_calls] an
 *   assistant message's tool calls (a "tool-call" content part)
 * @property {string} [tool_call_id] a "tool" message's call (a "tool-response" content part)
 * @property {string} [name] a "tool" message's tool
 * @typedef {{regex: string, flags: string}} WireRegExp
 *
 * @typedef {object} CallHooks what a call's non-final replies go to
 * @property {(piece: string) => void} [onChunk] a streamed piece of text
 * @property {(p: any) => void} [onProgress] create(): {stage, loaded, total, ...} or {warning}
 * @property {(e: any) => void} [onEvent] {type, ...}: "device", "contextoverflow"
 *
 * @typedef {object} Transport what a LanguageModelSession talks through
 * @property {(kind: RequestKind, payload: any, hooks?: CallHooks) => {id: number, promise: Promise<any>}} call
 *   sends {kind, id, payload}; the promise settles with the call's "return" (or "throw", as fromWire's exception)
 * @property {(id: number) => void} abort asks the back end to stop call `id` (the caller has already rejected it)
 * @property {unknown} [failure] set once the back end is gone for good (its worker crashed or was killed): every
 *   call, pending or later, rejects with it at once, so its sessions are broken; llm.js then starts a new back end
 */

/** Fields of an error that travel with it. */
const EXTRA = ["requested", "contextWindow", "stats"];

/**
 * An error as it crosses a message boundary.
 * @param {unknown} e
 * @returns {WireError}
 */
export function wireError(e) {
  const err = /** @type {Record<string, any>} */ (e && typeof e === "object" ? e : {});
  const out = {name: String(err.name || "Error"), message: String(err.message || e)};
  for (const k of EXTRA) if (err[k] !== undefined) /** @type {Record<string, unknown>} */ (out)[k] = err[k];
  return out;
}

const DOM_NAMES = new Set(["AbortError", "NotSupportedError", "QuotaExceededError", "NotFoundError", "NetworkError",
  "DataError", "InvalidStateError", "OperationError", "SyntaxError", "SecurityError", "NotAllowedError",
  "NotReadableError", "UnknownError"]);

/**
 * A wire error → the exception a page expects: TypeError, RangeError, a DOMException of that
 * name (QuotaExceededError as the browser's own class where it has one), else an Error so named;
 * requested, contextWindow and stats come along.
 * @param {WireError} p
 * @returns {Error & Record<string, unknown>}
 */
export function fromWire(p) {
  /** @type {any} */
  let e;
  const Quota = /** @type {any} */ (globalThis).QuotaExceededError;
  if (p.name === "TypeError") e = new TypeError(p.message);
  else if (p.name === "RangeError") e = new RangeError(p.message);
  else if (p.name === "QuotaExceededError" && typeof Quota === "function") {
    e = new Quota(p.message, {requested: p.requested, quota: p.contextWindow});
  } else if (DOM_NAMES.has(p.name)) e = new DOMException(p.message, p.name);
  else {
    e = new Error(p.message);
    e.name = p.name || "Error";
  }
  for (const k of EXTRA) {
    if (p[k] !== undefined && e[k] === undefined) Object.defineProperty(e, k, {value: p[k], enumerable: true});
  }
  return e;
}

/**
 * Why a signal aborted: its own reason, or an AbortError.
 * @param {AbortSignal} signal
 * @returns {any}
 */
export function abortReason(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException("The operation was aborted.", "AbortError");
}

/**
 * The calls a transport has sent and awaits, by id. Every transport routes the back end's
 * replies through one of these.
 */
export class PendingCalls {
  constructor() {
    this.next = 1;
    /** @type {Map<number, CallHooks & {resolve: (v: any) => void, reject: (e: any) => void}>} */
    this.calls = new Map();
    /** @type {unknown} once closed: what every call rejects with (see close) */
    this.failure = null;
  }
  /**
   * @param {CallHooks} [hooks]
   * @returns {{id: number, promise: Promise<any>}}
   */
  add(hooks = {}) {
    const id = this.next++;
    if (this.failure !== null) return {id, promise: Promise.reject(this.failure)};
    const promise = new Promise((resolve, reject) => this.calls.set(id, {resolve, reject, ...hooks}));
    return {id, promise};
  }
  /** How many calls await their reply. */
  get size() {
    return this.calls.size;
  }
  /** @param {Reply} reply */
  receive({kind, id, payload}) {
    const p = this.calls.get(id);
    if (!p) return;
    if (kind === "chunk") p.onChunk?.(payload);
    else if (kind === "progress") p.onProgress?.(payload);
    else if (kind === "event") p.onEvent?.(payload);
    else if (kind === "return" || kind === "throw") {
      this.calls.delete(id);
      if (kind === "return") p.resolve(payload);
      else p.reject(fromWire(payload));
    }
  }
  /** @param {number} id @param {unknown} error */
  fail(id, error) {
    const p = this.calls.get(id);
    this.calls.delete(id);
    if (p) p.reject(error);
  }
  /** @param {unknown} error */
  failAll(error) {
    for (const p of this.calls.values()) p.reject(error);
    this.calls.clear();
  }
  /**
   * The back end is gone for good: pending calls reject with `error`, and so does every later one,
   * at once. The first error stays.
   * @param {unknown} error
   */
  close(error) {
    if (this.failure === null) this.failure = error;
    this.failAll(this.failure);
  }
}

/** Prompt-API option names → the back end's (nomoat.SamplingParams) names. */
export const OPTION_NAMES = Object.freeze({temperature: "temperature", topK: "top_k", topP: "top_p", minP: "min_p",
  repetitionPenalty: "repetition_penalty", seed: "seed", maxTokens: "max_tokens", stop: "stop"});

/**
 * @typedef {object} SamplingOptions
 * @property {number} [temperature] 0 = greedy
 * @property {number} [topK]
 * @property {number} [topP]
 * @property {number} [minP]
 * @property {number} [repetitionPenalty]
 * @property {number} [seed] same seed, same output
 * @property {number} [maxTokens] a nomoat extension (the Prompt API has no token limit): at most this many answer
 *   tokens; left out, an answer runs to its end of turn or to the context window (lastStats.finish_reason "length")
 * @property {string | string[]} [stop] never part of the output
 *
 * @typedef {object} ConstraintOptions
 * @property {object | RegExp} [responseConstraint] a JSON Schema, or a RegExp the whole answer matches
 * @property {boolean} [omitResponseConstraintInput] do not describe the constraint in the prompt
 *
 * A prompt's wire options may also carry tool_choice ("auto" | "required" | "none" | a tool's name) and
 * continues (true: this prompt sends tool results and belongs to the exchange before it; session.js's
 * tool loop), which Python's Session.prompt_streaming takes as they are. The "prompt" call's return (its
 * stats) then has tool_calls: [{id, name, arguments: JSON text}], the calls the answer made.
 */

/**
 * A response constraint as it crosses: a RegExp becomes {regex, flags} (JSON cannot carry one).
 * @param {object | RegExp} rc
 * @returns {object | WireRegExp}
 */
export const constraintToWire = (rc) => (rc instanceof RegExp ? {regex: rc.source, flags: rc.flags} : rc);

/**
 * The sampling options of `o`, under the back end's names.
 * @param {SamplingOptions} o
 * @returns {Record<string, unknown>}
 */
export function samplingToWire(o) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [k, v] of Object.entries(OPTION_NAMES)) {
    const value = /** @type {Record<string, unknown>} */ (o)[k];
    if (value !== undefined) out[v] = value;
  }
  return out;
}

/**
 * Throws a TypeError naming the field when `payload` holds what cannot cross to the back end as
 * plain data: a symbol, a function, a BigInt, an object that is not plain (a Date, a Map …), a
 * cycle. (postMessage would throw DataCloneError after the call was queued, the extension's JSON
 * would drop or fail: either way the caller would wait for an answer that never comes.)
 * @param {string} kind @param {unknown} payload
 */
export function checkSendable(kind, payload) {
  /** @type {Set<object>} */
  const path = new Set();
  /** @param {unknown} v @param {string} at */
  const walk = (v, at) => {
    const t = typeof v;
    if (v === null || t === "undefined" || t === "boolean" || t === "number" || t === "string") return;
    if (t !== "object") throw new TypeError(`${kind}: ${at} is a ${t}, which cannot be sent to the model; use plain values.`);
    const o = /** @type {object} */ (v);
    const proto = Object.getPrototypeOf(o);
    if (!Array.isArray(o) && proto !== Object.prototype && proto !== null) {
      throw new TypeError(`${kind}: ${at} is a ${proto?.constructor?.name || "non-plain object"}; use plain objects and arrays.`);
    }
    if (path.has(o)) throw new TypeError(`${kind}: ${at} refers to itself; use plain, acyclic data.`);
    path.add(o);
    for (const [k, x] of Object.entries(o)) walk(x, Array.isArray(o) ? `${at}[${k}]` : `${at}.${k}`);
    path.delete(o);
  };
  walk(payload, "the request");
}

/**
 * A prompt's wire options: sampling, plus response_constraint and omit_response_constraint_input.
 * @param {SamplingOptions & ConstraintOptions} o
 * @returns {Record<string, unknown>}
 */
export function wireOptions(o) {
  const out = samplingToWire(o);
  if (o.responseConstraint !== undefined) out.response_constraint = constraintToWire(o.responseConstraint);
  if (o.omitResponseConstraintInput !== undefined) out.omit_response_constraint_input = Boolean(o.omitResponseConstraintInput);
  const choice = /** @type {{toolChoice?: unknown}} */ (o).toolChoice;
  if (choice !== undefined) out.tool_choice = String(choice);
  return out;
}

/**
 * A canonical prompt as it crosses: a single user turn as a plain string, anything else as the list.
 * @param {WireMessage[]} msgs
 * @returns {string | WireMessage[]}
 */
export const toWire = (msgs) => (msgs.length === 1 && msgs[0].role === "user" && !msgs[0].prefix ? msgs[0].content : msgs);
