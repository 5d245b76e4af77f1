// The page side of bench/bench_embed.py: two embedding engines on the same package, in one page,
// behind the same two calls.
//   await bench.load(engine)          → {ms, info}: the engine ready (model fetched, session made)
//   await bench.embed(engine, texts)  → {ms, vectors (number[][]), tokens, padded}: texts → unit vectors,
//                                       timed in the page from the call to the vectors; tokens: nomoat's
//                                       usage (real tokens), padded: the (batch * seq) transformers.js ran
// "nomoat": llm.embeddings.create (its worker: Pyodide's WordPiece, batches sorted by length,
// onnxruntime-web 1.30 on the graph's sentence_embedding output). "transformers": transformers.js's
// feature-extraction pipeline on the same folder (its onnx/model.onnx: dtype fp32), mean pooling and
// normalize, on its own onnxruntime-web (plain threaded wasm build), in the page's thread.
import {env, pipeline} from "/peers/node_modules/@huggingface/transformers/dist/transformers.js";

const ORT = new URL("/peers/node_modules/onnxruntime-web/dist/", location.href).href;
const params = new URLSearchParams(location.search);
const MODEL = params.get("model") || "all-MiniLM-L6-v2";
const THREADS = Number(params.get("threads") || 2);
/** @type {any} */
let extractor = null;

const engines = {
  nomoat: {
    async load() {
      const r = await window.llm.embeddings.create({model: `/models/${MODEL}/`, input: "warm up", device: "wasm"});
      return {tokens: r.usage.prompt_tokens};
    },
    async embed(texts) {
      const r = await window.llm.embeddings.create({model: `/models/${MODEL}/`, input: texts, device: "wasm"});
      return {vectors: r.data.map((d) => d.embedding), tokens: r.usage.prompt_tokens};
    },
    tokens: () => null, // (its batches are sorted by length and padded each to its own longest: see usage)
  },
  transformers: {
    async load() {
      env.allowRemoteModels = false;
      env.allowLocalModels = true;
      env.localModelPath = "/models/";
      env.backends.onnx.wasm.numThreads = THREADS;
      env.backends.onnx.wasm.wasmPaths = {mjs: ORT + "ort-wasm-simd-threaded.mjs", wasm: ORT + "ort-wasm-simd-threaded.wasm"};
      extractor = await pipeline("feature-extraction", MODEL, {dtype: "fp32", device: "wasm"});
      return {threads: THREADS, ort_wasm: "ort-wasm-simd-threaded"};
    },
    async embed(texts) {
      const t = await extractor(texts, {pooling: "mean", normalize: true});
      return {vectors: t.tolist()};
    },
    tokens(texts) { // what its graph ran: every text padded to the longest
      const [batch, seq] = extractor.tokenizer(texts, {padding: true, truncation: true}).attention_mask.dims;
      return batch * seq;
    },
  },
};

window.bench = {
  async load(name) {
    const t0 = performance.now();
    const info = await engines[name].load();
    return {ms: performance.now() - t0, info};
  },
  async embed(name, texts) {
    const t0 = performance.now();
    const r = await engines[name].embed(texts);
    const ms = performance.now() - t0;
    return {ms, ...r, padded: engines[name].tokens(texts)};
  },
};
window.benchReady = true;
