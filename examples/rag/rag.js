// Ask a document, offline: passages → vectors (llm.embeddings, all-MiniLM-L6-v2), a question's
// nearest passages by cosine similarity, and the chat model's answer from them, citing them.
// window.rag = {index(text), search(question, k), ask(question)} is what tests/test_web_embeddings.py
// drives; the form calls the same functions.
//
// URL parameters: ?embed= the embedding model, ?model= the chat model (names or package URLs),
// ?device= auto | webgpu | wasm, ?chat=0 (retrieval only: no chat model is loaded).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const EMBED_MODEL = params.get("embed") || "all-MiniLM-L6-v2";
const CHAT_MODEL = params.get("model") || undefined; // llm.create's default: SmolLM2-135M-Instruct
const DEVICE = params.get("device") || "auto";
const TOP_K = 3;
const WORDS_PER_PASSAGE = 120; // well under the embedding model's 256 tokens

/** @type {{text: string, vector: Float32Array}[]} */
let passages = [];
let chat = null; // the chat session (made on the first question)

function say(text, state = "") {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

/**
 * A document cut into passages: its paragraphs (blank-line separated, or the page's <p>s), each
 * longer one cut into pieces of at most WORDS_PER_PASSAGE words.
 * @param {string} text
 * @returns {string[]}
 */
function split(text) {
  const out = [];
  for (const para of text.split(/\n\s*\n/).map((p) => p.replace(/\s+/g, " ").trim()).filter(Boolean)) {
    const words = para.split(" ");
    for (let i = 0; i < words.length; i += WORDS_PER_PASSAGE) out.push(words.slice(i, i + WORDS_PER_PASSAGE).join(" "));
  }
  return out;
}

/** The vectors of `texts`, one Float32Array each (unit length). @param {string[]} texts */
async function embed(texts) {
  const r = await window.llm.embeddings.create({model: EMBED_MODEL, input: texts, device: DEVICE, truncate: true,
    monitor: (m) => m.addEventListener("downloadprogress", (e) => say(`Downloading the embedding model… ${Math.round(e.loaded * 100)}%`))});
  return r.data.map((d) => Float32Array.from(d.embedding));
}

/** Indexes `text` (the page's own document when empty); resolves to the number of passages. @param {string} [text] */
async function index(text) {
  const doc = text && text.trim() ? text : [...$("document").querySelectorAll("p")].map((p) => p.textContent).join("\n\n");
  const pieces = split(doc);
  if (!pieces.length) throw new TypeError("The document has no text to index.");
  say(`Indexing ${pieces.length} passages…`);
  const t0 = performance.now();
  const vectors = await embed(pieces);
  passages = pieces.map((p, i) => ({text: p, vector: vectors[i]}));
  const ms = Math.round(performance.now() - t0);
  $("indexed").textContent = `${pieces.length} passages indexed in ${ms} ms`;
  say("Ready: ask a question.", "ready");
  return pieces.length;
}

/** Cosine similarity of two unit vectors: their dot product. @param {Float32Array} a @param {Float32Array} b */
function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * The k passages nearest to `question`, best first: [{index, text, score}].
 * @param {string} question @param {number} [k]
 */
async function search(question, k = TOP_K) {
  if (!passages.length) await index("");
  const [q] = await embed([question]);
  return passages.map((p, i) => ({index: i, text: p.text, score: dot(q, p.vector)}))
    .sort((a, b) => b.score - a.score).slice(0, k);
}

function showPassages(hits) {
  $("passages").replaceChildren(...hits.map((h) => {
    const li = document.createElement("li");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = ` (similarity ${h.score.toFixed(3)})`;
    li.append(h.text, score);
    return li;
  }));
}

/**
 * The chat model's answer to `question` from its nearest passages, streamed into the page:
 * {answer, passages}.
 * @param {string} question
 */
async function ask(question) {
  const hits = await search(question);
  showPassages(hits);
  if (params.get("chat") === "0") return {answer: "", passages: hits};
  if (!chat) {
    say("Loading the chat model…");
    chat = await window.llm.create({model: CHAT_MODEL, device: DEVICE, temperature: 0, maxTokens: 160,
      systemPrompt: "Answer the question using only the numbered passages. Cite the passages you use as [1], [2] or [3]. " +
        "If they do not contain the answer, say so."});
  }
  const numbered = hits.map((h, i) => `[${i + 1}] ${h.text}`).join("\n\n");
  const session = await chat.clone(); // each question on its own, from the same system prompt
  say("Answering…");
  $("answer").textContent = "";
  let answer = "";
  try {
    for await (const piece of session.promptStreaming(`Passages:\n\n${numbered}\n\nQuestion: ${question}`)) {
      answer += piece;
      $("answer").textContent = answer;
    }
  } finally {
    session.destroy();
  }
  say("Ready: ask a question.", "ready");
  return {answer, passages: hits};
}

// --- the page's controls -------------------------------------------------------------------------

const fail = (e) => say(`${e.name || "Error"}: ${e.message}`, "error");

$("index").addEventListener("click", () => index($("text").value).catch(fail));
$("ask").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("question").value.trim();
  if (q) ask(q).catch(fail);
});
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  const file = ev.dataTransfer?.files?.[0];
  if (!file) return;
  $("text").value = await file.text();
  index($("text").value).catch(fail);
});

window.rag = {index, search, ask, split};
index("").catch(fail);
