// bench/bench_large.py's run without a browser: a model package read from disk through a stand-in
// fetch (64 KiB chunks) into nomoat's wasm decoder (one thread) in Node, a few greedy tokens, and
// the process's peak RSS (VmHWM): the JS runtime's own memory, no Pyodide or Chromium around it.
//   node bench/bench_large_node.mjs stream WEB PACKAGE DECODER TOKENS   runtime.loadEngine (streamed)
//   node bench/bench_large_node.mjs bytes  WEB PACKAGE DECODER TOKENS   package.load, then WasmEngine.create({data})
// WEB: a folder with src/ (the runtime's modules: web/, or a copy with an older package.js);
// DECODER: a folder with nomoat-decoder.wasm (web/dist). Prints one JSON line.
import fs from "node:fs";
import {Readable} from "node:stream";

const [mode, web, pkgDir, decoder, tokens] = process.argv.slice(2);
const {ModelPackage} = await import(`${web}/src/package.js`);
const {WasmEngine} = await import(`${web}/src/wasm_engine.mjs`);
const {Sampler} = await import(`${web}/src/sampler.js`);
const peak = () => Number((/VmHWM:\s+(\d+)/.exec(fs.readFileSync("/proc/self/status", "utf8")) || [])[1]) * 1024;
const BASE = "http://local/m/", DATA = "onnx/model_q4.onnx_data", TENSORS = "onnx/nomoat_tensors.json";
const wasm = {threads: 1, decoder: new URL(`file://${decoder}/`)};

/** @param {string} url */
const fetch = async (url) => {
  const f = `${pkgDir}/${url.slice(BASE.length)}`;
  if (!fs.existsSync(f)) return new Response("no", {status: 404});
  return new Response(/** @type {any} */ (Readable.toWeb(fs.createReadStream(f, {highWaterMark: 1 << 16}))));
};

const start = process.memoryUsage().rss, t0 = performance.now();
const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
let engine;
if (mode === "stream") {
  const {loadEngine} = await import(`${web}/src/runtime.mjs`);
  ({engine} = await loadEngine(pkg, "wasm", {assets: {ort: ""}, wasm}));
} else {
  const files = await pkg.load(["config.json", "tokenizer.json", "tokenizer_config.json", TENSORS, DATA]);
  const json = (/** @type {string} */ n) => JSON.parse(new TextDecoder().decode(files[n]));
  engine = await WasmEngine.create({data: files[DATA], tensors: json(TENSORS), config: json("config.json"), ...wasm});
}
const load = (performance.now() - t0) / 1000;
const state = engine.newState();
const greedy = new Sampler({temperature: 0, top_k: 0, top_p: 1, min_p: 0, repetition_penalty: 1, seed: 0});
const prompt = [1, 40, 50, 60, 70, 80], out = [];
let tok = await engine.step(state, 0, prompt, greedy);
const t1 = performance.now();
for (let i = 0; i < Number(tokens); i++) {
  out.push(tok);
  tok = await engine.step(state, prompt.length + i, [tok], greedy);
}
const decode = (performance.now() - t1) / 1000;
const logits = await engine.logits(state, state.length - 1, [tok]);
let lo = Infinity, hi = -Infinity;
for (const x of logits) {
  lo = Math.min(lo, x);
  hi = Math.max(hi, x);
}
console.log(JSON.stringify({mode, load_s: load, decode_tps: Number(tokens) / decode, tokens: out,
  logits_finite: logits.every(Number.isFinite), logit_range: [lo, hi], start_rss_mb: start / 2 ** 20,
  peak_rss_mb: peak() / 2 ** 20, wasm_memory_mb: engine.heap.memory.buffer.byteLength / 2 ** 20}));
