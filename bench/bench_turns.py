"""A 5-turn conversation: each turn's prefill covers only the new tokens (the KV cache is reused).

    .venv/bin/python bench/bench_turns.py          # prints a table per engine, writes bench/results_turns.json

Per turn, the tokens the prompt holds in all (the whole conversation as the chat template renders
it), the tokens served from the session's KV cache, the tokens computed, and the prefill time; for
CPython (onnxruntime, 2 threads) and the browser (headless Chromium, wasm, the Prompt API), and,
for comparison, the same turns without reuse (each turn in a fresh session holding the history).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
TURNS = ["Hi! My name is Ada and I like astronomy.", "What is the largest planet in our solar system?",
         "How many moons does it have, roughly?", "Which of them is the biggest?", "What was my name again?"]


def cpython_rows(model_dir: Path) -> tuple[list[dict], list[dict]]:
    import nomoat

    model = nomoat.load(model_dir, threads=2)
    s = model.session(temperature=0, max_tokens=48)
    reuse = []
    for text in TURNS:
        s.prompt_sync(text)
        st = s.last
        reuse.append({"prompt_tokens": st.prompt_tokens, "reused": st.reused_tokens,
                      "computed": st.prompt_tokens - st.reused_tokens, "prefill_ms": st.prefill_s * 1000})
    fresh = []
    for i, text in enumerate(TURNS):
        f = model.session(messages=s.messages[: 2 * i], temperature=0, max_tokens=1)
        f.prompt_sync(text)
        fresh.append({"prompt_tokens": f.last.prompt_tokens, "prefill_ms": f.last.prefill_s * 1000})
    return reuse, fresh


def browser_rows(model_dir: Path) -> list[dict]:
    from bench_peers import FLAGS
    from playwright.sync_api import sync_playwright

    from nomoat.serve import make_server

    models = model_dir.parent
    srv = make_server(0, models=models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto(url + "/?load=0")
            return page.evaluate("""async (turns) => {
                await llm.polyfill();
                const s = await LanguageModel.create({device: "wasm", temperature: 0, maxTokens: 48});
                const rows = [];
                for (const t of turns) {
                    await s.prompt(t);
                    const st = s.lastStats;
                    rows.push({prompt_tokens: st.prompt_tokens, reused: st.reused_tokens,
                               computed: st.prompt_tokens - st.reused_tokens,
                               prefill_ms: (st.prompt_tokens - st.reused_tokens) / st.prefill_tps * 1000});
                }
                return rows;
            }""", TURNS)
    finally:
        srv.shutdown()


def table(name: str, reuse: list[dict], fresh: list[dict] | None) -> str:
    lines = [f"{name}", "| turn | prompt tokens | from KV cache | computed | prefill ms |"
             + (" prefill ms without reuse |" if fresh else ""),
             "|---:|---:|---:|---:|---:|" + ("---:|" if fresh else "")]
    for i, r in enumerate(reuse):
        row = f"| {i + 1} | {r['prompt_tokens']} | {r['reused']} | {r['computed']} | {r['prefill_ms']:.0f} |"
        if fresh:
            row += f" {fresh[i]['prefill_ms']:.0f} ({fresh[i]['prompt_tokens']} tokens) |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    sys.path.insert(0, str(HERE.parent / "py"))
    from nomoat.catalog import convert_default

    model_dir = convert_default()
    reuse, fresh = cpython_rows(model_dir)
    browser = browser_rows(model_dir)
    print(table("CPython (onnxruntime, 2 threads)", reuse, fresh))
    print()
    print(table("Browser (headless Chromium, wasm, Prompt API)", browser, None))
    out = {"turns": TURNS, "cpython": {"reuse": reuse, "fresh": fresh}, "browser_wasm": browser}
    (HERE / "results_turns.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
