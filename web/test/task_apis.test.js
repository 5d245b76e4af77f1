// The task APIs (Summarizer, Writer, Rewriter, Proofreader, Translator, LanguageDetector) over a fake
// back end: a conformance suite written from the spec texts (webmachinelearning/writing-assistance-apis,
// proofreader-api, translation-api index.bs), each test naming the algorithm and step it checks.
// The real model answers in tests/test_web_task_apis.py (headless Chromium).
import assert from "node:assert/strict";
import {test} from "node:test";
import {createLLM} from "../src/llm.js";
import {bestFit, quotaExceeded} from "../src/ai_model.js";
import {createTaskAPIs, installTaskAPIs} from "../src/task_apis.js";
import {FakeTransport, settle} from "./fake_transport.js";

globalThis.ProgressEvent ??= /** @type {any} */ (class extends Event {
  /** @param {string} type @param {{loaded?: number, total?: number, lengthComputable?: boolean}} [init] */
  constructor(type, init = {}) {
    super(type);
    Object.assign(this, {loaded: 0, total: 0, lengthComputable: false, ...init});
  }
});
globalThis.document ??= /** @type {any} */ ({baseURI: "http://localhost/"});
globalThis.Worker ??= /** @type {any} */ (class {}); // llm.availability() says "unavailable" where there are no workers

/** @param {string | {role: string, content: string}[]} input the wire's prompt: a user message's text, or the messages */
const userText = (input) => (typeof input === "string" ? input : input.at(-1)?.content ?? "");
/** @param {string | {role: string, content: string}[]} input */
const tokens = (input) => (typeof input === "string" ? Math.ceil(input.length / 4) : input.reduce((n, m) => n + Math.ceil(m.content.length / 4), 0));

/**
 * A window.llm over a fake back end that answers every call: create/clone give a session whose
 * context window is `window` with `system` tokens used; measure counts 1 token per 4 characters;
 * prompt streams `answer` (a string, or a function of the user message) word by word, unless `hold`.
 * @param {{answer?: string | ((user: string) => string), window?: number, system?: number, languages?: Record<string, string[]>}} [o]
 */
function fake(o = {}) {
  const t = new FakeTransport();
  const state = {/** @type {any[]} */ created: [], /** @type {any[]} */ prompts: [], /** @type {number[]} */ held: [], hold: false,
    /** @type {number[]} */ destroyed: []};
  const answer = o.answer ?? "A short summary.";
  t.onCall = ({kind, id, payload}) => {
    if (kind === "create") {
      state.created.push(payload);
      t.reply(id, "return", {session: id, device: "wasm", context_window: o.window ?? 512, context_usage: o.system ?? 40});
    } else if (kind === "clone") {
      t.reply(id, "return", {session: id, context_window: o.window ?? 512, context_usage: o.system ?? 40});
    } else if (kind === "measure") {
      t.reply(id, "return", tokens(payload.input));
    } else if (kind === "prompt") {
      state.prompts.push(payload);
      if (state.hold) {
        state.held.push(id);
        t.reply(id, "chunk", "First ");
        return;
      }
      const text = typeof answer === "function" ? answer(userText(payload.input)) : answer;
      for (const piece of text.split(/(?<=\s)/)) t.reply(id, "chunk", piece);
      t.reply(id, "return", {context_usage: 0});
    } else if (kind === "destroy") {
      state.destroyed.push(payload.session);
      t.reply(id, "return", null);
    }
  };
  const llm = createLLM("http://localhost/", {}, {connect: () => t});
  const apis = o.languages ? createTaskAPIs({create: llm.create, availability: llm.availability, defaultModel: llm.defaultModel,
    languages: o.languages}) : llm;
  return {t, state, llm, apis};
}

/** @param {ReadableStream<string>} stream */
async function readAll(stream) {
  const pieces = [];
  for (const reader = stream.getReader(); ;) {
    const {done, value} = await reader.read();
    if (done) return pieces;
    pieces.push(value);
  }
}

const WRITING = /** @type {const} */ ([
  ["Summarizer", "summarize", {type: ["tldr", "teaser", "key-points", "headline"], format: ["plain-text", "markdown"], length: ["short", "medium", "long"]},
    {type: "key-points", format: "markdown", length: "short"}],
  ["Writer", "write", {tone: ["formal", "neutral", "casual"], format: ["plain-text", "markdown"], length: ["short", "medium", "long"]},
    {tone: "neutral", format: "markdown", length: "short"}],
  ["Rewriter", "rewrite", {tone: ["as-is", "more-formal", "more-casual"], format: ["as-is", "plain-text", "markdown"],
    length: ["as-is", "shorter", "longer"]}, {tone: "as-is", format: "as-is", length: "as-is"}],
]);

test("Summarizer/Writer/Rewriter: option defaults and every enum value (IDL dictionaries' defaults)", async () => {
  const {llm} = fake();
  for (const [name, , enums, defaults] of WRITING) {
    const C = /** @type {any} */ (llm)[name];
    const x = await C.create();
    for (const [k, v] of Object.entries(defaults)) assert.equal(x[k], v, `${name}.${k}`);
    assert.equal(x.sharedContext, "");
    assert.equal(x.expectedInputLanguages, null); // "create a summarizer object": null where empty
    assert.equal(x.expectedContextLanguages, null);
    assert.equal(x.outputLanguage, null);
    for (const [k, values] of Object.entries(enums)) {
      for (const v of values) assert.equal((await C.create({[k]: v}))[k], v);
      // WebIDL enum conversion: a value outside the enum is a TypeError, in availability() too
      await assert.rejects(C.create({[k]: "bogus"}), TypeError);
      await assert.rejects(C.availability({[k]: "bogus"}), TypeError);
    }
    assert.throws(() => new C(), TypeError); // no public constructor
  }
});

test("language tags: validated (RangeError), canonicalized, deduplicated, best-fit; unsupported ones are 'unavailable'", async () => {
  // "validate and canonicalize language tags"; "compute language availability" (LookupMatchingLocaleByBestFit)
  const {llm} = fake();
  for (const [name] of WRITING) {
    const C = /** @type {any} */ (llm)[name];
    await assert.rejects(C.availability({expectedInputLanguages: ["en_US!!"]}), RangeError);
    await assert.rejects(C.create({outputLanguage: "??"}), RangeError);
    await assert.rejects(C.availability({expectedInputLanguages: "en"}), TypeError); // a sequence, not a string
    assert.equal(await C.availability({expectedInputLanguages: ["fr"]}), "unavailable");
    assert.equal(await C.availability({outputLanguage: "ja"}), "unavailable");
    assert.equal(await C.availability({expectedContextLanguages: ["de"]}), "unavailable");
    assert.notEqual(await C.availability({expectedInputLanguages: ["en-US", "EN-gb"], outputLanguage: "en"}), "unavailable");
    // "create an AI model object": availability "unavailable" rejects with NotSupportedError
    await assert.rejects(C.create({expectedInputLanguages: ["fr"]}), {name: "NotSupportedError"});
    const x = await C.create({expectedInputLanguages: ["en-US", "en-us", "en"], outputLanguage: "en-GB"});
    assert.deepEqual(x.expectedInputLanguages, ["en"]); // deduplicated, then best fits
    assert.ok(Object.isFrozen(x.expectedInputLanguages));
    assert.equal(x.outputLanguage, "en");
  }
  assert.equal(bestFit(["en", "zh-Hant"], "zh-Hant-TW"), "zh-Hant");
  assert.equal(bestFit(["en"], "fr-CA"), undefined);
});

test("availability(): the model's own availability, and 'available' once a session is loaded", async () => {
  // "compute AI model availability": the minimum of the options' and the model's availability
  const {llm} = fake();
  assert.equal(await llm.Summarizer.availability(), "downloadable"); // nothing cached, nothing loaded
  await llm.Summarizer.create();
  assert.equal(await llm.Summarizer.availability(), "available");
  assert.equal(await llm.Writer.availability({tone: "casual"}), "available");
});

test("create(): monitor gets downloadprogress 0 then 1 (also ondownloadprogress); a throwing monitor rejects", async () => {
  // "initialize and return an AI model object" steps 2-3; "create an AI model object": Invoke monitor, rethrow
  const {llm} = fake();
  for (const [name] of WRITING) {
    /** @type {number[]} */
    const seen = [], handler = [];
    await /** @type {any} */ (llm)[name].create({monitor(/** @type {any} */ m) {
      m.addEventListener("downloadprogress", (/** @type {any} */ e) => seen.push(e.loaded));
      m.ondownloadprogress = (/** @type {any} */ e) => handler.push(e.total);
    }});
    assert.deepEqual(seen, [0, 1]);
    assert.deepEqual(handler, [1, 1]);
    const boom = new Error("monitor failed");
    await assert.rejects(/** @type {any} */ (llm)[name].create({monitor() { throw boom; }}), (e) => e === boom);
  }
});

test("create(): an aborted signal rejects with its reason; aborting later destroys the object", async () => {
  // "create an AI model object" step 6; "initialize and return an AI model object": abort steps destroy the model
  const {llm, state} = fake();
  const reason = new Error("stop");
  await assert.rejects(llm.Summarizer.create({signal: AbortSignal.abort(reason)}), (e) => e === reason);
  assert.equal(state.created.length, 0); // nothing was loaded
  const c = new AbortController();
  const s = await llm.Summarizer.create({signal: c.signal});
  c.abort(reason);
  await assert.rejects(s.summarize("Some text to summarize."), (e) => e === reason);
  await settle();
  assert.ok(state.destroyed.length >= 1);
  // aborted during monitoring: rejects with the reason, no further downloadprogress
  const d = new AbortController();
  /** @type {number[]} */
  const seen = [];
  await assert.rejects(llm.Writer.create({signal: d.signal, monitor(/** @type {any} */ m) {
    m.addEventListener("downloadprogress", (/** @type {any} */ e) => {
      seen.push(e.loaded);
      d.abort(reason);
    });
  }}), (e) => e === reason);
  assert.deepEqual(seen, [0]);
});

test("the prompts: the system prompt carries type/tone, length, format, output language and sharedContext; the call its context", async () => {
  const {llm, state} = fake();
  const s = await llm.Summarizer.create({type: "headline", length: "medium", format: "plain-text", sharedContext: "A news site.",
    outputLanguage: "en"});
  assert.deepEqual(state.created.at(-1).options.initial_prompts, []); // the instructions travel with each call
  assert.equal(s.sharedContext, "A news site.");
  assert.equal(await s.summarize("The council approved the new park.", {context: "Local politics."}), "A short summary.");
  const user = userText(state.prompts.at(-1).input);
  assert.equal(user, "Write a headline for the following text: one sentence of at most 17 words. Use plain text, no Markdown. " +
    "Write in English.\nBackground: A news site.\nContext: Local politics.\n\nText:\nThe council approved the new park.");
  assert.equal(state.prompts.at(-1).options.max_tokens, 50); // the documented safety limit for a medium headline
  const w = await llm.Writer.create({tone: "formal", length: "long"});
  await w.write("An apology for a late delivery.");
  assert.equal(userText(state.prompts.at(-1).input), "Write the following in a formal tone, in at most 500 words, in Markdown:\n\n" +
    "An apology for a late delivery.");
  const r = await llm.Rewriter.create({tone: "more-casual", length: "shorter"});
  const input = "We regret to inform you that the meeting is postponed.";
  await r.rewrite(input);
  assert.equal(userText(state.prompts.at(-1).input), "Rewrite the following text in a more casual tone, making it shorter. " +
    `Keep its meaning. Output only the rewritten text.\n\nText:\n${input}`);
  const requested = tokens(state.prompts.at(-1).input);
  assert.equal(state.prompts.at(-1).options.max_tokens, requested + 32); // shorter: the input's usage × 1 + 32
});

test("summarize/write/rewrite and their Streaming forms give the same text; each call runs on its own clone", async () => {
  // "get an aggregated AI model result" / "get a streaming AI model result"
  const {llm, t} = fake({answer: "One two three four."});
  for (const [name, method] of WRITING) {
    const x = /** @type {any} */ (await /** @type {any} */ (llm)[name].create());
    const whole = await x[method]("Some input text here.");
    const pieces = await readAll(x[method + "Streaming"]("Some input text here."));
    assert.equal(whole, "One two three four.");
    assert.deepEqual(pieces, ["One ", "two ", "three ", "four."]);
    // calls are independent: the task's own session is never prompted
    const base = t.sent.filter((c) => c.kind === "create").at(-1).id;
    assert.ok(!t.sent.some((c) => c.kind === "prompt" && c.payload.session === base));
  }
});

test("empty input gives '' without running the model (summarize: also whitespace-only)", async () => {
  // summarize step 7 ("If input is the empty string, or ... only whitespace ... the empty string"); write/rewrite step 7
  const {llm, state} = fake();
  const s = await llm.Summarizer.create(), w = await llm.Writer.create(), r = await llm.Rewriter.create();
  assert.equal(await s.summarize(""), "");
  assert.equal(await s.summarize("  \n\t "), "");
  assert.equal(await w.write(""), "");
  assert.equal(await r.rewrite(""), "");
  assert.deepEqual(await readAll(s.summarizeStreaming("")), []);
  assert.equal(await s.measureInputUsage(""), 0);
  assert.equal(state.prompts.length, 0);
});

test("inputQuota and measureInputUsage; an input over the quota rejects with QuotaExceededError {requested, quota}", async () => {
  // "summarize" steps 2-6: requested > inputQuota → quota exceeded error information; "measure AI model input usage"
  const {llm, state} = fake({window: 100, system: 40});
  for (const [name, method] of WRITING) {
    const x = /** @type {any} */ (await /** @type {any} */ (llm)[name].create());
    assert.equal(x.inputQuota, 60);
    const small = await x.measureInputUsage("Short.");
    assert.ok(small > 0 && small < 60);
    const withContext = await x.measureInputUsage("Short.", {context: "Some extra context words."});
    assert.ok(withContext > small, "the context counts");
    const long = "word ".repeat(100);
    const need = await x.measureInputUsage(long);
    const before = state.prompts.length;
    await assert.rejects(x[method](long), (e) => e.name === "QuotaExceededError" && e.requested === need && e.quota === 60);
    const stream = x[method + "Streaming"](long);
    await assert.rejects(readAll(stream), (e) => e.name === "QuotaExceededError" && e.requested === need);
    assert.equal(state.prompts.length, before, "the model never ran");
  }
  const e = quotaExceeded("too big", 9, 4);
  assert.deepEqual([e.name, e.requested, e.quota, e instanceof DOMException], ["QuotaExceededError", 9, 4, true]);
});

test("AbortSignal: already aborted rejects (or throws for Streaming) with its reason; aborting mid-call stops the model", async () => {
  // "get an aggregated AI model result" steps 7, 10; "get a streaming AI model result" steps 7, 10
  const {llm, state, t} = fake();
  const s = await llm.Summarizer.create();
  const reason = new Error("user stopped");
  await assert.rejects(s.summarize("Text.", {signal: AbortSignal.abort(reason)}), (e) => e === reason);
  assert.throws(() => s.summarizeStreaming("Text.", {signal: AbortSignal.abort(reason)}), (e) => e === reason);
  await assert.rejects(s.measureInputUsage("Text.", {signal: AbortSignal.abort(reason)}), (e) => e === reason);
  state.hold = true;
  const c = new AbortController();
  const pending = s.summarize("Text to summarize.", {signal: c.signal});
  while (state.held.length === 0) await settle();
  c.abort(reason);
  await assert.rejects(pending, (e) => e === reason);
  assert.ok(t.aborted.includes(state.held[0]), "the back end was told to stop");
  // streaming: aborting errors the stream with the reason
  const d = new AbortController();
  const stream = s.summarizeStreaming("Text to summarize.", {signal: d.signal});
  const reader = stream.getReader();
  assert.deepEqual(await reader.read(), {done: false, value: "First "});
  d.abort(reason);
  await assert.rejects(reader.read(), (e) => e === reason);
  // stream.cancel(): not an error, and the model stops
  const aborts = t.aborted.length;
  const cancelled = s.summarizeStreaming("Text to summarize.").getReader();
  await cancelled.read();
  await cancelled.cancel();
  await settle();
  assert.ok(t.aborted.length > aborts);
});

test("destroy(): pending calls reject with AbortError, later calls too (Streaming throws); the session goes", async () => {
  // DestroyableModel "destroy": signal abort on the destruction abort controller (default reason: AbortError)
  const {llm, state} = fake();
  for (const [name, method] of WRITING) {
    const x = /** @type {any} */ (await /** @type {any} */ (llm)[name].create());
    state.hold = true;
    const pending = x[method]("Some text.");
    while (state.held.length === 0) await settle();
    x.destroy();
    x.destroy(); // twice is fine
    await assert.rejects(pending, {name: "AbortError"});
    await assert.rejects(x[method]("More."), {name: "AbortError"});
    await assert.rejects(x.measureInputUsage("More."), {name: "AbortError"});
    assert.throws(() => x[method + "Streaming"]("More."), {name: "AbortError"});
    state.hold = false;
    state.held.length = 0;
    const y = /** @type {any} */ (await /** @type {any} */ (llm)[name].create());
    const why = new Error("custom reason");
    y.destroy(why);
    await assert.rejects(y[method]("x"), (e) => e === why);
  }
});

test("arguments: a missing input is a TypeError; options must be dictionaries", async () => {
  const {llm} = fake();
  const s = /** @type {any} */ (await llm.Summarizer.create());
  await assert.rejects(s.summarize(), TypeError);
  assert.throws(() => s.summarizeStreaming(), TypeError);
  await assert.rejects(s.summarize("x", 5), TypeError);
  await assert.rejects(s.summarize("x", {signal: "nope"}), TypeError);
  await assert.rejects(/** @type {any} */ (llm.Summarizer).create(7), TypeError);
  assert.equal(await s.summarize("x", null), "A short summary."); // null is {}
});

test("Proofreader: corrections are the diff between input and the model's corrected text, with types and explanations", async () => {
  // proofreader-api "proofread": ProofreadResult {correctedInput, corrections [{startIndex, endIndex, correction, types, explanation}]}
  const {llm, state} = fake({answer: (user) => user.slice(user.indexOf("\n\n") + 2).replace("teh", "the").replace("paris", "Paris")
    .replace("Hello world", "Hello, world")});
  const p = await llm.Proofreader.create({includeCorrectionTypes: true, includeCorrectionExplanations: true});
  assert.deepEqual([p.includeCorrectionTypes, p.includeCorrectionExplanations, p.expectedInputLanguages, p.correctionExplanationLanguage],
    [true, true, null, null]);
  const input = "Hello world, I saw teh tower in paris.";
  const r = await p.proofread(input);
  assert.equal(r.correctedInput, "Hello, world, I saw the tower in Paris.");
  assert.deepEqual(r.corrections.map((c) => [input.slice(c.startIndex, c.endIndex), c.correction, c.types]),
    [["Hello", "Hello,", ["punctuation"]], ["teh", "the", ["spelling"]], ["paris.", "Paris.", ["capitalization"]]]);
  // applying the corrections to the input gives correctedInput
  let rebuilt = input;
  for (const c of [...r.corrections].reverse()) rebuilt = rebuilt.slice(0, c.startIndex) + c.correction + rebuilt.slice(c.endIndex);
  assert.equal(rebuilt, r.correctedInput);
  const types = r.corrections.map((c) => c.types?.[0]);
  assert.ok(types.includes("spelling") && types.includes("capitalization") && types.includes("punctuation"), JSON.stringify(r.corrections));
  assert.ok(r.corrections.every((c) => typeof c.explanation === "string" && c.explanation.length > 0));
  assert.ok(userText(state.prompts.at(-1).input).startsWith("Correct the spelling, grammar and punctuation mistakes in this text."));
  // without the flags: no types, no explanations
  const plain = await llm.Proofreader.create();
  const q = await plain.proofread("I saw teh tower.");
  assert.deepEqual(q.corrections, [{startIndex: 6, endIndex: 9, correction: "the"}]);
  // proofread step 7: no proofreadable content → ""
  assert.deepEqual(await plain.proofread("   "), {correctedInput: "", corrections: []});
  assert.equal(await llm.Proofreader.availability({expectedInputLanguages: ["de"]}), "unavailable");
  await assert.rejects(llm.Proofreader.create({correctionExplanationLanguage: "fr"}), {name: "NotSupportedError"});
  await assert.rejects(llm.Proofreader.availability({expectedInputLanguages: ["!"]}), RangeError);
  plain.destroy();
  await assert.rejects(plain.proofread("x"), {name: "AbortError"});
});

test("Proofreader diff (seeded): for random edits of random sentences, applying the corrections rebuilds the corrected text", async () => {
  const {diffCorrections} = await import("../src/proofreader.js");
  let seed = 14;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "slept,", "quietly.", "Dogs", "bark!"];
  for (let n = 0; n < 300; n++) {
    const a = Array.from({length: 1 + Math.floor(rand() * 12)}, () => words[Math.floor(rand() * words.length)]);
    const b = a.flatMap((w) => {
      const r = rand();
      return r < 0.1 ? [] : r < 0.2 ? [w, words[Math.floor(rand() * words.length)]] : r < 0.3 ? [w.toUpperCase()] : [w];
    });
    const input = a.join(" "), corrected = b.join(rand() < 0.1 ? "  " : " ");
    const cs = diffCorrections(input, corrected);
    let rebuilt = input;
    for (const c of [...cs].reverse()) rebuilt = rebuilt.slice(0, c.startIndex) + c.correction + rebuilt.slice(c.endIndex);
    assert.equal(rebuilt, corrected, JSON.stringify({input, corrected, cs}));
    for (let i = 1; i < cs.length; i++) assert.ok(cs[i].startIndex >= cs[i - 1].endIndex, "in order, not overlapping");
    if (input === corrected) assert.deepEqual(cs, []);
  }
});

test("Translator: options required (TypeError); an arc the model lacks is unavailable; the identity arc needs no model", async () => {
  // translation-api "compute translator options availability": arcs, then "can be fulfilled by the identity translation"
  const {llm, state} = fake();
  const T = /** @type {any} */ (llm.Translator);
  await assert.rejects(T.create(), TypeError);
  await assert.rejects(T.availability({sourceLanguage: "en"}), TypeError);
  await assert.rejects(T.availability({sourceLanguage: "en", targetLanguage: "x!"}), RangeError);
  assert.equal(await T.availability({sourceLanguage: "en", targetLanguage: "fr"}), "unavailable"); // SmolLM2: English only
  await assert.rejects(T.create({sourceLanguage: "en", targetLanguage: "fr"}), {name: "NotSupportedError"});
  assert.equal(await T.availability({sourceLanguage: "en", targetLanguage: "en-US"}), "available");
  /** @type {number[]} */
  const seen = [];
  const same = await T.create({sourceLanguage: "en-US", targetLanguage: "en", monitor: (/** @type {any} */ m) =>
    m.addEventListener("downloadprogress", (/** @type {any} */ e) => seen.push(e.loaded))});
  assert.deepEqual(seen, [0, 1]);
  assert.deepEqual([same.sourceLanguage, same.targetLanguage, same.inputQuota], ["en-US", "en", Infinity]);
  assert.equal(await same.translate("Hello there."), "Hello there."); // "the resulting translation should be input"
  assert.deepEqual(await readAll(same.translateStreaming("Hi.")), ["Hi."]);
  assert.equal(await same.measureInputUsage("Hello there."), 0); // must be 0 where inputQuota is +Infinity
  assert.equal(state.created.length, 0, "no model loaded");
  same.destroy();
  await assert.rejects(same.translate("x"), {name: "AbortError"});
});

test("Translator over a model that knows both languages: the prompt, best-fit tags, streaming, quota", async () => {
  const {apis, state} = fake({languages: {"SmolLM2-135M-Instruct": ["en", "fr"]}, answer: "Bonjour le monde.", window: 80, system: 40});
  assert.equal(await apis.Translator.availability({sourceLanguage: "en-GB", targetLanguage: "fr-CA"}), "downloadable");
  const t = await apis.Translator.create({sourceLanguage: "en-GB", targetLanguage: "fr-CA"});
  assert.deepEqual([t.sourceLanguage, t.targetLanguage, t.inputQuota], ["en", "fr", 40]); // best fits
  assert.equal(await t.translate("Hello world."), "Bonjour le monde.");
  assert.equal(userText(state.prompts.at(-1).input), "Translate the following text from English to French. Output only the translation." +
    "\n\nText:\nHello world.");
  assert.equal((await readAll(t.translateStreaming("Hello world."))).join(""), "Bonjour le monde.");
  assert.equal(await t.translate("  "), "  "); // nothing translatable: the input
  await assert.rejects(t.translate("word ".repeat(80)), {name: "QuotaExceededError"});
});

test("LanguageDetector: spec post-processing, availability from its profiles, abort and destroy", async () => {
  // translation-api "detect languages" steps 6-12; "compute language detector options availability"
  const {llm} = fake();
  const D = llm.LanguageDetector;
  assert.equal(await D.availability(), "available");
  assert.equal(await D.availability({expectedInputLanguages: ["fr-FR", "de"]}), "available");
  assert.equal(await D.availability({expectedInputLanguages: ["ja"]}), "unavailable");
  await assert.rejects(D.create({expectedInputLanguages: ["ja"]}), {name: "NotSupportedError"});
  await assert.rejects(D.availability({expectedInputLanguages: ["--"]}), RangeError);
  const d = await D.create({expectedInputLanguages: ["fr-FR"]});
  assert.deepEqual(d.expectedInputLanguages, ["fr"]);
  assert.equal(d.inputQuota, Infinity);
  assert.equal(await d.measureInputUsage("Bonjour"), 0);
  for (const text of ["The cat is sleeping on the sofa.", "Le chat dort sur le canapé.", "", "12345", "Привет, как дела?",
    "Der Hund schläft. The dog sleeps."]) {
    const r = await d.detect(text);
    const last = r.at(-1);
    assert.equal(last.detectedLanguage, "und"); // step 11: und last, with unknown's confidence
    const rest = r.slice(0, -1);
    for (let i = 1; i < rest.length; i++) assert.ok(rest[i].confidence <= rest[i - 1].confidence, "sorted, descending");
    for (const x of rest) assert.ok(x.confidence > 0 && x.confidence >= last.confidence, "step 9: none below unknown or 0");
    const sum = r.reduce((s, x) => s + x.confidence, 0);
    assert.ok(sum <= 1 + 1e-9 && r.every((x) => x.confidence >= 0 && x.confidence <= 1));
  }
  assert.equal((await d.detect("The cat is sleeping on the sofa."))[0].detectedLanguage, "en");
  assert.deepEqual(await d.detect(""), [{detectedLanguage: "und", confidence: 1}]);
  assert.deepEqual(await d.detect("Привет, как дела?"), [{detectedLanguage: "und", confidence: 1}]);
  const reason = new Error("no");
  await assert.rejects(d.detect("Hello", {signal: AbortSignal.abort(reason)}), (e) => e === reason);
  await assert.rejects(/** @type {any} */ (d).detect(), TypeError);
  d.destroy();
  await assert.rejects(d.detect("Hello"), {name: "AbortError"});
});

test("llm.polyfill() installs the task APIs the browser lacks or has as unavailable, keeps working ones unless forced", async () => {
  const {llm} = fake();
  const g = /** @type {any} */ (globalThis);
  const names = ["Summarizer", "Writer", "Rewriter", "Proofreader", "Translator", "LanguageDetector"];
  class Unavailable { static async availability() { return "unavailable"; } }
  class Working { static async availability() { return "available"; } }
  g.Summarizer = Unavailable;
  g.Writer = Working;
  try {
    const r = await llm.polyfill();
    assert.equal(r.installed, true);
    const tasks = /** @type {any} */ (r).tasks;
    assert.deepEqual(Object.keys(tasks).sort(), [...names].sort());
    assert.equal(g.Summarizer, llm.Summarizer);
    assert.match(tasks.Summarizer.reason, /unavailable/);
    assert.equal(g.Writer, Working);
    assert.deepEqual(tasks.Writer, {installed: false, reason: "the browser's own Writer is available"});
    for (const n of ["Rewriter", "Proofreader", "Translator", "LanguageDetector"]) assert.equal(g[n], /** @type {any} */ (llm)[n]);
    const again = await installTaskAPIs(createTaskAPIs({create: llm.create, availability: llm.availability,
      defaultModel: llm.defaultModel}), {force: true});
    assert.equal(again.Writer.installed, true);
    assert.equal((await llm.polyfill()).reason, "already installed");
  } finally {
    for (const n of [...names, "LanguageModel"]) delete g[n];
  }
});

test("create() of a model still to be downloaded needs sticky user activation (NotAllowedError without)", async () => {
  // "create an AI model object", "downloadable": requireTransientActivation is false → sticky activation
  const {llm, state} = fake();
  const g = /** @type {any} */ (globalThis);
  const had = Object.getOwnPropertyDescriptor(g, "navigator");
  Object.defineProperty(g, "navigator", {value: {userActivation: {hasBeenActive: false}}, configurable: true, writable: true});
  try {
    assert.equal(await llm.Summarizer.availability(), "downloadable");
    await assert.rejects(llm.Summarizer.create(), {name: "NotAllowedError"});
    assert.equal(state.created.length, 0, "nothing fetched");
    const d = await llm.LanguageDetector.create(); // nothing to download: no activation needed
    assert.ok(d);
    g.navigator.userActivation.hasBeenActive = true;
    assert.ok(await llm.Summarizer.create());
  } finally {
    if (had) Object.defineProperty(g, "navigator", had);
    else delete g.navigator;
  }
});
