// @ts-check
// llm.serve() — OpenAI's API on the page's own origin, answered by the local model, for code that
// speaks it (the `openai` npm client, LangChain's ChatOpenAI, any OpenAI-compatible library): it only
// needs baseURL set to the returned server's baseURL.
//
//   const server = await llm.serve({path: "/v1"});
//   const openai = new OpenAI({baseURL: server.baseURL, apiKey: "local", dangerouslyAllowBrowser: true});
//
// This is the page half; the Service Worker (dist/nomoat-sw.js, sw.js) receives the fetch() calls
// and relays each to a serving page, which answers it here with llm.chat.completions.create and
// llm.embeddings.create (a stream chunk by chunk) and stops when the worker says the client is gone.
//
// Scope: a Service Worker sees the requests of the pages it controls, i.e. the pages under its
// scope, whatever URL they fetch; so the scope must contain the page (not `path`). By default it is
// the folder of nomoat-sw.js (next to nomoat.js): a page outside it either loads nomoat-sw.js from a
// folder above itself ({script: "/nomoat-sw.js"}) or has the server send nomoat-sw.js with
// "Service-Worker-Allowed: /" and passes {scope: "/"}.

import {DEFAULT_EMBEDDING_MODEL} from "./embeddings.js";
import {DEFAULT_PATH, TAG, checkPath, errorOf, httpError} from "./sw.js";

/**
 * @typedef {object} ServeOptions llm.serve(options)
 * @property {string} [path] where the endpoint answers on this origin; default "/v1"
 * @property {string} [script] the Service Worker script's URL (relative to the page); default nomoat-sw.js next to nomoat.js
 * @property {string} [scope] its registration scope (relative to the page); default the script's folder. It must contain the page.
 * @property {string[]} [models] the model names GET {path}/models lists; default the default chat model and all-MiniLM-L6-v2
 * @property {"auto" | "webgpu" | "wasm"} [device] the device of requests that name none; default llm.create's
 * @property {number} [timeout] ms to wait for the Service Worker to control the page; default 10000
 *
 * @typedef {object} Server what llm.serve() resolves to
 * @property {string} baseURL the endpoint's URL, an OpenAI client's baseURL (e.g. http://localhost:8000/v1)
 * @property {string} path
 * @property {string} scope the Service Worker's scope
 * @property {number} pending requests this page is answering now
 * @property {(options?: {unregister?: boolean}) => Promise<void>} close this page stops answering (another
 *   serving page of the origin, if any, answers from then on); unregister: also remove the Service Worker
 *
 * @typedef {object} ServeHost what serve needs of llm
 * @property {import("./openai.js").Chat} chat
 * @property {import("./embeddings.js").Embeddings} embeddings
 * @property {string} defaultModel
 */

/**
 * @typedef {import("./openai.js").ChatCompletion} ChatCompletion
 * @typedef {import("./openai.js").ChatCompletionChunk} ChatCompletionChunk
 */

/**
 * A streamed answer's chunks (with include_usage) as the one ChatCompletion openai.js answers the
 * same request without stream (test/sw.test.js holds the two equal).
 * @param {ChatCompletionChunk[]} chunks
 * @returns {ChatCompletion}
 */
export function completionOf(chunks) {
  const {id, created, model, system_fingerprint} = chunks[0];
  let content = "", finish = /** @type {import("./openai.js").FinishReason} */ ("stop"), usage, timings;
  /** @type {import("./openai.js").ChatToolCall[]} */
  const calls = [];
  for (const c of chunks) {
    if (c.usage) usage = c.usage;
    const choice = c.choices[0];
    if (!choice) continue;
    content += choice.delta.content ?? "";
    for (const d of choice.delta.tool_calls ?? []) { // OpenAI's deltas: id, type and name first, then arguments in pieces
      const call = calls[d.index] ??= {id: d.id, type: "function", function: {name: "", arguments: ""}};
      if (d.id) call.id = d.id;
      call.function.name += d.function?.name ?? "";
      call.function.arguments += d.function?.arguments ?? "";
    }
    if (choice.finish_reason) {
      finish = choice.finish_reason;
      timings = c.timings;
    }
  }
  return {id, object: "chat.completion", created, model,
    choices: [{index: 0, message: {role: "assistant", content: calls.length && !content ? null : content,
      ...(calls.length ? {tool_calls: calls} : {}), refusal: null}, logprobs: null, finish_reason: finish}],
    usage, timings, system_fingerprint};
}

/** @param {string} url the last segment of a model URL: its package name */
const nameOf = (url) => new URL(url).pathname.split("/").filter(Boolean).pop() || url;

/**
 * llm.serve for `llm`, whose runtime (nomoat-sw.js) is in `base`.
 * @param {ServeHost} llm
 * @param {string} base
 * @returns {(options?: ServeOptions) => Promise<Server>}
 */
export function createServe(llm, base) {
  /** @type {(Server & {device?: string, listed: object[]}) | null} */
  let current = null;
  let listening = false;

  /** @param {MessageEvent} ev */
  function onMessage(ev) {
    const d = ev.data, port = ev.ports && ev.ports[0];
    if (!d || d.type !== TAG || !port) return;
    if (d.kind === "probe") port.postMessage({serving: current !== null});
    else if (d.kind === "request") {
      if (current) answer(current, d, port);
      else port.postMessage({kind: "json", ...httpError(503, "This page stopped serving nomoat's OpenAI endpoint; retry.")});
    }
  }

  /**
   * One request, answered by this page's llm.
   * @param {Server & {device?: string, listed: any[]}} srv @param {{route: string, name?: string, body: any}} d @param {MessagePort} port
   */
  async function answer(srv, d, port) {
    const stop = new AbortController();
    port.onmessage = (m) => {
      if (m.data && m.data.kind === "abort") stop.abort(new DOMException("The client closed the request.", "AbortError"));
    };
    const signal = stop.signal;
    srv.pending += 1;
    try {
      if (d.route === "models") {
        port.postMessage({kind: "json", status: 200, body: {object: "list", data: srv.listed}});
      } else if (d.route === "model") {
        const found = srv.listed.find((m) => m.id === d.name);
        port.postMessage({kind: "json", ...(found ? {status: 200, body: found}
          : httpError(404, `The model ${JSON.stringify(d.name)} is not served here (GET ${srv.path}/models lists them).`,
            {param: "model", code: "model_not_found"}))});
      } else if (d.route === "embeddings") {
        const body = srv.device && d.body.device === undefined ? {...d.body, device: srv.device} : d.body;
        const r = await llm.embeddings.create(body, {signal});
        port.postMessage({kind: "json", status: 200, body: r});
      } else if (d.route === "chat") {
        const body = srv.device && d.body.device === undefined ? {...d.body, device: srv.device} : d.body;
        // Both kinds are generated as a stream, so that the 200 goes out with the first token and a client
        // that gives up is noticed (sw.js, PageReply); a JSON answer is its chunks put together.
        const whole = !body.stream;
        const stream = /** @type {AsyncIterable<ChatCompletionChunk>} */ (/** @type {unknown} */ (await llm.chat.completions.create(
          whole ? {...body, stream: true, stream_options: {include_usage: true}} : body, {signal})));
        /** @type {ChatCompletionChunk[]} */
        const chunks = [];
        let opened = !whole;
        if (opened) port.postMessage({kind: "head"});
        try {
          for await (const chunk of stream) {
            if (signal.aborted) break;
            if (!whole) port.postMessage({kind: "chunk", data: chunk});
            else {
              chunks.push(chunk);
              if (!opened && chunk.choices[0]?.delta?.content) {
                opened = true;
                port.postMessage({kind: "head", json: true});
              }
            }
          }
          if (signal.aborted) return;
          if (!whole) port.postMessage({kind: "end"});
          else port.postMessage(opened ? {kind: "body", body: completionOf(chunks)} : {kind: "json", status: 200, body: completionOf(chunks)});
        } catch (e) {
          if (signal.aborted) return;
          port.postMessage(opened ? {kind: "error", body: errorOf(e).body} : {kind: "json", ...errorOf(e)});
        }
      }
    } catch (e) {
      if (!signal.aborted) port.postMessage({kind: "json", ...errorOf(e)});
    } finally {
      srv.pending -= 1;
      port.onmessage = null;
      port.close();
    }
  }

  /** @param {ServeOptions} [options] @returns {Promise<Server>} */
  async function serve(options = {}) {
    if (options === null || typeof options !== "object") throw new TypeError("llm.serve() takes {path, script, scope, models, device}.");
    const path = checkPath(options.path ?? DEFAULT_PATH);
    if (options.models !== undefined && (!Array.isArray(options.models) || options.models.some((m) => typeof m !== "string" || !m))) {
      throw new TypeError("llm.serve(): models must be a list of model names.");
    }
    if (options.device !== undefined && !["auto", "webgpu", "wasm"].includes(options.device)) {
      throw new TypeError(`llm.serve(): device must be "auto", "webgpu" or "wasm", got ${JSON.stringify(options.device)}.`);
    }
    const container = globalThis.navigator?.serviceWorker;
    if (!container) {
      throw new DOMException("llm.serve() needs Service Workers, which this page cannot use: " + (globalThis.isSecureContext
        ? "this browser has none, or has them turned off (private windows)." : "serve the page over https:// or from localhost."),
      "NotSupportedError");
    }
    if (current) {
      if (current.path === path) return current;
      throw new DOMException(`This page already serves nomoat's OpenAI endpoint at ${current.path}; close() it first.`, "InvalidStateError");
    }
    const script = new URL(options.script ?? "nomoat-sw.js", options.script ? document.baseURI : base);
    script.searchParams.set("path", path);
    if (script.origin !== location.origin) {
      throw new DOMException(`llm.serve(): the Service Worker script must come from this page's origin (${location.origin}), not ` +
        `${script.origin}: copy dist/nomoat-sw.js to this site and pass {script: "/nomoat-sw.js"}.`, "SecurityError");
    }
    const scope = new URL(options.scope ?? "./", options.scope ? document.baseURI : script).href;
    if (!location.href.startsWith(scope)) {
      throw new DOMException(`llm.serve(): this page (${location.pathname}) is outside the Service Worker's scope ` +
        `(${new URL(scope).pathname}), so its requests would never reach it: load nomoat-sw.js from a folder above the page ` +
        `({script: "/nomoat-sw.js"}), or send it with the header "Service-Worker-Allowed: /" and pass {scope: "/"}.`, "SecurityError");
    }
    if (!listening) {
      container.addEventListener("message", onMessage);
      container.startMessages();
      listening = true;
    }
    let registration;
    try {
      registration = await container.register(script.href, {scope});
    } catch (e) {
      const err = /** @type {Error} */ (e);
      throw new DOMException(`llm.serve(): the Service Worker ${script.pathname} could not be registered (${err.message}). ` +
        (err.name === "SecurityError" ? `Its scope ${new URL(scope).pathname} is above its folder: send nomoat-sw.js with the header ` +
          `"Service-Worker-Allowed: ${new URL(scope).pathname}", or leave scope out.`
          : "Check that it is served (web/dist/nomoat-sw.js, as text/javascript) from this origin."), err.name === "SecurityError"
        ? "SecurityError" : "NetworkError");
    }
    await controlled(container, registration, script.href, options.timeout ?? 10000);
    const created = Math.floor(Date.now() / 1000);
    const names = options.models ?? [nameOf(llm.defaultModel), DEFAULT_EMBEDDING_MODEL];
    const srv = {
      baseURL: new URL(path, location.origin).href, path, scope: registration.scope, pending: 0, device: options.device,
      listed: names.map((id) => ({id, object: "model", created, owned_by: "nomoat"})),
      async close({unregister = false} = {}) {
        if (current !== srv) return;
        current = null;
        container.removeEventListener("controllerchange", hello);
        container.controller?.postMessage({type: TAG, kind: "closed"});
        if (unregister) await registration.unregister();
      },
    };
    const hello = () => container.controller?.postMessage({type: TAG, kind: "serving"});
    container.addEventListener("controllerchange", hello); // a new version of the worker: tell it too
    current = srv;
    hello();
    return srv;
  }
  return serve;
}

/**
 * Resolves once the Service Worker `url` controls this page: on a first load it activates and claims
 * the page; a page loaded without one (a hard reload) asks the active worker to claim it.
 * @param {ServiceWorkerContainer} container @param {ServiceWorkerRegistration} registration
 * @param {string} url @param {number} timeout
 */
async function controlled(container, registration, url, timeout) {
  const ours = () => container.controller !== null && container.controller.scriptURL === url;
  if (ours()) return;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      container.removeEventListener("controllerchange", check);
      reject(new DOMException(`llm.serve(): the Service Worker ${new URL(url).pathname} did not take control of this page within ` +
        `${timeout} ms${container.controller ? ` (${container.controller.scriptURL} controls it: its scope is closer to the page; ` +
          "unregister it or serve nomoat-sw.js with the same scope)" : ""}.`, "InvalidStateError"));
    }, timeout);
    function check() {
      if (!ours()) return;
      clearTimeout(timer);
      container.removeEventListener("controllerchange", check);
      resolve(undefined);
    }
    container.addEventListener("controllerchange", check);
    const claim = () => registration.active?.postMessage({type: TAG, kind: "claim"});
    const worker = registration.installing || registration.waiting;
    if (worker) {
      worker.addEventListener("statechange", () => worker.state === "activated" && claim());
    } else claim();
    check();
  });
}
