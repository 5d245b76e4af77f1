// The page side of `nomoat bench`: one engine per page, chosen by ?engine=…, behind the same two calls.
//   await bench.load()        → {ms, info}: the engine ready to generate (model fetched or read from
//                               the engine's own cache, runtime compiled, session created)
//   await bench.run(p, n)     → {prompt_tokens, ttft_ms, decode_tps, tokens}: a fresh context, the
//                               prompt p ({text, ids}: the same chat-rendered prompt for every engine),
//                               then n greedy tokens, never stopping early at end-of-sequence where the
//                               engine allows it. ttft_ms is measured here, in the page, from the call
//                               to the first generated token; decode_tps over the tokens after the first.
const params = new URLSearchParams(location.search);
const modules = {
  nomoat: () => import("./engine-nomoat.mjs"),
  transformers: () => import("./engine-transformers.mjs"),
  wllama: () => import("./engine-wllama.mjs"),
};
const name = params.get("engine");
window.benchReady = (modules[name] ? modules[name]() : Promise.reject(new Error(`unknown engine ${name}`)))
  .then((m) => { window.bench = m.create(params); return true; });
