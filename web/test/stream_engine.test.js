// @ts-check
// runtime.mjs loadEngine: nomoat's wasm decoder gets the data file streamed into its memory by
// package.js (no JS copy of it), and gives the same logits as an engine made from the bytes; a
// model too large for the device is refused, naming its size and the limit, before its data file
// is fetched (the wasm decoder's own check in WasmEngine.create, onnxruntime-web's in runtime.mjs).
// Uses the decoder built into web/dist (skipped, saying so, when it is not built).
import assert from "node:assert/strict";
import fs from "node:fs";
import {test} from "node:test";

import {ModelPackage} from "../src/package.js";
import {loadEngine} from "../src/runtime.mjs";
import {WasmEngine} from "../src/wasm_engine.mjs";
import {fakeServer, manifestOf} from "./fake_server.js";

const DIST = new URL("../dist/", import.meta.url);
const skip = fs.existsSync(new URL("nomoat-decoder.wasm", DIST)) ? false : "web/dist/nomoat-decoder.wasm is not built: run 'make web' first";
const BASE = "http://models.test/m/";
const DATA = "onnx/model_q4.onnx_data", TENSORS = "onnx/nomoat_tensors.json";
const CONFIG = {num_hidden_layers: 2, hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: 2,
  head_dim: 16, vocab_size: 96, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 128};

/**
 * A tensor directory for `config` (4-bit linears, an 8-bit embedding, tied head) and, with `rand`,
 * random data for it; without, only its size.
 * @param {Record<string, number>} config
 * @param {(() => number) | null} rand
 */
function model(config, rand) {
  const H = config.hidden_size, I = config.intermediate_size, hd = config.head_dim;
  /** @type {Record<string, {offset: number, length: number, dtype: string, shape: number[]}>} */
  const tensors = {};
  /** @type {[number, () => number][]} */
  const fills = [];
  let offset = 0;
  /** @param {string} name @param {string} dtype @param {number[]} shape @param {() => number} f */
  const put = (name, dtype, shape, f) => {
    const length = shape.reduce((a, b) => a * b, 1) * (dtype === "uint8" ? 1 : 4);
    tensors[name] = {offset, length, dtype, shape};
    fills.push([offset, f]);
    offset += (length + 63) & ~63;
  };
  const u8 = () => Math.floor(/** @type {() => number} */ (rand)() * 256);
  /** @param {string} p @param {number} n @param {number} k @param {number} bits @param {number} step */
  const linear = (p, n, k, bits, step) => {
    put(`${p}.qweight`, "uint8", [n, k / 32, 32 * bits / 8], u8);
    put(`${p}.scales`, "float32", [n * k / 32], () => step * (0.5 + /** @type {() => number} */ (rand)()));
  };
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, "float32", [H], () => 1);
    put(`${p}.post_attention_layernorm.weight`, "float32", [H], () => 1);
    linear(`${p}.attn.qkv_proj`, (config.num_attention_heads + 2 * config.num_key_value_heads) * hd, H, 4, 0.03);
    linear(`${p}.attn.o_proj`, H, config.num_attention_heads * hd, 4, 0.01);
    linear(`${p}.mlp.gate_up_proj`, 2 * I, H, 4, 0.03);
    linear(`${p}.mlp.down_proj`, H, I, 4, 0.01);
  }
  put("model.norm.weight", "float32", [H], () => 1);
  linear("embed", config.vocab_size, H, 8, 0.01);
  const dir = {data: "model_q4.onnx_data", tensors};
  if (!rand) return {dir, size: offset, data: null};
  const data = new Uint8Array(offset), f32 = new DataView(data.buffer);
  for (const [name, t] of Object.entries(tensors)) {
    const f = /** @type {[number, () => number]} */ (fills.find(([o]) => o === t.offset))[1];
    const n = t.length / (t.dtype === "uint8" ? 1 : 4);
    for (let i = 0; i < n; i++) {
      if (t.dtype === "uint8") data[t.offset + i] = f();
      else f32.setFloat32(t.offset + 4 * i, f(), true);
    }
    void name;
  }
  return {dir, size: offset, data};
}

/**
 * A server of a package (the files given; the data file as `size` bytes if no bytes are given) that
 * counts requests per file.
 * @param {Record<string, Uint8Array>} files
 * @param {Record<string, number>} [sizes] manifest sizes of files not served (never fetched)
 */
function server(files, sizes = {}) {
  return fakeServer(BASE, {...files, "nomoat.json": manifestOf(files, sizes)}, 4096);
}

const json = (/** @type {unknown} */ v) => new TextEncoder().encode(JSON.stringify(v));
const TEXTS = {"tokenizer.json": json({}), "tokenizer_config.json": json({})};

test("the data file streams into the decoder's memory: the same logits as from bytes, and it is not returned", {skip}, async () => {
  let s = 7;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const {dir, data} = model(CONFIG, rand);
  const {fetch, hits} = server({...TEXTS, "config.json": json(CONFIG), [TENSORS]: json(dir), [DATA]: /** @type {Uint8Array} */ (data)});
  const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
  const stages = /** @type {unknown[]} */ ([]);
  const {files, engine} = await loadEngine(pkg, "wasm", {assets: {ort: ""}, report: (p) => stages.push(p.stage),
    wasm: {threads: 1, decoder: DIST}});
  assert.ok(!(DATA in files) && "config.json" in files);
  assert.equal(hits[DATA], 1);
  assert.equal(stages.at(-1), "init");
  const ref = await WasmEngine.create({data: /** @type {Uint8Array} */ (data), tensors: dir, config: CONFIG, threads: 1, decoder: DIST});
  const ids = [5, 9, 17, 33, 2, 70];
  const got = await /** @type {WasmEngine} */ (/** @type {unknown} */ (engine)).logits(engine.newState(), 0, ids);
  const want = await ref.logits(ref.newState(), 0, ids);
  assert.ok(want.every(Number.isFinite));
  assert.deepEqual(got, want);
  engine.dispose();
  ref.dispose();
});

test("a corrupt data file on the server: the engine is never made (DataError)", {skip}, async () => {
  let s = 3;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const {dir, data} = model(CONFIG, rand);
  const {fetch} = server({...TEXTS, "config.json": json(CONFIG), [TENSORS]: json(dir), [DATA]: /** @type {Uint8Array} */ (data)});
  const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
  pkg.manifest.files[DATA].sha256 = "1".repeat(64); // the server's bytes no longer match
  await assert.rejects(loadEngine(pkg, "wasm", {assets: {ort: ""}, wasm: {threads: 1, decoder: DIST}}),
    {name: "DataError", message: /model_q4\.onnx_data does not match its manifest/});
});

test("a model too large for wasm32 is refused before its data file is fetched, naming its size and the limit", {skip}, async () => {
  // Llama-3.1-8B's shape at 4 bits with f32 scales: ~5 GiB of data
  const big = {...CONFIG, num_hidden_layers: 32, hidden_size: 4096, intermediate_size: 14336, num_attention_heads: 32,
    num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, max_position_embeddings: 8192};
  const {dir, size} = model(big, null);
  assert.ok(size > 4 * 2 ** 30);
  const {fetch, hits} = server({...TEXTS, "config.json": json(big), [TENSORS]: json(dir), "onnx/nomoat_q4.onnx": json("graph")},
    {[DATA]: size});
  for (const device of /** @type {const} */ (["wasm", "webgpu"])) {
    const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
    await assert.rejects(loadEngine(pkg, device, {assets: {ort: ""}, wasm: {threads: 1, decoder: DIST}}), (/** @type {any} */ e) => {
      assert.equal(e.name, "QuotaExceededError", e.message);
      const gib = (size / 2 ** 30).toFixed(device === "wasm" ? 1 : 2);
      assert.match(e.message, new RegExp(`${gib} GiB`));
      assert.match(e.message, /4(\.00)? GiB/);
      return true;
    });
  }
  assert.equal(hits[DATA], undefined);
  assert.equal(hits["onnx/nomoat_q4.onnx"], undefined);
});
