// @ts-check
// nomoat's OpenAI endpoint on the page's own origin (llm.serve(), serve.js): the Service Worker
// half. dist/nomoat-sw.js is this module bundled (its entry is nomoat-sw.js); serve.js, the page
// half, uses its routes, error shapes and message names.
//
//   POST {path}/chat/completions   JSON, or server-sent events with "stream": true
//   POST {path}/embeddings         GET {path}/models, GET {path}/models/NAME
//
// A Service Worker cannot run the model (it cannot start the dedicated worker the model lives in),
// so each request is relayed to a page that called llm.serve() (the requesting page first, else any
// other page of this origin that serves), over a MessageChannel: that page answers it with
// llm.chat.completions.create / llm.embeddings.create (openai.js, embeddings.js) and sends back the
// answer, or its chunks one by one, which become SSE here. Only requests of this origin's own pages
// and workers reach this worker at all; it answers only URLs of this origin under `path`, never a
// navigation (another site's form posting here is refused, 403), nor a request whose Origin is
// another site's. A response stream the client cancels, or a request whose signal aborts, sends
// "abort" to the page, which stops the generation. Errors are OpenAI's {"error": {message, type,
// param, code}} with the status py/nomoat/openai_server.py's api_error gives the same condition.
//
// `path` is the script's ?path= (serve.js registers nomoat-sw.js?path=/v1), so it survives the
// browser stopping and restarting this worker, which loses everything else it holds.

/** The message type of everything serve.js and this worker say to each other. */
export const TAG = "nomoat-sw";
export const DEFAULT_PATH = "/v1";
/** How long a page that may serve has to answer "probe" (ms), and how often a request checks its page is still open. */
export const PROBE_MS = 1000;
export const WATCH_MS = 1000;

/**
 * The endpoint's path, checked: "/v1" (no trailing slash), a folder of the site, not its root.
 * @param {unknown} path
 * @returns {string}
 */
export function checkPath(path) {
  if (typeof path !== "string" || !path.startsWith("/") || /[?#\s]/.test(path)) {
    throw new TypeError(`llm.serve(): path must be an absolute path on this site such as "/v1", got ${JSON.stringify(path)}.`);
  }
  const p = path.replace(/\/+$/, "");
  if (!p) throw new TypeError('llm.serve(): path cannot be the site\'s root ("/"); the endpoint needs a folder of its own such as "/v1".');
  return p;
}

/**
 * @typedef {{route: "chat" | "embeddings" | "models" | "model", name?: string}} Route
 * @typedef {{status: number, body: {error: {message: string, type: string, param: string | null, code: string | null}}}} HttpError
 */

/**
 * OpenAI's error body (py/nomoat/openai_server.py ApiError.body: "invalid_request_error" below 500).
 * @param {number} status
 * @param {string} message
 * @param {{param?: string | null, code?: string | null}} [more]
 * @returns {HttpError}
 */
export function httpError(status, message, {param = null, code = null} = {}) {
  return {status, body: {error: {message, type: status < 500 ? "invalid_request_error" : "server_error", param, code}}};
}

/**
 * Which route a request is: null when the URL is not under `base` (not this endpoint's: the network
 * answers it), an HttpError for a wrong method (405) or an unknown URL under it (404).
 * @param {string} method
 * @param {string} pathname
 * @param {string} base the endpoint's path ("/v1")
 * @returns {Route | HttpError | null}
 */
export function route(method, pathname, base) {
  if (pathname !== base && !pathname.startsWith(base + "/")) return null;
  const rest = pathname.slice(base.length).replace(/\/+$/, "");
  const routes = {"/chat/completions": ["POST", "chat"], "/embeddings": ["POST", "embeddings"], "/models": ["GET", "models"]};
  let want, name, which;
  if (rest in routes) [want, which] = routes[rest];
  else if (rest.startsWith("/models/") && rest.length > 8) {
    want = "GET", which = "model";
    try {
      name = decodeURIComponent(rest.slice(8));
    } catch (e) {
      name = rest.slice(8);
    }
  } else {
    return httpError(404, `nomoat serves ${base}/chat/completions, ${base}/embeddings and ${base}/models; not ${pathname}.`,
      {code: "unknown_url"});
  }
  if (method !== want) return httpError(405, `${pathname} takes ${want}, not ${method}.`);
  return /** @type {Route} */ (name === undefined ? {route: which} : {route: which, name});
}

// The request fields a message of openai.js / embeddings.js names first ("chat.completions.create: temperature must be ...").
const FIELDS = /^(?:chat\.completions\.create|embeddings\.create): (messages|model|temperature|top_p|max_tokens|max_completion_tokens|seed|n|stop|response_format|tools|tool_choice|input|encoding_format|dimensions|truncate|device|wasmEngine)\b/;

/**
 * The HTTP answer to an exception of llm.chat / llm.embeddings, as py/nomoat/openai_server.py's
 * api_error maps nomoat's errors: a request nomoat cannot answer is the client's to change (400:
 * TypeError, RangeError, NotSupportedError; context_length_exceeded for QuotaExceededError), a model
 * package that does not exist 404 model_not_found, anything else a 500 naming it.
 * @param {unknown} e
 * @returns {HttpError}
 */
export function errorOf(e) {
  const err = /** @type {{name?: string, message?: string}} */ (e && typeof e === "object" ? e : {message: String(e)});
  const name = String(err.name || "Error"), message = String(err.message ?? e);
  const param = FIELDS.exec(message)?.[1] ?? (name === "NotFoundError" ? "model" : null);
  if (name === "TypeError" || name === "RangeError" || name === "SyntaxError") return httpError(400, message, {param});
  if (name === "QuotaExceededError") return httpError(400, message, {param: "messages", code: "context_length_exceeded"});
  if (name === "NotSupportedError") return httpError(400, message, {param});
  if (name === "NotFoundError") return httpError(404, message, {param: "model", code: "model_not_found"});
  return httpError(500, `${name}: ${message}`);
}

/** One server-sent event carrying `data` as JSON. @param {unknown} data */
export const sse = (data) => `data: ${JSON.stringify(data)}\n\n`;
export const SSE_DONE = "data: [DONE]\n\n";

/** @param {HttpError | {status: number, body: unknown}} a */
export function jsonResponse(a) {
  return new Response(JSON.stringify(a.body), {status: a.status, headers: {"Content-Type": "application/json", "Cache-Control": "no-store"}});
}

/**
 * The request's JSON body, checked as openai_server.py's read_json: an object (a 400 otherwise);
 * "stream" true or false.
 * @param {string} text
 * @returns {Record<string, unknown> | HttpError}
 */
export function readBody(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch (e) {
    return httpError(400, `The request body must be a JSON object (UTF-8): ${/** @type {Error} */ (e).message}.`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return httpError(400, 'The request body must be a JSON object, e.g. {"model": ..., "messages": [...]}.');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") {
    return httpError(400, "stream must be true or false.", {param: "stream"});
  }
  return body;
}

/**
 * What the page sends back over the request's port:
 *   {kind: "json", status, body}   the whole answer (or an error before anything was streamed)
 *   {kind: "head", json?}          a 200 begins: server-sent events, or (json) one JSON body still being generated
 *   {kind: "chunk", data}          one chunk, an SSE event
 *   {kind: "end"}                  the stream is complete: data: [DONE]
 *   {kind: "body", body}           the JSON body of a json head, complete
 *   {kind: "error", body}          it failed midway: its error as a last event (or as the JSON body)
 * and this worker sends {kind: "abort"} when the client has gone.
 *
 * Why a JSON answer can have its head before its body: a client that aborts a fetch is noticed
 * here only when it cancels a response body; Chromium does not abort FetchEvent.request.signal
 * (w3c/ServiceWorker#1544). So a non-streaming chat completion is sent as a 200 once its first
 * token is out (every refusal, context overflow included, comes before that, with its status), and
 * its JSON follows when it is complete; a client that gave up cancels that body and the
 * generation stops.
 * @typedef {{kind: "json", status: number, body: unknown} | {kind: "head", json?: boolean} | {kind: "chunk", data: unknown}
 *   | {kind: "end"} | {kind: "body", body: unknown} | {kind: "error", body: unknown}} PageReply
 */

/**
 * Installs the fetch, message and lifecycle handlers on a ServiceWorkerGlobalScope (nomoat-sw.js
 * calls it on `self`; a test passes a stand-in).
 * @param {any} sw
 */
export function installServiceWorker(sw) {
  const here = new URL(sw.location.href);
  const base = checkPath(here.searchParams.get("path") ?? DEFAULT_PATH);
  const origin = here.origin;
  /** @type {Set<string>} ids of the clients that said they serve (lost when the browser restarts this worker) */
  const serving = new Set();
  const encoder = new TextEncoder();

  // First load: take the page at once (serve() waits until this worker controls it).
  sw.addEventListener("install", () => sw.skipWaiting());
  sw.addEventListener("activate", (/** @type {any} */ ev) => ev.waitUntil(sw.clients.claim()));
  sw.addEventListener("message", (/** @type {any} */ ev) => {
    const d = ev.data, id = ev.source && ev.source.id;
    if (!d || d.type !== TAG) return;
    if (d.kind === "claim") ev.waitUntil(sw.clients.claim()); // a page loaded without a controller (a hard reload)
    else if (d.kind === "serving" && id) serving.add(id);
    else if (d.kind === "closed" && id) serving.delete(id);
  });
  sw.addEventListener("fetch", (/** @type {any} */ ev) => {
    const request = ev.request, url = new URL(request.url);
    if (url.origin !== origin) return; // another site's URL: not this endpoint
    const r = route(request.method, url.pathname, base);
    if (r === null) return; // the site's own files: the network
    /** @type {() => void} */
    let ended = () => {};
    const done = new Promise((resolve) => { ended = () => resolve(undefined); });
    const response = answer(request, r, ev.clientId || ev.resultingClientId || "", ended).catch((e) => {
      ended();
      return jsonResponse(httpError(500, `nomoat's Service Worker failed: ${e && e.message}`));
    });
    ev.respondWith(response);
    ev.waitUntil(done); // keep this worker alive while the page streams the answer
  });

  /**
   * @param {Request} request @param {Route | HttpError} r @param {string} clientId @param {() => void} ended
   * @returns {Promise<Response>}
   */
  async function answer(request, r, clientId, ended) {
    const refuse = (/** @type {HttpError} */ e) => {
      ended();
      return jsonResponse(e);
    };
    if (request.mode === "navigate") {
      return refuse(httpError(403, `${new URL(request.url).pathname} is nomoat's OpenAI endpoint for fetch() calls of ${origin}'s own ` +
        "pages; it is not a page, and it does not answer a navigation or another site's form."));
    }
    const from = request.headers.get("Origin");
    if (from && from !== origin) {
      return refuse(httpError(403, `nomoat's OpenAI endpoint answers pages of ${origin} only, not ${from}.`));
    }
    if ("status" in r) return refuse(r);
    let body = null;
    if (request.method === "POST") {
      const read = readBody(await request.text());
      if ("status" in read && "body" in read && typeof read.status === "number") return refuse(/** @type {HttpError} */ (read));
      body = read;
    }
    const client = await server(clientId);
    if (!client) {
      return refuse(httpError(503, `No page of ${origin} is serving nomoat's OpenAI endpoint at ${base}: open one that calls ` +
        `await llm.serve({path: "${base}"}) (and keep it open while requests come).`, {code: "no_serving_page"}));
    }
    return relay(client, r, body, request.signal, ended);
  }

  // The page that answers: the requesting one if it serves, else another that does; when this
  // worker knows none (it was restarted, or none has said so yet), every window of the origin is asked.
  async function server(/** @type {string} */ preferred) {
    const windows = await sw.clients.matchAll({type: "window", includeUncontrolled: true});
    const live = new Map(windows.map((/** @type {any} */ c) => [c.id, c]));
    for (const id of serving) if (!live.has(id)) serving.delete(id);
    if (!serving.size) {
      const said = await Promise.all(windows.map((/** @type {any} */ c) => probe(c)));
      windows.forEach((/** @type {any} */ c, i) => said[i] && serving.add(c.id));
    }
    if (serving.has(preferred)) return live.get(preferred);
    const [first] = serving;
    return first === undefined ? null : live.get(first);
  }

  /** @param {any} client @returns {Promise<boolean>} whether it serves (it answers within PROBE_MS) */
  function probe(client) {
    return new Promise((resolve) => {
      const {port1, port2} = new MessageChannel();
      const timer = setTimeout(() => {
        port1.close();
        resolve(false);
      }, PROBE_MS);
      port1.onmessage = (m) => {
        clearTimeout(timer);
        port1.close();
        resolve(Boolean(m.data && m.data.serving));
      };
      client.postMessage({type: TAG, kind: "probe"}, [port2]);
    });
  }

  /**
   * The request, answered by `client`'s page.
   * @param {any} client @param {Route} r @param {unknown} body @param {AbortSignal | undefined} signal @param {() => void} ended
   * @returns {Promise<Response>}
   */
  function relay(client, r, body, signal, ended) {
    const {port1, port2} = new MessageChannel();
    return new Promise((resolve) => {
      /** @type {ReadableStreamDefaultController<Uint8Array> | null} */
      let stream = null;
      let finished = false, json = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearInterval(watch);
        port1.onmessage = null;
        setTimeout(() => port1.close(), 0);
        ended();
      };
      const abort = () => { // the client has gone: the page stops generating
        if (finished) return;
        port1.postMessage({kind: "abort"});
        finish();
        resolve(jsonResponse(httpError(499, "The client closed the request.")));
      };
      const send = (/** @type {string} */ text) => {
        try {
          stream?.enqueue(encoder.encode(text));
        } catch (e) {
          abort(); // the stream was cancelled
        }
      };
      // the page that answers may be closed midway: it says nothing more, so it is watched
      const watch = setInterval(async () => {
        if (await sw.clients.get(client.id)) return;
        serving.delete(client.id);
        const gone = httpError(503, "The page serving nomoat's OpenAI endpoint was closed while answering; open one and retry.",
          {code: "no_serving_page"});
        if (stream) {
          send(json ? JSON.stringify(gone.body) : sse(gone.body));
          try {
            stream.close();
          } catch (e) { /* cancelled meanwhile */ }
        } else resolve(jsonResponse(gone));
        finish();
      }, WATCH_MS);
      if (signal) signal.addEventListener("abort", abort, {once: true});
      port1.onmessage = (/** @type {MessageEvent<PageReply>} */ m) => {
        const d = m.data;
        if (d.kind === "json") {
          resolve(jsonResponse(d));
          finish();
        } else if (d.kind === "head") {
          json = Boolean(d.json);
          resolve(new Response(new ReadableStream({
            start(c) { stream = c; },
            cancel() { abort(); },
          }), {status: 200, headers: {"Content-Type": json ? "application/json" : "text/event-stream", "Cache-Control": "no-store"}}));
        } else if (d.kind === "chunk") {
          send(sse(d.data));
        } else if (d.kind === "end" || d.kind === "body" || d.kind === "error") {
          send(d.kind === "end" ? SSE_DONE : json ? JSON.stringify(d.body) : sse(d.body));
          if (!finished) stream?.close();
          finish();
        }
      };
      client.postMessage({type: TAG, kind: "request", route: r.route, name: r.name, body}, [port2]);
    });
  }
}
