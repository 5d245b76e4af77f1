// @ts-check
// LanguageDetector (webmachinelearning/translation-api) — NOT over the language model: a 135M model
// guesses languages poorly, so detection is a character-trigram naive Bayes classifier over the
// profiles in language_profiles.js (en, fr, de, es, it, pt, nl), made by
// `node tests/fixtures/task_apis/make_language_profiles.mjs` from sentences written for nomoat
// (tests/fixtures/task_apis/language_corpus.mjs). Its accuracy on the held-out sentences is measured by
// web/test/task_apis_detector.test.js (see the report in the project notes for the numbers).
//
// HOW. The input is lower-cased; every run of letters becomes " word " and is cut into trigrams.
// Each language's score is Σ log P(trigram | language) (add-½ smoothing over the profile's counts);
// the languages' confidences are softmax(score / 2) (tempered, so they are not all 0 or 1) times the
// share of the input's letters that are Latin script; the rest, and all of an input with no letters,
// is "unknown" (und). The spec's post-processing follows ("detect languages" steps 6-12): sorted,
// cut where a confidence is 0 or below unknown's or once 0.99 is covered, then {und, unknown}.
// Detection is the same whatever the model: it needs no download ("available"), inputQuota is
// +Infinity and measureInputUsage() is 0.

import {AIModel, bestFit, createModelObject, dictionary, domString, frozenLanguages, languageTags} from "./ai_model.js";
import {PROFILES} from "./language_profiles.js";
import {abortReason} from "./protocol.js";
import {fullyActive} from "./session.js";

/**
 * @typedef {import("./ai_model.js").Availability} Availability
 * @typedef {{detectedLanguage: string, confidence: number}} LanguageDetectionResult
 */

/** The languages the profiles know. */
export const DETECTABLE = Object.freeze(Object.keys(PROFILES));

/**
 * The input's trigram counts (lower-cased letters; each word padded with a space on each side).
 * @param {string} text
 * @returns {Map<string, number>}
 */
export function trigramCounts(text) {
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const word of text.toLowerCase().match(/\p{L}+/gu) ?? []) {
    const padded = ` ${word} `;
    for (let i = 0; i + 3 <= padded.length; i++) {
      const g = padded.slice(i, i + 3);
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
  }
  return counts;
}

/** Per language: log P(trigram) and the log P of an unseen one (add-½ smoothing). */
const MODELS = (() => {
  const vocabulary = new Set(Object.values(PROFILES).flatMap((p) => Object.keys(p.grams))).size;
  return Object.fromEntries(Object.entries(PROFILES).map(([lang, p]) => {
    const total = p.total + 0.5 * vocabulary;
    const logs = new Map(Object.entries(p.grams).map(([g, c]) => [g, Math.log((c + 0.5) / total)]));
    return [lang, {logs, unseen: Math.log(0.5 / total)}];
  }));
})();

/**
 * The spec's rawResult and unknown for `input` (implementation-defined step 5).
 * @param {string} input
 * @returns {{raw: Map<string, number>, unknown: number}}
 */
export function detectRaw(input) {
  const letters = input.match(/\p{L}/gu) ?? [];
  const latin = letters.filter((c) => /\p{Script=Latin}/u.test(c)).length;
  const raw = new Map(DETECTABLE.map((l) => [l, 0]));
  if (latin === 0) return {raw, unknown: 1};
  const counts = trigramCounts(input.replace(/[^\p{Script=Latin}\s]/gu, " "));
  const scores = DETECTABLE.map((lang) => {
    const m = MODELS[lang];
    let s = 0;
    for (const [g, c] of counts) s += c * (m.logs.get(g) ?? m.unseen);
    return s / 2;
  });
  const top = Math.max(...scores);
  const exp = scores.map((s) => Math.exp(s - top));
  const sum = exp.reduce((a, b) => a + b, 0);
  const share = latin / letters.length;
  DETECTABLE.forEach((lang, i) => raw.set(lang, (exp[i] / sum) * share));
  return {raw, unknown: 1 - share};
}

/**
 * "detect languages" steps 6-12: the results the page sees.
 * @param {string} input
 * @returns {LanguageDetectionResult[]}
 */
export function detectLanguages(input) {
  const {raw, unknown} = detectRaw(input);
  const sorted = [...raw].sort((a, b) => b[1] - a[1]);
  /** @type {LanguageDetectionResult[]} */
  const results = [];
  let cumulative = 0;
  for (const [detectedLanguage, confidence] of sorted) {
    if (confidence === 0 || confidence < unknown) break;
    results.push({detectedLanguage, confidence});
    cumulative += confidence;
    if (cumulative >= 0.99) break;
  }
  results.push({detectedLanguage: "und", confidence: unknown});
  return results;
}

/** The LanguageDetector class (its constructor is closed: use create()). */
export function createLanguageDetector() {
  const SECRET = Symbol("nomoat.detector");
  /** @param {unknown} raw */
  const validate = (raw) => {
    const o = dictionary(raw, "LanguageDetector.create()");
    return {o, expectedInputLanguages: languageTags(o.expectedInputLanguages, "expectedInputLanguages") ?? []};
  };
  /** @param {ReturnType<typeof validate>} v @returns {Availability} */
  const availability = (v) => {
    const list = v.expectedInputLanguages;
    for (let i = 0; i < list.length; i++) {
      const match = bestFit([...DETECTABLE], list[i]);
      if (match === undefined) return "unavailable";
      list[i] = match;
    }
    return "available";
  };

  class LanguageDetector extends AIModel {
    /** @param {symbol} secret @param {ReturnType<typeof validate>} v */
    constructor(secret, v) {
      if (secret !== SECRET) throw new TypeError("Illegal constructor: use LanguageDetector.create().");
      super(null);
      this._in = frozenLanguages(v.expectedInputLanguages);
    }
    get expectedInputLanguages() { return this._in; }
    /**
     * The languages `input` is written in, most likely first, ending with {detectedLanguage: "und"}.
     * @param {string} input @param {{signal?: AbortSignal}} [options]
     * @returns {Promise<LanguageDetectionResult[]>}
     */
    detect(input, options = {}) {
      if (arguments.length === 0) return Promise.reject(new TypeError("detect() needs an input."));
      try {
        fullyActive();
        const text = domString(input, "The input");
        const signal = this._signal(dictionary(options, "detect")); // destroy() or the call's own signal
        if (signal.aborted) return Promise.reject(abortReason(signal));
        return Promise.resolve(detectLanguages(text));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    /**
     * 0: detection has no quota (inputQuota is +Infinity).
     * @param {string} input @param {{signal?: AbortSignal}} [options]
     * @returns {Promise<number>}
     */
    measureInputUsage(input, options = {}) {
      if (arguments.length === 0) return Promise.reject(new TypeError("measureInputUsage() needs an input."));
      return this._measure(options, "measureInputUsage", () => domString(input, "The input"));
    }
    /** @param {{expectedInputLanguages?: string[]}} [options] @returns {Promise<Availability>} */
    static availability(options = {}) {
      try {
        fullyActive();
        return Promise.resolve(availability(validate(options)));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    /**
     * @param {{expectedInputLanguages?: string[], signal?: AbortSignal, monitor?: (m: EventTarget) => void}} [options]
     * @returns {Promise<LanguageDetector>}
     */
    static async create(options = {}) {
      fullyActive();
      const v = validate(options);
      return createModelObject(v.o, async () => availability(v), async (forward) => {
        const monitor = new EventTarget(); // nothing to download: "initialize and return" fires 0 and 1
        forward(monitor);
        for (const loaded of [0, 1]) monitor.dispatchEvent(new ProgressEvent("downloadprogress", {loaded, total: 1, lengthComputable: true}));
        return new LanguageDetector(SECRET, v);
      });
    }
  }
  return {LanguageDetector};
}
