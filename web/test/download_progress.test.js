// downloadProgress (llm.js): the downloadprogress events of create()'s monitor, as
// writing-assistance-apis' "create an AI model object" fires them.
import assert from "node:assert/strict";
import {test} from "node:test";
import {downloadProgress} from "../src/llm.js";

// Node has no ProgressEvent: a stand-in with its fields.
globalThis.ProgressEvent ??= /** @type {any} */ (class extends Event {
  /** @param {string} type @param {{loaded?: number, total?: number, lengthComputable?: boolean}} [init] */
  constructor(type, init = {}) {
    super(type);
    Object.assign(this, {loaded: 0, total: 0, lengthComputable: false, ...init});
  }
});

/** @param {() => boolean} [aborted] */
const watch = (aborted) => {
  const monitor = new EventTarget();
  /** @type {number[]} */
  const seen = [];
  monitor.addEventListener("downloadprogress", (e) => seen.push(/** @type {ProgressEvent} */ (e).loaded));
  return {seen, monitor, progress: downloadProgress(monitor, aborted)};
};

test("a model already available still fires 0 and then 1", () => {
  // "initialize and return an AI model object" steps 2-3: fireProgressEvent(0), fireProgressEvent(1)
  const {seen, progress} = watch();
  progress.onProgress({stage: "load", loaded: 1, total: 1});
  progress.done(true);
  assert.deepEqual(seen, [0, 1]);
});

test("a download fires 0 first, rising fractions of 2^16, and 1 last, once", () => {
  const {seen, progress} = watch();
  for (const loaded of [0, 30, 30, 70, 100]) progress.onProgress({stage: "download", loaded, total: 100});
  progress.done(true);
  assert.deepEqual(seen, [0, Math.floor(0.3 * 65536) / 65536, Math.floor(0.7 * 65536) / 65536, 1]);
});

test("after an abort or a failure no more events fire", () => {
  // "If abortedDuringDownload is true, then abort these steps" (fireProgressEvent)
  let aborted = false;
  const a = watch(() => aborted);
  a.progress.onProgress({stage: "download", loaded: 10, total: 100});
  aborted = true;
  a.progress.onProgress({stage: "download", loaded: 50, total: 100});
  a.progress.done(true);
  assert.deepEqual(a.seen, [0, Math.floor(0.1 * 65536) / 65536]);
  aborted = false;
  const c = watch(() => aborted);
  c.monitor.addEventListener("downloadprogress", () => { aborted = true; }); // a listener of 0 aborts
  c.progress.done(true);
  assert.deepEqual(c.seen, [0]);
  const failed = watch();
  failed.progress.done(false);
  assert.deepEqual(failed.seen, []);
});
