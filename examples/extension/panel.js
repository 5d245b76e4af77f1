// The "Ask nomoat" panel: an extension page (chrome-extension:// origin) that content.js shows on
// web pages in an iframe. The question typed here and the answer shown here live in this document,
// which the page's scripts cannot reach (another origin, another process): they cannot read it,
// write into it, or see its key events. It asks the model in the offscreen document through
// client.js's `llm`, over the same port as the popup. Answers are greedy (temperature 0).
//
// The page still owns the pixels around and over the iframe: it can hide it, fade it, or draw its
// own content over it and let clicks through (clickjacking). So a question is sent only on real
// user input (event.isTrusted) while the panel has been fully visible for VISIBLE_MS: on screen,
// nothing drawn over it, opacity 1, no filter or transform, as IntersectionObserver v2
// (trackVisibility) reports it, in this frame and in the page above it.
"use strict";

const $ = (id) => document.getElementById(id);
const VISIBLE_MS = 500;
let visibleSince = null; // performance.now() when the panel last became fully visible, or null
let busy = false;

const TRACKS_VISIBILITY = typeof IntersectionObserverEntry === "function"
  && "isVisible" in IntersectionObserverEntry.prototype;
if (TRACKS_VISIBILITY) {
  new IntersectionObserver((entries) => {
    const e = entries[entries.length - 1];
    const shown = e.isVisible && e.intersectionRatio >= 0.99; // unobscured, and all of it on screen
    visibleSince = shown ? (visibleSince ?? e.time) : null;
    document.body.dataset.visible = String(shown);
  }, {trackVisibility: true, delay: 100, threshold: [1]}).observe(document.querySelector(".box"));
}

// Why this event may not send a question, or null when it may.
function refusal(event) {
  if (!event.isTrusted) return "that request came from a script, not from you";
  if (!TRACKS_VISIBILITY) return "this browser cannot tell whether the panel is visible";
  if (visibleSince === null) return "the panel is covered, faded or off screen";
  if (performance.now() - visibleSince < VISIBLE_MS) return "the panel has only just become visible";
  return null;
}

async function ask(event) {
  const why = refusal(event);
  if (why) {
    $("status").textContent = `not sent: ${why}`;
    $("status").dataset.refused = String(Number($("status").dataset.refused || 0) + 1);
    return;
  }
  const text = $("question").value.trim();
  if (!text || busy) return;
  busy = true;
  const out = $("answer");
  out.textContent = "";
  out.dataset.chunks = "0";
  delete out.dataset.done;
  try {
    // Each question starts afresh: a session per question (the back end loads the model once).
    $("status").textContent = "loading…";
    const q = await llm.create({temperature: 0, maxTokens: 128, monitor(m) {
      m.addEventListener("nomoatprogress", (e) => { $("status").textContent = `loading (${e.detail.stage})…`; });
    }});
    $("status").textContent = "thinking…";
    try {
      for await (const piece of q.promptStreaming(text)) {
        out.textContent += piece;
        out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
      }
    } finally {
      q.destroy();
    }
    $("status").textContent = `done (${q.device})`;
  } catch (e) {
    out.textContent = `${e.name}: ${e.message}`;
    $("status").textContent = "failed";
  } finally {
    out.dataset.done = "1";
    busy = false;
  }
}

$("ask").addEventListener("click", ask);
$("question").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    ask(e);
  }
});
