// The sentence encoder on onnxruntime-web's wasm EP, in Node (no browser): an embedding package
// (nomoat.json kind "embedding") loaded through package.js and runtime.mjs loadEncoder — the same
// fetch, verify and progress path as a chat model's — and engine_ort.mjs OrtEncoder's encode() on a
// stand-in graph (fixtures/tiny_encoder/, made by fixtures/make_tiny_encoder.py: word vectors
// mean-pooled over the mask and normalised), against the same arithmetic in JS.
import assert from "node:assert/strict";
import fs from "node:fs";
import {test} from "node:test";
import {ModelPackage} from "../src/package.js";
import {loadEncoder} from "../src/runtime.mjs";
import {fakeServer, manifestOf} from "./fake_server.js";

const FIX = new URL("./fixtures/tiny_encoder/", import.meta.url);
const ORT = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url).href;
const BASE = "http://models.test/tiny-encoder/";
const read = (/** @type {string} */ n) => new Uint8Array(fs.readFileSync(new URL(n, FIX)));
const json = (/** @type {unknown} */ o) => new TextEncoder().encode(JSON.stringify(o));

const CONFIG = {model_type: "bert", architectures: ["BertModel"], hidden_size: 4, num_hidden_layers: 1, num_attention_heads: 1,
  intermediate_size: 8, vocab_size: 16, max_position_embeddings: 32, type_vocab_size: 2};
const FILES = {"config.json": json(CONFIG), "tokenizer.json": json({model: {type: "WordPiece"}}), "tokenizer_config.json": json({}),
  "onnx/model.onnx": read("model.onnx"), "onnx/model.onnx_data": read("model.onnx_data")};
const EMBEDDING = {dimensions: 4, max_tokens: 30, pooling: "mean", normalize: true, weights: "f32", onnx: "onnx/model.onnx"};

/** The package's served files, nomoat.json last (its manifest, with `extra` fields). */
function served(extra = {}, files = FILES) {
  const manifest = JSON.parse(new TextDecoder().decode(manifestOf(files)));
  return {...files, "nomoat.json": json({...manifest, kind: "embedding", architecture: "bert", embedding: EMBEDDING, ...extra})};
}

/** The stand-in graph's arithmetic: word vectors (fixtures/make_tiny_encoder.py) + type 0, mean over the mask, normalised. */
function expected(/** @type {number[]} */ ids) {
  const word = (/** @type {number} */ i) => [0, 1, 2, 3].map((j) => Math.fround(Math.sin(i * 1.3 + j) * (j + 1)));
  const type0 = [0.5, -0.25, 0.125, 1.0];
  const mean = [0, 1, 2, 3].map((j) => ids.reduce((s, i) => s + word(i)[j] + type0[j], 0) / ids.length);
  const norm = Math.hypot(...mean);
  return mean.map((x) => x / norm);
}

async function open(files = served()) {
  const server = fakeServer(BASE, files, 100);
  return {pkg: await ModelPackage.open(BASE, {fetch: server.fetch, caches: undefined}), hits: server.hits};
}

test("an embedding package loads through package.js and encodes padded batches: each row's masked mean, normalised", async () => {
  const {pkg, hits} = await open();
  assert.equal(pkg.kind, "embedding");
  assert.deepEqual(pkg.embedding, {dimensions: 4, maxTokens: 30, onnx: "onnx/model.onnx", pooling: "mean", normalize: true, weights: "f32"});
  /** @type {any[]} */
  const progress = [];
  const {files, engine} = await loadEncoder(pkg, "wasm", {assets: {ort: ORT}, report: (p) => progress.push(p)});
  try {
    assert.deepEqual(Object.keys(files).sort(), ["config.json", "onnx/model.onnx", "onnx/model.onnx_data", "tokenizer.json", "tokenizer_config.json"]);
    assert.equal(hits["onnx/model.onnx_data"], 1);
    const last = progress.filter((p) => p.stage === "download").pop();
    assert.equal(last.loaded, last.total);
    assert.ok(progress.some((p) => p.stage === "init"));
    assert.equal(engine.device, "wasm");
    assert.equal(engine.dimensions, 4);
    // two rows padded to 5 tokens: [1 5 7 2 0] (4 tokens) and [1 9 2 0 0] (3 tokens); padding ids are garbage on purpose
    const ids = Int32Array.from([1, 5, 7, 2, 15, 1, 9, 2, 15, 15]), mask = Int32Array.from([1, 1, 1, 1, 0, 1, 1, 1, 0, 0]);
    const out = await engine.encode(ids, mask, 2, 5);
    assert.ok(out instanceof Float32Array && out.length === 8);
    const want = [...expected([1, 5, 7, 2]), ...expected([1, 9, 2])];
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(out[i] - want[i]) < 1e-6, `value ${i}: ${out[i]} vs ${want[i]}`);
    // the same row alone gives the same vector: padding does not leak into it
    const alone = await engine.encode([1, 9, 2], [1, 1, 1], 1, 3);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(alone[i] - out[4 + i]) < 1e-6);
    // concurrent calls take turns and each gets its own rows
    const both = await Promise.all([engine.encode([3], [1], 1, 1), engine.encode([4, 4], [1, 1], 1, 2)]);
    assert.ok(Math.abs(both[0][0] - expected([3])[0]) < 1e-6 && Math.abs(both[1][0] - expected([4])[0]) < 1e-6);
    await assert.rejects(engine.encode([1, 2], [1], 1, 2), {name: "TypeError", message: /batch \* seq = 1 \* 2/});
  } finally {
    await engine.dispose();
  }
  await assert.rejects(engine.encode([1], [1], 1, 1), {name: "InvalidStateError"});
});

test("a hostile embedding package is refused naming the file and field, before its graph is fetched", async () => {
  /** @param {Record<string, Uint8Array>} files */
  const tryOpen = async (files) => {
    const server = fakeServer(BASE, files, 100);
    const pkg = await ModelPackage.open(BASE, {fetch: server.fetch, caches: undefined});
    await loadEncoder(pkg, "wasm", {assets: {ort: ORT}}).then((l) => l.engine.dispose());
    return server.hits;
  };
  await assert.rejects(tryOpen(served({kind: "vectors"})), {name: "DataError", message: /"kind" is "vectors"/});
  await assert.rejects(tryOpen(served({embedding: {...EMBEDDING, dimensions: 0}})), {name: "DataError", message: /embedding.dimensions is 0/});
  await assert.rejects(tryOpen(served({embedding: {...EMBEDDING, onnx: "onnx/other.onnx"}})), {name: "DataError", message: /embedding.onnx/});
  const llamaConfig = {...FILES, "config.json": json({...CONFIG, model_type: "llama"})};
  const server = fakeServer(BASE, served({}, llamaConfig), 100);
  const pkg = await ModelPackage.open(BASE, {fetch: server.fetch, caches: undefined});
  await assert.rejects(loadEncoder(pkg, "wasm", {assets: {ort: ORT}}), {name: "DataError", message: /config.json: model_type is "llama", not bert/});
  assert.equal(server.hits["onnx/model.onnx_data"], undefined); // refused before the weights were fetched
});

test("a corrupt graph is a DataError naming the fix", async () => {
  const corrupt = served({}, {...FILES, "onnx/model.onnx": new Uint8Array(954).fill(7)});
  const server = fakeServer(BASE, corrupt, 100);
  const pkg = await ModelPackage.open(BASE, {fetch: server.fetch, caches: undefined});
  await assert.rejects(loadEncoder(pkg, "wasm", {assets: {ort: ORT}}), {name: "DataError", message: /could not load the encoder graph.*nomoat convert/s});
});

test("a chat package is not an embedding package", async () => {
  const manifest = manifestOf(FILES);
  const server = fakeServer(BASE, {...FILES, "nomoat.json": manifest}, 100);
  const pkg = await ModelPackage.open(BASE, {fetch: server.fetch, caches: undefined});
  assert.equal(pkg.kind, "llm");
  assert.throws(() => pkg.embedding, {name: "NotSupportedError", message: /not an embedding model/});
});
