// @ts-check
// llm.chat.completions.create — OpenAI's chat completions API, answered by the local model.
// Same request and response shapes as OpenAI (https://platform.openai.com/docs/api-reference/chat):
// chunks with deltas when streaming, finish_reason, usage, tool_calls; plus `timings` (time to
// first token, prefill and decode tokens/s, prompt tokens served from the KV cache).
//
// Each (model, device) has one hidden session whose KV cache carries over between requests, so a
// conversation that grows request by request only computes its new tokens. Requests go to the
// back end as "complete" calls on that session (session[RUN], in call order with its prompts).

import {abortReason} from "./protocol.js";
import {RUN} from "./session.js";

/**
 * @typedef {import("./session.js").LanguageModelSession} LanguageModelSession
 * @typedef {{type: "text", text: string}} ChatTextPart
 * @typedef {object} ChatMessage
 * @property {"system" | "developer" | "user" | "assistant" | "tool"} role
 * @property {string | ChatTextPart[] | null} [content]
 * @property {{id: string, type: "function", function: {name: string, arguments: string}}[]} [tool_calls]
 * @property {string} [tool_call_id]
 * @property {string} [name]
 * @typedef {{type: "function", function: {name: string, description?: string, parameters?: object}}} ChatTool
 * @typedef {object} ChatCompletionRequest OpenAI's request; `model`: an OpenAI name (gpt-…, o1…) means the
 *   default model, a model's name ("gemma-3-270m"), path or URL names a model package
 * @property {string} [model]
 * @property {ChatMessage[]} messages
 * @property {number | null} [temperature]
 * @property {number | null} [top_p]
 * @property {number | null} [max_tokens]
 * @property {number | null} [max_completion_tokens]
 * @property {number | null} [seed]
 * @property {number | null} [n]
 * @property {string | string[] | null} [stop]
 * @property {{type: "text"} | {type: "json_object"} | {type: "json_schema", json_schema: {name?: string, schema: object}} | null} [response_format]
 * @property {ChatTool[] | null} [tools]
 * @property {"auto" | "none" | "required" | {type: "function", function: {name: string}}} [tool_choice] "required" and a
 *   named function make the answer one call, grammar-constrained from its first token (so does "auto" once a call starts)
 * @property {boolean} [stream]
 * @property {{include_usage?: boolean}} [stream_options]
 * @property {string} [device] nomoat: "auto" | "webgpu" | "wasm"
 * @property {AbortSignal} [signal]
 * @typedef {{id: string, type: "function", function: {name: string, arguments: string}}} ChatToolCall
 * @typedef {{prompt_tokens: number, completion_tokens: number, total_tokens: number,
 *   prompt_tokens_details: {cached_tokens: number}}} ChatUsage
 * @typedef {{ttft_ms: number, prefill_tokens_per_s: number, decode_tokens_per_s: number, reused_tokens: number}} ChatTimings
 * @typedef {"stop" | "length" | "tool_calls"} FinishReason
 * @typedef {object} ChatCompletion
 * @property {string} id
 * @property {"chat.completion"} object
 * @property {number} created
 * @property {string} model
 * @property {{index: number, message: {role: "assistant", content: string | null, tool_calls?: ChatToolCall[],
 *   refusal: null}, logprobs: null, finish_reason: FinishReason}[]} choices
 * @property {ChatUsage} usage
 * @property {ChatTimings} timings nomoat: time to first token, tokens/s, reused prompt tokens
 * @property {string} system_fingerprint
 * @typedef {object} ChatCompletionChunk
 * @property {string} id
 * @property {"chat.completion.chunk"} object
 * @property {number} created
 * @property {string} model
 * @property {string} system_fingerprint
 * @property {{index: number, delta: {role?: "assistant", content?: string, tool_calls?: (ChatToolCall & {index: number})[]},
 *   logprobs: null, finish_reason: FinishReason | null}[]} choices
 * @property {ChatUsage} [usage] the last chunk, with stream_options.include_usage
 * @property {ChatTimings} [timings] on the chunk with the finish_reason
 * @typedef {AsyncIterable<ChatCompletionChunk> & {controller: AbortController,
 *   toReadableStream(): ReadableStream<ChatCompletionChunk>}} ChatCompletionStream
 * @typedef {object} Chat llm.chat
 * @property {{create: {
 *   (params: ChatCompletionRequest & {stream?: false | null}, requestOptions?: {signal?: AbortSignal}): Promise<ChatCompletion>,
 *   (params: ChatCompletionRequest & {stream: true}, requestOptions?: {signal?: AbortSignal}): Promise<ChatCompletionStream>,
 *   (params: ChatCompletionRequest, requestOptions?: {signal?: AbortSignal}): Promise<ChatCompletion | ChatCompletionStream>,
 * }}} completions
 * @typedef {object} ChatHost what the chat layer needs of llm
 * @property {(options: {model: string, device: string, temperature: number}) => Promise<LanguageModelSession>} create
 * @property {string} defaultModel
 * @property {string} version
 */

const OPENAI_NAME = /^(gpt-|o\d|chatgpt-|text-|davinci|babbage)/i; // OpenAI's own model names
const CHAT_ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

/**
 * llm.chat for `llm`: completions.create(request, {signal}).
 * @param {ChatHost} llm
 * @param {string} defaultDevice
 * @returns {Chat}
 */
export function createChat(llm, defaultDevice) {
  const completers = new Map(); // "model|device" -> Promise<LanguageModel>

  function bad(message) {
    return new TypeError(`chat.completions.create: ${message}`);
  }

  function text(content, at) { // string | [{type: "text", text}] | null → string
    if (content === null || content === undefined) return "";
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((p) => {
        if (p && p.type === "text" && typeof p.text === "string") return p.text;
        if (p && typeof p.type === "string") {
          throw new DOMException(`${at} has a "${p.type}" part; nomoat's models take text only.`, "NotSupportedError");
        }
        throw bad(`${at}'s content parts must be {type: "text", text}.`);
      }).join("");
    }
    throw bad(`${at}'s content must be a string or a list of text parts.`);
  }

  function messagesOf(params) {
    if (!Array.isArray(params.messages) || params.messages.length === 0) throw bad("messages must be a non-empty list.");
    return params.messages.map((m, i) => {
      const at = `messages[${i}]`;
      if (!m || typeof m !== "object" || !CHAT_ROLES.has(m.role)) {
        throw bad(`${at} must be {role: "system"|"developer"|"user"|"assistant"|"tool", content}.`);
      }
      const out = {role: m.role === "developer" ? "system" : m.role, content: text(m.content, at)};
      if (m.role === "assistant" && Array.isArray(m.tool_calls)) {
        out.tool_calls = m.tool_calls.map((c) => ({id: c.id, type: "function",
          function: {name: c.function && c.function.name, arguments: parseArgs(c.function && c.function.arguments)}}));
      }
      if (m.role === "tool") {
        out.tool_call_id = m.tool_call_id;
        if (m.name) out.name = m.name;
      }
      return out;
    });
  }

  function parseArgs(a) { // chat templates render arguments as an object
    if (typeof a !== "string") return a ?? {};
    try {
      return JSON.parse(a);
    } catch (e) {
      return a;
    }
  }

  function optionsOf(params) {
    const o = {};
    const num = (k, test, what) => {
      if (params[k] === undefined || params[k] === null) return undefined;
      if (typeof params[k] !== "number" || !test(params[k])) throw bad(`${k} must be ${what}, got ${JSON.stringify(params[k])}.`);
      return params[k];
    };
    const max = num("max_completion_tokens", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1") ??
      num("max_tokens", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
    if (max !== undefined) o.max_tokens = max;
    const t = num("temperature", (v) => v >= 0 && v <= 2, "a number from 0 to 2");
    o.temperature = t ?? 1; // OpenAI's default
    const p = num("top_p", (v) => v > 0 && v <= 1, "a number in (0, 1]");
    if (p !== undefined) o.top_p = p;
    const seed = num("seed", (v) => Number.isInteger(v), "an integer");
    if (seed !== undefined) o.seed = seed >>> 0;
    if (params.n !== undefined && params.n !== null && params.n !== 1) {
      throw new DOMException("n > 1 is not supported; make several requests.", "NotSupportedError");
    }
    if (params.stop !== undefined && params.stop !== null) {
      const stops = typeof params.stop === "string" ? [params.stop] : params.stop;
      if (!Array.isArray(stops) || stops.length > 4 || stops.some((s) => typeof s !== "string" || !s)) {
        throw bad("stop must be a non-empty string or a list of up to 4 of them.");
      }
      o.stop = stops;
    }
    const rf = params.response_format;
    if (rf !== undefined && rf !== null) {
      if (rf.type === "json_schema") {
        const schema = rf.json_schema && rf.json_schema.schema;
        if (!schema || typeof schema !== "object") throw bad("response_format.json_schema.schema must be a JSON Schema object.");
        o.response_constraint = schema;
      } else if (rf.type === "json_object") {
        o.response_constraint = {type: "object"};
      } else if (rf.type !== "text") {
        throw bad(`response_format.type must be "text", "json_schema" or "json_object", got ${JSON.stringify(rf.type)}.`);
      }
    }
    return o;
  }

  // tool_choice → the back end's: "auto" | "none" | "required" | a tool's name.
  function toolChoiceOf(params, tools) {
    const c = params.tool_choice;
    if (c === undefined || c === null) return "auto";
    if (c === "auto" || c === "none" || c === "required") {
      if (c === "required" && !tools) throw bad('tool_choice "required" needs tools.');
      return c;
    }
    const name = c && typeof c === "object" && c.type === "function" && c.function ? c.function.name : undefined;
    if (typeof name !== "string") {
      throw bad('tool_choice must be "auto", "none", "required" or {type: "function", function: {name}}.');
    }
    if (!tools || !tools.some((t) => t.function.name === name)) throw bad(`tool_choice names "${name}", which is not in tools.`);
    return name;
  }

  function toolsOf(params) {
    if (params.tools === undefined || params.tools === null) return null;
    if (!Array.isArray(params.tools)) throw bad("tools must be a list.");
    if (!params.tools.length) return null;
    return params.tools.map((t, i) => {
      if (!t || t.type !== "function" || !t.function || typeof t.function.name !== "string") {
        throw bad(`tools[${i}] must be {type: "function", function: {name, description, parameters}}.`);
      }
      return {type: "function", function: {name: t.function.name, description: t.function.description || "",
        parameters: t.function.parameters || {type: "object", properties: {}}}};
    });
  }

  async function completer(model, device) {
    const key = `${model}|${device}`;
    if (!completers.has(key)) {
      const p = llm.create({model, device, temperature: 0});
      completers.set(key, p);
      p.catch(() => completers.delete(key));
    }
    return completers.get(key);
  }

  function finishReason(r) {
    if (r.tool_calls && r.tool_calls.length) return "tool_calls";
    return r.finish_reason === "length" ? "length" : "stop";
  }

  function shapeToolCalls(calls) { // the back end's [{id, name, arguments: JSON text}]
    return calls.map((c) => ({id: c.id, type: "function", function: {name: c.name, arguments: c.arguments}}));
  }

  function usageOf(r) {
    return {prompt_tokens: r.prompt_tokens, completion_tokens: r.completion_tokens,
      total_tokens: r.prompt_tokens + r.completion_tokens,
      prompt_tokens_details: {cached_tokens: r.reused_tokens}};
  }

  function timingsOf(r) {
    return {ttft_ms: r.ttft_ms, prefill_tokens_per_s: r.prefill_tps, decode_tokens_per_s: r.decode_tps,
      reused_tokens: r.reused_tokens};
  }

  async function create(params, requestOptions = {}) {
    if (!params || typeof params !== "object") throw bad("takes a request object {model, messages, ...}.");
    const signal = requestOptions.signal || params.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw bad("signal must be an AbortSignal.");
    if (signal && signal.aborted) throw abortReason(signal);
    const messages = messagesOf(params);
    const options = optionsOf(params);
    const tools = toolsOf(params);
    if (tools && options.response_constraint) throw bad("give tools or a json_schema response_format, not both.");
    const choice = toolChoiceOf(params, tools);
    if (tools && choice !== "auto") options.tool_choice = choice;
    // An OpenAI model name ("gpt-4o-mini", "o3") means "the default model"; a model's name ("gemma-3-270m") or a
    // package path or URL names that package (llm.create resolves it).
    const model = typeof params.model === "string" && params.model && !OPENAI_NAME.test(params.model)
      ? params.model : llm.defaultModel;
    const device = params.device || defaultDevice;
    const session = await completer(model, device);
    const id = "chatcmpl-" + Math.random().toString(36).slice(2, 14);
    const created = Math.floor(Date.now() / 1000);
    const name = new URL(model, globalThis.document?.baseURI ?? llm.defaultModel).pathname.split("/").filter(Boolean).pop() || "nomoat";
    /** @param {((piece: string) => void) | null} onChunk @param {AbortSignal | undefined} sig */
    const call = (onChunk, sig) => session[RUN]("complete", {messages, options, tools}, {signal: sig, onChunk});

    if (!params.stream) {
      const r = await call(null, signal);
      const calls = shapeToolCalls(r.tool_calls || []);
      return {id, object: "chat.completion", created, model: name,
        choices: [{index: 0, message: {role: "assistant", content: calls.length && !r.content ? null : r.content,
          ...(calls.length ? {tool_calls: calls} : {}), refusal: null}, logprobs: null, finish_reason: finishReason(r)}],
        usage: usageOf(r), timings: timingsOf(r), system_fingerprint: `nomoat-${llm.version}`};
    }

    // Streaming: an async iterable of chunks (also a ReadableStream-like toReadableStream()).
    const includeUsage = Boolean(params.stream_options && params.stream_options.include_usage);
    const queue = [];
    let wake = null, finished = false, failure = null;
    const chunk = (delta, finish = null) => ({id, object: "chat.completion.chunk", created, model: name,
      system_fingerprint: `nomoat-${llm.version}`, choices: [{index: 0, delta, logprobs: null, finish_reason: finish}]});
    const push = (c) => {
      queue.push(c);
      if (wake) wake();
    };
    const stop = new AbortController();
    const sig = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    push(chunk({role: "assistant", content: ""}));
    // The back end streams the answer's text only (its tool-call blocks held back); the calls come with
    // the result, as OpenAI streams them: per call a delta with index, id, type and name (arguments ""),
    // then its arguments.
    call((piece) => push(chunk({content: piece})), sig).then((r) => {
      shapeToolCalls(r.tool_calls || []).forEach((c, index) => {
        push(chunk({tool_calls: [{index, id: c.id, type: "function", function: {name: c.function.name, arguments: ""}}]}));
        push(chunk({tool_calls: [{index, function: {arguments: c.function.arguments}}]}));
      });
      const last = chunk({}, finishReason(r));
      last.timings = timingsOf(r);
      push(last);
      if (includeUsage) push({...chunk({}), choices: [], usage: usageOf(r)});
    }, (e) => { failure = e; }).finally(() => {
      finished = true;
      if (wake) wake();
    });
    const iterator = {
      async next() {
        for (;;) {
          if (queue.length) return {value: queue.shift(), done: false};
          if (failure) throw failure;
          if (finished) return {value: undefined, done: true};
          await new Promise((r) => { wake = r; });
          wake = null;
        }
      },
      async return() {
        if (!finished) stop.abort(new DOMException("The stream was closed.", "AbortError"));
        return {value: undefined, done: true};
      },
      [Symbol.asyncIterator]() { return this; },
    };
    return {
      [Symbol.asyncIterator]: () => iterator,
      controller: stop,
      toReadableStream: () => new ReadableStream({
        async pull(c) {
          try {
            const {value, done} = await iterator.next();
            if (done) c.close();
            else c.enqueue(value);
          } catch (e) {
            c.error(e);
          }
        },
        cancel: async () => { await iterator.return(); },
      }),
    };
  }

  return {completions: {create: /** @type {any} */ (create)}};
}
