// @ts-check
// A model package (py/nomoat/package.py writes it): its manifest nomoat.json lists every file with
// its size and sha256. Files come from the Cache API storage "nomoat-models" (one entry per file
// URL) or the network, with progress, and every file is checked against the manifest before it is
// used, whether it came from the cache or the network. fetch and caches are passed in (the
// worker's own by default), so that this runs in Node with stand-ins.

import {named} from "./errors.js";

export const CACHE_NAME = "nomoat-models";

/**
 * A file's entry in nomoat.json.
 * @typedef {{size: number, sha256: string}} FileInfo
 * @typedef {{files: Record<string, FileInfo>}} Manifest
 * What fetchBytes needs of fetch(): the WHATWG function (a stand-in in tests).
 * @typedef {(url: string, init?: RequestInit) => Promise<Response>} Fetch
 * A "download" progress report, or a "cache" warning.
 * @typedef {Record<string, unknown>} Progress
 */

/**
 * One resource's bytes; onBytes(n) after each chunk with the bytes so far.
 * @param {Fetch} fetch
 * @param {string} url
 * @param {(n: number) => void} onBytes
 */
async function fetchBytes(fetch, url, onBytes) {
  let r;
  try {
    r = await fetch(url, {cache: "no-cache"});
  } catch (e) {
    throw named("NetworkError", `Could not fetch ${url}: ${/** @type {Error} */ (e).message}. ` +
      "Check the model URL and that the server is running.");
  }
  if (!r.ok || !r.body) {
    throw named("NotFoundError", `The model file ${url} was not found (HTTP ${r.status}). Check the model URL.`);
  }
  const reader = r.body.getReader();
  /** @type {Uint8Array[]} */
  const parts = [];
  let n = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.byteLength;
    onBytes(n);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** @param {Uint8Array<ArrayBuffer>} bytes */
async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {Uint8Array<ArrayBuffer>} bytes @param {FileInfo} info */
async function intact(bytes, info) {
  return bytes.byteLength === info.size && (await sha256(bytes)) === info.sha256;
}

/** @param {CacheStorage | undefined} caches */
async function openCache(caches) {
  try {
    return caches ? await caches.open(CACHE_NAME) : null;
  } catch (e) {
    return null; // e.g. an opaque origin: no persistent storage, fetch every time
  }
}

export class ModelPackage {
  /**
   * The package at `url` (absolute, ending in "/" or not): its manifest, from the network, else
   * (offline, the server gone) the cached copy.
   * @param {string} url
   * @param {{fetch?: Fetch, caches?: CacheStorage}} [io] the worker's fetch and caches by default
   */
  static async open(url, {fetch = globalThis.fetch, caches = globalThis.caches} = {}) {
    const base = url.endsWith("/") ? url : url + "/";
    // Cache only web origins: the Cache API refuses e.g. chrome-extension:// URLs (files that are
    // already local anyway).
    const cache = /^https?:/.test(base) ? await openCache(caches) : null;
    const at = base + "nomoat.json";
    let bytes;
    try {
      bytes = await fetchBytes(fetch, at, () => {});
    } catch (e) {
      const hit = cache && await cache.match(at);
      if (!hit) throw e;
      bytes = new Uint8Array(await hit.arrayBuffer());
    }
    let manifest;
    try {
      manifest = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw named("DataError", `${at} is not a model manifest (${/** @type {Error} */ (e).message}).`);
    }
    if (!manifest || typeof manifest.files !== "object") throw named("DataError", `${at} is not a model manifest (no "files").`);
    return new ModelPackage(base, manifest, bytes, fetch, cache);
  }

  /**
   * @param {string} base
   * @param {Manifest} manifest
   * @param {Uint8Array<ArrayBuffer>} manifestBytes
   * @param {Fetch} fetch
   * @param {Cache | null} cache
   */
  constructor(base, manifest, manifestBytes, fetch, cache) {
    this.base = base;
    this.manifest = manifest;
    this.manifestBytes = manifestBytes;
    this.fetch = fetch;
    this.cache = cache;
  }

  /** @param {string} name a path in the package, e.g. "onnx/nomoat_tensors.json" */
  has(name) {
    return Object.hasOwn(this.manifest.files, name);
  }

  /**
   * The named files, each checked against the manifest. progress(p) hears {stage: "download",
   * file, fileLoaded, fileTotal, loaded, total, fraction, cached} per chunk (and {stage:
   * "download", loaded: 0, total, fraction: 0} first), and {stage: "cache", warning} when a file
   * could not be stored. A cached copy that fails its check is dropped and fetched again, never
   * returned; a network copy that fails twice is a DataError naming the file.
   * @param {string[]} names
   * @param {(p: Progress) => void} [progress]
   * @returns {Promise<Record<string, Uint8Array<ArrayBuffer>>>}
   */
  async load(names, progress = () => {}) {
    for (const n of names) if (!this.has(n)) throw named("DataError", `${this.base}nomoat.json does not list ${n}.`);
    const info = this.manifest.files;
    const total = names.reduce((s, n) => s + info[n].size, 0);
    /** @type {Record<string, number>} */
    const done = {};
    /** @param {string} file @param {number} fileLoaded @param {boolean} cached */
    const report = (file, fileLoaded, cached) => {
      done[file] = fileLoaded;
      const loaded = Object.values(done).reduce((a, b) => a + b, 0);
      progress({stage: "download", file, fileLoaded, fileTotal: info[file].size, loaded, total,
        fraction: total ? loaded / total : 1, cached});
    };
    progress({stage: "download", loaded: 0, total, fraction: 0});
    /** @type {Record<string, Uint8Array<ArrayBuffer>>} */
    const files = {};
    /** @type {Promise<boolean>[]} */
    const checks = [];
    for (const name of names) {
      const hit = this.cache && await this.cache.match(this.base + name);
      if (hit) { // checked below, all at once: the digests run off the JS thread meanwhile
        files[name] = new Uint8Array(await hit.arrayBuffer());
        report(name, files[name].byteLength, true);
        checks.push(intact(files[name], info[name]));
      } else {
        files[name] = await this.download(name, (n) => report(name, n, false), progress);
        checks.push(Promise.resolve(true));
      }
    }
    const verdicts = await Promise.all(checks);
    for (const [i, name] of names.entries()) {
      if (verdicts[i]) continue;
      await /** @type {Cache} */ (this.cache).delete(this.base + name); // a corrupt or stale entry
      files[name] = await this.download(name, (n) => report(name, n, false), progress);
    }
    if (this.cache) await this.cache.put(this.base + "nomoat.json", new Response(this.manifestBytes)).catch(() => {});
    return files;
  }

  /**
   * One file from the network, checked (one retry), then cached.
   * @param {string} name
   * @param {(n: number) => void} onBytes
   * @param {(p: Progress) => void} progress
   */
  async download(name, onBytes, progress) {
    const url = this.base + name, info = this.manifest.files[name];
    let bytes = null;
    for (let attempt = 0; attempt < 2 && !bytes; attempt++) {
      const got = await fetchBytes(this.fetch, url, onBytes);
      if (await intact(got, info)) bytes = got;
      else onBytes(0);
    }
    if (!bytes) {
      throw named("DataError", `${url} does not match its manifest (size ${info.size}, sha256 ${info.sha256.slice(0, 12)}…): ` +
        "truncated or corrupt on the server. Convert the model again ('nomoat convert').");
    }
    if (this.cache) {
      try {
        await this.cache.put(url, new Response(bytes, {headers: {"content-type": "application/octet-stream",
                                                                 "content-length": String(bytes.byteLength)}}));
      } catch (e) {
        const kind = /** @type {Error | null} */ (e)?.name;
        const why = kind === "QuotaExceededError" ? "the browser's storage quota is too small" : `the cache refused it (${kind})`;
        progress({stage: "cache", warning: `${url} could not be cached: ${why}. The model runs now but will be downloaded ` +
          "again next time; free space (llm.cache.delete(...)) or allow more storage."});
      }
    }
    return bytes;
  }
}
