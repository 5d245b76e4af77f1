// The chat demo: window.llm from nomoat.js, a streaming chat with a stop button.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STAGES = {download: "downloading the model", runtime: "starting Python (Pyodide)", init: "preparing the model"};

function add(cls, text) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

async function main() {
  const t0 = performance.now();
  let session;
  try {
    session = await llm.create({
      device: params.get("device") || "auto",
      model: params.get("model") || undefined,
      temperature: Number(params.get("temperature") ?? 0.7),
      topK: 40,
      maxTokens: 512,
      monitor(m) {
        m.addEventListener("nomoatprogress", (e) => {
          const {stage, loaded, total} = e.detail;
          $("status").textContent = `${STAGES[stage] || stage}…`;
          if (stage === "download" && total) {
            $("progress").value = loaded / total;
            $("status").textContent += ` ${(loaded / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`;
          }
        });
        m.addEventListener("nomoatdevice", (e) => {
          $("device").textContent = `device: ${e.detail.device} (${e.detail.reason}; ${e.detail.threads} thread(s))`;
          $("device").dataset.device = e.detail.device;
        });
      },
    });
  } catch (e) {
    $("status").textContent = "failed to load";
    add("error", `${e.name}: ${e.message}`);
    return;
  }
  $("progress").value = 1;
  $("status").textContent = `ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  document.body.dataset.ready = "1";
  $("input").disabled = $("send").disabled = false;
  $("input").focus();

  let controller = null;
  $("stop").onclick = () => controller && controller.abort();
  $("form").onsubmit = async (ev) => {
    ev.preventDefault();
    const text = $("input").value.trim();
    if (!text || controller) return;
    $("input").value = "";
    add("user", text);
    const out = add("assistant", "");
    controller = new AbortController();
    $("send").disabled = true;
    $("stop").disabled = false;
    try {
      const reader = session.promptStreaming(text, {signal: controller.signal}).getReader();
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        out.textContent += value;
        $("log").scrollTop = $("log").scrollHeight;
      }
    } catch (e) {
      if (e.name === "AbortError") out.textContent += " [stopped]";
      else add("error", `${e.name}: ${e.message}`);
    } finally {
      const s = session.lastStats;
      if (s) {
        $("stats").textContent = `${s.completion_tokens} tokens · ${s.decode_tps.toFixed(1)} tok/s · ` +
          `first token ${s.ttft_ms.toFixed(0)} ms · prompt ${s.prompt_tokens} (${s.reused_tokens} reused)`;
      }
      out.dataset.done = "1";
      controller = null;
      $("send").disabled = false;
      $("stop").disabled = true;
    }
  };
}

// ?load=0 gives a page with window.llm and nothing loaded yet (tests and benchmarks use it).
if (params.get("load") !== "0") main();
