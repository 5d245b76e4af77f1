// @ts-check
// The classic-script entry: esbuild bundles it (and the modules it imports) into dist/nomoat.js,
// so that once <script src=".../nomoat.js"> has run, window.llm and llm.LanguageModel exist.
// The runtime is the folder nomoat.js was loaded from; data-model (relative to the page) and
// data-device on the script tag set llm.create()'s defaults; Python boots from a saved memory snapshot
// (pyodide_boot.mjs) unless data-snapshot="false".
import {createLLM} from "./llm.js";

const script = /** @type {HTMLScriptElement} */ (document.currentScript);
/** @type {any} */ (window).llm = createLLM(new URL(".", script.src).href,
  {model: script.dataset.model, device: script.dataset.device, snapshot: script.dataset.snapshot !== "false"});
