// LanguageModelSession (session.js) over a fake transport: call order, aborts, destroy, errors.
import assert from "node:assert/strict";
import {test} from "node:test";
import {RUN, LanguageModelSession} from "../src/session.js";
import {FakeTransport, settle} from "./fake_transport.js";

const INFO = {session: 7, device: "wasm", deviceReason: "asked", contextWindow: 512, contextUsage: 0};
const make = () => {
  const t = new FakeTransport();
  return {t, s: new LanguageModelSession(t, {...INFO}, {temperature: 0, topK: 1, samplingMode: "most-predictable", raw: true})};
};

test("topK and temperature: undefined on a web page, IDL values in an extension context", () => {
  // index.bs: both attributes are "Only available in extension and experimental contexts";
  // temperature is a float (Math.fround), topK an unsigned long
  const t = new FakeTransport();
  const page = new LanguageModelSession(t, {...INFO}, {temperature: 0.7, topK: 40, samplingMode: "balanced"});
  assert.deepEqual([page.topK, page.temperature, page.samplingMode], [undefined, undefined, "balanced"]);
  const ext = new LanguageModelSession(t, {...INFO}, {temperature: 0.7, topK: 40, samplingMode: "balanced", raw: true});
  assert.deepEqual([ext.topK, ext.temperature], [40, Math.fround(0.7)]);
  assert.notEqual(ext.temperature, 0.7);
});

test("prompts run in call order, one at a time, and stream their pieces", async () => {
  const {t, s} = make();
  const a = s.prompt("first", {maxTokens: 5, responseConstraint: /x/});
  const b = s.prompt([{role: "user", content: "second"}, {role: "assistant", content: "P", prefix: true}]);
  await settle();
  assert.deepEqual(t.kinds(), ["prompt"]); // b waits for a
  assert.deepEqual(t.sent[0].payload, {session: 7, input: "first",
    options: {max_tokens: 5, response_constraint: {regex: "x", flags: ""}}});
  t.reply(t.sent[0].id, "chunk", "A");
  t.reply(t.sent[0].id, "chunk", "B");
  t.reply(t.sent[0].id, "return", {completion_tokens: 2, context_usage: 30});
  assert.equal(await a, "AB");
  assert.equal(s.contextUsage, 30);
  assert.deepEqual(s.lastStats, {completion_tokens: 2, context_usage: 30});
  await settle();
  assert.deepEqual(t.sent[1].payload.input, [{role: "user", content: "second", prefix: false},
    {role: "assistant", content: "P", prefix: true}]);
  t.reply(t.sent[1].id, "return", {context_usage: 40});
  assert.equal(await b, "");
});

test("promptStreaming yields the pieces; append and clone queue behind prompts; measure does not", async () => {
  const {t, s} = make();
  const stream = s.promptStreaming("go");
  const appended = s.append("later context");
  const measured = s.measureContextUsage("how long?", {responseConstraint: {type: "string"}});
  const cloned = s.clone();
  await settle();
  assert.deepEqual(t.kinds().sort(), ["measure", "prompt"]);
  const measure = t.sent.find((c) => c.kind === "measure"), prompt = t.sent.find((c) => c.kind === "prompt");
  assert.deepEqual(measure.payload, {session: 7, input: "how long?", options: {response_constraint: {type: "string"}}});
  t.reply(measure.id, "return", 4);
  assert.equal(await measured, 4);
  t.reply(prompt.id, "chunk", "x");
  t.reply(prompt.id, "chunk", "y");
  t.reply(prompt.id, "return", {context_usage: 10});
  const pieces = [];
  for await (const p of stream) pieces.push(p);
  assert.deepEqual(pieces, ["x", "y"]);
  await settle();
  assert.deepEqual(t.kinds().slice(2), ["append"]);
  t.reply(t.sent[2].id, "return", 25);
  await appended;
  assert.equal(s.contextUsage, 25);
  await settle();
  assert.deepEqual(t.sent[3].payload, {session: 7});
  t.reply(t.sent[3].id, "return", {session: 8, context_window: 512, context_usage: 25});
  const twin = await cloned;
  assert.ok(twin instanceof LanguageModelSession);
  assert.deepEqual([twin.contextUsage, twin.contextWindow, twin.device, twin.temperature], [25, 512, "wasm", 0]);
  twin.prompt("to the twin");
  await settle();
  assert.equal(t.sent.at(-1).payload.session, 8);
});

test("a prompt aborted while queued is never sent; it rejects with the signal's reason", async () => {
  const {t, s} = make();
  const first = s.prompt("one");
  const c = new AbortController();
  const second = s.prompt("two", {signal: c.signal});
  c.abort("changed my mind");
  await assert.rejects(second, (e) => e === "changed my mind");
  t.reply(1, "return", {});
  await first;
  await settle();
  assert.deepEqual(t.kinds(), ["prompt"]);
  assert.deepEqual(t.aborted, []);
});

test("a prompt aborted while running tells the back end and rejects at once, keeping the reason", async () => {
  const {t, s} = make();
  const c = new AbortController();
  const reason = new DOMException("stop", "AbortError");
  const p = s.prompt("long", {signal: c.signal});
  await settle();
  t.reply(1, "chunk", "partial");
  c.abort(reason);
  await assert.rejects(p, (e) => e === reason);
  assert.deepEqual(t.aborted, [1]);
  const later = s.prompt("next"); // the session stays usable
  t.reply(1, "throw", {name: "AbortError", message: "The prompt was aborted.", stats: {context_usage: 3}});
  await settle();
  t.reply(2, "return", {});
  assert.equal(await later, "");
});

test("an already aborted signal rejects without a call", async () => {
  const {t, s} = make();
  await assert.rejects(s.prompt("x", {signal: AbortSignal.abort("no")}), (e) => e === "no");
  assert.throws(() => s.promptStreaming("x", {signal: AbortSignal.abort("no")}), (e) => e === "no");
  await assert.rejects(s.append("x", {signal: AbortSignal.abort("no")}), (e) => e === "no");
  await assert.rejects(s.clone({signal: AbortSignal.abort("no")}), (e) => e === "no");
  assert.deepEqual(t.sent, []);
});

test("destroy() rejects the running, queued and later calls, then destroys the back end's session", async () => {
  const {t, s} = make();
  const running = s.prompt("a");
  const queued = s.append("b");
  await settle();
  s.destroy();
  for (const p of [running, queued, s.prompt("c"), s.clone(), s.measureContextUsage("d")]) {
    await assert.rejects(p, (e) => e instanceof DOMException && e.name === "AbortError");
  }
  assert.throws(() => s.promptStreaming("e"), (e) => e.name === "AbortError");
  assert.deepEqual(t.aborted, [1]);
  t.reply(1, "throw", {name: "AbortError", message: "aborted"});
  await settle();
  assert.deepEqual(t.kinds(), ["prompt", "destroy"]);
  assert.deepEqual(t.sent[1].payload, {session: 7});
  s.destroy(); // twice: nothing more
  await settle();
  assert.equal(t.sent.length, 2);
});

test("destroy(reason) passes a custom reason through", async () => {
  const {s} = make();
  const p = s.prompt("a");
  s.destroy("bye");
  await assert.rejects(p, (e) => e === "bye");
});

test("error payloads become the spec's exceptions, with requested and contextWindow", async () => {
  const {t, s} = make();
  const cases = [
    [{name: "QuotaExceededError", message: "too long", requested: 900, contextWindow: 512}, DOMException],
    [{name: "NotSupportedError", message: "format: email"}, DOMException],
    [{name: "TypeError", message: "temperature must be a number"}, TypeError],
    [{name: "RangeError", message: "topK"}, RangeError],
  ];
  for (const [payload, Class] of cases) {
    const p = s.prompt("x");
    await settle();
    t.reply(t.sent.at(-1).id, "throw", payload);
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof Class);
      assert.equal(e.name, payload.name);
      assert.equal(e.message, payload.message);
      if (payload.requested) assert.deepEqual([e.requested, e.contextWindow], [900, 512]);
      return true;
    });
  }
});

test("malformed input and options fail before anything is sent", async () => {
  const {t, s} = make();
  await assert.rejects(s.prompt(), TypeError);
  await assert.rejects(s.prompt("x", {signal: "no"}), TypeError);
  await assert.rejects(s.prompt([{role: "robot", content: "x"}]), TypeError);
  await assert.rejects(s.prompt([{role: "user", content: "x", prefix: true}]),
    (e) => e instanceof DOMException && e.name === "SyntaxError");
  await assert.rejects(s.prompt([{role: "user", content: [{type: "image", value: {}}]}]),
    (e) => e.name === "NotSupportedError");
  await assert.rejects(s.prompt("x", {responseConstraint: "json"}), TypeError);
  await assert.rejects(s.prompt("x", {omitResponseConstraintInput: true}), TypeError);
  assert.deepEqual(t.sent, []);
});

test("contextoverflow events from the back end fire contextoverflow and quotaoverflow", async () => {
  const {t, s} = make();
  const fired = [];
  s.oncontextoverflow = () => fired.push("context");
  s.addEventListener("quotaoverflow", () => fired.push("quota"));
  const p = s.prompt("x");
  await settle();
  t.reply(1, "event", {type: "contextoverflow"});
  t.reply(1, "return", {});
  await p;
  assert.deepEqual(fired, ["context", "quota"]);
});

test("session[RUN] sends any kind on this session, in order, under destroy()", async () => {
  const {t, s} = make();
  const first = s.prompt("p");
  const pieces = [];
  const done = s[RUN]("complete", {messages: [{role: "user", content: "hi"}]}, {onChunk: (x) => pieces.push(x)});
  await settle();
  assert.deepEqual(t.kinds(), ["prompt"]);
  t.reply(1, "return", {});
  await first;
  await settle();
  assert.deepEqual(t.sent[1], {kind: "complete", id: 2, payload: {session: 7, messages: [{role: "user", content: "hi"}]}});
  t.reply(2, "chunk", "o");
  t.reply(2, "return", {content: "o"});
  assert.deepEqual(await done, {content: "o"});
  assert.deepEqual(pieces, ["o"]);
  s.destroy();
  await assert.rejects(s[RUN]("complete", {}), (e) => e.name === "AbortError");
});
