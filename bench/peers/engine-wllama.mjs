// wllama 2.3.7 (llama.cpp compiled to wasm) on the GGUF the model package was converted from, its
// multi-threaded build, 2 threads (2.3.7 with 2 threads was faster here than 3.x). Generation is its
// low-level loop — decode the prompt, then sample/accept/decode one token at a time, greedy (temp 0) —
// so the token count is fixed (no stop at end-of-sequence).
import {Wllama} from "./node_modules/@wllama/wllama/esm/index.js";

const WASM = new URL("./node_modules/@wllama/wllama/esm/", import.meta.url).href;

export function create(params) {
  const threads = Number(params.get("threads") || 2), nCtx = Number(params.get("n_ctx") || 4608);
  const w = new Wllama({"single-thread/wllama.wasm": WASM + "single-thread/wllama.wasm",
                        "multi-thread/wllama.wasm": WASM + "multi-thread/wllama.wasm"}, {suppressNativeLog: true});
  return {
    async load() {
      const t0 = performance.now();
      await w.loadModelFromUrl(new URL(params.get("gguf"), location.href).href,
                               {n_ctx: nCtx, n_threads: threads, n_batch: 512});
      return {ms: performance.now() - t0, info: {device: "wasm", threads: w.getNumThreads(),
                                                  multithread: w.isMultithread(), n_ctx: nCtx}};
    },
    async run(prompt, n) {
      await w.kvClear();
      await w.samplingInit({temp: 0});
      const t0 = performance.now();
      await w.decode(prompt.ids, {});
      let {token} = await w.samplingSample();
      const t1 = performance.now();
      for (let i = 1; i < n; i++) {
        await w.samplingAccept([token]);
        await w.decode([token], {});
        ({token} = await w.samplingSample());
      }
      const t2 = performance.now();
      return {prompt_tokens: prompt.ids.length, ttft_ms: t1 - t0,
              decode_tps: n > 1 ? (n - 1) / ((t2 - t1) / 1000) : null, tokens: n};
    },
  };
}
