// llm.chat.completions (openai.js) over a fake transport: request validation, the "complete"
// call it makes, and OpenAI's response and chunk shapes.
import assert from "node:assert/strict";
import {test} from "node:test";
import {createChat} from "../src/openai.js";
import {LanguageModelSession} from "../src/session.js";
import {FakeTransport, settle} from "./fake_transport.js";

const RESULT = {content: "Paris.", finish_reason: "stop", prompt_tokens: 20, completion_tokens: 3, reused_tokens: 5,
  ttft_ms: 12, prefill_tps: 100, decode_tps: 50};

/** A chat over one fake back end; `created` records what llm.create() was asked. */
function make() {
  const t = new FakeTransport();
  const created = [];
  const chat = createChat({
    defaultModel: "http://x/models/SmolLM2-135M-Instruct/",
    version: "9.9.9",
    async create(o) {
      created.push(o);
      return new LanguageModelSession(t, {session: created.length, contextWindow: 512, contextUsage: 0});
    },
  }, "auto");
  return {t, chat, created};
}

/** Answers every "complete" call with `pieces` as chunks, then `result`. */
function answer(t, pieces, result = RESULT) {
  t.onCall = (c) => {
    if (c.kind !== "complete") return;
    for (const p of pieces) t.reply(c.id, "chunk", p);
    t.reply(c.id, "return", result);
  };
}

test("a request becomes one complete call with snake_case options, on one session per model", async () => {
  const {t, chat, created} = make();
  answer(t, ["Par", "is."]);
  const r = await chat.completions.create({model: "gpt-4o-mini", temperature: 0, max_tokens: 64, stop: "\n\n", seed: -1,
    top_p: 0.5, response_format: {type: "json_schema", json_schema: {name: "a", schema: {type: "string"}}},
    messages: [{role: "developer", content: "Be brief."}, {role: "user", content: [{type: "text", text: "Capital"},
      {type: "text", text: " of France?"}]}]});
  await chat.completions.create({messages: [{role: "user", content: "again"}]});
  assert.deepEqual(created, [{model: "http://x/models/SmolLM2-135M-Instruct/", device: "auto", temperature: 0}]);
  assert.deepEqual(t.sent[0].payload, {session: 1, tools: null,
    messages: [{role: "system", content: "Be brief."}, {role: "user", content: "Capital of France?"}],
    options: {max_tokens: 64, temperature: 0, top_p: 0.5, seed: 4294967295, stop: ["\n\n"],
      response_constraint: {type: "string"}}});
  assert.equal(t.sent[1].payload.options.temperature, 1); // OpenAI's default
  assert.match(r.id, /^chatcmpl-/);
  assert.deepEqual({...r, id: "", created: 0}, {id: "", object: "chat.completion", created: 0, model: "SmolLM2-135M-Instruct",
    choices: [{index: 0, message: {role: "assistant", content: "Paris.", refusal: null}, logprobs: null, finish_reason: "stop"}],
    usage: {prompt_tokens: 20, completion_tokens: 3, total_tokens: 23, prompt_tokens_details: {cached_tokens: 5}},
    timings: {ttft_ms: 12, prefill_tokens_per_s: 100, decode_tokens_per_s: 50, reused_tokens: 5},
    system_fingerprint: "nomoat-9.9.9"});
});

test("streaming: a role chunk, content deltas, the finish chunk with timings, then usage", async () => {
  const {t, chat} = make();
  answer(t, ["Par", "is", "."], {...RESULT, finish_reason: "length"});
  const stream = await chat.completions.create({messages: [{role: "user", content: "hi"}], stream: true,
    stream_options: {include_usage: true}});
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.deepEqual(chunks.map((c) => c.choices[0]?.delta), [{role: "assistant", content: ""}, {content: "Par"},
    {content: "is"}, {content: "."}, {}, undefined]);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id));
  assert.equal(chunks[4].choices[0].finish_reason, "length");
  assert.deepEqual(chunks[4].timings, {ttft_ms: 12, prefill_tokens_per_s: 100, decode_tokens_per_s: 50, reused_tokens: 5});
  assert.deepEqual(chunks[5].choices, []);
  assert.equal(chunks[5].usage.total_tokens, 23);
});

test("with tools, the text streams and the calls come as OpenAI's tool_calls deltas (index, id, name, then arguments)", async () => {
  const {t, chat} = make();
  const calls = [{id: "call_1", name: "weather", arguments: "{\"city\":\"Paris\"}"}];
  answer(t, ["Sure", " "], {...RESULT, content: "Sure ", tool_calls: calls}); // the worker holds the blocks back
  const tools = [{type: "function", function: {name: "weather", parameters: {type: "object"}}}];
  const stream = await chat.completions.create({messages: [{role: "user", content: "weather?"}], tools, stream: true,
    tool_choice: {type: "function", function: {name: "weather"}}});
  const chunks = [];
  for await (const c of stream) chunks.push(c.choices[0]);
  const deltas = chunks.map((c) => c.delta);
  assert.equal(deltas.map((d) => d.content ?? "").join(""), "Sure ");
  const tc = deltas.filter((d) => d.tool_calls).map((d) => d.tool_calls[0]);
  assert.deepEqual(tc[0], {index: 0, id: "call_1", type: "function", function: {name: "weather", arguments: ""}});
  assert.deepEqual(tc[1], {index: 0, function: {arguments: calls[0].arguments}});
  assert.equal(chunks.at(-1).finish_reason, "tool_calls");
  assert.equal(t.sent[0].payload.tools[0].function.description, "");
  assert.equal(t.sent[0].payload.options.tool_choice, "weather");
  const r = await chat.completions.create({messages: [{role: "user", content: "weather?"}], tools, tool_choice: "required"});
  assert.equal(t.sent[1].payload.options.tool_choice, "required");
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(r.choices[0].message.tool_calls, [{id: "call_1", type: "function", function: {name: "weather",
    arguments: calls[0].arguments}}]);
});

test("malformed requests are TypeErrors naming the field; unsupported ones NotSupportedError; nothing is sent", async () => {
  const {t, chat} = make();
  const bad = [
    [{}, /messages must be a non-empty list/],
    [{messages: [{role: "robot", content: "x"}]}, /messages\[0\] must be/],
    [{messages: [{role: "user", content: 3}]}, /content must be a string/],
    [{messages: [{role: "user", content: "x"}], temperature: 3}, /temperature must be a number from 0 to 2/],
    [{messages: [{role: "user", content: "x"}], max_tokens: 0}, /max_completion_tokens|max_tokens must be an integer/],
    [{messages: [{role: "user", content: "x"}], stop: ["a", "b", "c", "d", "e"]}, /stop must be/],
    [{messages: [{role: "user", content: "x"}], response_format: {type: "xml"}}, /response_format.type/],
    [{messages: [{role: "user", content: "x"}], tools: [{type: "function", function: {name: "f"}}],
      response_format: {type: "json_object"}}, /not both/],
    [{messages: [{role: "user", content: "x"}], tools: [], tool_choice: "required"}, /needs tools/],
    [{messages: [{role: "user", content: "x"}], tools: [{type: "function", function: {name: "f"}}],
      tool_choice: {type: "function", function: {name: "g"}}}, /not in tools/],
    [{messages: [{role: "user", content: "x"}], tool_choice: "sometimes"}, /tool_choice must be/],
  ];
  for (const [req, re] of bad) {
    await assert.rejects(chat.completions.create(req), (e) => e instanceof TypeError && re.test(e.message));
  }
  const unsupported = [
    {messages: [{role: "user", content: [{type: "image_url", image_url: {url: "x"}}]}]},
    {messages: [{role: "user", content: "x"}], n: 2},
  ];
  for (const req of unsupported) {
    await assert.rejects(chat.completions.create(req), (e) => e.name === "NotSupportedError");
  }
  await settle();
  assert.deepEqual(t.sent, []);
});

test("an aborted request stops the call and rejects with the signal's reason", async () => {
  const {t, chat} = make();
  await assert.rejects(chat.completions.create({messages: [{role: "user", content: "x"}]}, {signal: AbortSignal.abort("pre")}),
    (e) => e === "pre");
  const c = new AbortController();
  const p = chat.completions.create({messages: [{role: "user", content: "x"}]}, {signal: c.signal});
  await settle();
  c.abort("late");
  await assert.rejects(p, (e) => e === "late");
  assert.deepEqual(t.aborted, [t.sent[0].id]);
  t.reply(t.sent[0].id, "throw", {name: "AbortError", message: "The request was aborted."}); // the back end's answer
  const stream = await chat.completions.create({messages: [{role: "user", content: "x"}], stream: true});
  const it = stream[Symbol.asyncIterator]();
  assert.deepEqual((await it.next()).value.choices[0].delta, {role: "assistant", content: ""});
  await settle();
  await it.return();
  await settle();
  assert.deepEqual(t.aborted, [t.sent[0].id, t.sent[1].id]); // closing the stream stops the call
});

test("model names: OpenAI's mean the default model; a model's name, path or URL is passed on to llm.create", async () => {
  const {t, chat, created} = make();
  answer(t, ["ok"]);
  for (const model of ["gpt-4o-mini", "o3", "", undefined, "gemma-3-270m", "/models/tiny/", "http://y/m/"]) {
    await chat.completions.create({model, messages: [{role: "user", content: "hi"}]});
  }
  assert.deepEqual([...new Set(created.map((c) => c.model))],
    ["http://x/models/SmolLM2-135M-Instruct/", "gemma-3-270m", "/models/tiny/", "http://y/m/"]);
});
