// @ts-check
// The task APIs' shared infrastructure (writing-assistance-apis, "Shared infrastructure"): creating
// an AI model object (monitor, downloadprogress, abort), computing availability, language tags,
// the destroyable model, and getting an aggregated / streaming result or measuring input usage.
// Summarizer, Writer, Rewriter (writing_assistance.js), Proofreader (proofreader.js), Translator
// (translator.js) and LanguageDetector (language_detector.js) are built on it.
//
// Each task object holds one nomoat LanguageModel session (llm.create()). Each call clones that session,
// prompts the clone with one user message (the task's instructions, built from its options, then the
// call's input and context: see each module for its prompts) and destroys it, so calls are independent.
// inputQuota is the context window left in the task's session; measureInputUsage() is what the call's
// user message adds (the session's measureContextUsage); a call whose usage exceeds the quota rejects
// with QuotaExceededError {requested, quota} before the model runs.
//
// Spec texts: webmachinelearning/writing-assistance-apis, proofreader-api and translation-api index.bs.

import {abortReason} from "./protocol.js";
import {fullyActive} from "./session.js";

/**
 * @typedef {"available" | "downloadable" | "downloading" | "unavailable"} Availability
 * @typedef {import("./session.js").LanguageModelSession} Session
 * @typedef {import("./llm.js").LLM} LLM
 *
 * @typedef {object} Host what a task API class is built on: window.llm's create() and availability()
 * @property {(options?: any) => Promise<Session>} create llm.create
 * @property {(options?: any) => Promise<Availability>} availability llm.availability
 * @property {string} defaultModel llm.defaultModel (its last path segment names it in MODEL_LANGUAGES)
 * @property {Record<string, string[]>} [languages] the language table (default MODEL_LANGUAGES)
 *
 * @typedef {{model?: string, device?: "auto" | "webgpu" | "wasm"}} ModelChoice nomoat's own options, passed to llm.create()
 */

/**
 * The human languages each model is used for, keyed by the model package's name (the last
 * segment of its URL). A language missing here makes the task "unavailable" rather than a bad
 * answer. Conservative on purpose: a language is listed only once answers in it have been checked.
 * SmolLM2 is trained on English text; Gemma-3-270M's family is multilingual, but at 270M its other
 * languages have not been measured here, so it too is English only until they are. Unknown models: ["en"].
 * @type {Readonly<Record<string, string[]>>}
 */
export const MODEL_LANGUAGES = Object.freeze({
  "SmolLM2-135M-Instruct": ["en"],
  "SmolLM2-360M-Instruct": ["en"],
  "SmolLM2-1.7B-Instruct": ["en"],
  "gemma-3-270m": ["en"],
});

/**
 * The languages of a model (a name or a package URL).
 * @param {string} model
 * @param {Record<string, string[]>} [table]
 */
export function modelLanguages(model, table = MODEL_LANGUAGES) {
  const name = String(model).replace(/\/+$/, "").split("/").pop() || "";
  return table[name] ?? ["en"];
}

/** The monitor a create() hands to options.monitor (the spec's CreateMonitor: downloadprogress, ondownloadprogress). */
export class CreateMonitor extends EventTarget {
  constructor() {
    super();
    /** @type {EventListener | null} */ this._handler = null;
  }
  get ondownloadprogress() { return this._handler; }
  set ondownloadprogress(f) {
    if (this._handler) this.removeEventListener("downloadprogress", this._handler);
    this._handler = typeof f === "function" ? /** @type {EventListener} */ (f) : null;
    if (this._handler) this.addEventListener("downloadprogress", this._handler);
  }
}

/**
 * WebIDL DOMString conversion.
 * @param {unknown} v @param {string} what
 */
export function domString(v, what) {
  if (typeof v === "symbol") throw new TypeError(`${what} must be a string, got a Symbol.`);
  return String(v);
}

/**
 * WebIDL enum conversion: undefined is the default, a value outside the enum a TypeError.
 * @template {string} T
 * @param {unknown} v @param {readonly T[]} values @param {T} fallback @param {string} what
 * @returns {T}
 */
export function enumValue(v, values, fallback, what) {
  if (v === undefined) return fallback;
  const s = domString(v, what);
  if (!values.includes(/** @type {T} */ (s))) {
    throw new TypeError(`${what} must be one of ${values.map((x) => `"${x}"`).join(", ")}; got "${s}".`);
  }
  return /** @type {T} */ (s);
}

/**
 * A WebIDL dictionary argument: undefined or null is {}, anything else not an object a TypeError.
 * @param {unknown} options @param {string} what
 * @returns {Record<string, any>}
 */
export function dictionary(options, what) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" && typeof options !== "function") throw new TypeError(`${what}'s options must be an object.`);
  return /** @type {Record<string, any>} */ (options);
}

/**
 * "validate and canonicalize a single language tag": RangeError where it is not structurally valid.
 * @param {unknown} tag @param {string} what
 */
export function languageTag(tag, what) {
  const s = domString(tag, what);
  try {
    return Intl.getCanonicalLocales(s)[0];
  } catch {
    throw new RangeError(`${what}: "${s}" is not a valid BCP 47 language tag (e.g. "en", "en-US").`);
  }
}

/**
 * "validate and canonicalize language tags" for a sequence<DOMString> option: canonical and deduplicated.
 * @param {unknown} list @param {string} what
 * @returns {string[] | undefined}
 */
export function languageTags(list, what) {
  if (list === undefined) return undefined;
  if (list === null || typeof list !== "object" || typeof (/** @type {any} */ (list))[Symbol.iterator] !== "function") {
    throw new TypeError(`${what} must be a list of language tags, e.g. ["en"].`);
  }
  return [...new Set(Array.from(/** @type {Iterable<unknown>} */ (list), (t) => languageTag(t, what)))];
}

/**
 * LookupMatchingLocaleByBestFit, as ECMA-402's lookup: the supported tag that `tag` falls back to
 * (subtags dropped from the end: "en-GB" → "en"), or undefined.
 * @param {string[]} supported canonical tags @param {string} tag a canonical tag
 */
export function bestFit(supported, tag) {
  let candidate = tag;
  for (;;) {
    if (supported.includes(candidate)) return candidate;
    let cut = candidate.lastIndexOf("-");
    if (cut < 0) return undefined;
    if (cut >= 2 && candidate[cut - 2] === "-") cut -= 2; // a singleton ("x-…") goes with what follows it
    candidate = candidate.slice(0, cut);
  }
}

/**
 * "compute language availability" over one partition (every supported language is available or
 * downloadable together with the model): each requested tag is replaced by its best fit; any with none
 * makes it "unavailable".
 * @param {string[]} requested canonical tags (replaced in place)
 * @param {string[]} supported
 * @returns {boolean} whether every tag is supported
 */
export function languagesSupported(requested, supported) {
  for (let i = 0; i < requested.length; i++) {
    const match = bestFit(supported, requested[i]);
    if (match === undefined) return false;
    requested[i] = match;
  }
  const unique = [...new Set(requested)]; // an ordered set: best fits that coincide are one entry
  requested.splice(0, requested.length, ...unique);
  return true;
}

/**
 * The spec's "minimum availability".
 * @param {Availability[]} list
 * @returns {Availability}
 */
export function minimumAvailability(list) {
  for (const a of /** @type {Availability[]} */ (["unavailable", "downloading", "downloadable"])) if (list.includes(a)) return a;
  return "available";
}

/**
 * A QuotaExceededError {requested, quota}: the browser's own class where it has one, else a DOMException so named.
 * @param {string} message @param {number} requested @param {number} quota
 */
export function quotaExceeded(message, requested, quota) {
  const Quota = /** @type {any} */ (globalThis).QuotaExceededError;
  /** @type {any} */
  let e;
  if (typeof Quota === "function") {
    try {
      e = new Quota(message, {requested, quota});
    } catch {
      e = null;
    }
  }
  e ??= new DOMException(message, "QuotaExceededError");
  for (const [k, v] of Object.entries({requested, quota})) {
    if (e[k] !== v) Object.defineProperty(e, k, {value: v, enumerable: true});
  }
  return e;
}

/**
 * "create an AI model object", given the task's validated options. Steps 4-6 (fully active,
 * validation, an already-aborted signal) run before any await; the monitor is invoked next (a throw
 * rejects create()); then availability (unavailable → NotSupportedError; downloadable without the page's
 * sticky user activation → NotAllowedError, as requireTransientActivation is false); then `init` makes the task's
 * session through llm.create(), whose downloadprogress (0 first, 1 last, also when already loaded:
 * "initialize and return an AI model object" steps 2-3) is re-fired at this monitor. Aborting the
 * signal rejects create() with its reason, stops further progress events, and later destroys the object.
 * @template {AIModel} T
 * @param {Record<string, any>} options the caller's options (signal, monitor)
 * @param {() => Promise<Availability>} getAvailability
 * @param {(forward: (m: EventTarget) => void, signal: AbortSignal | undefined) => Promise<T>} init
 * @returns {Promise<T>}
 */
export async function createModelObject(options, getAvailability, init) {
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal.");
  if (signal?.aborted) throw abortReason(signal); // step 6
  const monitor = new CreateMonitor();
  if (options.monitor !== undefined) {
    if (typeof options.monitor !== "function") throw new TypeError("monitor must be a function (it is given the CreateMonitor).");
    options.monitor(monitor); // "Invoke options["monitor"] ... If this throws an exception e, ... rejected with e"
  }
  const availability = await getAvailability();
  if (signal?.aborted) throw abortReason(signal);
  if (availability === "unavailable") {
    throw new DOMException("These options are unavailable with this model (a language it does not support?); " +
      "check availability() first, or create it with other options.", "NotSupportedError");
  }
  // "downloadable" with requireTransientActivation false (every task API's create()): sticky activation needed
  const ua = /** @type {any} */ (globalThis.navigator)?.userActivation;
  const extension = Boolean(/** @type {any} */ (globalThis).chrome?.runtime?.id);
  if (availability === "downloadable" && ua && !ua.hasBeenActive && !extension) {
    throw new DOMException("The model must be downloaded first, and that needs a user gesture: call create() from a click " +
      "or key handler (once the page has been clicked, any later create() may download), or load the model first with llm.create().",
    "NotAllowedError");
  }
  /** @param {EventTarget} m */
  const forward = (m) => {
    for (const type of ["downloadprogress", "nomoatprogress", "nomoatwarning", "nomoatdevice"]) {
      m.addEventListener(type, (e) => {
        if (signal?.aborted) return; // "If abortedDuringDownload is true, then abort these steps."
        const p = /** @type {ProgressEvent & CustomEvent} */ (e);
        monitor.dispatchEvent(type === "downloadprogress"
          ? new ProgressEvent(type, {loaded: p.loaded, total: p.total, lengthComputable: p.lengthComputable})
          : new CustomEvent(type, {detail: p.detail}));
      });
    }
  };
  const model = await init(forward, signal);
  if (signal) {
    if (signal.aborted) {
      model.destroy(abortReason(signal));
      throw abortReason(signal);
    }
    signal.addEventListener("abort", () => model.destroy(abortReason(signal)), {once: true});
  }
  return model;
}

/**
 * "compute AI model availability": the model's availability (llm.availability) and the languages'.
 * @param {Host} host @param {ModelChoice} choice @param {string[][]} languageLists canonical tags, each replaced by its best fit
 * @returns {Promise<Availability>}
 */
export async function modelAvailability(host, choice, languageLists) {
  const supported = modelLanguages(choice.model ?? host.defaultModel, host.languages);
  if (!languageLists.every((list) => languagesSupported(list, supported))) return "unavailable";
  return host.availability({model: choice.model, device: choice.device});
}

/**
 * nomoat's own create() options (which model, which device) from a task's options.
 * @param {Record<string, any>} o
 * @returns {ModelChoice}
 */
export function modelChoice(o) {
  /** @type {ModelChoice} */
  const choice = {};
  if (o.model !== undefined) choice.model = domString(o.model, "model");
  if (o.device !== undefined) choice.device = enumValue(o.device, /** @type {const} */ (["auto", "webgpu", "wasm"]), "auto", "device");
  return choice;
}

/**
 * How one task call prompts the model: the user message, and the prompt options (a safety limit on
 * the answer's length, maxTokens, sized from the task's length option, and any responseConstraint).
 * @typedef {{input: string, options?: Record<string, unknown>, maxTokens?: (requested: number) => number}} TaskPrompt
 *   maxTokens: the answer's safety limit given the input's usage (nomoat's prompt option; documented per task)
 */

/** What every task object is: a DestroyableModel over one nomoat session. */
export class AIModel {
  /**
   * @param {Session | null} session the task's session, cloned for each call (null:
   *   the task needs no model, e.g. an identity Translator; then inputQuota is +Infinity and usage 0)
   */
  constructor(session) {
    this._session = session;
    this._destroyer = new AbortController(); // the spec's destruction abort controller
  }
  /** The tokens a call's user message may use: the context window left in the task's session. */
  get inputQuota() { return this._session ? this._session.contextWindow - this._session.contextUsage : Infinity; }
  /**
   * "destroy": pending and later calls reject with `reason` (an AbortError by default); the session goes.
   * @param {unknown} [reason]
   */
  destroy(reason) {
    if (this._destroyer.signal.aborted) return;
    this._destroyer.abort(reason !== undefined ? reason : new DOMException("This object was destroyed.", "AbortError"));
    this._session?.destroy();
  }
  /**
   * The composite of destroy() and the call's own signal ("get an aggregated AI model result" steps 4-6).
   * (internal) @param {Record<string, any>} options
   */
  _signal(options) {
    const own = options.signal;
    if (own !== undefined && !(own instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal.");
    return own ? AbortSignal.any([this._destroyer.signal, own]) : this._destroyer.signal;
  }
  /**
   * Measure, check the quota, and run `prompt` on a fresh clone of the task's session, sending the
   * answer's pieces to onChunk ("summarize" / "write" / "rewrite" / "translate" steps 2-6 and the loop).
   * (internal)
   * @param {TaskPrompt} prompt @param {AbortSignal} signal @param {(piece: string) => void} onChunk
   */
  async _run(prompt, signal, onChunk) {
    if (!this._session) throw new DOMException("This object has no model to run.", "UnknownError");
    const requested = await this._session.measureContextUsage(prompt.input, {signal});
    const quota = this.inputQuota;
    if (requested > quota) {
      throw quotaExceeded(`The input needs ${requested} tokens; this object's inputQuota is ${quota}. Shorten the input ` +
        "(measureInputUsage() tells its size).", requested, quota);
    }
    const run = await this._session.clone({signal});
    try {
      const limit = prompt.maxTokens ? {maxTokens: Math.max(1, Math.round(prompt.maxTokens(requested)))} : {};
      const stream = run.promptStreaming(prompt.input, {...prompt.options, ...limit, signal});
      const reader = stream.getReader();
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        onChunk(value);
      }
    } finally {
      run.destroy();
    }
  }
  /**
   * "get an aggregated AI model result": the whole answer, as a string.
   * (internal)
   * @param {unknown} options the call's options @param {string} what the method's name
   * @param {() => TaskPrompt | string} make the prompt, or the answer itself where no model is needed (empty input)
   * @returns {Promise<string>}
   */
  _aggregate(options, what, make) {
    try {
      const signal = this._begin(options, what);
      const prompt = make();
      if (typeof prompt === "string") return Promise.resolve(prompt);
      let text = "";
      return Promise.race([rejectOnAbort(signal), this._run(prompt, signal, (piece) => { text += piece; }).then(() => text)]);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  /**
   * "get a streaming AI model result": a ReadableStream of the answer's pieces. Aborting errors it with
   * the reason; stream.cancel() stops the model without an error.
   * (internal)
   * @param {unknown} options @param {string} what @param {() => TaskPrompt | string} make
   * @returns {ReadableStream<string>}
   */
  _stream(options, what, make) {
    const outer = this._begin(options, what);
    const prompt = make();
    const cancel = new AbortController();
    const signal = AbortSignal.any([outer, cancel.signal]);
    /** @type {ReadableStreamDefaultController<string>} */
    let controller;
    let finished = false;
    const stream = new ReadableStream({
      start: (c) => { controller = c; },
      cancel: () => {
        finished = true;
        cancel.abort(new DOMException("The stream was cancelled.", "AbortError"));
      },
    });
    /** @param {(c: ReadableStreamDefaultController<string>) => void} f */
    const end = (f) => {
      if (finished) return;
      finished = true;
      f(controller);
    };
    outer.addEventListener("abort", () => end((c) => c.error(abortReason(outer))), {once: true});
    if (typeof prompt === "string") {
      if (prompt) controller.enqueue(prompt);
      end((c) => c.close());
    } else {
      this._run(prompt, signal, (piece) => { if (!finished) controller.enqueue(piece); })
        .then(() => end((c) => c.close()), (e) => end((c) => c.error(e)));
    }
    return /** @type {ReadableStream<string>} */ (stream);
  }
  /**
   * "measure AI model input usage": the tokens the call's user message adds (0 where no model runs).
   * (internal)
   * @param {unknown} options @param {string} what @param {() => TaskPrompt | string} make
   * @returns {Promise<number>}
   */
  _measure(options, what, make) {
    try {
      const signal = this._begin(options, what);
      const prompt = make();
      if (typeof prompt === "string" || !this._session) return Promise.resolve(0);
      return Promise.race([rejectOnAbort(signal), this._session.measureContextUsage(prompt.input, {signal})]);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  /**
   * The steps each call above starts with: the document is fully active, the options are a
   * dictionary, and the call's signal (joined with the object's) is not aborted yet; throws otherwise.
   * (internal)
   * @param {unknown} options @param {string} what @returns {AbortSignal}
   */
  _begin(options, what) {
    fullyActive();
    const signal = this._signal(dictionary(options, what));
    if (signal.aborted) throw abortReason(signal);
    return signal;
  }
}

/** A promise that rejects with the signal's reason when it aborts (never settles otherwise). @param {AbortSignal} signal */
function rejectOnAbort(signal) {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(abortReason(signal)), {once: true}));
}

/**
 * Freezes a language list for an attribute (null where empty, as "create a summarizer object" has it).
 * @param {string[] | undefined} list
 * @returns {readonly string[] | null}
 */
export const frozenLanguages = (list) => (list && list.length ? Object.freeze([...list]) : null);
