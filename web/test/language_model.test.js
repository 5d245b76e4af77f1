// llm.js's LanguageModel statics over a fake back end (the FakeTransport answers create()):
// option validation shared by create() and availability(), and the topK/temperature attributes.
import assert from "node:assert/strict";
import {test} from "node:test";
import {createLLM} from "../src/llm.js";
import {FakeTransport} from "./fake_transport.js";

globalThis.ProgressEvent ??= /** @type {any} */ (class extends Event {
  /** @param {string} type @param {{loaded?: number, total?: number, lengthComputable?: boolean}} [init] */
  constructor(type, init = {}) {
    super(type);
    Object.assign(this, {loaded: 0, total: 0, lengthComputable: false, ...init});
  }
});
globalThis.document ??= /** @type {any} */ ({baseURI: "http://localhost/"});

/** A window.llm whose back end answers every create() and clone() with a session. */
const make = () => {
  const t = new FakeTransport();
  t.onCall = (call) => {
    if (call.kind === "create" || call.kind === "clone") {
      t.reply(call.id, "return", {session: call.id, device: "wasm", context_window: 512, context_usage: 0});
    }
  };
  return createLLM("http://localhost/", {}, {connect: () => t});
};

test("availability() validates like create(): it rejects where create() throws, 'unavailable' where create() is NotSupportedError", async () => {
  // writing-assistance-apis: create() ("create an AI model object" step 5) and availability() ("compute AI
  // model availability" step 5) perform the same validation; options create() refuses as NotSupportedError
  // (step "unavailable") are "unavailable"
  const llm = make();
  for (const [options, name] of [[{samplingMode: "balanced", topK: 3}, "TypeError"], [{samplingMode: "creative", temperature: 1}, "TypeError"],
    [{samplingMode: "wild"}, "TypeError"], [{topK: 0}, "RangeError"], [{topK: -2}, "RangeError"],
    [{temperature: -0.5}, "RangeError"], [{device: "tpu"}, "TypeError"],
    [{expectedInputs: [{type: "text", languages: ["en_US!!"]}]}, "RangeError"]]) {
    await assert.rejects(llm.create(options), (e) => e.constructor.name === name, JSON.stringify(options));
    await assert.rejects(llm.availability(options), (e) => e.constructor.name === name, JSON.stringify(options));
  }
  for (const options of [{expectedInputs: [{type: "image"}]}]) {
    await assert.rejects(llm.create(options), {name: "NotSupportedError"});
    assert.equal(await llm.availability(options), "unavailable");
  }
  // a tool that is not a {name, description, inputSchema, execute} dictionary: TypeError (IDL required members)
  await assert.rejects(llm.create({tools: [{name: "f"}]}), TypeError);
  await assert.rejects(llm.availability({tools: [{name: "f"}]}), TypeError);
});

test("topK and temperature are undefined on a web page and IDL values (clamped, Math.fround) in an extension", async () => {
  const page = await make().create({temperature: 0.7, topK: 40});
  assert.deepEqual([page.topK, page.temperature, page.samplingMode], [undefined, undefined, "balanced"]);
  /** @type {any} */ (globalThis).chrome = {runtime: {id: "an-extension"}}; // what an extension's pages see
  try {
    const llm = make();
    const s = await llm.create({temperature: 0.7, topK: 3.7});
    assert.deepEqual([s.topK, s.temperature], [3, Math.fround(0.7)]);
    const high = await llm.create({temperature: Infinity, topK: Infinity});
    assert.deepEqual([high.topK, high.temperature], [128, 2]); // clamped to params()'s maxTopK, maxTemperature
    const twin = await s.clone();
    assert.equal(twin.temperature, Math.fround(0.7));
  } finally {
    delete (/** @type {any} */ (globalThis)).chrome;
  }
});

test("create() on a model already loaded fires downloadprogress 0 then 1 before it resolves", async () => {
  /** @type {number[]} */
  const seen = [];
  await make().create({monitor: (m) => m.addEventListener("downloadprogress", (e) => seen.push(/** @type {ProgressEvent} */ (e).loaded))});
  assert.deepEqual(seen, [0, 1]);
  const c = new AbortController();
  /** @type {number[]} */
  const cut = [];
  await assert.rejects(make().create({signal: c.signal, monitor: (m) => m.addEventListener("downloadprogress", (e) => {
    cut.push(/** @type {ProgressEvent} */ (e).loaded);
    c.abort(new Error("enough"));
  })}), /enough/);
  assert.deepEqual(cut, [0]); // aborted during monitoring: no more events, the create() rejects with the reason
});
