// @ts-check
// The Prompt API's LanguageModel instance, the same for every transport (protocol.js's Transport):
// the page's dedicated worker (llm.js) and the extension's runtime port (examples/extension/client.js).
//
// Spec: https://webmachinelearning.github.io/prompt-api/ (LanguageModel) and the shared
// writing-assistance-apis algorithms (destroy, aggregated/streaming results, abort signals).

import {abortReason, checkSendable, toWire, wireOptions} from "./protocol.js";

/**
 * @typedef {import("./protocol.js").Transport} Transport
 * @typedef {import("./protocol.js").RequestKind} RequestKind
 * @typedef {import("./protocol.js").WireMessage} WireMessage
 * @typedef {import("./protocol.js").SamplingOptions} SamplingOptions
 * @typedef {import("./protocol.js").ConstraintOptions} ConstraintOptions
 *
 * @typedef {"text" | "image" | "audio" | "tool-call" | "tool-response"} LanguageModelMessageType
 * @typedef {{type: LanguageModelMessageType, value: unknown}} LanguageModelMessageContent
 * @typedef {object} LanguageModelMessage
 * @property {"system" | "user" | "assistant"} role
 * @property {string | LanguageModelMessageContent[]} content
 * @property {boolean} [prefix] the final assistant message, continued by the model
 * @typedef {string | LanguageModelMessage[]} LanguageModelPrompt
 *
 * @typedef {{signal?: AbortSignal}} CallOptions
 * @typedef {CallOptions & SamplingOptions & ConstraintOptions & {toolChoice?: string}} PromptOptions
 *   toolChoice (a nomoat extension; the Prompt API has none): "auto" (the default: the model decides),
 *   "required" (the first answer is a tool call), "none", or a tool's name (a call of that tool)
 *
 * @typedef {object} LanguageModelTool index.bs's LanguageModelTool
 * @property {string} name
 * @property {string} description
 * @property {object} inputSchema a JSON Schema of the arguments (execute's one argument)
 * @property {(args: any) => Promise<string> | string} execute
 * @typedef {{type: "function", function: {name: string, description: string, parameters: object}}} WireTool
 * @typedef {{id: string, name: string, arguments: string}} WireToolCall a call the model made (arguments: JSON text)
 *
 * @typedef {object} SessionInfo what the back end's create() or clone() said
 * @property {number} session the back end's session handle
 * @property {string} [device] "webgpu" | "wasm"
 * @property {string} [deviceReason] why that device
 * @property {number} contextWindow
 * @property {number} contextUsage
 *
 * @typedef {object} SessionSettings the resolved create() options
 * @property {number} [topK]
 * @property {number} [temperature]
 * @property {boolean} [raw] whether topK and temperature are exposed (an extension context)
 * @property {string} [samplingMode]
 * @property {{type: string, languages?: string[]}[]} [expectedInputs]
 * @property {{type: string, languages?: string[]}[]} [expectedOutputs]
 * @property {Map<string, LanguageModelTool["execute"]>} [tools] create()'s tools: name → execute
 *
 * @typedef {Record<string, any>} PromptStats the back end's stats of a prompt: token ids and counts, ttft_ms,
 *   prefill_tps, decode_tps, context_usage (a nomoat extension)
 */

const ROLES = new Set(["system", "user", "assistant"]);
const CONTENT_TYPES = new Set(["text", "image", "audio", "tool-call", "tool-response"]);

/**
 * WebIDL DOMString conversion.
 * @param {unknown} v
 * @param {string} what
 */
function domString(v, what) {
  if (typeof v === "symbol") throw new TypeError(`${what} must be a string, got a Symbol.`);
  return String(v);
}

/**
 * Throws InvalidStateError where this realm's Document is not fully active (an iframe's
 * LanguageModel called after the iframe was removed: its document has no window any more).
 * writing-assistance-apis: "create an AI model object" step 4, "compute AI model availability"
 * step 4, "get an aggregated/streaming AI model result" and "measure AI model input usage" step 3,
 * and index.bs "clone a language model" step 3.
 */
export function fullyActive() {
  if (typeof document === "undefined" || document.defaultView !== null) return;
  let error = NOT_ACTIVE;
  try {
    error = new DOMException(NOT_ACTIVE_MESSAGE, "InvalidStateError");
  } catch { // Chromium: a detached frame's DOMException constructs no more (a TypeError): the one made at load
  }
  throw error;
}
const NOT_ACTIVE_MESSAGE = "This document is no longer active (its frame was removed); use the LanguageModel of a " +
  "page that is still open.";
const NOT_ACTIVE = typeof DOMException === "function" ? new DOMException(NOT_ACTIVE_MESSAGE, "InvalidStateError") : null;

/** @param {any} v @returns {v is Iterable<any>} */
const iterable = (v) => v !== null && typeof v === "object" && typeof v[Symbol.iterator] === "function";

/**
 * create()'s `tools` (index.bs: sequence<LanguageModelTool>, each member required): TypeError for a
 * tool that is not a {name, description, inputSchema, execute} dictionary (or two with one name).
 * Returns the definitions the back end describes to the model (and constrains its calls by; a schema
 * it cannot enforce rejects create() with NotSupportedError there), and each tool's execute by name.
 * @param {unknown} tools
 * @returns {{wire: WireTool[], execute: Map<string, LanguageModelTool["execute"]>}}
 */
export function checkTools(tools) {
  /** @type {WireTool[]} */
  const wire = [];
  const execute = new Map();
  if (tools === undefined) return {wire, execute};
  if (!iterable(tools) || typeof tools === "string") throw new TypeError("tools must be a list of {name, description, inputSchema, execute}.");
  for (const [i, t] of Array.from(tools).entries()) {
    const at = `tools[${i}]`;
    if (t === null || typeof t !== "object") throw new TypeError(`${at} must be an object {name, description, inputSchema, execute}.`);
    for (const k of ["name", "description", "inputSchema", "execute"]) {
      if (t[k] === undefined) throw new TypeError(`${at} has no ${k} (a tool needs name, description, inputSchema and execute).`);
    }
    const name = domString(t.name, `${at}.name`);
    const description = domString(t.description, `${at}.description`);
    if (t.inputSchema === null || (typeof t.inputSchema !== "object" && typeof t.inputSchema !== "function")) {
      throw new TypeError(`${at}.inputSchema must be a JSON Schema object.`);
    }
    if (typeof t.execute !== "function") throw new TypeError(`${at}.execute must be a function (the tool's implementation).`);
    if (!name) throw new TypeError(`${at}.name must not be empty.`);
    if (execute.has(name)) throw new TypeError(`${at}: two tools are named "${name}"; give each its own name.`);
    execute.set(name, t.execute);
    wire.push({type: "function", function: {name, description, parameters: t.inputSchema}});
  }
  return {wire, execute};
}

/**
 * A tool-call content value ({callID, name, arguments}) as the chat template's tool call.
 * @param {any} v @param {string} at
 */
function toolCallOf(v, at) {
  if (v === null || typeof v !== "object") throw new TypeError(`${at}: a tool-call value is {callID, name, arguments}.`);
  if (v.callID === undefined || v.name === undefined) throw new TypeError(`${at}: a tool-call value needs callID and name.`);
  const args = v.arguments === undefined ? {} : v.arguments;
  if (args === null || typeof args !== "object") throw new TypeError(`${at}: a tool call's arguments must be an object.`);
  return {id: domString(v.callID, `${at}'s callID`), type: "function",
    function: {name: domString(v.name, `${at}'s name`), arguments: args}};
}

/**
 * A tool-response content value ({callID, name, result: [{type, value}]} or {callID, name,
 * errorMessage}; a string is a result by itself) as a "tool" message.
 * @param {any} v @param {string} at
 * @returns {WireMessage}
 */
function toolResponseOf(v, at) {
  if (typeof v === "string") return {role: "tool", content: v, prefix: false};
  if (v === null || typeof v !== "object") throw new TypeError(`${at}: a tool-response value is {callID, name, result}.`);
  if (v.callID === undefined || v.name === undefined) throw new TypeError(`${at}: a tool-response value needs callID and name.`);
  let content;
  if (v.errorMessage !== undefined) content = `Error: ${domString(v.errorMessage, `${at}'s errorMessage`)}`;
  else if (typeof v.result === "string") content = v.result;
  else if (iterable(v.result)) {
    content = Array.from(v.result, (r) => {
      if (r === null || typeof r !== "object" || r.value === undefined) throw new TypeError(`${at}: each result is {type, value}.`);
      const type = domString(r.type, `${at}'s result type`);
      if (type === "text") return domString(r.value, `${at}'s text result`);
      if (type === "object") return JSON.stringify(r.value);
      throw new DOMException(`${at} has a ${type} result; nomoat's models take text only.`, "NotSupportedError");
    }).join("\n");
  } else throw new TypeError(`${at}: a tool-response value needs result (a list of {type, value}) or errorMessage.`);
  return {role: "tool", content, prefix: false, tool_call_id: domString(v.callID, `${at}'s callID`),
    name: domString(v.name, `${at}'s name`)};
}

/**
 * The spec's "validate and canonicalize a prompt" for nomoat's text-only models: returns
 * [{role, content: string, prefix}] (contiguous text parts joined, as the spec collapses them).
 * Tool content: "tool-call" parts ({callID, name, arguments}) in an assistant message become its
 * tool_calls (index.bs refuses every non-text assistant part; nomoat takes tool calls there, the
 * history of a call), "tool-response" parts ({callID, name, result} or {callID, name, errorMessage})
 * become "tool" messages, in their place among the message's text.
 * @param {unknown} input
 * @param {boolean} hasAppendedInput
 * @returns {WireMessage[]}
 */
export function canonicalPrompt(input, hasAppendedInput) {
  if (!iterable(input)) return [{role: "user", content: domString(input, "The prompt"), prefix: false}];
  const list = Array.from(input);
  if (list.length === 0) return [{role: "user", content: "", prefix: false}];
  return list.flatMap((m, i) => {
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
    /** @type {WireMessage[]} */
    const out = [];
    /** @type {any[]} */
    const calls = [];
    const flush = () => {
      if (text || (!out.length && !calls.length)) out.push({role: /** @type {WireMessage["role"]} */ (role), content: text, prefix});
      text = "";
    };
    for (const c of parts) {
      if (c === null || typeof c !== "object" || c.type === undefined || c.value === undefined) {
        throw new TypeError(`${at}'s content items must be objects {type, value}.`);
      }
      const type = domString(c.type, "A content type");
      if (!CONTENT_TYPES.has(type)) throw new TypeError(`"${type}" is not a LanguageModelMessageType.`);
      if (type === "tool-call" && role === "assistant" && !prefix) {
        calls.push(toolCallOf(c.value, at));
        continue;
      }
      if (type === "tool-response" && role !== "assistant") {
        flush();
        out.push(toolResponseOf(c.value, at));
        continue;
      }
      if (type !== "text") {
        const where = type === "tool-call" ? " (a tool call belongs in an assistant message that is not a prefix)"
          : type === "tool-response" ? " (a tool response belongs in a user message)" : "";
        throw new DOMException(`${at} has ${type} content${where}; nomoat's models take text only ` +
          "(create the session without expecting other inputs, and send text).", "NotSupportedError");
      }
      if (typeof c.value !== "string") throw new TypeError(`${at}'s text content value must be a string.`);
      text += c.value;
    }
    if (calls.length) return [{role: "assistant", content: text, prefix: false, tool_calls: calls}];
    flush();
    return out.filter((x) => x.role === "tool" || x.content || out.length === 1);
  });
}

/**
 * @param {unknown} options
 * @param {string} method
 * @returns {PromptOptions}
 */
function optionsDict(options, method) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" && typeof options !== "function") {
    throw new TypeError(`${method}'s options must be an object.`);
  }
  const o = /** @type {PromptOptions} */ (options);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError(`${method}'s options.signal must be an AbortSignal.`);
  }
  return o;
}

/** @param {PromptOptions} o @param {string} method */
function checkConstraint(o, method) {
  const rc = o.responseConstraint;
  if (rc !== undefined && (rc === null || typeof rc !== "object")) {
    throw new TypeError(`${method}: responseConstraint must be a JSON Schema object or a RegExp.`);
  }
  if (o.omitResponseConstraintInput && rc === undefined) {
    throw new TypeError(`${method}: omitResponseConstraintInput needs a responseConstraint.`);
  }
}

/**
 * The session's internal "run one back-end call on this session, in call order" (used by
 * openai.js, which sends "complete" calls on its hidden session). A symbol, so it is not part of
 * LanguageModel's public surface: session[RUN](kind, fields, {signal, onChunk}) sends
 * {session: <its handle>, ...fields}; it runs after the calls made before it, is aborted by
 * `signal` or destroy(), and settles with the back end's reply.
 */
export const RUN = Symbol("nomoat.run");

/**
 * A session the page lets go of without destroy() still holds its KV cache in the back end (~25 MB
 * on the default model): once the page's object is collected, the back end is told to destroy it.
 * A safety net behind destroy(), which stays the plan.
 * @type {FinalizationRegistry<{transport: Transport, session: SessionInfo["session"]}>}
 */
const dropped = new FinalizationRegistry(({transport, session}) => {
  transport.call("destroy", {session}).promise.catch(() => {});
});

/** Answers with tool calls in one prompt, at most; then the model must answer in text (tool_choice "none"). */
export const MAX_TOOL_ROUNDS = 8;

/**
 * Runs one call the model made: the tool's execute(arguments), its result as a DOMString (index.bs:
 * LanguageModelToolFunction returns Promise<DOMString>). A tool that throws rejects the prompt with its error.
 * @param {Map<string, LanguageModelTool["execute"]>} tools @param {WireToolCall} call
 * @returns {Promise<string>}
 */
async function runTool(tools, call) {
  const execute = tools.get(call.name);
  if (!execute) throw new DOMException(`The model called "${call.name}", which is not one of the session's tools.`, "OperationError");
  return String(await execute(JSON.parse(call.arguments)));
}

/**
 * `promise`, or the signal's reason once it aborts first.
 * @template T @param {Promise<T>} promise @param {AbortSignal} signal @returns {Promise<T>}
 */
function untilAborted(promise, signal) {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, {once: true});
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** A LanguageModel session over a Transport. */
export class LanguageModelSession extends EventTarget {
  /**
   * @param {Transport} transport
   * @param {SessionInfo} info
   * @param {SessionSettings} [settings]
   */
  constructor(transport, info, settings = {}) {
    super();
    dropped.register(this, {transport, session: info.session}, this);
    /** @private */ this._transport = transport;
    /** @private */ this._settings = settings;
    /** @private */ this._info = info;
    /** @private */ this._destroyer = new AbortController(); // the spec's destruction abort controller
    /** @private @type {Promise<unknown>} */ this._queue = Promise.resolve(); // prompts, appends and clones run in call order
    /** @private @type {Record<string, EventListener | null>} */ this._handlers = {};
    /** @private */ this._usage = info.contextUsage;
    /** @type {string | undefined} "webgpu" | "wasm" (a nomoat extension) */
    this.device = info.device;
    /** @type {string | undefined} why that device */
    this.deviceReason = info.deviceReason;
    /** @type {PromptStats | null} the last prompt's stats (a nomoat extension) */
    this.lastStats = null;
  }
  get contextWindow() { return this._info.contextWindow; }
  get contextUsage() { return this._usage; }
  get inputQuota() { return this._info.contextWindow; } // deprecated names (extension contexts in Chrome)
  get inputUsage() { return this._usage; }
  // index.bs: topK and temperature are "Only available in extension and experimental contexts"
  // (README, "Sampling Parameters"): undefined on a web page; temperature an IDL float.
  get topK() { return this._settings.raw ? this._settings.topK : undefined; }
  get temperature() {
    const t = this._settings.temperature;
    return this._settings.raw && t !== undefined ? Math.fround(t) : undefined;
  }
  get samplingMode() { return this._settings.samplingMode; }
  get expectedInputs() { return this._settings.expectedInputs; }
  get expectedOutputs() { return this._settings.expectedOutputs; }
  get oncontextoverflow() { return this._handlers.contextoverflow || null; }
  set oncontextoverflow(f) { this._setHandler("contextoverflow", f); }
  get onquotaoverflow() { return this._handlers.quotaoverflow || null; }
  set onquotaoverflow(f) { this._setHandler("quotaoverflow", f); }
  /** @private @param {string} type @param {unknown} f */
  _setHandler(type, f) {
    const old = this._handlers[type];
    if (old) this.removeEventListener(type, old);
    this._handlers[type] = typeof f === "function" ? /** @type {EventListener} */ (f) : null;
    const now = this._handlers[type];
    if (now) this.addEventListener(type, now);
  }
  /** @private the composite of destroy() and the call's own signal @param {CallOptions} options */
  _signal(options) {
    const own = options.signal;
    return own ? AbortSignal.any([this._destroyer.signal, own]) : this._destroyer.signal;
  }
  /** @private @param {{type: string}} e */
  _onEvent(e) {
    if (e.type === "contextoverflow") {
      this.dispatchEvent(new Event("contextoverflow"));
      this.dispatchEvent(new Event("quotaoverflow"));
    }
  }
  /**
   * Run one back-end call in order after the earlier ones. Aborted while queued: it never runs;
   * aborted while running: the back end is told to stop (and drops the unfinished exchange).
   * @private
   * @param {RequestKind} kind
   * @param {Record<string, unknown>} fields the payload, less the session handle
   * @param {AbortSignal} signal
   * @param {{queued?: boolean, onChunk?: ((piece: string) => void) | null, onId?: (id: number) => void}} [how]
   *   onId: hears the call's request id once it is sent
   * @returns {Promise<any>}
   */
  _op(kind, fields, signal, {queued = true, onChunk = null, onId} = {}) {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    const payload = {session: this._info.session, ...fields};
    try {
      checkSendable(kind, payload);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      /** @type {number | null} */
      let id = null, settled = false;
      /** @param {(v: any) => void} f @param {unknown} v */
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
          onChunk: (piece) => { if (!settled && onChunk) onChunk(piece); },
          onEvent: (e) => this._onEvent(e),
        });
        id = call.id;
        onId?.(call.id);
        return call.promise.then((v) => finish(resolve, v), (e) => {
          if (e.stats) this._keep(e.stats);
          finish(reject, e);
        });
      };
      if (!queued) run();
      else this._queue = this._queue.then(run, run);
    });
  }
  /**
   * See RUN.
   * @param {RequestKind} kind
   * @param {Record<string, unknown>} fields
   * @param {{signal?: AbortSignal, onChunk?: ((piece: string) => void) | null}} [how]
   * @returns {Promise<any>}
   */
  [RUN](kind, fields, {signal, onChunk = null} = {}) {
    return this._op(kind, fields, this._signal({signal}), {onChunk});
  }
  /** @private @param {PromptStats} stats */
  _keep(stats) {
    this.lastStats = stats;
    if (stats.context_usage !== undefined) this._usage = stats.context_usage;
  }
  /**
   * @private
   * @param {unknown} input @param {PromptOptions} options @param {AbortSignal} signal
   * @param {(piece: string) => void} onChunk
   */
  async _prompt(input, options, signal, onChunk) {
    checkConstraint(options, "prompt");
    const msgs = canonicalPrompt(input, this._usage > 0);
    const tools = this._settings.tools;
    if (!tools || !tools.size) {
      const stats = await this._op("prompt", {input: toWire(msgs), options: wireOptions(options)}, signal, {onChunk});
      this._keep(stats);
      return stats;
    }
    // The tool-use loop, one queued operation: answer; while the answer calls tools, run their execute()
    // (at once, as Promise.all), send the results as tool messages and answer again (one exchange in the
    // history: an abort or a failing tool takes all of it back). index.bs: "the model may use the provided
    // tools by calling their execute functions"; the README's "Tool use".
    const run = async () => {
      if (signal.aborted) throw abortReason(signal);
      const usage = this._usage; // what contextUsage goes back to when the exchange is taken back
      /** @type {number | null} */
      let last = null; // the request id of the latest answer
      try {
        /** @type {string | WireMessage[]} */
        let wire = toWire(msgs);
        const opts = wireOptions(options);
        for (let round = 0; ; round++) {
          last = null;
          const choice = round === 0 ? opts.tool_choice ?? "auto" : round >= MAX_TOOL_ROUNDS ? "none" : "auto";
          const stats = await this._op("prompt", {input: wire, options: {...opts, tool_choice: choice, continues: round > 0}},
            signal, {queued: false, onChunk, onId: (id) => { last = id; }});
          this._keep(stats);
          /** @type {WireToolCall[]} */
          const calls = stats.tool_calls || [];
          if (!calls.length) return stats;
          const results = await untilAborted(Promise.all(calls.map((c) => runTool(tools, c))), signal);
          wire = calls.map((c, i) => ({role: "tool", content: results[i], prefix: false, tool_call_id: c.id, name: c.name}));
        }
      } catch (e) {
        this._usage = usage;
        // An answer that finished before the failure (a tool threw, or the abort came while tools ran) leaves the
        // history, and the exchange with it; an answer that failed or was aborted itself is dropped by Python.
        if (last !== null) this._transport.abort(last);
        throw e;
      }
    };
    const p = this._queue.then(run, run);
    this._queue = p.catch(() => {});
    return p;
  }
  /**
   * The answer to `input`, whole.
   * @param {LanguageModelPrompt} input
   * @param {PromptOptions} [options]
   * @returns {Promise<string>}
   */
  prompt(input, options = {}) {
    if (arguments.length === 0) return Promise.reject(new TypeError("prompt() needs an input."));
    let signal;
    try {
      fullyActive();
      options = optionsDict(options, "prompt");
      signal = this._signal(options);
    } catch (e) {
      return Promise.reject(e);
    }
    if (signal.aborted) return Promise.reject(abortReason(signal));
    let text = "";
    return this._prompt(input, options, signal, (piece) => { text += piece; }).then(() => text);
  }
  /**
   * The answer to `input`, piece by piece.
   * @param {LanguageModelPrompt} input
   * @param {PromptOptions} [options]
   * @returns {ReadableStream<string> & AsyncIterable<string>}
   */
  promptStreaming(input, options = {}) {
    if (arguments.length === 0) throw new TypeError("promptStreaming() needs an input.");
    fullyActive();
    options = optionsDict(options, "promptStreaming");
    const outer = this._signal(options);
    if (outer.aborted) throw abortReason(outer);
    const cancel = new AbortController(); // stream.cancel(): stop producing, not an error
    const signal = AbortSignal.any([outer, cancel.signal]);
    /** @type {ReadableStreamDefaultController<string>} */
    let controller;
    let cancelled = false;
    const stream = new ReadableStream({
      start: (c) => { controller = c; },
      cancel: () => {
        cancelled = true;
        cancel.abort(new DOMException("The stream was cancelled.", "AbortError"));
      },
    });
    this._prompt(input, options, signal, (piece) => { if (!cancelled) controller.enqueue(piece); })
      .then(() => { if (!cancelled) controller.close(); }, (e) => { if (!cancelled) controller.error(e); });
    return /** @type {ReadableStream<string> & AsyncIterable<string>} */ (stream);
  }
  /**
   * Computes `input` into the context now, with no answer.
   * @param {LanguageModelPrompt} input
   * @param {CallOptions} [options]
   * @returns {Promise<void>}
   */
  append(input, options = {}) {
    if (arguments.length === 0) return Promise.reject(new TypeError("append() needs an input."));
    return (async () => {
      fullyActive();
      options = optionsDict(options, "append");
      const signal = this._signal(options);
      if (signal.aborted) throw abortReason(signal);
      const msgs = canonicalPrompt(input, this._usage > 0);
      this._usage = await this._op("append", {input: toWire(msgs)}, signal);
    })();
  }
  /**
   * The tokens `input` would add to the context.
   * @param {LanguageModelPrompt} input
   * @param {CallOptions & ConstraintOptions} [options]
   * @returns {Promise<number>}
   */
  measureContextUsage(input, options = {}) {
    if (arguments.length === 0) return Promise.reject(new TypeError("measureContextUsage() needs an input."));
    return (async () => {
      fullyActive();
      options = optionsDict(options, "measureContextUsage");
      checkConstraint(options, "measureContextUsage");
      const signal = this._signal(options);
      if (signal.aborted) throw abortReason(signal);
      // index.bs measureContextUsage() step 3: "validating and canonicalizing a prompt given input,
      // expectedInputTypes, and false": measured as a fresh prompt (a system message is fine).
      const msgs = canonicalPrompt(input, false);
      const {responseConstraint, omitResponseConstraintInput} = options;
      return this._op("measure", {input: toWire(msgs), options: wireOptions({responseConstraint, omitResponseConstraintInput})},
        signal, {queued: false});
    })();
  }
  /**
   * Deprecated name of measureContextUsage.
   * @param {LanguageModelPrompt} input
   * @param {CallOptions & ConstraintOptions} [options]
   */
  measureInputUsage(input, options = {}) {
    return this.measureContextUsage(input, options);
  }
  /**
   * A copy of this session that shares its computed prefix (KV cache).
   * @param {CallOptions} [options]
   * @returns {Promise<this>}
   */
  clone(options = {}) {
    return (async () => {
      fullyActive();
      options = optionsDict(options, "clone");
      const signal = this._signal(options);
      if (signal.aborted) throw abortReason(signal);
      const info = await this._op("clone", {}, signal);
      return this._copy(this._transport, {...this._info, session: info.session, contextWindow: info.context_window,
        contextUsage: info.context_usage}, this._settings);
    })();
  }
  /**
   * How clone() makes the copy: a session of this class (LanguageModel overrides it, as its
   * constructor is closed to pages).
   * @protected
   * @param {Transport} transport @param {SessionInfo} info @param {SessionSettings} settings
   * @returns {this}
   */
  _copy(transport, info, settings) {
    const Class = /** @type {typeof LanguageModelSession} */ (this.constructor);
    return /** @type {this} */ (new Class(transport, info, settings));
  }
  /**
   * The back end's token ids of each text (a nomoat extension, used by the tests).
   * @param {string[]} texts
   * @returns {Promise<number[][]>}
   */
  async tokenize(texts) {
    return this._transport.call("tokenize", {session: this._info.session, texts}).promise;
  }
  /**
   * Ends the session: pending, queued and later calls reject with `reason` (an AbortError by default).
   * @param {unknown} [reason]
   */
  destroy(reason) {
    if (this._destroyer.signal.aborted) return;
    dropped.unregister(this);
    this._destroyer.abort(reason !== undefined ? reason : new DOMException("The session was destroyed.", "AbortError"));
    this._queue.then(() => this._transport.call("destroy", {session: this._info.session}).promise).catch(() => {});
  }
}
