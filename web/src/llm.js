// @ts-check
// window.llm — the page-side facade. Small on purpose: it turns calls into typed messages
// (protocol.js) for a back end — by default a dedicated worker (worker.mjs) per device — and
// turns replies back into values, streams and DOMExceptions. Prompt-API-shaped names (camelCase)
// live only on this side; the worker and Python speak snake_case.
//
// createLLM(base) takes the URL of the folder that holds the worker, pyodide/, ort/, wheels/
// (and, when served, models/); script.js (dist/nomoat.js) and nomoat.mjs call it.

import {WHEELS} from "./generated/wheels.js";
import {createEmbeddings} from "./embeddings.js";
import {createChat} from "./openai.js";
import {createServe} from "./serve.js";
import {createTaskAPIs, installTaskAPIs} from "./task_apis.js";
import {PendingCalls, abortReason, checkSendable, samplingToWire} from "./protocol.js";
import {LanguageModelSession, canonicalPrompt, checkTools, fullyActive} from "./session.js";

/**
 * @typedef {import("./protocol.js").Transport} Transport
 * @typedef {import("./protocol.js").CallHooks} CallHooks
 * @typedef {import("./protocol.js").RequestKind} RequestKind
 * @typedef {import("./protocol.js").SamplingOptions} SamplingOptions
 * @typedef {import("./session.js").SessionInfo} SessionInfo
 * @typedef {import("./session.js").SessionSettings} SessionSettings
 * @typedef {import("./session.js").LanguageModelMessage} LanguageModelMessage
 * @typedef {import("./openai.js").Chat} Chat
 * @typedef {import("./task_apis.js").TaskAPIs} TaskAPIs
 * @typedef {"available" | "downloadable" | "downloading" | "unavailable"} Availability
 * @typedef {{type: "text" | "image" | "audio" | "tool-call" | "tool-response", languages?: string[]}} ExpectedIO
 *
 * @typedef {object} ModelOptions
 * @property {string} [model] a model's name ("gemma-3-270m": models/NAME/ next to nomoat.js) or a model package URL
 *   (relative to the page); default: data-model, else models/SmolLM2-135M-Instruct/
 * @property {"auto" | "webgpu" | "wasm"} [device] default: data-device, else "auto"
 * @property {"nomoat" | "ort"} [wasmEngine] which wasm engine (for comparisons); default "nomoat"
 * @property {"auto" | "int16" | "int8"} [kernels] nomoat's wasm decoder's activations in its matmuls: "int16" (logits
 *   within ~2e-2 of exact math), "int8" (llama.cpp's own precision: faster, logits move by up to ~1, greedy answers
 *   may change; needs WebAssembly relaxed SIMD), or "auto" (default: int8 for models of 512 MiB of weights or
 *   more where relaxed SIMD is there, else int16)
 * @property {"most-predictable" | "predictable" | "balanced" | "creative" | "most-creative"} [samplingMode]
 *   a preset; or topK/temperature, not both
 * @property {LanguageModelMessage[]} [initialPrompts]
 * @property {string} [systemPrompt]
 * @property {ExpectedIO[]} [expectedInputs]
 * @property {ExpectedIO[]} [expectedOutputs]
 * @property {import("./session.js").LanguageModelTool[]} [tools] tools the model may call (session.js's tool-use loop;
 *   calls are grammar-constrained by each inputSchema; a schema nomoat cannot enforce is a NotSupportedError)
 * @property {(monitor: EventTarget) => void} [monitor] gets downloadprogress, nomoatprogress, nomoatwarning, nomoatdevice
 * @property {AbortSignal} [signal] aborts create(), and later destroys the session
 * @typedef {ModelOptions & SamplingOptions} CreateOptions llm.create() / LanguageModel.create(): the model,
 *   the device, and the session's sampling options (temperature, topK, maxTokens, stop, seed ...)
 *
 * @typedef {object} AvailabilityOptions
 * @property {string} [model]
 * @property {"auto" | "webgpu" | "wasm"} [device]
 * @property {ExpectedIO[]} [expectedInputs]
 * @property {ExpectedIO[]} [expectedOutputs]
 *
 * @typedef {{defaultTopK: number, maxTopK: number, defaultTemperature: number, maxTemperature: number}} Params
 * @typedef {{model: string, files: number, bytes: number, complete: boolean}} CachedModel
 *
 * @typedef {object} Backend where createLLM's sessions live (default: a dedicated worker per device, this page's cache)
 * @property {(key: string) => Transport} connect the transport for a device key ("auto", "wasm", "webgpu|ort", ...)
 * @property {(options: {device: string, model: string}) => Promise<Availability>} [availability] what the
 *   back end says, where this page cannot see its cache (the extension's content scripts)
 */

/**
 * The runtime files under base: pyodide/, ort/, the wheels.
 * @param {string} base
 * @returns {{pyodide: string, ort: string, wheels: string[]}}
 */
export const assetsAt = (base) => ({
  pyodide: new URL("pyodide/", base).href,
  ort: new URL("ort/", base).href,
  wheels: WHEELS.map((w) => new URL("wheels/" + w, base).href),
});

/**
 * A dedicated module worker (worker.mjs under base) as a Transport; it boots Pyodide once and
 * serves many sessions.
 *
 * A worker that dies (terminated, closed, crashed: out of memory, say) sends nothing, and its
 * calls would wait forever. So the transport watches it: the worker holds a Web Lock for its whole
 * life, freed only when it is gone (the page's wait for that lock ends at once); while calls are
 * pending it is pinged, and one silent for `hungMs` is taken for hung; an uncaught error, a reply
 * that cannot be read, or Python failing fatally stop it too. Then the worker is terminated, every
 * call, pending or later, rejects with the same OperationError (`failure`: its sessions are broken)
 * and llm.js starts a fresh worker for the next create().
 * @implements {Transport}
 */
export class WorkerTransport {
  /**
   * @param {string} base
   * @param {{worker?: Worker, locks?: LockManager | null, pingMs?: number, hungMs?: number}} [options] the
   *   worker (default: worker.mjs under base), the LockManager (default navigator.locks; null: pings only),
   *   how often a busy worker is pinged and how long it may stay silent (ms)
   */
  constructor(base, {worker, locks = globalThis.navigator?.locks ?? null, pingMs = 2000, hungMs = 60000} = {}) {
    /** @type {Worker} the dedicated worker (a test terminate()s it to play a crash) */
    this.worker = worker || new Worker(new URL("worker.mjs", base), {type: "module"});
    this.pending = new PendingCalls();
    this.pingMs = pingMs;
    this.hungMs = hungMs;
    /** @type {ReturnType<typeof setInterval> | null} pings while calls are pending */
    this.timer = null;
    this.heard = Date.now(); // when the worker last spoke
    const lock = locks ? `nomoat-worker-${Math.random().toString(36).slice(2)}-${Date.now()}` : null;
    this.worker.onmessage = (ev) => {
      this.heard = Date.now();
      const reply = ev.data;
      if (reply.kind === "pong") return;
      if (reply.kind === "live") { // the worker holds the lock: waiting for it = waiting for the worker's end
        if (locks && lock) {
          locks.request(lock, () => this.stop("stopped (it was terminated, or it crashed: it may have run out of memory)"))
            .catch(() => {});
        }
        return;
      }
      if (reply.kind === "fatal") {
        this.stop(`stopped: its Python failed fatally (${reply.payload?.message || "unknown error"})`);
        return;
      }
      this.pending.receive(reply);
    };
    this.worker.onerror = (ev) => {
      ev.preventDefault?.();
      this.stop(`failed (${ev.message || "script error"}) and was stopped`);
    };
    this.worker.onmessageerror = () => this.stop("sent a reply that could not be read, and was stopped");
    if (lock) this.worker.postMessage({kind: "live", id: 0, payload: {lock}});
  }
  /** @type {unknown} set once the worker is gone: what every call rejects with */
  get failure() {
    return this.pending.failure;
  }
  /** @param {RequestKind} kind @param {any} payload @param {CallHooks} [hooks] */
  call(kind, payload, hooks = {}) {
    const {id, promise} = this.pending.add(hooks);
    if (this.failure !== null) return {id, promise};
    try {
      this.worker.postMessage({kind, id, payload});
    } catch (e) { // (checkSendable should have caught it): never leave the call waiting
      this.pending.fail(id, new TypeError(`${kind}: the request cannot be sent to the model (${/** @type {Error} */ (e).message}).`));
      return {id, promise};
    }
    if (!this.timer) {
      this.heard = Date.now(); // idle time is not silence
      this.timer = setInterval(() => this.watch(), this.pingMs);
    }
    return {id, promise};
  }
  /** @param {number} target */
  abort(target) {
    if (this.failure === null) this.worker.postMessage({kind: "abort", id: 0, payload: {target}});
  }
  /** @private a ping while calls are pending; silence past hungMs stops the worker */
  watch() {
    if (this.pending.size === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
    } else if (Date.now() - this.heard > this.hungMs) {
      this.stop(`stopped answering for ${Math.round(this.hungMs / 1000)} s and was stopped`);
    } else {
      this.worker.postMessage({kind: "ping", id: 0, payload: null});
    }
  }
  /**
   * The worker is gone (or made to go): terminated, and its calls rejected, now and later.
   * @param {string} what happened, after "nomoat's worker "
   */
  stop(what) {
    if (this.failure !== null) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.worker.terminate();
    this.pending.close(new DOMException(`nomoat's worker ${what}; its sessions are gone: create a new one.`, "OperationError"));
  }
}

/**
 * @typedef {object} LLM window.llm
 * @property {{prototype: LanguageModelSession, create(options?: CreateOptions): Promise<LanguageModelSession>,
 *   availability(options?: AvailabilityOptions): Promise<Availability>, params(): Promise<Params | null>}} LanguageModel
 *   the Prompt API's class (its constructor is closed: use create())
 * @property {(options?: CreateOptions) => Promise<LanguageModelSession>} create
 * @property {(options?: AvailabilityOptions) => Promise<Availability>} availability
 * @property {() => Promise<Params | null>} params
 * @property {(options?: {force?: boolean}) => Promise<{installed: boolean, reason: string}>} polyfill
 *   installs globalThis.LanguageModel where the browser has none or an unavailable one
 * @property {{list(): Promise<CachedModel[]>, size(): Promise<number>, delete(model: string): Promise<boolean>,
 *   clear(): Promise<boolean>}} cache the model files kept in the Cache API
 * @property {() => Promise<Resources>} resources what the back ends hold now (summed over the workers
 *   of this page): for watching that destroyed sessions free their memory
 * @property {() => Promise<TimelineSpan[]>} timeline when each start-up stage of this page's workers began and
 *   ended (fetch and verify, wasm compile, weights into place, Pyodide boot, wheel import, model create,
 *   first prompt's first token), on the page's performance.now() clock
 * @property {string} defaultModel
 * @property {string} version
 * @property {TaskAPIs["Summarizer"]} Summarizer the task APIs over this llm (task_apis.js), also installed by polyfill()
 * @property {TaskAPIs["Writer"]} Writer
 * @property {TaskAPIs["Rewriter"]} Rewriter
 * @property {TaskAPIs["Proofreader"]} Proofreader
 * @property {TaskAPIs["Translator"]} Translator
 * @property {TaskAPIs["LanguageDetector"]} LanguageDetector
 * @property {Chat} chat OpenAI's chat completions
 * @property {import("./embeddings.js").Embeddings} embeddings OpenAI's embeddings (a sentence-embedding model)
 * @property {(options?: import("./serve.js").ServeOptions) => Promise<import("./serve.js").Server>} serve OpenAI's HTTP API
 *   on this page's origin (a Service Worker, nomoat-sw.js): `openai` and other clients need only its baseURL
 */

/**
 * @typedef {object} Resources llm.resources(): counts that return to 0 once every session is destroyed
 * @property {number} workers the back ends (workers) started by this page
 * @property {number} sessions sessions alive in them (destroyed, or collected once unreachable, they go)
 * @property {number} running prompts, appends and requests in progress
 * @property {number} states KV caches holding memory (a wasm block or GPU buffers)
 * @property {number} samplers GPU samplers (each holds its GPU buffers)
 * @property {number} handles JS objects Python holds (a KV cache or a sampler each)
 * @property {number} wasmMemoryBytes bytes of nomoat's wasm decoders' memories (weights, KV caches, scratch)
 * @property {number} pyodideHeapBytes bytes of Pyodide's wasm memory (Python's heap; it never shrinks)
 */

/**
 * @typedef {object} TimelineSpan one stage of llm.timeline()
 * @property {string} stage e.g. "pyodide.boot", "data.pour", "prompt.first-token"
 * @property {number} start page-clock ms (performance.now())
 * @property {number | null} end null while it runs
 * @property {number} worker which worker (1, 2, ...: in the order they started)
 * @property {Record<string, unknown>} [detail] e.g. {cached: true} of data.pour
 */

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * The package URL a `model` option means: a bare name ("gemma-3-270m": letters, digits, `_.-`, no slash)
 * is the package of that name in the runtime's models/ folder (where `nomoat convert --model NAME` puts it
 * and `nomoat serve` serves it); anything else is a URL or a path relative to the page; none: `fallback`.
 * @param {unknown} model
 * @param {string} base the runtime's folder (nomoat.js, models/)
 * @param {string} page the page's base URL
 * @param {string} fallback the default model's URL
 */
export function modelURL(model, base, page, fallback) {
  if (model === undefined || model === null || model === "") return fallback;
  const text = String(model);
  return MODEL_NAME.test(text) ? new URL(`models/${text}/`, base).href : new URL(text, page).href;
}

/**
 * A model load's progress replies as `monitor`'s events, as the Prompt API has them: every report
 * as nomoatprogress, a storage warning as nomoatwarning (and on the console), the download as
 * downloadprogress (loaded a fraction of total 1, rising). writing-assistance-apis, "create an AI
 * model object": a download fires 0 first and 1 last; a model already available ("initialize and
 * return an AI model object", steps 2-3) still fires 0 and then 1; once the create() signal is
 * aborted (`aborted()`) or the call settled (done()), nothing more fires.
 * @param {EventTarget} monitor
 * @param {() => boolean} [aborted] whether the create() signal was aborted ("abortedDuringDownload")
 * @returns {{onProgress: (p: any) => void, done: (ok: boolean) => void}}
 */
export function downloadProgress(monitor, aborted = () => false) {
  let lastFraction = -1, settled = false;
  /** @param {number} loaded */
  const fire = (loaded) => {
    lastFraction = loaded;
    monitor.dispatchEvent(new ProgressEvent("downloadprogress", {loaded, total: 1, lengthComputable: true}));
  };
  return {
    onProgress(p) {
      if (settled || aborted()) return;
      if (p.warning) {
        console.warn("nomoat:", p.warning);
        monitor.dispatchEvent(new CustomEvent("nomoatwarning", {detail: p}));
        return;
      }
      monitor.dispatchEvent(new CustomEvent("nomoatprogress", {detail: p}));
      if (p.stage === "download" && p.total > 0) {
        const f = Math.floor((p.loaded / p.total) * 65536) / 65536;
        if (lastFraction < 0) fire(0); // "Perform fireProgressEvent given 0" before the loop
        if (f > lastFraction) fire(f);
      }
    },
    /** @param {boolean} ok whether the call succeeded (then the download, if any, did too) */
    done(ok) {
      if (settled) return;
      settled = true;
      if (!ok || aborted()) return;
      if (lastFraction < 0) fire(0);
      if (lastFraction < 1 && !aborted()) fire(1); // a listener of 0 may have aborted
    },
  };
}

/**
 * window.llm over the runtime in `base`.
 * @param {string} base the folder that holds worker.mjs, pyodide/, ort/, wheels/ (and the default model under models/)
 * @param {{model?: string, device?: string, snapshot?: boolean}} [defaults] data-model (relative to the page), data-device,
 *   and snapshot: false to boot Python plainly (data-snapshot="false"; default: from a saved memory snapshot)
 * @param {Backend} [backend]
 * @returns {LLM}
 */
export function createLLM(base, defaults = {}, backend = {connect: () => new WorkerTransport(base)}) {
  // a data-model attribute is relative to the page; the built-in default sits next to nomoat.js
  const DEFAULT_MODEL = defaults.model ? new URL(defaults.model, document.baseURI).href
    : new URL("models/SmolLM2-135M-Instruct/", base).href;
  const DEFAULT_DEVICE = defaults.device || "auto";
  // An extension context (chrome.runtime.id is set in an extension's pages and content scripts, such as
  // examples/extension's popup and panel; never on a web page): the Prompt API exposes the session's
  // topK and temperature only there (index.bs: "Only available in extension and experimental contexts").
  const EXTENSION = Boolean(/** @type {any} */ (globalThis).chrome?.runtime?.id);
  const CACHE = "nomoat-models"; // the Cache API storage the worker keeps model files in
  const assets = {...assetsAt(base), snapshot: defaults.snapshot !== false}; // Python from a memory snapshot (opt-out)

  // One transport (worker) per requested device; each boots Pyodide once and serves many sessions.
  /** @type {Map<string, Transport>} */
  const workers = new Map();
  /** @param {Transport | undefined} t a transport whose back end is gone for good */
  const gone = (t) => t !== undefined && t.failure !== undefined && t.failure !== null;
  /** @param {string} key */
  const workerFor = (key) => {
    let w = workers.get(key);
    if (!w || gone(w)) workers.set(key, w = backend.connect(key)); // a dead worker is replaced by a fresh one
    return w;
  };

  // samplingMode presets (the Prompt API's high-level knob) and the raw parameter limits (params()).
  const MODES = {"most-predictable": {temperature: 0, topK: 1}, predictable: {temperature: 0.3, topK: 10},
    balanced: {temperature: 0.7, topK: 40}, creative: {temperature: 1.0, topK: 80},
    "most-creative": {temperature: 1.3, topK: 128}};
  const PARAMS = Object.freeze({defaultTopK: 40, maxTopK: 128, defaultTemperature: 0.7, maxTemperature: 2});
  const LANGUAGES = ["en"]; // what SmolLM2-class models are trained for
  const loading = new Map(); // model URL -> pending create() (availability: "downloading")

  // The spec's "validate and canonicalize language model options" plus nomoat's own checks;
  // returns the reason the options are unavailable (or null).
  function checkOptions(options) {
    if (options === null || options === undefined) return null;
    if (typeof options !== "object") throw new TypeError("The options must be an object.");
    let unavailable = null;
    for (const key of ["expectedInputs", "expectedOutputs"]) {
      const list = options[key];
      if (list === undefined) continue;
      if (list === null || typeof list !== "object" || typeof list[Symbol.iterator] !== "function") {
        throw new TypeError(`${key} must be a list of {type, languages}.`);
      }
      for (const e of list) {
        if (e === null || typeof e !== "object" || e.type === undefined) throw new TypeError(`Each of ${key} needs a type.`);
        const type = String(e.type);
        if (!["text", "image", "audio", "tool-call", "tool-response"].includes(type)) {
          throw new TypeError(`"${type}" is not a LanguageModelMessageType.`);
        }
        if (e.languages !== undefined) {
          const tags = Intl.getCanonicalLocales(Array.from(e.languages, String)); // RangeError if invalid
          const unknown = tags.filter((t) => !LANGUAGES.includes(t.split("-")[0]));
          if (unknown.length) unavailable ??= `${key} languages ${unknown.join(", ")}: the model supports ${LANGUAGES.join(", ")}`;
        }
        if (type === "image" || type === "audio") unavailable ??= `${key} type "${type}": nomoat's models take and give text only`;
      }
    }
    if (options.samplingMode !== undefined && !(String(options.samplingMode) in MODES)) {
      throw new TypeError(`samplingMode must be one of ${Object.keys(MODES).map((m) => `"${m}"`).join(", ")}.`);
    }
    return unavailable;
  }

  // The sampling settings a session gets: a samplingMode preset, or the raw topK/temperature
  // (clamped as the spec says), never both. temperature is an IDL float (Math.fround), topK an
  // unsigned long (IntegerPart).
  function resolveSampling(options) {
    const raw = options.topK !== undefined || options.temperature !== undefined;
    if (options.samplingMode !== undefined && raw) {
      throw new TypeError("Give either samplingMode or topK/temperature, not both.");
    }
    if (!raw) {
      const samplingMode = String(options.samplingMode ?? "balanced");
      return {samplingMode, ...MODES[samplingMode]};
    }
    let temperature = options.temperature === undefined ? PARAMS.defaultTemperature : Number(options.temperature);
    let topK = options.topK === undefined ? PARAMS.defaultTopK : Number(options.topK);
    if (Number.isNaN(temperature) || temperature < 0) throw new RangeError(`temperature must be >= 0, got ${options.temperature}.`);
    if (Number.isNaN(topK) || topK < 1) throw new RangeError(`topK must be >= 1, got ${options.topK}.`);
    temperature = Math.fround(Math.min(temperature, PARAMS.maxTemperature));
    topK = Math.min(Math.floor(topK), PARAMS.maxTopK);
    return {samplingMode: temperature === 0 ? "most-predictable" : "balanced", temperature, topK};
  }

  // create() and availability() share "validate and canonicalize language model options" (what
  // throws: TypeError, RangeError) and the options' availability (why they are "unavailable", or
  // null): writing-assistance-apis' "create an AI model object" step 5 and "compute AI model
  // availability" step 5 perform the same validation, so availability() rejects where create() would.
  function validateOptions(options) {
    const unavailable = checkOptions(options);
    const device = options.device || DEFAULT_DEVICE;
    if (!["auto", "webgpu", "wasm"].includes(device)) {
      throw new TypeError(`device must be "auto", "webgpu" or "wasm", got ${JSON.stringify(device)}.`);
    }
    const sampling = resolveSampling(options);
    const tools = checkTools(options.tools); // TypeError for a tool that is not {name, description, inputSchema, execute}
    return {device, sampling, unavailable, tools};
  }

  // The Prompt API's user-activation rule (Chrome's; web-platform-tests ai/language-model/
  // language-model-create-user-activation): when the model is "downloadable" (neither loaded in this
  // page nor complete in nomoat's cache), LanguageModel.create() needs the page's sticky activation
  // (the user has clicked or typed in it once); without it, NotAllowedError and nothing is fetched.
  // Activation is not consumed, and an "available" model needs none. Only the spec's surface
  // (LanguageModel.create and the task APIs) asks: llm.create() is nomoat's own call, which the page
  // that loaded nomoat makes on purpose (the chat demo loads the model on page load). Extension pages
  // (no activation in an offscreen document) and browsers without navigator.userActivation are exempt.
  async function checkActivation(options) {
    const ua = /** @type {any} */ (globalThis.navigator)?.userActivation;
    if (EXTENSION || !ua || ua.hasBeenActive) return;
    if ((await availability(options)) !== "downloadable") return;
    throw new DOMException("The model must be downloaded first, and that needs a user gesture: call create() from a " +
      "click or key handler (once the page has been clicked, any later create() may download), or load it with " +
      "llm.create() on page load.", "NotAllowedError");
  }

  async function create(options = {}, {activation = false} = {}) {
    fullyActive();
    options = options ?? {};
    const {device, sampling, unavailable, tools} = validateOptions(options);
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal.");
    const initial = options.initialPrompts === undefined ? [] : canonicalPrompt(options.initialPrompts, false);
    if (signal && signal.aborted) throw abortReason(signal);
    if (initial.some((m) => m.prefix)) {
      throw new DOMException("initialPrompts cannot end with an assistant prefix; send it with prompt().", "NotSupportedError");
    }
    if (unavailable) throw new DOMException(`Unavailable: ${unavailable}; create the session without it.`, "NotSupportedError");
    if (activation) await checkActivation(options);
    const monitor = new EventTarget();
    if (typeof options.monitor === "function") options.monitor(monitor);
    const model = modelURL(options.model, base, document.baseURI || base, DEFAULT_MODEL);
    /** @type {Record<string, unknown>} */
    const pyOptions = {...samplingToWire({...options, ...sampling}), initial_prompts: initial.map((m) => ({...m, prefix: undefined}))};
    if (tools.wire.length) pyOptions.tools = tools.wire;
    if (options.systemPrompt) pyOptions.system = options.systemPrompt;
    const engine = options.wasmEngine; // "nomoat" (default) | "ort": which wasm engine (for comparisons)
    if (engine !== undefined && !["nomoat", "ort"].includes(engine)) {
      throw new TypeError(`wasmEngine must be "nomoat" or "ort", got ${JSON.stringify(engine)}.`);
    }
    if (options.kernels !== undefined && !["auto", "int16", "int8"].includes(options.kernels)) {
      throw new TypeError(`kernels must be "auto", "int16" or "int8", got ${JSON.stringify(options.kernels)}.`);
    }
    // nomoat's wasm decoder: int16 or int8 activations, each in a worker of its own ("auto" is the default)
    const kernels = options.kernels === "auto" ? undefined : options.kernels;
    checkSendable("create", pyOptions);
    const worker = workerFor([device, engine, kernels].filter(Boolean).join("|"));
    const progress = downloadProgress(monitor, () => Boolean(signal && signal.aborted));
    const own = {...(engine ? {wasmEngine: engine} : {}), ...(kernels ? {kernels} : {})};
    const {promise} = worker.call("create", {assets: {...assets, ...own}, model, device,
                                             options: pyOptions}, {
      onProgress: progress.onProgress,
      onEvent: (e) => monitor.dispatchEvent(new CustomEvent("nomoat" + e.type, {detail: e})),
    });
    loading.set(model, promise);
    promise.finally(() => loading.get(model) === promise && loading.delete(model)).catch(() => {});
    const aborted = signal ? new Promise((_, reject) => signal.addEventListener("abort", () => reject(abortReason(signal)), {once: true})) : null;
    if (aborted) aborted.catch(() => {});
    let info;
    try {
      info = await (aborted ? Promise.race([promise, aborted]) : promise);
    } catch (e) {
      progress.done(false);
      promise.then((i) => worker.call("destroy", {session: i.session}), () => {}); // created after the abort: let it go
      throw e;
    }
    progress.done(true);
    if (signal && signal.aborted) { // by a downloadprogress listener: "If options["signal"] ... is aborted, abort these steps"
      worker.call("destroy", {session: info.session});
      throw abortReason(signal);
    }
    const session = new LanguageModel(SECRET, worker, {session: info.session, device: info.device, deviceReason: info.deviceReason,
      contextWindow: info.context_window, contextUsage: info.context_usage},
    {...sampling, raw: EXTENSION, expectedInputs: options.expectedInputs ? Array.from(options.expectedInputs) : [],
      expectedOutputs: options.expectedOutputs ? Array.from(options.expectedOutputs) : [], tools: tools.execute});
    if (signal) signal.addEventListener("abort", () => session.destroy(abortReason(signal)), {once: true});
    return session;
  }

  // "available": the model is loaded in this page or fully in nomoat's cache (no download
  // needed); "downloading": a create() is fetching it; "downloadable": it must be fetched first;
  // "unavailable": no wasm/Worker, WebGPU asked for without an adapter, or options the model can't serve.
  async function availability(options = {}) {
    fullyActive();
    options = options ?? {};
    const {device, unavailable} = validateOptions(options);
    if (unavailable) return "unavailable";
    const hasWasm = typeof WebAssembly === "object";
    if (device === "webgpu") {
      const gpu = /** @type {any} */ (navigator).gpu;
      const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
      if (!adapter) return "unavailable";
    }
    if (!hasWasm || typeof Worker !== "function") return "unavailable";
    const model = modelURL(options.model, base, document.baseURI || base, DEFAULT_MODEL);
    if (loading.has(model)) return "downloading";
    if (backend.availability) return backend.availability({device, model});
    if (workers.has(device) && !gone(workers.get(device))) return "available";
    const prefix = model.endsWith("/") ? model : model + "/";
    const cached = (await cache.list()).find((m) => m.model === prefix);
    return cached && cached.complete ? "available" : "downloadable";
  }

  async function params() {
    return (await availability()) === "unavailable" ? null : {...PARAMS};
  }

  // The Prompt API's LanguageModel: the session class plus its static methods. Only create()
  // constructs it (new LanguageModel() is a TypeError, as for the native one).
  const SECRET = Symbol("nomoat");
  class LanguageModel extends LanguageModelSession {
    /**
     * @param {symbol} secret
     * @param {Transport} transport @param {SessionInfo} info @param {SessionSettings} [settings]
     */
    constructor(secret, transport, info, settings) {
      if (secret !== SECRET) throw new TypeError("Illegal constructor: use LanguageModel.create().");
      super(transport, info, settings);
    }
    /** @protected @param {Transport} transport @param {SessionInfo} info @param {SessionSettings} settings @returns {this} */
    _copy(transport, info, settings) { return /** @type {this} */ (new LanguageModel(SECRET, transport, info, settings)); }
    /** @param {CreateOptions} [options] */
    static create(options) { return create(options, {activation: true}); }
    /** @param {AvailabilityOptions} [options] */
    static availability(options) { return availability(options); }
    static params() { return params(); }
  }

  // Install nomoat as globalThis.LanguageModel where the browser has none or its own reports
  // "unavailable" (Chromium ships one that is unavailable without Google's model); a working native
  // one is left alone unless force. Resolves to {installed, reason}.
  // llm.polyfill() also installs the task APIs (task_apis.js) the browser lacks or has as unavailable;
  // per API, {installed, reason} is in the result's (non-enumerable) `tasks`.
  const taskAPIs = createTaskAPIs({create, availability, defaultModel: DEFAULT_MODEL});
  async function polyfill(options = {}) {
    const tasks = await installTaskAPIs(taskAPIs, options ?? {});
    return Object.defineProperty(await polyfillLanguageModel(options ?? {}), "tasks", {value: tasks});
  }
  async function polyfillLanguageModel({force = false} = {}) {
    const native = globalThis.LanguageModel;
    if (native === LanguageModel) return {installed: true, reason: "already installed"};
    if (native && !force) {
      let state = "unavailable";
      try {
        state = await native.availability();
      } catch (e) {
        state = "unavailable";
      }
      if (state !== "unavailable") return {installed: false, reason: `the browser's own LanguageModel is ${state}`};
    }
    Object.defineProperty(globalThis, "LanguageModel", {value: LanguageModel, writable: true, configurable: true, enumerable: false});
    return {installed: true, reason: native ? "replaced the browser's unavailable LanguageModel" + (force ? " (forced)" : "")
      : "the browser has no LanguageModel"};
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
      if (typeof model !== "string" || !model) throw new TypeError("llm.cache.delete() needs the model's URL (a string).");
      if (typeof caches === "undefined") return false;
      const prefix = new URL(model.endsWith("/") ? model : model + "/", document.baseURI || base).href;
      const c = await caches.open(CACHE);
      let any = false;
      for (const req of await c.keys()) if (req.url.startsWith(prefix)) any = (await c.delete(req)) || any;
      return any;
    },
    // Everything nomoat stored: the model files and Python's start-up snapshot (cache "nomoat-runtime",
    // pyodide_boot.mjs; the next start boots Pyodide afresh and makes it again). True if models were deleted.
    async clear() {
      if (typeof caches === "undefined") return false;
      const models = await caches.delete(CACHE);
      await caches.delete("nomoat-runtime");
      return models;
    },
  };

  /** @returns {Promise<Resources>} */
  async function resources() {
    /** @type {Resources} */
    const sum = {workers: 0, sessions: 0, running: 0, states: 0, samplers: 0, handles: 0, wasmMemoryBytes: 0, pyodideHeapBytes: 0};
    for (const w of workers.values()) {
      const r = await w.call("resources", {}).promise.catch(() => null); // a stopped worker holds nothing
      if (!r) continue;
      sum.workers += 1;
      for (const k of /** @type {(keyof Resources)[]} */ (["sessions", "running", "states", "samplers", "handles", "wasmMemoryBytes",
        "pyodideHeapBytes"])) sum[k] += r[k] || 0;
    }
    return sum;
  }

  /**
   * The start-up stages of this page's workers (web/src/timeline.js), on the page's clock
   * (performance.now() ms), sorted by start: [{stage, start, end, worker, detail?}].
   * @returns {Promise<TimelineSpan[]>}
   */
  async function timeline() {
    /** @type {TimelineSpan[]} */
    const all = [];
    let n = 0;
    for (const w of workers.values()) {
      const spans = await w.call("timeline", {}).promise.catch(() => null);
      n += 1;
      for (const s of spans || []) {
        all.push({...s, worker: n, start: s.start - performance.timeOrigin, end: s.end === null ? null : s.end - performance.timeOrigin});
      }
    }
    return all.sort((a, b) => a.start - b.start);
  }

  const core = {...taskAPIs, LanguageModel, create, availability, params, polyfill, cache, resources, timeline, defaultModel: DEFAULT_MODEL,
    version: "0.1.0"};
  const embeddings = createEmbeddings({transport: workerFor, assets, defaultDevice: DEFAULT_DEVICE, progress: downloadProgress,
    resolve: (m) => modelURL(m, base, document.baseURI || base, DEFAULT_MODEL)});
  const chat = createChat(core, DEFAULT_DEVICE);
  return {...core, chat, embeddings, serve: createServe({chat, embeddings, defaultModel: DEFAULT_MODEL}, base)};
}
