// The content script: an "Ask nomoat" panel on the pages the manifest matches (localhost here). It
// uses the `llm` from client.js, which lives in this script's isolated world: the page's own
// scripts cannot call it, and the panel acts only on real user input (event.isTrusted), so a page
// cannot drive the extension's model by scripting the panel either. Answers are greedy
// (temperature 0): the same question gives the same answer.
(function () {
  "use strict";
  if (window.top !== window || document.getElementById("nomoat-panel")) return;

  const host = document.createElement("div");
  host.id = "nomoat-panel";
  const root = host.attachShadow({mode: "open"}); // open: the answer is shown in this page anyway
  root.innerHTML = `
    <style>
      :host { all: initial; position: fixed; right: 12px; bottom: 12px; z-index: 2147483647; }
      .box { width: 320px; font: 13px/1.4 system-ui, sans-serif; background: #fff; color: #202124;
             border: 1px solid #dadce0; border-radius: 8px; box-shadow: 0 2px 8px rgba(0,0,0,.2); padding: 8px; }
      textarea { box-sizing: border-box; width: 100%; font: inherit; }
      .answer { white-space: pre-wrap; margin-top: 6px; max-height: 200px; overflow-y: auto; }
      .status { color: #5f6368; font-size: 11px; }
    </style>
    <div class="box">
      <textarea class="question" rows="2" placeholder="Ask nomoat (runs in the extension)"></textarea>
      <button class="ask">Ask</button> <span class="status">ready</span>
      <div class="answer" data-chunks="0"></div>
    </div>`;
  document.documentElement.appendChild(host);

  const $ = (sel) => root.querySelector(sel);
  let busy = false;

  async function ask(event) {
    if (!event.isTrusted) { // a click or key the page's script made, not the user
      $(".status").textContent = "ignored: that request came from the page's script, not from you";
      $(".status").dataset.refused = String(Number($(".status").dataset.refused || 0) + 1);
      return;
    }
    const text = $(".question").value.trim();
    if (!text || busy) return;
    busy = true;
    const out = $(".answer");
    out.textContent = "";
    out.dataset.chunks = "0";
    delete out.dataset.done;
    try {
      // Each question starts afresh: a session per question (the back end loads the model once).
      $(".status").textContent = "loading…";
      const q = await llm.create({temperature: 0, maxTokens: 128, monitor(m) {
        m.addEventListener("nomoatprogress", (e) => { $(".status").textContent = `loading (${e.detail.stage})…`; });
      }});
      $(".status").textContent = "thinking…";
      try {
        for await (const piece of q.promptStreaming(text)) {
          out.textContent += piece;
          out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
        }
      } finally {
        q.destroy();
      }
      $(".status").textContent = `done (${q.device})`;
    } catch (e) {
      out.textContent = `${e.name}: ${e.message}`;
      $(".status").textContent = "failed";
    } finally {
      out.dataset.done = "1";
      busy = false;
    }
  }

  $(".ask").addEventListener("click", ask);
  $(".question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      ask(e);
    }
  });
})();
