// The popup: a small chat with the model in the offscreen document, through client.js (window.llm).
// popup.html?temperature=0 gives greedy answers (the tests use it); the default is 0.7.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STAGES = {download: "downloading the model", runtime: "starting Python (Pyodide)", init: "preparing the model"};
let sessionPromise = null;
let controller = null;

function add(cls, text) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

function session() {
  if (!sessionPromise) {
    const t0 = performance.now();
    sessionPromise = llm.create({
      temperature: Number(params.get("temperature") ?? 0.7),
      topK: 40,
      maxTokens: 256,
      monitor(m) {
        m.addEventListener("nomoatprogress", (e) => {
          const {stage, loaded, total} = e.detail;
          $("status").textContent = `${STAGES[stage] || stage}…`;
          if (stage === "download" && total) {
            $("progress").hidden = false;
            $("progress").value = loaded / total;
          }
        });
        m.addEventListener("nomoatdevice", (e) => {
          const d = e.detail;
          $("device").textContent = `${d.device} (${d.reason}); ${d.threads} thread(s); crossOriginIsolated: ${d.crossOriginIsolated}`;
          $("device").dataset.device = d.device;
          $("device").dataset.threads = d.threads;
          $("device").dataset.isolated = d.crossOriginIsolated;
        });
      },
    }).then((s) => {
      $("progress").hidden = true;
      $("status").textContent = `ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
      return s;
    }, (e) => {
      sessionPromise = null;
      throw e;
    });
  }
  return sessionPromise;
}

async function ask(text) {
  add("user", text);
  const out = add("assistant", "");
  out.dataset.chunks = "0";
  $("send").disabled = true;
  $("stop").disabled = false;
  controller = new AbortController();
  try {
    const s = await session();
    $("status").textContent = "thinking…";
    const t0 = performance.now();
    for await (const piece of s.promptStreaming(text, {signal: controller.signal})) {
      out.textContent += piece;
      out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
      $("log").scrollTop = $("log").scrollHeight;
    }
    const st = s.lastStats || {};
    $("status").textContent = `${st.completion_tokens ?? "?"} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  } catch (e) {
    if (e.name === "AbortError") $("status").textContent = "stopped";
    else {
      add("error", `${e.name}: ${e.message}`);
      $("status").textContent = "failed";
    }
  } finally {
    out.dataset.done = "1";
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text) return;
  $("input").value = "";
  ask(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("form").requestSubmit();
  }
});
$("stop").addEventListener("click", () => controller && controller.abort());
