// transformers.js 4.3 on the package's Optimum-I/O graph: dtype "fp32" (onnx/model.onnx, weights
// dequantized by bench_peers.py: its fastest wasm configuration) or "q4" (onnx/model_q4.onnx, the
// same file nomoat ships). wasm runs on ORT's plain `ort-wasm-simd-threaded` build (the library
// picks the slower asyncify build by default), 2 threads. Fixed token counts: min_new_tokens = n.
import {AutoModelForCausalLM, Tensor, env} from "./node_modules/@huggingface/transformers/dist/transformers.js";

const ORT = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;

export function create(params) {
  const device = params.get("device") || "wasm", dtype = params.get("dtype") || "fp32";
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = "/bench-models/";
  env.backends.onnx.wasm.numThreads = Number(params.get("threads") || 2);
  if (device === "wasm") {
    env.backends.onnx.wasm.wasmPaths = {mjs: ORT + "ort-wasm-simd-threaded.mjs", wasm: ORT + "ort-wasm-simd-threaded.wasm"};
  }
  let model = null;
  return {
    async load() {
      const t0 = performance.now();
      model = await AutoModelForCausalLM.from_pretrained(params.get("model"), {dtype, device});
      return {ms: performance.now() - t0, info: {device, dtype, ort_wasm: device === "wasm" ? "ort-wasm-simd-threaded" : null}};
    },
    async run(prompt, n) {
      const len = prompt.ids.length;
      const input_ids = new Tensor("int64", BigInt64Array.from(prompt.ids, BigInt), [1, len]);
      const attention_mask = new Tensor("int64", new BigInt64Array(len).fill(1n), [1, len]);
      const times = [];  // times[0]: the prompt, put before the first forward pass; then one per token
      const streamer = {put() { times.push(performance.now()); }, end() {}};
      const t0 = performance.now();
      await model.generate({input_ids, attention_mask, max_new_tokens: n, min_new_tokens: n, do_sample: false,
                            streamer});
      const tokens = times.length - 1;
      return {prompt_tokens: len, ttft_ms: times[1] - t0,
              decode_tps: tokens > 1 ? (tokens - 1) / ((times[tokens] - times[1]) / 1000) : null, tokens};
    },
  };
}
