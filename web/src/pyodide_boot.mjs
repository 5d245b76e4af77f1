// @ts-check
// Python for the nomoat worker: Pyodide with nomoat's wheels installed and nomoat.worker imported,
// from a memory snapshot of exactly that state when there is one (a ~30 MB copy of Python's wasm heap:
// ~0.25 s instead of ~1.8 s of booting the interpreter, unpacking the wheels and importing nomoat;
// the wheels' files are unpacked again after a restore, since Pyodide's file system is not in the heap).
//
// The first boot in a browser profile boots Pyodide in its snapshot-making mode, unpacks the wheels,
// imports nomoat.worker, then takes the snapshot and stores it in the Cache API (cache "nomoat-runtime",
// one entry, in the background: the answer does not wait for it). Its key names the Pyodide version
// and the sha256 of every wheel's bytes (fetched and hashed on each start, ~1 MB), so a new nomoat
// or Pyodide boots afresh and replaces it; Pyodide itself refuses a snapshot of another build (its
// build id is in the snapshot). A snapshot that cannot be used is deleted and Python boots afresh.
// Nothing JS-side may be in the heap when it is taken: nomoat_js is registered afterwards (the
// Python package imports it lazily). What a restored Python shares with every other restore of the
// same snapshot: its str hash seed (PYTHONHASHSEED-style; nomoat's sampling seeds come from
// random.SystemRandom, i.e. crypto.getRandomValues, not from the heap).

import {span} from "./timeline.js";

export const SNAPSHOT_CACHE = "nomoat-runtime";
const SNAPSHOT_URL = "https://nomoat.invalid/pyodide-snapshot/"; // a Cache API key, never fetched
const VERIFIED = "x-nomoat-sha256";

/**
 * @typedef {{pyodide: string, wheels: string[]}} BootAssets the folder of pyodide.mjs, the wheels' URLs
 * @typedef {{fetch?: (url: string) => Promise<Response>, caches?: CacheStorage | null,
 *            snapshot?: boolean}} BootIO stand-ins (tests); snapshot false: the plain boot, no snapshot
 */

/** @param {ArrayBuffer | Uint8Array<ArrayBuffer>} bytes */
async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The wheels' bytes.
 * @param {string[]} urls
 * @param {(url: string) => Promise<Response>} fetch
 */
async function fetchWheels(urls, fetch) {
  return Promise.all(urls.map(async (url) => {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`Could not fetch ${url} (HTTP ${r.status}); rebuild web/dist ('make web').`);
    return new Uint8Array(await r.arrayBuffer());
  }));
}

/**
 * Booted Pyodide with the wheels installed and nomoat.worker imported; `nomoat_js` registered last.
 * Resolves {py, snapshot}: snapshot "restored" | "made" (and being stored) | "none" (caches missing or
 * refused, or io.snapshot false).
 * @param {BootAssets} assets
 * @param {unknown} runtime what Python imports as `nomoat_js`
 * @param {BootIO} [io]
 * @returns {Promise<{py: any, snapshot: "restored" | "made" | "none", stored: Promise<boolean>}>}
 */
export async function bootPython(assets, runtime, {fetch = globalThis.fetch, caches = globalThis.caches ?? null, snapshot = true} = {}) {
  const {loadPyodide, version} = await span("pyodide.import", () => import(assets.pyodide + "pyodide.mjs"));
  /** @type {Cache | null} */
  let cache = null;
  /** @type {Uint8Array<ArrayBuffer>[] | null} */
  let wheels = null;
  let key = "";
  if (snapshot && caches) {
    try {
      await span("snapshot.key", async () => {
        [cache, wheels] = await Promise.all([caches.open(SNAPSHOT_CACHE), fetchWheels(assets.wheels, fetch)]);
        const sums = await Promise.all(wheels.map((w) => sha256(w)));
        key = SNAPSHOT_URL + (await sha256(new TextEncoder().encode([version, ...sums].join("\n"))));
      });
    } catch (e) {
      cache = null; // no Cache API here (or it refused): the plain boot
    }
  }
  if (cache) {
    const saved = await span("snapshot.read", () => readSnapshot(/** @type {Cache} */ (cache), key));
    if (saved) {
      try {
        const py = await span("pyodide.boot", () => loadPyodide({indexURL: assets.pyodide, _loadSnapshot: saved}));
        // The heap holds the modules already imported, not the files (Pyodide's file system lives in
        // JS): the wheels are unpacked again, for the modules nomoat imports later and for tracebacks.
        await span("wheels.install", async () => unpack(py, /** @type {Uint8Array<ArrayBuffer>[]} */ (wheels)));
        py.registerJsModule("nomoat_js", runtime);
        return {py, snapshot: "restored", stored: Promise.resolve(true)};
      } catch (e) {
        console.warn(`nomoat: Python's saved snapshot could not be used (${String(/** @type {Error} */ (e)?.message || e)
          .slice(0, 200)}); booting afresh.`);
        await cache.delete(key).catch(() => false);
      }
    }
  }
  if (!cache || !wheels) {
    const py = await span("pyodide.boot", () => loadPyodide({indexURL: assets.pyodide}));
    py.registerJsModule("nomoat_js", runtime);
    await span("wheels.install", () => py.loadPackage(assets.wheels, {messageCallback: () => {}}));
    await span("python.import", async () => py.runPython("import nomoat.worker"));
    return {py, snapshot: "none", stored: Promise.resolve(false)};
  }
  const py = await span("pyodide.boot", () => loadPyodide({indexURL: assets.pyodide, _makeSnapshot: true}));
  // The wheels unpacked straight into site-packages (loadPackage would keep a JS record of them in
  // the heap, which a snapshot cannot hold).
  const got = wheels;
  await span("wheels.install", async () => unpack(py, got));
  // nomoat.worker and what the first answer imports lazily (py/nomoat/_snapshot.py), into the snapshot
  await span("python.import", async () => py.runPython("import nomoat._snapshot; nomoat._snapshot.prepare()"));
  let bytes = null;
  try {
    bytes = py.makeMemorySnapshot();
  } catch (e) {
    console.warn(`nomoat: Python's snapshot could not be taken (${String(/** @type {Error} */ (e)?.message || e).slice(0, 200)}).`);
  }
  py.registerJsModule("nomoat_js", runtime);
  const stored = bytes ? writeSnapshot(cache, key, bytes) : Promise.resolve(false);
  return {py, snapshot: bytes ? "made" : "none", stored};
}

/** The wheels unpacked into site-packages. @param {any} py @param {Uint8Array<ArrayBuffer>[]} wheels */
function unpack(py, wheels) {
  for (const w of wheels) py.unpackArchive(w, "wheel");
  py.runPython("import importlib; importlib.invalidate_caches()");
}

/**
 * The snapshot stored under `key` if nomoat stored it (its headers) and its bytes have the sha256 it
 * was stored with (crypto.subtle, off this thread: ~0.1 s for 30 MB), else null.
 * @param {Cache} cache @param {string} key
 */
async function readSnapshot(cache, key) {
  try {
    const hit = await cache.match(key);
    if (!hit || !hit.headers.get(VERIFIED)) return null;
    const bytes = new Uint8Array(await hit.arrayBuffer());
    return bytes.byteLength === Number(hit.headers.get("x-nomoat-size")) && await sha256(bytes) === hit.headers.get(VERIFIED)
      ? bytes : null;
  } catch (e) {
    return null;
  }
}

/**
 * Stores `bytes` as the snapshot `key`, replacing any other; false when the cache refused it (quota).
 * @param {Cache} cache @param {string} key @param {Uint8Array} bytes
 */
async function writeSnapshot(cache, key, bytes) {
  try {
    for (const old of await cache.keys()) if (old.url !== key) await cache.delete(old);
    const body = /** @type {Uint8Array<ArrayBuffer>} */ (bytes);
    await cache.put(key, new Response(body, {headers: {"content-type": "application/octet-stream",
      "x-nomoat-size": String(bytes.byteLength), [VERIFIED]: await sha256(body)}}));
    return true;
  } catch (e) {
    console.warn(`nomoat: Python's snapshot was not stored (${/** @type {Error} */ (e)?.name}); the next start boots Python afresh.`);
    return false;
  }
}
