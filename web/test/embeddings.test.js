// llm.embeddings (embeddings.js) over a fake transport: OpenAI's shape, float and base64, the model
// a request names, download progress, and the TypeErrors of bad input — no worker, no model.
import assert from "node:assert/strict";
import {test} from "node:test";
import {DEFAULT_EMBEDDING_MODEL, createEmbeddings, fromBase64, inputTexts, toBase64} from "../src/embeddings.js";
import {downloadProgress, modelURL} from "../src/llm.js";
import {FakeTransport, settle} from "./fake_transport.js";

// Node has no ProgressEvent (the page's downloadprogress): a stand-in with its fields.
globalThis.ProgressEvent ??= /** @type {any} */ (class extends Event {
  /** @param {string} type @param {{loaded?: number, total?: number, lengthComputable?: boolean}} [init] */
  constructor(type, init = {}) {
    super(type);
    Object.assign(this, {loaded: 0, total: 0, lengthComputable: false, ...init});
  }
});

const BASE = "http://host/dist/";
const D = 3;

/** An llm.embeddings whose worker is a FakeTransport answering each embed with vectors [i, i + 0.5, -i] per input i. */
function setup({answer = true} = {}) {
  const transport = new FakeTransport();
  /** @type {string[]} */
  const devices = [];
  const embeddings = createEmbeddings({transport: (d) => (devices.push(d), transport), assets: {ort: "ort/"}, defaultDevice: "auto",
    progress: downloadProgress, resolve: (m) => modelURL(m, BASE, "http://host/app/", "unused")});
  if (answer) {
    transport.onCall = ({id, kind, payload}) => {
      if (kind !== "embed") return;
      transport.reply(id, "progress", {stage: "download", loaded: 5, total: 10});
      const vectors = new Float32Array(payload.input.length * D);
      payload.input.forEach((/** @type {string} */ _, i) => vectors.set([i, i + 0.5, -i], i * D));
      transport.reply(id, "return", {vectors, dimensions: D, prompt_tokens: 7 * payload.input.length, device: "wasm"});
    };
  }
  return {transport, embeddings, devices};
}

test("create returns OpenAI's shape, in input order, with usage; one embed message carries every input", async () => {
  const {transport, embeddings, devices} = setup();
  const r = await embeddings.create({model: "all-MiniLM-L6-v2", input: ["a", "bb", "ccc"]});
  assert.deepEqual(r, {object: "list", model: "all-MiniLM-L6-v2", usage: {prompt_tokens: 21, total_tokens: 21},
    data: [0, 1, 2].map((i) => ({object: "embedding", index: i, embedding: [i, i + 0.5, -i]}))});
  assert.deepEqual(transport.kinds(), ["embed"]);
  const {payload} = transport.sent[0];
  assert.deepEqual(payload, {assets: {ort: "ort/"}, model: "http://host/dist/models/all-MiniLM-L6-v2/", device: "auto",
    input: ["a", "bb", "ccc"], options: {}});
  assert.deepEqual(devices, ["auto"]);
  const one = await embeddings.create({input: "just one", device: "wasm", truncate: true});
  assert.equal(one.data.length, 1);
  assert.deepEqual(transport.sent[1].payload.options, {truncate: true});
  assert.deepEqual(devices, ["auto", "wasm"]);
});

test("the model: a name, a path, an OpenAI embedding model's name or none (all-MiniLM-L6-v2)", async () => {
  const {transport, embeddings} = setup();
  for (const model of [undefined, "text-embedding-3-small", "text-embedding-ada-002"]) {
    const r = await embeddings.create({model, input: "x"});
    assert.equal(r.model, DEFAULT_EMBEDDING_MODEL);
  }
  const r = await embeddings.create({model: "/pkgs/my-encoder/", input: "x"});
  assert.equal(r.model, "my-encoder");
  assert.equal(transport.sent.at(-1).payload.model, "http://host/pkgs/my-encoder/");
});

test("base64 is each vector's little-endian float32 bytes, as OpenAI's; it decodes back exactly", async () => {
  const {embeddings} = setup();
  const r = await embeddings.create({input: ["a", "b"], encoding_format: "base64"});
  assert.equal(typeof r.data[1].embedding, "string");
  assert.deepEqual(Array.from(fromBase64(/** @type {string} */ (r.data[1].embedding))), [1, 1.5, -1]);
  assert.equal(toBase64(Float32Array.of(1)), Buffer.from([0, 0, 0x80, 0x3f]).toString("base64"));
  const v = Float32Array.from({length: 384}, (_, i) => Math.sin(i) / 7);
  assert.deepEqual(fromBase64(toBase64(v)), v);
});

test("bad input is a TypeError naming the fix, before anything is sent", async () => {
  const {transport, embeddings} = setup();
  const cases = [
    [{input: []}, /input is an empty list/],
    [{input: ["a", 3]}, /input\[1\] is a number: token ids are not taken/],
    [{input: [[1, 2]]}, /input\[0\] is a list/],
    [{input: ["a", null]}, /input\[1\] is null, not a string/],
    [{input: 42}, /input must be a string or a list of strings, got number/],
    [{}, /input must be a string or a list of strings, got undefined/],
    [{input: "a", encoding_format: "int8"}, /encoding_format must be "float" or "base64"/],
    [{input: "a", device: "tpu"}, /device must be/],
    [{input: "a", truncate: "yes"}, /truncate must be true or false/],
    [{input: "a", model: 5}, /model must be a string/],
  ];
  for (const [request, message] of cases) {
    await assert.rejects(embeddings.create(/** @type {any} */ (request)), (e) => e instanceof TypeError && message.test(e.message));
  }
  await assert.rejects(embeddings.create(/** @type {any} */ (null)), TypeError);
  await assert.rejects(embeddings.create({input: "a", dimensions: 128}), {name: "NotSupportedError"});
  assert.equal(transport.sent.length, 0);
  assert.deepEqual(inputTexts(""), [""]); // an empty string is a text ([CLS] [SEP])
});

test("the worker's errors arrive as the page's: QuotaExceededError for over-long input, with the fix", async () => {
  const {transport, embeddings} = setup({answer: false});
  transport.onCall = ({id}) => transport.reply(id, "throw", {name: "QuotaExceededError",
    message: "input[0] is 300 tokens; all-MiniLM-L6-v2 reads at most 256. Pass truncate: true, or shorten it.", requested: 300, contextWindow: 256});
  await assert.rejects(embeddings.create({input: ["long ".repeat(300)]}), (e) => e.name === "QuotaExceededError" && /truncate: true/.test(e.message));
});

test("download progress reaches the monitor as downloadprogress, 0 first, rising to 1", async () => {
  const {embeddings} = setup();
  /** @type {number[]} */
  const seen = [];
  await embeddings.create({input: "x", monitor: (m) => m.addEventListener("downloadprogress", (e) => seen.push(/** @type {ProgressEvent} */ (e).loaded))});
  assert.deepEqual(seen, [0, 0.5, 1]); // writing-assistance-apis: fireProgressEvent(0) before the download loop
});

test("an aborted request rejects at once with the signal's reason and asks the worker to stop", async () => {
  const {transport, embeddings} = setup({answer: false});
  const ctl = new AbortController();
  const p = embeddings.create({input: "x", signal: ctl.signal});
  await settle();
  ctl.abort();
  await assert.rejects(p, {name: "AbortError"});
  assert.deepEqual(transport.aborted, [transport.sent[0].id]);
  await assert.rejects(embeddings.create({input: "x"}, {signal: AbortSignal.abort()}), {name: "AbortError"});
});
