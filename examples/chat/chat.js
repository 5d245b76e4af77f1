// The chat demo: window.llm from nomoat.js. A streaming chat with Markdown answers for chat models,
// a plain completion box for base models (no chat template), a picker among the packages the
// server lists in /models/index.json (nomoat serve makes it), and the sampling options.
//
// URL parameters: ?model= a package on this origin (a path, a URL, or a bare name under models/),
// ?device= auto | webgpu | wasm, ?temperature=, ?load=0 (window.llm only: tests and benchmarks).
import * as marked from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";
import {createRenderer} from "./render.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STAGES = {download: "downloading the model", runtime: "starting Python (Pyodide)", init: "preparing the model"};
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/; // a bare package name, as llm.create() reads it
const markdown = createRenderer({marked, DOMPurify, window});

/** @type {{name: string, url: string, bytes?: number, model_type?: string, context_window?: number,
 *          chat?: boolean, quantization?: string | null}[]} */
let packages = [];
let current = null; // the package running: an entry of `packages` (or one made up for a model not listed)
let session = null; // the chat's session (chat models); completions make their own
let controller = null; // aborts the answer being generated
let loading = null; // the load under way (a promise), so that nothing overlaps it
let restarting = Promise.resolve(); // the new conversations asked for, in order

// --- what the page shows ---------------------------------------------------------------------

function status(text, state = "") {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

function add(cls, text = "") {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  div.textContent = text;
  $("log").appendChild(div);
  scroll(true);
  return div;
}

function scroll(force = false) {
  const log = $("log");
  if (force || log.scrollHeight - log.scrollTop - log.clientHeight < 80) log.scrollTop = log.scrollHeight;
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function size(bytes) {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(0)} MB`
    : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

/** The quantization as a type name: nomoat.json's own, else read off the GGUF's file name. */
function quantization(q) {
  if (!q) return null;
  if (!/\.gguf$/i.test(q)) return q;
  const m = q.match(/(?:^|[._-])(I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=[._-])/i);
  return m ? m[1].toUpperCase() : `from ${q}`;
}

function showModel(pkg, contextWindow) {
  const parts = [pkg.name];
  if (pkg.model_type) parts.push(pkg.model_type);
  if (pkg.bytes) parts.push(size(pkg.bytes));
  const q = quantization(pkg.quantization);
  if (q) parts.push(q);
  const tokens = contextWindow || pkg.context_window;
  if (tokens) parts.push(`${tokens.toLocaleString("en")}-token context`);
  parts.push(pkg.chat === false ? "base model: plain completion" : "chat");
  $("model").textContent = parts.join(" · ");
}

function showStats(s) {
  if (!s) return;
  $("stats").textContent = `${s.completion_tokens} tokens · ${s.decode_tps.toFixed(1)} tok/s · ` +
    `first token ${s.ttft_ms.toFixed(0)} ms · prompt ${s.prompt_tokens} tokens (${s.reused_tokens} reused)`;
}

function idle() {
  const ready = session !== null || (current && current.chat === false && document.body.dataset.ready === "1");
  $("input").disabled = $("send").disabled = !ready || controller !== null;
  $("clear").disabled = !ready || controller !== null;
  $("stop").disabled = controller === null;
  $("models").disabled = controller !== null || loading !== null || packages.length < (current ? 2 : 1);
}

// --- which model: ?model= and /models/index.json -------------------------------------------------

/** The package URL ?model= names, if it lies on this page's origin; else an Error saying why not. */
function packageURL(value) {
  if (MODEL_NAME.test(value)) return new URL(`models/${value}/`, location.href).href;
  let url;
  try {
    url = new URL(value, location.href);
  } catch {
    return new Error(`?model=${value} is not a URL or a model name.`);
  }
  if (url.origin !== location.origin) {
    return new Error(`?model= may only name a model package on this server (${location.origin}); ` +
      `${url.origin === "null" ? url.protocol : url.origin} is not it. Pick a model from the list, or serve ` +
      "the package here (nomoat serve serves the models folder under /models/).");
  }
  return url.href.endsWith("/") ? url.href : url.href + "/";
}

async function listPackages() {
  try {
    const r = await fetch("models/index.json", {cache: "no-cache"});
    const index = r.ok ? await r.json() : null;
    if (!index || !Array.isArray(index.models)) return [];
    const here = (url) => {
      try {
        return new URL(url, location.href).origin === location.origin;
      } catch {
        return false;
      }
    };
    return index.models.filter((p) => p && typeof p.name === "string" && typeof p.url === "string" && here(p.url) &&
      p.kind !== "embedding") // a sentence-embedding package is not a chat model
      .map((p) => ({...p, url: new URL(p.url, location.href).href}));
  } catch {
    return []; // a server without an index (the page still runs the model it is given)
  }
}

function fillPicker() {
  const select = $("models");
  const options = packages.map((p) => new Option(p.name + (p.chat === false ? " (base)" : ""), p.url));
  if (!current) options.unshift(Object.assign(new Option("pick a model", ""), {disabled: true}));
  select.replaceChildren(...options);
  select.value = current ? current.url : "";
}

// --- sessions -------------------------------------------------------------------------------------

function settings() {
  const num = (id, fallback) => (Number.isFinite($(id).valueAsNumber) ? $(id).valueAsNumber : fallback);
  return {temperature: Math.min(2, Math.max(0, num("temperature", 0.7))), topK: Math.max(1, Math.round(num("topk", 40))),
    maxTokens: Math.max(1, Math.round(num("maxtokens", 512))), system: $("system").value.trim()};
}

function createOptions(extra = {}) {
  const {temperature, topK, maxTokens, system} = settings();
  const options = {device: params.get("device") || "auto", model: current.url, temperature, topK, maxTokens, ...extra};
  if (system && current.chat !== false) options.initialPrompts = [{role: "system", content: system}];
  return options;
}

async function stopAnswer() {
  if (controller) controller.abort();
  while (controller) await new Promise((r) => setTimeout(r, 20));
}

/** Loads `pkg` (its first session), with progress; the page is ready when it resolves. */
async function load(pkg) {
  await stopAnswer();
  if (session) session.destroy();
  session = null;
  current = pkg;
  delete document.body.dataset.ready;
  fillPicker();
  showModel(pkg);
  $("log").replaceChildren();
  $("stats").textContent = "";
  $("progress").hidden = false;
  $("progress").value = 0;
  const base = pkg.chat === false;
  $("input").placeholder = base ? "Write the start of a text; the model continues it (Ctrl+Enter)" : "Ask something…";
  $("send").textContent = base ? "Complete" : "Send";
  $("system").disabled = base;
  document.body.dataset.mode = base ? "completion" : "chat";
  if (base) add("divider", `${pkg.name} is a base model (no chat template): it continues your text instead of chatting.`);
  const t0 = performance.now();
  status("loading…");
  idle();
  let s;
  loading = llm.create(createOptions({
    monitor(m) {
      m.addEventListener("nomoatprogress", (e) => {
        const {stage, loaded, total} = e.detail;
        let text = `${STAGES[stage] || stage}…`;
        if (stage === "download" && total) {
          $("progress").value = loaded / total;
          text += ` ${(loaded / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`;
        }
        status(text);
      });
      m.addEventListener("nomoatdevice", (e) => {
        $("device").textContent = `device: ${e.detail.device} (${e.detail.reason}; ${e.detail.threads} thread(s))`;
        $("device").dataset.device = e.detail.device;
      });
    },
  }));
  try {
    s = await loading;
  } catch (e) {
    status("failed to load", "error");
    add("error", `${e.name}: ${e.message}`);
    return;
  } finally {
    loading = null;
    $("progress").hidden = true;
    idle();
  }
  if (current !== pkg) return s.destroy(); // another model was picked meanwhile
  showModel(pkg, s.contextWindow);
  if (base) s.destroy(); // each completion is a fresh session: this one only loaded the model
  else session = s;
  status(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  document.body.dataset.ready = "1";
  idle();
  $("input").focus();
}

/** A new conversation on the same model (Clear, or changed settings); `why` goes in the log.
 * Restarts run one after another. */
function restart(why) {
  restarting = restarting.then(() => newConversation(why));
  return restarting;
}

async function newConversation(why) {
  const pkg = current;
  if (!pkg || loading) return;
  await stopAnswer();
  if (session) session.destroy();
  session = null;
  idle();
  if (why) {
    for (const m of $("log").children) m.classList.add("old");
    add("divider", why);
  } else {
    $("log").replaceChildren();
    $("stats").textContent = "";
  }
  if (pkg.chat === false) return idle();
  status("starting a new conversation…");
  try {
    const s = await llm.create(createOptions());
    if (current === pkg && !loading) session = s;
    else s.destroy(); // another model was picked meanwhile
    status("ready");
  } catch (e) {
    status("failed", "error");
    add("error", `${e.name}: ${e.message}`);
  }
  idle();
}

// --- generating -----------------------------------------------------------------------------------

/** Ends the answer in `out` with a note that it was stopped. */
function markStopped(out) {
  const note = document.createElement(out.tagName === "SPAN" ? "span" : "div"); // a completion is inline text
  note.className = "stopped";
  note.textContent = out.tagName === "SPAN" ? " [stopped]" : "[stopped]";
  out.append(note);
}

/** Streams `stream` into `out` (Markdown or plain text), with the live token rate in the status. */
async function generate(stream, out, markdownOut) {
  let text = "", tokens = 0, first = 0, frame = 0;
  const show = () => { // at most once a frame while it streams; at once at the end (no frame left pending)
    cancelAnimationFrame(frame);
    frame = 0;
    if (markdownOut) markdown.render(out, text);
    else out.textContent = text;
    scroll();
  };
  status("generating… reading the prompt", "generating");
  const reader = stream.getReader();
  try {
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      text += value;
      tokens += 1;
      const now = performance.now();
      if (tokens === 1) first = now;
      const rate = tokens > 1 ? ` · ${((tokens - 1) / ((now - first) / 1000)).toFixed(1)} tok/s` : "";
      status(`generating… ${tokens} tokens${rate}`, "generating");
      if (!frame) frame = requestAnimationFrame(show);
    }
    show();
  } catch (e) {
    show();
    if (e.name === "AbortError") markStopped(out);
    else add("error", `${e.name}: ${e.message}`);
  }
}

async function send(text) {
  controller = new AbortController();
  idle();
  let s = session;
  let out;
  try {
    if (current.chat === false) {
      const entry = add("completion");
      const prompt = document.createElement("span");
      prompt.className = "prompt";
      prompt.textContent = text;
      out = document.createElement("span");
      out.className = "assistant";
      entry.append(prompt, out);
      status("generating… starting", "generating");
      s = await llm.create(createOptions({signal: controller.signal}));
      await generate(s.promptStreaming(text, {signal: controller.signal}), out, false);
    } else {
      add("user", text);
      out = add("assistant");
      await generate(s.promptStreaming(text, {signal: controller.signal}), out, true);
    }
  } catch (e) { // the completion's session could not be made (or was stopped before it was)
    if (e.name === "AbortError") markStopped(out);
    else add("error", `${e.name}: ${e.message}`);
  } finally {
    if (s) showStats(s.lastStats);
    if (s && s !== session) s.destroy();
    if (out) out.dataset.done = "1";
    controller = null;
    status("ready");
    idle();
  }
}

// --- wiring ---------------------------------------------------------------------------------------

async function main() {
  const wanted = params.get("model");
  const [listed, url] = [listPackages(), wanted ? packageURL(wanted) : llm.defaultModel];
  packages = await listed;
  if (url instanceof Error) {
    status("refused", "error");
    notice(url.message);
    $("progress").hidden = true;
    fillPicker();
    idle();
    return;
  }
  const pkg = packages.find((p) => p.url === url) ||
    {name: decodeURIComponent(new URL(url).pathname.split("/").filter(Boolean).pop() || url), url};
  if (!packages.includes(pkg)) packages.push(pkg);
  await load(pkg);
}

$("models").onchange = () => {
  const pkg = packages.find((p) => p.url === $("models").value);
  if (!pkg || pkg === current) return;
  notice("");
  const next = new URL(location.href);
  next.searchParams.set("model", new URL(pkg.url).pathname);
  history.replaceState(null, "", next);
  load(pkg);
};
$("stop").onclick = () => controller && controller.abort();
$("clear").onclick = () => restart("");
for (const id of ["system", "temperature", "topk", "maxtokens"]) {
  $(id).onchange = () => {
    const {temperature, topK, maxTokens, system} = settings();
    restart(`New conversation: temperature ${temperature}, top-k ${topK}, up to ${maxTokens} tokens` +
      (current && current.chat !== false ? (system ? `, system prompt “${system}”.` : ", no system prompt.") : "."));
  };
}
$("input").onkeydown = (e) => {
  const base = current && current.chat === false;
  if (e.key === "Enter" && !e.isComposing && (base ? e.ctrlKey || e.metaKey : !e.shiftKey)) {
    e.preventDefault();
    $("form").requestSubmit();
  }
};
$("form").onsubmit = (ev) => {
  ev.preventDefault();
  const base = current && current.chat === false;
  const text = base ? $("input").value : $("input").value.trim(); // a completion's text is kept as typed
  if (!text.trim() || controller || !current) return;
  if (!base) $("input").value = "";
  send(text);
};
$("log").onclick = async (e) => {
  const button = e.target instanceof Element ? e.target.closest("button.copy") : null;
  if (!button) return;
  try {
    await navigator.clipboard.writeText(button.parentElement.querySelector("code").textContent);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
};

if (params.has("temperature") && Number.isFinite(Number(params.get("temperature")))) {
  $("temperature").value = params.get("temperature");
}
if (params.get("load") !== "0") main();
