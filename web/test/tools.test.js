// The Prompt API's tool use (session.js) over a fake transport: the loop (the answer's calls →
// execute() → tool messages → the next answer), its ordering, abort and errors, create()'s tool
// checks, and tool-call / tool-response content in prompts.
import assert from "node:assert/strict";
import {test} from "node:test";
import {LanguageModelSession, MAX_TOOL_ROUNDS, canonicalPrompt, checkTools} from "../src/session.js";
import {FakeTransport, settle} from "./fake_transport.js";

const INFO = {session: 3, device: "wasm", deviceReason: "asked", contextWindow: 2048, contextUsage: 0};
const WEATHER_SCHEMA = {type: "object", properties: {city: {type: "string"}}, required: ["city"]};

/** A session whose tools are `tools` (create()'s list), over a fake back end. */
function make(tools) {
  const t = new FakeTransport();
  const {execute} = checkTools(tools);
  return {t, s: new LanguageModelSession(t, {...INFO}, {samplingMode: "balanced", tools: execute})};
}

/** Waits for the next "prompt" call the session sends. */
async function nextPrompt(t, n) {
  for (let i = 0; i < 50 && t.sent.filter((c) => c.kind === "prompt").length < n; i++) await settle();
  return t.sent.filter((c) => c.kind === "prompt")[n - 1];
}

test("checkTools: the IDL's required members are TypeErrors; the wire form has no execute", () => {
  const ok = {name: "w", description: "weather", inputSchema: WEATHER_SCHEMA, execute: async () => "x"};
  const {wire, execute} = checkTools([ok]);
  assert.deepEqual(wire, [{type: "function", function: {name: "w", description: "weather", parameters: WEATHER_SCHEMA}}]);
  assert.equal(execute.get("w"), ok.execute);
  for (const bad of [5, "tools", [null], [{...ok, name: undefined}], [{...ok, description: undefined}],
    [{...ok, inputSchema: undefined}], [{...ok, inputSchema: "object"}], [{...ok, execute: undefined}],
    [{...ok, execute: "run"}], [ok, ok], [{...ok, name: ""}]]) {
    assert.throws(() => checkTools(bad), TypeError, JSON.stringify(bad));
  }
  assert.deepEqual(checkTools(undefined).wire, []);
});

test("the loop: the answer's calls run execute() with the parsed arguments; the results go back; the text streams", async () => {
  const seen = [];
  const {t, s} = make([{name: "get_weather", description: "w", inputSchema: WEATHER_SCHEMA,
    async execute(args) { seen.push(args); return "23.7 °C"; }}]);
  const stream = s.promptStreaming("Weather in Paris?");
  const first = await nextPrompt(t, 1);
  assert.deepEqual(first.payload, {session: 3, input: "Weather in Paris?", options: {tool_choice: "auto", continues: false}});
  t.reply(first.id, "chunk", "Let me check. ");
  t.reply(first.id, "return", {context_usage: 200, tool_calls: [{id: "call_a", name: "get_weather", arguments: "{\"city\":\"Paris\"}"}]});
  const second = await nextPrompt(t, 2);
  assert.deepEqual(seen, [{city: "Paris"}]);
  assert.deepEqual(second.payload, {session: 3, options: {tool_choice: "auto", continues: true},
    input: [{role: "tool", content: "23.7 °C", prefix: false, tool_call_id: "call_a", name: "get_weather"}]});
  t.reply(second.id, "chunk", "It is 23.7 °C.");
  t.reply(second.id, "return", {context_usage: 260, tool_calls: []});
  const pieces = [];
  for await (const p of stream) pieces.push(p);
  assert.deepEqual(pieces, ["Let me check. ", "It is 23.7 °C."]);
  assert.equal(s.contextUsage, 260);
});

test("calls in one answer run at once (Promise.all); results keep the calls' order; toolChoice reaches the first answer only", async () => {
  let running = 0, most = 0;
  const {t, s} = make([{name: "f", description: "", inputSchema: {}, async execute({n}) {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, n));
    running--;
    return n * 2; // a number: the IDL converts it to a DOMString
  }}]);
  const answer = s.prompt("go", {toolChoice: "required"});
  const first = await nextPrompt(t, 1);
  assert.equal(first.payload.options.tool_choice, "required");
  t.reply(first.id, "return", {tool_calls: [{id: "a", name: "f", arguments: "{\"n\":20}"}, {id: "b", name: "f", arguments: "{\"n\":1}"}]});
  const second = await nextPrompt(t, 2);
  assert.equal(most, 2);
  assert.deepEqual(second.payload.input.map((m) => [m.tool_call_id, m.content]), [["a", "40"], ["b", "2"]]);
  assert.equal(second.payload.options.tool_choice, "auto");
  t.reply(second.id, "chunk", "done");
  t.reply(second.id, "return", {tool_calls: []});
  assert.equal(await answer, "done");
});

test("a model that keeps calling gets tool_choice none after MAX_TOOL_ROUNDS answers", async () => {
  const {t, s} = make([{name: "f", description: "", inputSchema: {}, execute: () => "r"}]);
  const answer = s.prompt("loop");
  for (let n = 1; n <= MAX_TOOL_ROUNDS; n++) {
    const call = await nextPrompt(t, n);
    assert.equal(call.payload.options.tool_choice, "auto");
    t.reply(call.id, "return", {tool_calls: [{id: `c${n}`, name: "f", arguments: "{}"}]});
  }
  const last = await nextPrompt(t, MAX_TOOL_ROUNDS + 1);
  assert.equal(last.payload.options.tool_choice, "none");
  t.reply(last.id, "chunk", "ok");
  t.reply(last.id, "return", {tool_calls: []});
  assert.equal(await answer, "ok");
});

test("a tool that throws rejects the prompt with its error and takes the exchange back (abort of the finished answer)", async () => {
  const boom = new RangeError("no such city");
  const {t, s} = make([{name: "f", description: "", inputSchema: {}, execute: () => { throw boom; }}]);
  const answer = s.prompt("x");
  const first = await nextPrompt(t, 1);
  t.reply(first.id, "return", {tool_calls: [{id: "c", name: "f", arguments: "{}"}]});
  await assert.rejects(answer, (e) => e === boom);
  assert.deepEqual(t.aborted, [first.id]); // Python drops the finished answer: the exchange leaves the history
});

test("abort while a tool runs: the prompt rejects with the reason at once, the exchange is taken back, nothing more is sent", async () => {
  let release;
  const {t, s} = make([{name: "f", description: "", inputSchema: {}, execute: () => new Promise((r) => { release = r; })}]);
  const ac = new AbortController();
  const answer = s.prompt("x", {signal: ac.signal});
  const first = await nextPrompt(t, 1);
  t.reply(first.id, "return", {tool_calls: [{id: "c", name: "f", arguments: "{}"}]});
  await settle();
  const reason = new Error("stop");
  ac.abort(reason);
  await assert.rejects(answer, (e) => e === reason);
  assert.deepEqual(t.aborted, [first.id]);
  release("late");
  await settle();
  assert.equal(t.sent.filter((c) => c.kind === "prompt").length, 1);
});

test("the loop is one operation: a prompt made meanwhile waits for the whole exchange", async () => {
  const {t, s} = make([{name: "f", description: "", inputSchema: {}, execute: async () => "r"}]);
  const a = s.prompt("first");
  const b = s.prompt("second");
  const one = await nextPrompt(t, 1);
  t.reply(one.id, "return", {tool_calls: [{id: "c", name: "f", arguments: "{}"}]});
  const two = await nextPrompt(t, 2);
  assert.equal(two.payload.options.continues, true); // the tool results, not "second"
  t.reply(two.id, "return", {tool_calls: []});
  await a;
  const three = await nextPrompt(t, 3);
  assert.equal(three.payload.input, "second");
  t.reply(three.id, "return", {tool_calls: []});
  await b;
});

test("a session without tools sends no tool options", async () => {
  const t = new FakeTransport();
  const s = new LanguageModelSession(t, {...INFO}, {});
  const p = s.prompt("hi");
  await settle();
  assert.deepEqual(t.sent[0].payload.options, {});
  t.reply(t.sent[0].id, "return", {});
  await p;
});

test("tool-call and tool-response content: an assistant's calls and tool messages, in their place", () => {
  const msgs = canonicalPrompt([
    {role: "user", content: "Weather in Paris?"},
    {role: "assistant", content: [{type: "text", value: "Checking."},
      {type: "tool-call", value: {callID: "c1", name: "get_weather", arguments: {city: "Paris"}}}]},
    {role: "user", content: [{type: "tool-response", value: {callID: "c1", name: "get_weather",
      result: [{type: "text", value: "23.7 °C"}, {type: "object", value: {humidity: 0.6}}]}},
    {type: "text", value: "And in Oslo?"}]},
    {role: "user", content: [{type: "tool-response", value: {callID: "c2", name: "get_weather", errorMessage: "offline"}}]},
  ], false);
  assert.deepEqual(msgs, [
    {role: "user", content: "Weather in Paris?", prefix: false},
    {role: "assistant", content: "Checking.", prefix: false, tool_calls: [
      {id: "c1", type: "function", function: {name: "get_weather", arguments: {city: "Paris"}}}]},
    {role: "tool", content: "23.7 °C\n{\"humidity\":0.6}", prefix: false, tool_call_id: "c1", name: "get_weather"},
    {role: "user", content: "And in Oslo?", prefix: false},
    {role: "tool", content: "Error: offline", prefix: false, tool_call_id: "c2", name: "get_weather"},
  ]);
  const bad = (content, role = "user") => () => canonicalPrompt([{role, content}], false);
  assert.throws(bad([{type: "tool-call", value: {callID: "c", name: "f"}}]), {name: "NotSupportedError"}); // not a user's
  assert.throws(bad([{type: "tool-response", value: {callID: "c", name: "f", result: []}}], "assistant"), {name: "NotSupportedError"});
  assert.throws(bad([{type: "tool-call", value: {name: "f"}}], "assistant"), TypeError); // no callID
  assert.throws(bad([{type: "tool-response", value: {callID: "c", name: "f"}}]), TypeError); // no result
  assert.throws(bad([{type: "tool-response", value: {callID: "c", name: "f", result: [{type: "image", value: 1}]}}]),
    {name: "NotSupportedError"});
});
