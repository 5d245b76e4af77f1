// llm.serve() without a browser: the Service Worker (sw.js) installed on a stand-in global scope,
// the page half (serve.js) on a stand-in navigator.serviceWorker, and between them Node's real
// MessageChannel, Request, Response and ReadableStream. The page answers with the real openai.js
// over a fake transport, so the SSE framing carries openai.js's own chunks.
import assert from "node:assert/strict";
import {test} from "node:test";
import {createChat} from "../src/openai.js";
import {completionOf, createServe} from "../src/serve.js";
import {LanguageModelSession} from "../src/session.js";
import {PROBE_MS, checkPath, errorOf, installServiceWorker, readBody, route, sse} from "../src/sw.js";
import {FakeTransport} from "./fake_transport.js";

const ORIGIN = "http://127.0.0.1:8000";
const RESULT = {content: "Paris.", finish_reason: "stop", prompt_tokens: 20, completion_tokens: 3, reused_tokens: 0,
  ttft_ms: 1, prefill_tps: 1, decode_tps: 1};

test("routes: the endpoint's URLs, 405 for a wrong method, 404 under the path, null outside it", () => {
  assert.deepEqual(route("POST", "/v1/chat/completions", "/v1"), {route: "chat"});
  assert.deepEqual(route("POST", "/v1/chat/completions/", "/v1"), {route: "chat"});
  assert.deepEqual(route("POST", "/v1/embeddings", "/v1"), {route: "embeddings"});
  assert.deepEqual(route("GET", "/v1/models", "/v1"), {route: "models"});
  assert.deepEqual(route("GET", "/v1/models/all-MiniLM-L6-v2", "/v1"), {route: "model", name: "all-MiniLM-L6-v2"});
  assert.deepEqual(route("GET", "/api/openai/models", "/api/openai"), {route: "models"});
  assert.equal(route("GET", "/v10/models", "/v1"), null);
  assert.equal(route("GET", "/index.html", "/v1"), null);
  assert.equal(route("GET", "/v1/chat/completions", "/v1").status, 405);
  assert.equal(route("POST", "/v1/models", "/v1").status, 405);
  const e = route("POST", "/v1/completions", "/v1");
  assert.equal(e.status, 404);
  assert.equal(e.body.error.code, "unknown_url");
  assert.equal(e.body.error.type, "invalid_request_error");
  assert.equal(checkPath("/v1/"), "/v1");
  for (const bad of ["/", "v1", "", "/v1?x", 3]) assert.throws(() => checkPath(bad), TypeError);
});

test("errors: nomoat's exceptions as OpenAI's error body, with openai_server.py's statuses", () => {
  const t = errorOf(new TypeError("chat.completions.create: temperature must be a number from 0 to 2, got 3."));
  assert.deepEqual(t, {status: 400, body: {error: {message: "chat.completions.create: temperature must be a number from 0 to 2, got 3.",
    type: "invalid_request_error", param: "temperature", code: null}}});
  assert.equal(errorOf(new DOMException("n > 1 is not supported", "NotSupportedError")).status, 400);
  const q = errorOf(Object.assign(new Error("too long"), {name: "QuotaExceededError"}));
  assert.equal(q.status, 400);
  assert.equal(q.body.error.code, "context_length_exceeded");
  const nf = errorOf(Object.assign(new Error("The model file x was not found (HTTP 404)."), {name: "NotFoundError"}));
  assert.deepEqual([nf.status, nf.body.error.code, nf.body.error.param], [404, "model_not_found", "model"]);
  const other = errorOf(Object.assign(new Error("boom"), {name: "OperationError"}));
  assert.deepEqual([other.status, other.body.error.type, other.body.error.message], [500, "server_error", "OperationError: boom"]);
  assert.equal(readBody("{").status, 400);
  assert.equal(readBody("[1]").status, 400);
  assert.equal(readBody('{"stream": "yes"}').body.error.param, "stream");
  assert.deepEqual(readBody('{"a": 1}'), {a: 1});
  assert.equal(sse({a: 1}), 'data: {"a":1}\n\n');
});

/**
 * A Service Worker scope, a page that serves (or not) and a fetch() that goes through both.
 * @param {{pieces?: string[], delay?: number}} [o] what the fake model streams, and how slowly
 */
async function world({pieces = ["Par", "is."], delay = 0} = {}) {
  const listeners = {};
  const windows = new Map(); // id -> client
  const sw = {
    location: {href: `${ORIGIN}/nomoat-sw.js?path=%2Fv1`},
    addEventListener: (type, f) => { listeners[type] = f; },
    skipWaiting: () => {},
    clients: {
      claim: async () => {},
      matchAll: async () => [...windows.values()],
      get: async (id) => windows.get(id),
    },
  };
  installServiceWorker(sw);

  // the page: navigator.serviceWorker whose messages come from the worker above
  const pageListeners = {};
  const controller = {scriptURL: `${ORIGIN}/nomoat-sw.js?path=%2Fv1`, postMessage: (data) => listeners.message({data, source: page,
    waitUntil() {}})};
  const container = {
    controller,
    addEventListener: (type, f) => { pageListeners[type] = f; },
    removeEventListener: () => {},
    startMessages: () => {},
    register: async () => ({scope: `${ORIGIN}/`, active: controller, unregister: async () => true}),
  };
  const page = {id: "page-1", postMessage: (data, ports) => pageListeners.message?.({data, ports})};
  windows.set(page.id, page);
  Object.defineProperty(globalThis, "navigator", {value: {serviceWorker: container}, configurable: true});
  globalThis.location = /** @type {any} */ ({href: `${ORIGIN}/app.html`, origin: ORIGIN, pathname: "/app.html"});
  globalThis.document = /** @type {any} */ ({baseURI: `${ORIGIN}/app.html`});

  const t = new FakeTransport();
  const signals = [];
  t.onCall = async (c) => {
    if (c.kind !== "complete") return;
    for (const p of pieces) {
      if (t.aborted.includes(c.id)) return t.reply(c.id, "throw", {name: "AbortError", message: "aborted"}); // as the worker does
      if (delay) await new Promise((r) => setTimeout(r, delay));
      t.reply(c.id, "chunk", p);
    }
    t.reply(c.id, "return", {...RESULT, content: pieces.join("")});
  };
  const chat = createChat({defaultModel: `${ORIGIN}/models/SmolLM2-135M-Instruct/`, version: "9",
    async create() { return new LanguageModelSession(t, {session: 1, contextWindow: 512, contextUsage: 0}); }}, "auto");
  const embeddings = {create: async (b) => ({object: "list", data: [{object: "embedding", index: 0, embedding: [b.input.length]}],
    model: "all-MiniLM-L6-v2", usage: {prompt_tokens: 1, total_tokens: 1}})};
  const serve = createServe({chat, embeddings, defaultModel: `${ORIGIN}/models/SmolLM2-135M-Instruct/`}, `${ORIGIN}/`);

  /** fetch() through the worker; null when it does not answer (the network would) */
  async function fetch(url, {method = "GET", body, headers = {}, mode = "cors", signal} = {}) {
    const request = mode === "navigate"
      ? {url: new URL(url, ORIGIN).href, method, mode, headers: new Headers(headers), text: async () => body ?? "", signal}
      : new Request(new URL(url, ORIGIN), {method, body, headers, signal});
    let response = null;
    listeners.fetch({request, clientId: page.id, respondWith: (p) => { response = p; }, waitUntil: () => {}});
    return response && await response;
  }
  return {serve, fetch, t, signals, windows, page};
}

const post = (body) => ({method: "POST", body: JSON.stringify(body), headers: {"Content-Type": "application/json"}});
const Q = {model: "gpt-4o-mini", messages: [{role: "user", content: "Capital of France?"}]};

test("a serving page answers models, chat (JSON) and embeddings through the worker", async () => {
  const w = await world();
  const server = await w.serve({path: "/v1"});
  assert.equal(server.baseURL, `${ORIGIN}/v1`);
  const models = await (await w.fetch("/v1/models")).json();
  assert.deepEqual(models.data.map((m) => m.id), ["SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"]);
  assert.equal((await w.fetch("/v1/models/all-MiniLM-L6-v2")).status, 200);
  const missing = await w.fetch("/v1/models/nope");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "model_not_found");
  const r = await w.fetch("/v1/chat/completions", post(Q));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "application/json");
  const c = await r.json();
  assert.equal(c.object, "chat.completion");
  assert.equal(c.choices[0].message.content, "Paris.");
  const e = await (await w.fetch("/v1/embeddings", post({input: "abc"}))).json();
  assert.deepEqual(e.data[0].embedding, [3]);
  assert.equal(server.pending, 0);
  assert.equal(await w.fetch("/index.html"), null); // the site's own files: not the worker's
  assert.equal(await w.fetch("http://example.com/v1/models"), null); // another site's URL
  await server.close();
});

test("a stream is server-sent events: openai.js's chunks, then [DONE]", async () => {
  const w = await world({pieces: ["The ", "capital ", "is ", "Paris."]});
  await w.serve();
  const r = await w.fetch("/v1/chat/completions", post({...Q, stream: true, stream_options: {include_usage: true}}));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/event-stream");
  const text = await r.text();
  const events = text.split("\n\n").filter(Boolean);
  assert.ok(events.every((e) => e.startsWith("data: ")), text);
  assert.equal(events.at(-1), "data: [DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.deepEqual(chunks[0].choices[0].delta, {role: "assistant", content: ""});
  assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""), "The capital is Paris.");
  assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason === "stop").length, 1);
  assert.equal(chunks.at(-1).usage.completion_tokens, 3);
});

test("cancelling the response body, or aborting the request, stops the generation in the page", async () => {
  const w = await world({pieces: Array.from({length: 200}, (_, i) => `w${i} `), delay: 2});
  await w.serve();
  const r = await w.fetch("/v1/chat/completions", post({...Q, stream: true}));
  const reader = r.body.getReader();
  await reader.read();
  await reader.read();
  await reader.cancel();
  for (let i = 0; i < 50 && !w.t.aborted.length; i++) await new Promise((res) => setTimeout(res, 5));
  assert.equal(w.t.aborted.length, 1, "the page aborted its complete call");
  const done = await w.fetch("/v1/chat/completions", post({...Q, stream: false})); // the next request works
  assert.equal(done.status, 200);
  assert.equal((await done.json()).choices[0].finish_reason, "stop");
  const c2 = new AbortController();
  const pending = w.fetch("/v1/chat/completions", {...post(Q), signal: c2.signal});
  await new Promise((res) => setTimeout(res, 30));
  c2.abort();
  await pending;
  for (let i = 0; i < 50 && w.t.aborted.length < 2; i++) await new Promise((res) => setTimeout(res, 5));
  assert.equal(w.t.aborted.length, 2, "request.signal's abort reached the page");
});

test("refusals: navigations, other origins, bad bodies, unknown URLs, bad requests in OpenAI's error shape", async () => {
  const w = await world();
  await w.serve();
  const nav = await w.fetch("/v1/chat/completions", {...post(Q), mode: "navigate", headers: {Origin: "http://evil.test"}});
  assert.equal(nav.status, 403);
  assert.equal((await nav.json()).error.type, "invalid_request_error");
  const foreign = await w.fetch("/v1/models", {headers: {Origin: "http://evil.test"}});
  assert.equal(foreign.status, 403);
  assert.match((await foreign.json()).error.message, /evil\.test/);
  const badJson = await w.fetch("/v1/chat/completions", {method: "POST", body: "{nope"});
  assert.equal(badJson.status, 400);
  assert.equal((await w.fetch("/v1/nothing")).status, 404);
  const bad = await w.fetch("/v1/chat/completions", post({...Q, temperature: 3}));
  assert.equal(bad.status, 400);
  assert.deepEqual(Object.keys((await bad.json()).error).sort(), ["code", "message", "param", "type"]);
  const badStream = await w.fetch("/v1/chat/completions", post({...Q, messages: [], stream: true}));
  assert.equal(badStream.status, 400, "a refused stream is a 400 before any event");
});

test("no serving page: 503 naming the fix; a page that closes mid-request: 503 too", async () => {
  const w = await world({pieces: ["a ", "b ", "c "], delay: 1500}); // slower than the watch (WATCH_MS)
  const t0 = Date.now();
  const none = await w.fetch("/v1/models");
  assert.equal(none.status, 503);
  assert.match((await none.json()).error.message, /llm\.serve/);
  assert.ok(Date.now() - t0 >= PROBE_MS - 50, "the pages were asked first");
  const server = await w.serve();
  const pending = w.fetch("/v1/chat/completions", post(Q));
  await new Promise((res) => setTimeout(res, 50));
  w.windows.delete(w.page.id); // the page is closed
  const r = await pending;
  assert.equal(r.status, 503);
  assert.equal((await r.json()).error.code, "no_serving_page");
  w.windows.set(w.page.id, w.page); // open again; it closes after its first token: the 200 went out, its body is the error
  const late = await w.fetch("/v1/chat/completions", post(Q));
  assert.equal(late.status, 200);
  w.windows.delete(w.page.id);
  assert.equal(JSON.parse(await late.text()).error.code, "no_serving_page");
  await server.close();
});

test("a JSON answer put together from the stream is openai.js's own non-streaming answer", async () => {
  for (const [result, extra] of [
    [{...RESULT, content: "The capital is Paris."}, {}],
    [{...RESULT, content: "", finish_reason: "stop", tool_calls: [{id: "call_1", name: "weather", arguments: '{"city":"Paris"}'},
      {id: "call_2", name: "time", arguments: '{"zone":"CET"}'}]},
      {tools: [{type: "function", function: {name: "weather", parameters: {type: "object"}}}]}],
    [{...RESULT, content: "Par", finish_reason: "length"}, {max_tokens: 1}],
  ]) {
    const t = new FakeTransport();
    t.onCall = (c) => {
      if (c.kind !== "complete") return;
      if (result.content) t.reply(c.id, "chunk", result.content);
      t.reply(c.id, "return", result);
    };
    const chat = createChat({defaultModel: `${ORIGIN}/models/SmolLM2-135M-Instruct/`, version: "9",
      async create() { return new LanguageModelSession(t, {session: 1, contextWindow: 512, contextUsage: 0}); }}, "auto");
    const params = {...Q, ...extra};
    const whole = await chat.completions.create(params);
    const chunks = [];
    for await (const c of await chat.completions.create({...params, stream: true, stream_options: {include_usage: true}})) chunks.push(c);
    const merged = completionOf(chunks);
    const same = (x) => ({...JSON.parse(JSON.stringify(x).replaceAll(x.id.slice(9), "ID")), created: 0});
    assert.deepEqual(same(merged), same(whole));
  }
});

test("serve() refuses what cannot work, naming the fix", async () => {
  const w = await world();
  await assert.rejects(w.serve({path: "/"}), TypeError);
  await assert.rejects(w.serve({device: "gpu"}), TypeError);
  await assert.rejects(w.serve({scope: "/other/"}), (e) => e.name === "SecurityError" && /outside the Service Worker's scope/.test(e.message)
    && /Service-Worker-Allowed/.test(e.message));
  await assert.rejects(w.serve({script: "http://cdn.example/nomoat-sw.js"}), (e) => e.name === "SecurityError" && /copy dist\/nomoat-sw\.js/.test(e.message));
  const server = await w.serve({path: "/v1"});
  await assert.rejects(w.serve({path: "/v2"}), (e) => e.name === "InvalidStateError");
  await server.close();
  Object.defineProperty(globalThis, "navigator", {value: {}, configurable: true});
  globalThis.isSecureContext = false;
  await assert.rejects(w.serve(), (e) => e.name === "NotSupportedError" && /https:\/\/ or from localhost/.test(e.message));
});
