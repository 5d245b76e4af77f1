// The page side of bench/bench_embed.py: two embedding engines on the same package, in one page,
// behind the same two calls.
//   await bench.load(engine)          → {ms, info}: the engine ready (model fetched, session made)
//   await bench.embed(engine, texts)  → {ms, vectors (number[][]), tokens, padded}: texts → unit vectors,
//                                       timed in the page from the call to the vectors; tokens: nomoat's
//                                       usage (real tokens), padded: the (batch * seq) transformers.js ran
// "nomoat": llm.embeddings.create (its worker: Pyodide's WordPiece, batches sorted by length,
// nomoat's own wasm encoder, web/src/wasm_encoder.mjs); "nomoat_ort": the same with wasmEngine "ort"
// (onnxruntime-web 1.30 on the graph's sentence_embedding output). "transformers": transformers.js's
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
  nomoat_ort: {
    async load() {
      const r = await window.llm.embeddings.create({model: `/models/${MODEL}/`, input: "warm up", device: "wasm", wasmEngine: "ort"});
      return {tokens: r.usage.prompt_tokens};
    },
    async embed(texts) {
      const r = await window.llm.embeddings.create({model: `/models/${MODEL}/`, input: texts, device: "wasm", wasmEngine: "ort"});
      return {vectors: r.data.map((d) => d.embedding), tokens: r.usage.prompt_tokens};
    },
    tokens: () => null,
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

// The graphs alone, on the same token ids (bench.forward): nomoat's encoders (runtime.mjs, made in
// this page's thread, as transformers.js runs: its own wasm encoder, and OrtEncoder with wasmEngine
// "ort") on sentence_embedding, and transformers.js's model call (last_hidden_state), without
// tokenizers, pooling, Pyodide or the worker.
/** @type {Record<string, any>} */
const encoders = {};
/** @param {string} wasmEngine */
const encoderCall = (wasmEngine) => async (ids, mask, batch, seq) => {
  if (!encoders[wasmEngine]) {
    const {createRuntime} = await import("/runtime.mjs");
    const rt = createRuntime({assets: {ort: new URL("/ort/", location.href).href}, wasmEngine});
    encoders[wasmEngine] = (await rt.loadModel(`/models/${MODEL}/`, "wasm", 0)).engine;
  }
  await encoders[wasmEngine].encode(Int32Array.from(ids), Int32Array.from(mask), batch, seq);
};
const forward = {
  nomoat: encoderCall("nomoat"),
  nomoat_ort: encoderCall("ort"),
  async transformers(ids, mask, batch, seq) {
    const {Tensor} = await import("/peers/node_modules/@huggingface/transformers/dist/transformers.js");
    const t = (/** @type {number[]} */ a) => new Tensor("int64", BigInt64Array.from(a, BigInt), [batch, seq]);
    await extractor.model({input_ids: t(ids), attention_mask: t(mask), token_type_ids: t(ids.map(() => 0))});
  },
};

window.bench = {
  /** The graph alone on pre-padded batches [[ids, mask, batch, seq], ...]: ms for all of them. */
  async forward(name, batches) {
    await forward[name](...batches[0]); // (loads nomoat's in-page encoder the first time; untimed)
    const t0 = performance.now();
    for (const b of batches) await forward[name](...b);
    return {ms: performance.now() - t0};
  },
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
