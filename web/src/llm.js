// window.llm — the page-side facade. Small on purpose: it turns calls into typed messages for
// the worker (nomoat-worker.mjs) and turns replies back into values, streams and DOMExceptions.
// Prompt-API-shaped names (camelCase) live only here; the worker and Python speak snake_case.
//
// build.mjs wraps this file (after session.js: LanguageModelSession, toError, abortReason) twice:
// as a classic script (dist/nomoat.js, sets window.llm) and as an ES module (dist/nomoat.mjs,
// exports llm). `createLLM(base)` takes the URL of the folder
// that holds nomoat.js, the worker, pyodide/, ort/, wheels/ (and, when served, models/).

// The wheel list placeholder (below) is replaced by build.mjs with the wheel file names.
function createLLM(base, defaults = {}) {
  // a data-model attribute is relative to the page; the built-in default sits next to nomoat.js
  const DEFAULT_MODEL = defaults.model ? new URL(defaults.model, document.baseURI).href
    : new URL("models/SmolLM2-135M-Instruct/", base).href;
  const DEFAULT_DEVICE = defaults.device || "auto";
  const CACHE = "nomoat-models"; // the Cache API storage the worker keeps model files in
  const assets = {
    pyodide: new URL("pyodide/", base).href,
    ort: new URL("ort/", base).href,
    wheels: __NOMOAT_WHEELS__.map((w) => new URL("wheels/" + w, base).href),
  };
  const SAMPLING = {temperature: "temperature", topK: "top_k", topP: "top_p", minP: "min_p",
    repetitionPenalty: "repetition_penalty", seed: "seed", maxTokens: "max_tokens", stop: "stop"};

  // One worker per requested device; each boots Pyodide once and serves many sessions.
  class Worker_ {
    constructor() {
      this.w = new Worker(new URL("nomoat-worker.mjs", base), {type: "module"});
      this.next = 1;
      this.pending = new Map(); // id -> {resolve, reject, onChunk, onProgress, onEvent}
      this.w.onmessage = (ev) => this.receive(ev.data);
      this.w.onerror = (ev) => {
        const err = new DOMException(`nomoat's worker failed: ${ev.message || "script error"}`, "OperationError");
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      };
    }
    receive({kind, id, payload}) {
      const p = this.pending.get(id);
      if (!p) return;
      if (kind === "chunk") p.onChunk && p.onChunk(payload);
      else if (kind === "progress") p.onProgress && p.onProgress(payload);
      else if (kind === "event") p.onEvent && p.onEvent(payload);
      else {
        this.pending.delete(id);
        if (kind === "return") p.resolve(payload);
        else p.reject(toError(payload));
      }
    }
    call(kind, payload, hooks = {}) {
      const id = this.next++;
      const promise = new Promise((resolve, reject) => this.pending.set(id, {resolve, reject, ...hooks}));
      this.w.postMessage({kind, id, payload});
      return {id, promise};
    }
    abort(target) {
      this.w.postMessage({kind: "abort", id: 0, payload: {target}});
    }
  }
  const workers = new Map();
  const workerFor = (device) => {
    if (!workers.has(device)) workers.set(device, new Worker_());
    return workers.get(device);
  };

  function samplingOptions(o) {
    const out = {};
    for (const [k, v] of Object.entries(SAMPLING)) if (o[k] !== undefined) out[v] = o[k];
    return out;
  }

  // A prompt's wire options: sampling, plus responseConstraint (a JSON Schema object, or a RegExp
  // sent as {regex, flags}) and omitResponseConstraintInput, as nomoat's Session takes them.
  function promptOptions(o) {
    const out = samplingOptions(o);
    const rc = o.responseConstraint;
    if (rc !== undefined) out.response_constraint = rc instanceof RegExp ? {regex: rc.source, flags: rc.flags} : rc;
    if (o.omitResponseConstraintInput !== undefined) out.omit_response_constraint_input = Boolean(o.omitResponseConstraintInput);
    return out;
  }

  async function create(options = {}) {
    const signal = options.signal;
    if (signal && signal.aborted) throw abortReason(signal);
    const device = options.device || DEFAULT_DEVICE;
    if (!["auto", "webgpu", "wasm"].includes(device)) {
      throw new TypeError(`device must be "auto", "webgpu" or "wasm", got ${JSON.stringify(device)}.`);
    }
    const monitor = new EventTarget();
    if (typeof options.monitor === "function") options.monitor(monitor);
    const model = new URL(options.model || DEFAULT_MODEL, document.baseURI || base).href;
    const initial = (options.initialPrompts || []).map((m) => ({role: m.role, content: m.content}));
    const pyOptions = {...samplingOptions(options), initial_prompts: initial};
    if (options.systemPrompt) pyOptions.system = options.systemPrompt;
    const engine = options.wasmEngine; // "nomoat" (default) | "ort": which wasm engine (for comparisons)
    if (engine !== undefined && !["nomoat", "ort"].includes(engine)) {
      throw new TypeError(`wasmEngine must be "nomoat" or "ort", got ${JSON.stringify(engine)}.`);
    }
    const worker = workerFor(engine ? `${device}|${engine}` : device);
    let lastFraction = 0;
    const {promise} = worker.call("create", {assets: engine ? {...assets, wasmEngine: engine} : assets, model, device,
                                             options: pyOptions}, {
      onProgress: (p) => {
        if (p.warning) {
          console.warn("nomoat:", p.warning);
          monitor.dispatchEvent(new CustomEvent("nomoatwarning", {detail: p}));
          return;
        }
        monitor.dispatchEvent(new CustomEvent("nomoatprogress", {detail: p}));
        if (p.stage === "download" && p.total > 0) {
          const f = Math.floor((p.loaded / p.total) * 65536) / 65536;
          if (f > lastFraction || (f === 0 && lastFraction === 0)) {
            lastFraction = f;
            monitor.dispatchEvent(new ProgressEvent("downloadprogress", {loaded: f, total: 1}));
          }
        }
      },
      onEvent: (e) => monitor.dispatchEvent(new CustomEvent("nomoat" + e.type, {detail: e})),
    });
    const aborted = signal ? new Promise((_, reject) => signal.addEventListener("abort", () => reject(abortReason(signal)), {once: true})) : null;
    const info = await (aborted ? Promise.race([promise, aborted]) : promise);
    return new LanguageModelSession(worker, {session: info.session, device: info.device, deviceReason: info.deviceReason,
      contextWindow: info.context_window, contextUsage: info.context_usage}, promptOptions);
  }

  // "available": the model is loaded in this page or fully in nomoat's cache (no download
  // needed); "downloadable": it must be fetched first; "unavailable": no wasm/Worker, or WebGPU
  // asked for without an adapter.
  async function availability(options = {}) {
    const hasWasm = typeof WebAssembly === "object";
    const device = options.device || DEFAULT_DEVICE;
    if (device === "webgpu") {
      const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
      if (!adapter) return "unavailable";
    }
    if (!hasWasm || typeof Worker !== "function") return "unavailable";
    if (workers.has(device)) return "available";
    const model = new URL(options.model || DEFAULT_MODEL, document.baseURI || base).href;
    const prefix = model.endsWith("/") ? model : model + "/";
    const cached = (await cache.list()).find((m) => m.model === prefix);
    return cached && cached.complete ? "available" : "downloadable";
  }

  // llm.cache: the model files the worker stored (Cache API, this origin). list() gives one entry
  // per model package URL: {model, files, bytes, complete}; complete = its manifest is cached too.
  const cache = {
    async list() {
      if (typeof caches === "undefined") return [];
      const c = await caches.open(CACHE);
      const entries = [];
      for (const req of await c.keys()) {
        const res = await c.match(req);
        entries.push({url: req.url, bytes: Number(res.headers.get("content-length")) || (await res.arrayBuffer()).byteLength});
      }
      const models = new Map();
      for (const e of entries) {
        if (e.url.endsWith("/nomoat.json")) models.set(e.url.slice(0, -"nomoat.json".length), {complete: true});
      }
      const out = new Map();
      for (const e of entries) {
        let model = [...models.keys()].find((m) => e.url.startsWith(m));
        if (!model) model = e.url.replace(/(onnx\/)?[^/]*$/, "");
        const m = out.get(model) || {model, files: 0, bytes: 0, complete: models.has(model)};
        m.files += 1;
        m.bytes += e.bytes;
        out.set(model, m);
      }
      return [...out.values()];
    },
    async size() {
      return (await cache.list()).reduce((s, m) => s + m.bytes, 0);
    },
    async delete(model) {
      if (typeof caches === "undefined") return false;
      const prefix = new URL(model.endsWith("/") ? model : model + "/", document.baseURI || base).href;
      const c = await caches.open(CACHE);
      let any = false;
      for (const req of await c.keys()) if (req.url.startsWith(prefix)) any = (await c.delete(req)) || any;
      return any;
    },
    async clear() {
      return typeof caches !== "undefined" && caches.delete(CACHE);
    },
  };

  return {create, availability, cache, defaultModel: DEFAULT_MODEL, version: "0.1.0"};
}
