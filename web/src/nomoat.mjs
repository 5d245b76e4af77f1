// @ts-check
// The ES module entry (dist/nomoat.mjs, `import {llm} from "nomoat"`): window.llm over the runtime
// next to this file; also globalThis.llm, unless the page already has one.
import {createLLM} from "./llm.js";

/** @typedef {import("./llm.js").LLM} LLM */

/** @type {LLM} */
export const llm = createLLM(new URL(".", import.meta.url).href);
/** @type {any} */ (globalThis).llm ??= llm;
// The task APIs over this llm (also installed as globals by llm.polyfill()): `import {Summarizer} from "nomoat"`.
export const {Summarizer, Writer, Rewriter, Proofreader, Translator, LanguageDetector} = llm;
export default llm;
