// @ts-check
// The built-in AI task APIs over window.llm: Summarizer, Writer, Rewriter (writing_assistance.js),
// Proofreader (proofreader.js), Translator (translator.js), LanguageDetector (language_detector.js),
// and their installation by llm.polyfill() where the browser has none, or has one that is unavailable.

import {createLanguageDetector} from "./language_detector.js";
import {createProofreader} from "./proofreader.js";
import {createTranslator} from "./translator.js";
import {createWritingAssistance} from "./writing_assistance.js";

/**
 * @typedef {import("./ai_model.js").Host} Host
 * @typedef {ReturnType<typeof createTaskAPIs>} TaskAPIs
 * @typedef {{installed: boolean, reason: string}} Installed
 */

/**
 * The six classes over a host (window.llm's create, availability and defaultModel).
 * @param {Host} host
 */
export function createTaskAPIs(host) {
  return {...createWritingAssistance(host), ...createProofreader(host), ...createTranslator(host), ...createLanguageDetector()};
}

/** What a native class is asked, to tell whether it works (Translator's options are required). */
const PROBE = {Translator: {sourceLanguage: "en", targetLanguage: "es"}};

/**
 * Installs each of `apis` as a global where the browser has none, or its own reports "unavailable" for
 * the default options (or throws); a working native one is kept unless force.
 * @param {TaskAPIs} apis @param {{force?: boolean}} [options]
 * @returns {Promise<Record<string, Installed>>}
 */
export async function installTaskAPIs(apis, {force = false} = {}) {
  /** @type {Record<string, Installed>} */
  const out = {};
  for (const [name, ours] of Object.entries(apis)) {
    const native = /** @type {any} */ (globalThis)[name];
    if (native === ours) {
      out[name] = {installed: true, reason: "already installed"};
      continue;
    }
    if (native && !force) {
      let state = "unavailable";
      try {
        state = await native.availability(/** @type {Record<string, unknown>} */ (PROBE)[name] ?? {});
      } catch {
        state = "unavailable";
      }
      if (state !== "unavailable") {
        out[name] = {installed: false, reason: `the browser's own ${name} is ${state}`};
        continue;
      }
    }
    Object.defineProperty(globalThis, name, {value: ours, writable: true, configurable: true, enumerable: false});
    out[name] = {installed: true, reason: native ? `replaced the browser's unavailable ${name}${force ? " (forced)" : ""}`
      : `the browser has no ${name}`};
  }
  return out;
}
