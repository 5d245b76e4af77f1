// LanguageDetector's accuracy on held-out text (tests/fixtures/task_apis/language_corpus.mjs TEST: sentences
// never seen by make_language_profiles.mjs): every whole sentence, and seeded random snippets of 1-8
// consecutive words. Prints the numbers; fails below the floors.
import assert from "node:assert/strict";
import {test} from "node:test";
import {TEST, TRAIN} from "../../tests/fixtures/task_apis/language_corpus.mjs";
import {DETECTABLE, detectLanguages} from "../src/language_detector.js";

/** A seeded generator (an LCG): the same snippets every run. @param {number} seed */
const lcg = (seed) => () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

test("the profiles cover the corpus' languages, and the held-out sentences are not in the training text", () => {
  assert.deepEqual([...DETECTABLE].sort(), Object.keys(TRAIN).sort());
  for (const [lang, list] of Object.entries(TEST)) for (const s of list) assert.ok(!TRAIN[lang].includes(s), s);
});

test("accuracy on held-out sentences and on seeded snippets (top result = the language)", () => {
  let right = 0, total = 0;
  for (const [lang, list] of Object.entries(TEST)) {
    for (const s of list) {
      total++;
      if (detectLanguages(s)[0].detectedLanguage === lang) right++;
    }
  }
  const sentences = right / total;
  const rand = lcg(20261207);
  /** @type {Record<number, [number, number]>} */
  const byWords = {};
  for (let n = 0; n < 2000; n++) {
    const langs = Object.keys(TEST);
    const lang = langs[Math.floor(rand() * langs.length)];
    const words = TEST[/** @type {keyof typeof TEST} */ (lang)][Math.floor(rand() * 8)].split(" ");
    const k = 1 + Math.floor(rand() * Math.min(8, words.length));
    const at = Math.floor(rand() * (words.length - k + 1));
    const got = detectLanguages(words.slice(at, at + k).join(" "))[0].detectedLanguage;
    byWords[k] ??= [0, 0];
    byWords[k][1]++;
    if (got === lang) byWords[k][0]++;
  }
  const table = Object.entries(byWords).map(([k, [r, t]]) => `${k} word(s): ${(r / t).toFixed(3)} (${t})`);
  console.log(`LanguageDetector: held-out sentences ${right}/${total} = ${sentences.toFixed(3)}; seeded snippets: ${table.join(", ")}`);
  assert.ok(sentences >= 0.95, `sentences ${sentences}`);
  const acc = (/** @type {number} */ lo, /** @type {number} */ hi) => {
    let r = 0, t = 0;
    for (let k = lo; k <= hi; k++) if (byWords[k]) { r += byWords[k][0]; t += byWords[k][1]; }
    return r / t;
  };
  assert.ok(acc(5, 8) >= 0.9, `5-8 words ${acc(5, 8)}`);
  assert.ok(acc(2, 4) >= 0.7, `2-4 words ${acc(2, 4)}`);
});
