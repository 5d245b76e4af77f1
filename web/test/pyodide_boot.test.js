// @ts-check
// Python's memory snapshot (web/src/pyodide_boot.mjs), on the real Pyodide in Node with the real
// wheels of web/dist/wheels and a Cache API stand-in: the first boot makes and stores it, the next
// restores it (nomoat.worker already imported, the wheels' files there again for later imports,
// nomoat_js the new runtime); a snapshot whose bytes are damaged, or one of other wheels, is not
// used: Python boots afresh and the one entry is replaced.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import {test} from "node:test";

import {SNAPSHOT_CACHE, bootPython} from "../src/pyodide_boot.mjs";
import {createRuntime} from "../src/runtime.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const PYODIDE = path.join(here, "..", "node_modules", "pyodide") + "/";
const WHEELS = path.join(here, "..", "dist", "wheels");
const wheels = fs.existsSync(WHEELS) ? fs.readdirSync(WHEELS).filter((w) => w.endsWith(".whl")).sort() : [];

/** A Cache API stand-in keeping bodies and headers. */
class Caches {
  constructor() {
    /** @type {Map<string, {body: Uint8Array, headers: Headers}>} */
    this.entries = new Map();
    /** @type {string[]} */
    this.opened = [];
  }
  /** @param {string} name */
  async open(name) {
    this.opened.push(name);
    const e = this.entries;
    return /** @type {any} */ ({
      async match(/** @type {string} */ url) {
        const hit = e.get(url);
        return hit && new Response(/** @type {Uint8Array<ArrayBuffer>} */ (hit.body), {headers: hit.headers});
      },
      async put(/** @type {string} */ url, /** @type {Response} */ r) {
        e.set(url, {body: new Uint8Array(await r.arrayBuffer()), headers: r.headers});
      },
      async delete(/** @type {string | {url: string}} */ k) {
        return e.delete(typeof k === "string" ? k : k.url);
      },
      async keys() {
        return [...e.keys()].map((url) => ({url}));
      },
    });
  }
}

/**
 * The wheels as a server would send them; `change` alters one wheel's bytes (a new nomoat build).
 * @param {boolean} [change]
 */
const serve = (change = false) => async (/** @type {string} */ url) => {
  const bytes = new Uint8Array(fs.readFileSync(path.join(WHEELS, url.split("/").pop() || "")));
  return new Response(change && url.includes("markupsafe") ? Uint8Array.of(...bytes, 0) : bytes);
};
// (a zip with one byte appended still unpacks: its directory is found from the end, within a comment's slack)

/**
 * What Python's `js` module is asked for while a backend steps 20 tokens (after a first step, which
 * may take what it needs once), with nomoat_js a runtime that has fromEntries, as runtime.mjs's has. The worker that made the snapshot keeps Pyodide's snapshot-making
 * `js`, a Proxy that wraps every object read through it anew: a `from js import Object` per token
 * made that page decode ~18 % slower than one restored from the snapshot.
 * @param {any} py
 */
async function jsReadsPerToken(py) {
  py.registerJsModule("fake_engine", {device: "wasm", newState: () => ({dispose() {}}),
    step: async (/** @type {any} */ _state, /** @type {number} */ start) => start});
  const reads = await py.runPythonAsync(`
import sys
import fake_engine
from nomoat.backends.ort_web import OrtWebBackend
import js
real, reads = js, []
class CountingJs:
    def __getattr__(self, name):
        reads.append(name)
        return getattr(real, name)
sys.modules["js"] = CountingJs()
try:
    backend = OrtWebBackend(fake_engine, None)
    state = backend.new_state()
    await backend.step(state, [1, 2])
    first = len(reads)
    for t in range(20):
        await backend.step(state, [t])
finally:
    sys.modules["js"] = real
reads[first:]
`);
  return reads.toJs();
}

const assets = {pyodide: PYODIDE, wheels: wheels.map((w) => path.join(WHEELS, w))}; // (paths: Pyodide's loadPackage in Node)

test("the first boot makes and stores Python's snapshot; the next restores it; a bad or stale one is replaced",
  {skip: wheels.length < 3 ? "web/dist/wheels is not built (make web)" : false, timeout: 240000}, async () => {
    const caches = new Caches();
    const io = {caches: /** @type {any} */ (caches), fetch: serve()};
    const first = await bootPython(assets, {answer: 42, fromEntries: Object.fromEntries}, io);
    assert.equal(first.snapshot, "made");
    assert.equal(await first.stored, true);
    assert.deepEqual(caches.opened, [SNAPSHOT_CACHE]);
    assert.equal(caches.entries.size, 1);
    const [key] = caches.entries.keys();
    assert.equal(first.py.runPython("import nomoat_js; nomoat_js.answer"), 42);
    assert.equal(first.py.runPython("import sys; 'nomoat.backends.ort_web' in sys.modules and 'jinja2.sandbox' in sys.modules"), true);
    assert.deepEqual(await jsReadsPerToken(first.py), []);
    assert.equal(createRuntime({assets: {ort: ""}}).fromEntries, Object.fromEntries); // what the worker registers

    const again = await bootPython(assets, {answer: 43}, io);
    assert.equal(again.snapshot, "restored");
    const py = again.py;
    // imported before the snapshot, not again: and nomoat_js is this boot's runtime
    assert.equal(py.runPython("import sys; 'nomoat.worker' in sys.modules and 'nomoat_js' not in sys.modules"), true);
    assert.equal(py.runPython("import nomoat_js; nomoat_js.answer"), 43);
    // a module nomoat imports later comes from the wheels' files, unpacked again
    assert.equal(py.runPython("import nomoat.constrain, nomoat.embed; nomoat.constrain.__name__"), "nomoat.constrain");
    assert.equal(py.pyimport("nomoat.worker").resources().toJs({dict_converter: Object.fromEntries}).sessions, 0);

    const entry = /** @type {{body: Uint8Array, headers: Headers}} */ (caches.entries.get(key));
    entry.body[entry.body.length >> 1] ^= 1; // damaged: its sha256 no longer matches
    const damaged = await bootPython(assets, {answer: 44}, io);
    assert.equal(damaged.snapshot, "made");
    assert.equal(await damaged.stored, true);
    assert.equal(damaged.py.runPython("import nomoat_js; nomoat_js.answer"), 44);

    const stale = await bootPython(assets, {answer: 45}, {...io, fetch: serve(true)});
    assert.equal(stale.snapshot, "made"); // other wheels: another key
    assert.equal(await stale.stored, true);
    assert.equal(caches.entries.size, 1);
    assert.notEqual([...caches.entries.keys()][0], key);

    const plain = await bootPython(assets, {answer: 46}, {caches: null, fetch: serve()});
    assert.equal(plain.snapshot, "none");
    assert.equal(plain.py.runPython("import nomoat_js, nomoat.worker; nomoat_js.answer"), 46);
  });
