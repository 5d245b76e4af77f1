// @ts-check
// The start-up timeline: when each stage of loading a model began and ended in this realm (the
// nomoat worker), for llm.timeline() (llm.js) and bench/bench_start.py. Stages overlap (the model
// is fetched while Pyodide boots). Times are on the Unix epoch clock in ms (performance.timeOrigin
// + performance.now()), so that the page, whose performance.now() has another origin, can place
// them on its own clock. At most LIMIT spans are kept (the first ones: start-up is what it is for).

/** @typedef {{stage: string, start: number, end: number | null, detail?: Record<string, unknown>}} Span */

const LIMIT = 200;
/** @type {Span[]} */
export const timeline = [];

/** Now on the epoch clock, in ms (sub-millisecond where the realm allows). */
export const now = () => (globalThis.performance ? performance.timeOrigin + performance.now() : Date.now());

/**
 * Starts a span; its end(detail?) closes it (once). The stage name also becomes a performance mark
 * pair `nomoat:<stage>` (visible in the browser's profiler), where the realm has performance.mark.
 * @param {string} stage e.g. "pyodide.boot"
 * @param {Record<string, unknown>} [detail]
 * @returns {(detail?: Record<string, unknown>) => void}
 */
export function begin(stage, detail) {
  /** @type {Span} */
  const span = {stage, start: now(), end: null, ...(detail ? {detail} : {})};
  if (timeline.length < LIMIT) timeline.push(span);
  return (more) => {
    if (span.end !== null) return;
    span.end = now();
    if (more) span.detail = {...span.detail, ...more};
    try {
      globalThis.performance?.measure?.(`nomoat:${stage}`, {start: span.start - performance.timeOrigin,
        end: span.end - performance.timeOrigin});
    } catch (e) {
      // (no User Timing here: the span is still kept)
    }
  };
}

/**
 * Runs `work` as the span `stage` (closed when it settles, either way).
 * @template T
 * @param {string} stage
 * @param {() => Promise<T>} work
 * @returns {Promise<T>}
 */
export async function span(stage, work) {
  const end = begin(stage);
  try {
    return await work();
  } finally {
    end();
  }
}

/** @type {Set<WeakRef<WebAssembly.Memory>>} the wasm memories of this realm's engines (wasm_engine.mjs) */
const memories = new Set();

/** Counts `memory` in wasmMemoryBytes() while it is reachable. @param {WebAssembly.Memory} memory */
export function heldMemory(memory) {
  memories.add(new WeakRef(memory));
}

/** The bytes of the engines' wasm memories alive now (llm.resources().wasmMemoryBytes). */
export function wasmMemoryBytes() {
  let n = 0;
  for (const r of memories) {
    const m = r.deref();
    if (m) n += m.buffer.byteLength;
    else memories.delete(r);
  }
  return n;
}
