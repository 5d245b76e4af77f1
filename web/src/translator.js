// @ts-check
// Translator (webmachinelearning/translation-api) over nomoat's LanguageModel.
//
// AVAILABILITY. An arc (sourceLanguage, targetLanguage) is served by the model when both languages are in
// its language list (ai_model.js MODEL_LANGUAGES: the default SmolLM2-135M is English only, so every
// arc between two different languages is "unavailable" and create() rejects with NotSupportedError).
// An arc that "can be fulfilled by the identity translation" (one tag falls back to the other: "en" and
// "en-GB") is "available" with no model at all: translate() returns its input (inputQuota +Infinity,
// usage 0).
//
// THE PROMPT (a model arc). Each call sends one user message (no system prompt of nomoat's, as for the
// other task APIs: a small model follows instructions in the user message better):
//   "Translate the following text from <Source> to <Target>. Output only the translation.\n\nText:\n<input>"
// (language names in English, Intl.DisplayNames).
// Greedy, capped at the input's usage × 3 + 32 tokens (nomoat's maxTokens, a safety limit).
// Empty or whitespace-only input is returned as it is, as the spec asks.

import {AIModel, bestFit, createModelObject, dictionary, domString, languageTag, modelChoice, modelLanguages} from "./ai_model.js";
import {fullyActive} from "./session.js";

/**
 * @typedef {import("./ai_model.js").Host} Host
 * @typedef {import("./ai_model.js").Availability} Availability
 */

/** @param {string} tag */
const languageName = (tag) => {
  try {
    return new Intl.DisplayNames(["en"], {type: "language"}).of(tag) || tag;
  } catch {
    return tag;
  }
};

/**
 * "can be fulfilled by the identity translation".
 * @param {string} source @param {string} target
 */
export const identity = (source, target) => bestFit([source], target) !== undefined || bestFit([target], source) !== undefined;

/**
 * The Translator class over window.llm (its constructor is closed: use create()).
 * @param {Host} host
 */
export function createTranslator(host) {
  const SECRET = Symbol("nomoat.translator");
  /** @param {unknown} raw @param {string} what */
  const validate = (raw, what) => {
    if (raw === undefined || raw === null) throw new TypeError(`${what} needs {sourceLanguage, targetLanguage}.`);
    const o = dictionary(raw, what);
    for (const key of ["sourceLanguage", "targetLanguage"]) {
      if (o[key] === undefined) throw new TypeError(`${what}: ${key} is required (a language tag such as "en").`);
    }
    return {o, source: languageTag(o.sourceLanguage, "sourceLanguage"), target: languageTag(o.targetLanguage, "targetLanguage"),
      choice: modelChoice(o)};
  };
  /**
   * "compute translator options availability": the arc's availability; the tags become their best fits.
   * @param {ReturnType<typeof validate>} v
   * @returns {Promise<Availability>}
   */
  const arcAvailability = async (v) => {
    const supported = modelLanguages(v.choice.model ?? host.defaultModel, host.languages);
    const s = bestFit(supported, v.source), t = bestFit(supported, v.target);
    if (s !== undefined && t !== undefined && s !== t) {
      v.source = s;
      v.target = t;
      return host.availability({model: v.choice.model, device: v.choice.device});
    }
    return identity(v.source, v.target) ? "available" : "unavailable";
  };

  class Translator extends AIModel {
    /** @param {symbol} secret @param {any} session @param {ReturnType<typeof validate>} v */
    constructor(secret, session, v) {
      if (secret !== SECRET) throw new TypeError("Illegal constructor: use Translator.create().");
      super(session);
      this._v = v;
    }
    get sourceLanguage() { return this._v.source; }
    get targetLanguage() { return this._v.target; }
    /** @param {unknown} input */
    _prompt(input) {
      const text = domString(input, "The input");
      if (!this._session || !/[^\s\p{Cc}]/u.test(text)) return text; // identity, or nothing to translate
      return {input: `Translate the following text from ${languageName(this._v.source)} to ${languageName(this._v.target)}. ` +
        `Output only the translation.\n\nText:\n${text}`, maxTokens: (/** @type {number} */ n) => n * 3 + 32};
    }
    /**
     * `input` in the target language.
     * @param {string} input @param {{signal?: AbortSignal}} [options]
     * @returns {Promise<string>}
     */
    translate(input, options = {}) {
      if (arguments.length === 0) return Promise.reject(new TypeError("translate() needs an input."));
      return this._aggregate(options, "translate", () => this._prompt(input));
    }
    /**
     * `input` in the target language, piece by piece.
     * @param {string} input @param {{signal?: AbortSignal}} [options]
     * @returns {ReadableStream<string>}
     */
    translateStreaming(input, options = {}) {
      if (arguments.length === 0) throw new TypeError("translateStreaming() needs an input.");
      return this._stream(options, "translateStreaming", () => this._prompt(input));
    }
    /**
     * The tokens `input` would use of inputQuota (0 for an identity translator).
     * @param {string} input @param {{signal?: AbortSignal}} [options]
     * @returns {Promise<number>}
     */
    measureInputUsage(input, options = {}) {
      if (arguments.length === 0) return Promise.reject(new TypeError("measureInputUsage() needs an input."));
      return this._measure(options, "measureInputUsage", () => this._prompt(input));
    }
    /** @param {{sourceLanguage: string, targetLanguage: string, model?: string, device?: "auto" | "webgpu" | "wasm"}} options */
    static availability(options) {
      try {
        fullyActive();
        return arcAvailability(validate(options, "Translator.availability()"));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    /**
     * @param {{sourceLanguage: string, targetLanguage: string, signal?: AbortSignal, monitor?: (m: EventTarget) => void,
     *   model?: string, device?: "auto" | "webgpu" | "wasm"}} options
     * @returns {Promise<Translator>}
     */
    static async create(options) {
      fullyActive();
      const v = validate(options, "Translator.create()");
      return createModelObject(v.o, () => arcAvailability(v), async (forward, signal) => {
        if (identity(v.source, v.target)) { // no model: "initialize and return" still fires 0 and 1
          const monitor = new EventTarget();
          forward(monitor);
          for (const loaded of [0, 1]) monitor.dispatchEvent(new ProgressEvent("downloadprogress", {loaded, total: 1, lengthComputable: true}));
          return new Translator(SECRET, null, v);
        }
        const session = await host.create({...v.choice, signal, monitor: forward, samplingMode: "most-predictable"});
        return new Translator(SECRET, session, v);
      });
    }
  }
  return {Translator};
}
