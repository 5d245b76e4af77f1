// @ts-check
// Proofreader (webmachinelearning/proofreader-api) over nomoat's LanguageModel.
//
// THE PROMPT. Each proofread() sends one user message (no system prompt of nomoat's):
//   "Correct the spelling, grammar and punctuation mistakes in this text. Output only the corrected text.\n\n<input>"
// (measured on SmolLM2-135M: in the user message it corrects; the same words as a system prompt made it explain
// the sentence instead). The answer is greedy, capped at the input's usage × 1.5 + 16 tokens (nomoat's
// maxTokens: a safety limit for a looping model).
//
// THE CORRECTIONS are not asked of the model (a small model gets character offsets wrong): they are the
// word-level difference between the input and the corrected text (a longest-common-subsequence diff
// over words and the spaces between them), so startIndex/endIndex always index the input exactly and
// applying every correction to the input gives correctedInput. With includeCorrectionTypes each is
// classified by what changed: only letter case → "capitalization"; only punctuation → "punctuation"; one
// word for one word → "spelling"; otherwise "grammar". With includeCorrectionExplanations each gets an
// English sentence naming the change (from a template, not the model).

import {AIModel, createModelObject, dictionary, domString, frozenLanguages, languageTag, languageTags,
  modelAvailability, modelChoice} from "./ai_model.js";
import {fullyActive} from "./session.js";

/**
 * @typedef {import("./ai_model.js").Host} Host
 * @typedef {import("./ai_model.js").Availability} Availability
 * @typedef {"spelling" | "punctuation" | "capitalization" | "grammar"} CorrectionType
 * @typedef {{startIndex: number, endIndex: number, correction: string, types?: CorrectionType[], explanation?: string}} ProofreadCorrection
 * @typedef {{correctedInput: string, corrections: ProofreadCorrection[]}} ProofreadResult
 */

export const PROOFREAD_INSTRUCTIONS = "Correct the spelling, grammar and punctuation mistakes in this text. " +
  "Output only the corrected text.";

/** @param {string} text @returns {string[]} words, and the runs of space between them */
const pieces = (text) => text.match(/\s+|[^\s]+/g) ?? [];

/**
 * The corrections that turn `input` into `corrected`: a word-level LCS diff (spaces are pieces too).
 * Inputs over 4,000 pieces are one correction of the whole text.
 * @param {string} input @param {string} corrected
 * @returns {{startIndex: number, endIndex: number, correction: string}[]}
 */
export function diffCorrections(input, corrected) {
  if (input === corrected) return [];
  const a = pieces(input), b = pieces(corrected);
  if (a.length * b.length > 16e6) return [{startIndex: 0, endIndex: input.length, correction: corrected}];
  // lcs[i][j]: the longest common subsequence of a[i:] and b[j:]
  const lcs = Array.from({length: a.length + 1}, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const starts = [0];
  for (const p of a) starts.push(starts[starts.length - 1] + p.length);
  /** @type {{startIndex: number, endIndex: number, correction: string}[]} */
  const out = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
      continue;
    }
    const i0 = i, j0 = j;
    while ((i < a.length || j < b.length) && !(i < a.length && j < b.length && a[i] === b[j])) {
      if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) j++;
      else i++;
    }
    out.push({startIndex: starts[i0], endIndex: starts[i], correction: b.slice(j0, j).join("")});
  }
  return out;
}

const PUNCT = /[\p{P}\p{S}]/gu;

/**
 * The correction's type, from what changed.
 * @param {string} before @param {string} after
 * @returns {CorrectionType}
 */
export function correctionType(before, after) {
  if (before.toLowerCase() === after.toLowerCase()) return "capitalization";
  if (before.replace(PUNCT, "").trim() === after.replace(PUNCT, "").trim()) return "punctuation";
  const words = (/** @type {string} */ s) => s.trim().split(/\s+/).filter(Boolean);
  if (words(before).length === 1 && words(after).length === 1) return "spelling";
  return "grammar";
}

/**
 * The ProofreadResult for `input` given the model's corrected text.
 * @param {string} input @param {string} answer @param {{types: boolean, explanations: boolean}} include
 * @returns {ProofreadResult}
 */
export function proofreadResult(input, answer, include) {
  const lead = /^\s*/.exec(input)?.[0] ?? "", trail = /\s*$/.exec(input)?.[0] ?? "";
  const body = answer.trim();
  const correctedInput = body ? lead + body + trail : input; // an empty answer corrects nothing
  const corrections = diffCorrections(input, correctedInput).map((c) => {
    const before = input.slice(c.startIndex, c.endIndex);
    const type = correctionType(before, c.correction);
    /** @type {ProofreadCorrection} */
    const out = {...c};
    if (include.types) out.types = [type];
    if (include.explanations) {
      out.explanation = before === "" ? `Insert "${c.correction.trim()}" (${type}).`
        : c.correction.trim() === "" ? `Remove "${before.trim()}" (${type}).`
          : `Replace "${before.trim()}" with "${c.correction.trim()}" (${type}).`;
    }
    return out;
  });
  return {correctedInput, corrections};
}

/**
 * The Proofreader class over window.llm (its constructor is closed: use create()).
 * @param {Host} host
 */
export function createProofreader(host) {
  const SECRET = Symbol("nomoat.proofreader");
  /** @param {unknown} raw */
  const validate = (raw) => {
    const o = dictionary(raw, "Proofreader.create()");
    return {
      o, includeCorrectionTypes: Boolean(o.includeCorrectionTypes), includeCorrectionExplanations: Boolean(o.includeCorrectionExplanations),
      expectedInputLanguages: languageTags(o.expectedInputLanguages, "expectedInputLanguages") ?? [],
      correctionExplanationLanguage: o.correctionExplanationLanguage === undefined ? undefined
        : languageTag(o.correctionExplanationLanguage, "correctionExplanationLanguage"),
      choice: modelChoice(o),
    };
  };
  /** @param {ReturnType<typeof validate>} v */
  const languages = (v) => [v.expectedInputLanguages, v.correctionExplanationLanguage === undefined ? [] : [v.correctionExplanationLanguage]];

  class Proofreader extends AIModel {
    /** @param {symbol} secret @param {any} session @param {ReturnType<typeof validate>} v */
    constructor(secret, session, v) {
      if (secret !== SECRET) throw new TypeError("Illegal constructor: use Proofreader.create().");
      super(session);
      this._v = v;
      this._in = frozenLanguages(v.expectedInputLanguages);
    }
    get includeCorrectionTypes() { return this._v.includeCorrectionTypes; }
    get includeCorrectionExplanations() { return this._v.includeCorrectionExplanations; }
    get expectedInputLanguages() { return this._in; }
    get correctionExplanationLanguage() { return this._v.correctionExplanationLanguage ?? null; }
    /** @param {string} text */
    _prompt(text) {
      if (!/[^\s\p{Cc}]/u.test(text)) return ""; // no proofreadable content: the proofread text is ""
      return {input: `${PROOFREAD_INSTRUCTIONS}\n\n${text}`, maxTokens: (/** @type {number} */ n) => n * 1.5 + 16};
    }
    /**
     * `input`'s corrected text and the corrections that make it.
     * @param {string} input @param {{signal?: AbortSignal}} [options]
     * @returns {Promise<ProofreadResult>}
     */
    proofread(input, options = {}) {
      if (arguments.length === 0) return Promise.reject(new TypeError("proofread() needs an input."));
      let text;
      try {
        text = domString(input, "The input");
      } catch (e) {
        return Promise.reject(e);
      }
      const include = {types: this._v.includeCorrectionTypes, explanations: this._v.includeCorrectionExplanations};
      return this._aggregate(options, "proofread", () => this._prompt(text)).then((answer) =>
        (answer === "" && !/[^\s\p{Cc}]/u.test(text) ? {correctedInput: "", corrections: []} : proofreadResult(text, answer, include)));
    }
    /**
     * The tokens `input` would use of inputQuota.
     * @param {string} input @param {{signal?: AbortSignal}} [options]
     * @returns {Promise<number>}
     */
    measureInputUsage(input, options = {}) {
      if (arguments.length === 0) return Promise.reject(new TypeError("measureInputUsage() needs an input."));
      return this._measure(options, "measureInputUsage", () => this._prompt(domString(input, "The input")));
    }
    /** @param {Record<string, any>} [options] @returns {Promise<Availability>} */
    static availability(options = {}) {
      try {
        fullyActive();
        const v = validate(options);
        return modelAvailability(host, v.choice, languages(v));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    /** @param {Record<string, any>} [options] @returns {Promise<Proofreader>} */
    static async create(options = {}) {
      fullyActive();
      const v = validate(options);
      const langs = languages(v);
      return createModelObject(v.o, () => modelAvailability(host, v.choice, langs), async (forward, signal) => {
        if (langs[1].length) v.correctionExplanationLanguage = langs[1][0];
        const session = await host.create({...v.choice, signal, monitor: forward, samplingMode: "most-predictable"});
        return new Proofreader(SECRET, session, v);
      });
    }
  }
  return {Proofreader};
}
