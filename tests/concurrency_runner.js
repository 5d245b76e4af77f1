// The page side of tests/concurrency_plan.py: runs a plan on window.llm, all scripts at once
// ("concurrent") or one after another, every step awaited ("sequential", the oracle).
// Returns {key: answer}; an aborted stream records its first `after` pieces and whether the abort
// landed before the answer was complete ("aborted") or not ("complete").
// Usage (page.evaluate): await runNomoatPlan({plan, model, device, wasmEngine, concurrent})
window.runNomoatPlan = async function runNomoatPlan({plan, model, device, wasmEngine, concurrent}) {
  const out = {};
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const base = {model, device, ...(wasmEngine ? {wasmEngine} : {})};

  async function run(session, script) {
    const children = [];
    for (const st of script.steps) {
      if (st.op === "prompt") {
        out[st.key] = await session.prompt(st.text);
      } else if (st.op === "abort") {
        const c = new AbortController(), parts = [];
        let outcome = "complete";
        try {
          for await (const piece of session.promptStreaming(st.text, {signal: c.signal})) {
            parts.push(piece);
            if (parts.length >= st.after) c.abort();
          }
        } catch (e) {
          if (e.name !== "AbortError") throw e;
          outcome = "aborted";
        }
        out[st.key] = {partial: parts.slice(0, st.after).join(""), outcome};
      } else if (st.op === "clone") {
        out[st.key] = "cloned";
        const child = run(await session.clone(), st.script);
        if (concurrent) children.push(child);
        else await child;
      } else if (st.op === "openai") {
        const r = await llm.chat.completions.create({model, messages: st.messages, temperature: 0,
          max_tokens: script.options.maxTokens, ...(device ? {device} : {})});
        out[st.key] = r.choices[0].message.content;
      } else if (st.op === "sleep" && concurrent) {
        await sleep(st.ms);
      }
    }
    await Promise.all(children);
    session.destroy();
  }

  async function start(script) {
    if (concurrent) await sleep(script.delay);
    await run(await llm.create({...base, ...script.options}), script);
  }

  if (concurrent) await Promise.all(plan.map(start));
  else for (const s of plan) await start(s);
  return out;
};
