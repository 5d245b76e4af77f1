// nomoat: window.llm from the built runtime (web/dist, served at /). The model stays loaded in
// nomoat's worker while the first session lives; each run is a fresh session on it.
import {llm} from "/nomoat.mjs";

export function create(params) {
  const device = params.get("device") || "wasm", model = params.get("model") || undefined;
  let first = null;
  return {
    async load() {
      const t0 = performance.now();
      first = await llm.create({model, device, temperature: 0, maxTokens: 1});
      return {ms: performance.now() - t0, info: {device: first.device}};
    },
    async run(prompt, n) {
      const s = await llm.create({model, device, temperature: 0, maxTokens: n});
      const t0 = performance.now();
      let ttft = null;
      for await (const _ of s.promptStreaming(prompt.text)) ttft ??= performance.now() - t0;
      const st = s.lastStats;
      s.destroy();
      // nomoat has no "ignore end-of-sequence" option: tokens may be < n (then reported as such).
      return {prompt_tokens: st.prompt_tokens, ttft_ms: ttft, decode_tps: st.decode_tps,
              tokens: st.completion_tokens};
    },
  };
}
