// @ts-check
// A model package (py/nomoat/package.py writes it): its manifest nomoat.json lists every file with
// its size and sha256. Files come from the Cache API storage "nomoat-models" (one entry per file
// URL) or the network, with progress, and every file is checked against the manifest before it is
// used, whether it came from the cache or the network. fetch and caches are passed in (the
// worker's own by default), so that this runs in Node with stand-ins.

import {named} from "./errors.js";

export const CACHE_NAME = "nomoat-models";
const MANIFEST = "nomoat.json";

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

// -- the package's texts, checked: a hostile package (its manifest rewritten to match) must end in
// a DataError naming the file and the field. config.json's rules and limits are py/nomoat/config.py's
// (ModelConfig.from_dict), so both sides refuse the same files.

/**
 * A model's shape, from config.json.
 * @typedef {{L: number, H: number, I: number, nq: number, nkv: number, hd: number, V: number, eps: number,
 *            theta: number, maxPos: number}} ModelShape
 */

const FIX = "convert the model again ('nomoat convert')";
const CONFIG_FILE = "config.json";
/** The largest config.json values taken (py/nomoat/config.py LIMITS, the same numbers). */
export const LIMITS = {num_hidden_layers: 1024, hidden_size: 65536, intermediate_size: 262144, num_attention_heads: 1024,
  head_dim: 1024, vocab_size: 1 << 24, max_position_embeddings: 1 << 24};

/** A DataError naming the file and what is wrong in it, and the fix. @param {string} file @param {string} what */
export function badFile(file, what) {
  return named("DataError", `${file}: ${what}; ${FIX}.`);
}

/** A value as a message shows it, short. @param {unknown} v */
export function show(v) {
  if (v === undefined) return "missing";
  const s = typeof v === "number" ? String(v) : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? s.slice(0, 40) + "…" : s;
}

/** @param {unknown} v @returns {v is Record<string, unknown>} */
export const isObject = (v) => !!v && typeof v === "object" && !Array.isArray(v);

/**
 * A model's shape from config.json, every field it uses checked (types, ranges, divisibility).
 * @param {unknown} config config.json parsed
 * @returns {ModelShape}
 */
export function modelShape(config) {
  if (!isObject(config)) throw badFile(CONFIG_FILE, `is ${show(config)}, not a JSON object`);
  /** @param {string} name @param {number} [hi] @param {number} [fallback] */
  const int = (name, hi = /** @type {Record<string, number>} */ (LIMITS)[name], fallback = undefined) => {
    const v = config[name] ?? fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > hi) {
      throw badFile(CONFIG_FILE, `${name} is ${show(config[name])}, not an integer in 1..${hi}`);
    }
    return v;
  };
  /** @param {string} name @param {number} hi */
  const real = (name, hi) => {
    const v = config[name];
    if (typeof v !== "number" || !(v > 0 && v <= hi)) throw badFile(CONFIG_FILE, `${name} is ${show(v)}, not a number in (0, ${hi}]`);
    return v;
  };
  const L = int("num_hidden_layers"), H = int("hidden_size"), I = int("intermediate_size");
  const nq = int("num_attention_heads"), nkv = int("num_key_value_heads", nq);
  if (nq % nkv) throw badFile(CONFIG_FILE, `num_attention_heads ${nq} is not a multiple of num_key_value_heads ${nkv}`);
  if (config.head_dim == null && H % nq) {
    throw badFile(CONFIG_FILE, `hidden_size ${H} is not a multiple of num_attention_heads ${nq} (and there is no head_dim)`);
  }
  const hd = int("head_dim", LIMITS.head_dim, config.head_dim == null ? H / nq : undefined);
  if (hd % 2) throw badFile(CONFIG_FILE, `head_dim ${hd} is odd (rotary embeddings turn pairs)`);
  return {L, H, I, nq, nkv, hd, V: int("vocab_size"), eps: real("rms_norm_eps", 1), theta: real("rope_theta", 1e12),
    maxPos: int("max_position_embeddings")};
}

/**
 * A package file's JSON, parsed; a DataError naming the file if it is not JSON.
 * @param {Uint8Array} bytes
 * @param {string} name the file, e.g. "config.json"
 * @returns {unknown}
 */
export function parseJSON(bytes, name) {
  try {
    return JSON.parse(new TextDecoder("utf-8", {fatal: true}).decode(bytes));
  } catch (e) {
    throw named("DataError", `${name} is not valid JSON (${/** @type {Error} */ (e).message.slice(0, 200)}); ` +
      "convert the model again ('nomoat convert').");
  }
}

/** @param {CacheStorage | undefined} caches */
async function openCache(caches) {
  try {
    return caches ? await caches.open(CACHE_NAME) : null;
  } catch (e) {
    return null; // e.g. an opaque origin: no persistent storage, fetch every time
  }
}

/**
 * The manifest's problem, or "" if it is sound: "files" an object of {size: integer >= 0, sha256: 64
 * hex digits} under relative names (py/nomoat/package.py checks the same).
 * @param {unknown} m
 */
function manifestProblem(m) {
  if (!isObject(m)) return "not a JSON object";
  if (!isObject(m.files)) return `"files" is ${show(m.files)}, not an object`;
  for (const [name, info] of Object.entries(m.files)) {
    if (!name || name.startsWith("/") || name.includes("\\") || name.split("/").some((p) => p === ".." || p === "." || !p)) {
      return `file name ${show(name)} is not a relative path inside the package`;
    }
    if (!isObject(info) || typeof info.size !== "number" || !Number.isSafeInteger(info.size) || info.size < 0 ||
        typeof info.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(info.sha256)) {
      return `${name}: ${show(info)} is not {size: bytes, sha256: 64 hex digits}`;
    }
  }
  return "";
}

/** A cached file's bytes, or null when it is gone or cannot be read (evicted meanwhile). @param {Cache} cache @param {string} url */
async function cachedBytes(cache, url) {
  try {
    const hit = await cache.match(url);
    return hit ? new Uint8Array(await hit.arrayBuffer()) : null;
  } catch (e) {
    return null;
  }
}

export class ModelPackage {
  /**
   * The package at `url` (absolute, ending in "/" or not): its manifest, from the network, else
   * (offline, the server gone) the cached copy. io: the worker's fetch, caches and Web Locks
   * (navigator.locks) by default; stand-ins in tests (locks null: no coordination).
   * @param {string} url
   * @param {{fetch?: Fetch, caches?: CacheStorage, locks?: LockManager | null}} [io]
   */
  static async open(url, {fetch = globalThis.fetch, caches = globalThis.caches, locks = globalThis.navigator?.locks ?? null} = {}) {
    const base = url.endsWith("/") ? url : url + "/";
    // Cache only web origins: the Cache API refuses e.g. chrome-extension:// URLs (files that are
    // already local anyway).
    const cache = /^https?:/.test(base) ? await openCache(caches) : null;
    const at = base + MANIFEST;
    let bytes;
    try {
      bytes = await fetchBytes(fetch, at, () => {});
    } catch (e) {
      bytes = cache && await cachedBytes(cache, at);
      if (!bytes) throw e;
    }
    let manifest;
    try {
      manifest = JSON.parse(new TextDecoder("utf-8", {fatal: true}).decode(bytes));
    } catch (e) {
      throw named("DataError", `${at} is not a model manifest (${/** @type {Error} */ (e).message.slice(0, 200)}).`);
    }
    const problem = manifestProblem(manifest);
    if (problem) throw named("DataError", `${at} is not a model manifest (${problem}); ${FIX}.`);
    return new ModelPackage(base, manifest, bytes, fetch, cache, locks);
  }

  /**
   * @param {string} base
   * @param {Manifest} manifest
   * @param {Uint8Array<ArrayBuffer>} manifestBytes
   * @param {Fetch} fetch
   * @param {Cache | null} cache
   * @param {LockManager | null} [locks]
   */
  constructor(base, manifest, manifestBytes, fetch, cache, locks = null) {
    this.base = base;
    this.manifest = manifest;
    this.manifestBytes = manifestBytes;
    this.fetch = fetch;
    this.cache = cache;
    this.locks = locks;
  }

  /** @param {string} name a path in the package, e.g. "onnx/nomoat_tensors.json" */
  has(name) {
    return Object.hasOwn(this.manifest.files, name);
  }

  /**
   * The named files, each checked against the manifest, and the JSON ones parsed (config.json's
   * shape checked too: modelShape): a DataError naming the file otherwise. progress(p) hears
   * {stage: "download", file, fileLoaded, fileTotal, loaded, total, fraction, cached} per chunk
   * (and {stage: "download", loaded: 0, total, fraction: 0} first), and {stage: "cache", warning}
   * once when the files could not be stored.
   *
   * The cache (one entry per file URL, and the manifest's) holds a model wholly or not at all: the
   * manifest's entry, what llm.cache.list() calls `complete`, is deleted before any file is
   * written and put back last, only once every file of this load is cached; a file that cannot be
   * stored (QuotaExceededError) removes the files this load put, so no half model stays behind
   * looking complete, and the model still loads from the network bytes. Every cached file is
   * checked before use: one evicted, unreadable, truncated or corrupt is fetched again, never
   * returned. Two workers (tabs) loading the same model take turns under one Web Lock per model
   * URL, so the second finds the first's files in the cache instead of downloading them again.
   * @param {string[]} names
   * @param {(p: Progress) => void} [progress]
   * @returns {Promise<Record<string, Uint8Array<ArrayBuffer>>>}
   */
  async load(names, progress = () => {}) {
    for (const n of names) if (!this.has(n)) throw named("DataError", `${this.base}${MANIFEST} does not list ${n}.`);
    const files = this.cache && this.locks
      ? await this.locks.request(`nomoat-model ${this.base}`, () => this.fill(names, progress))
      : await this.fill(names, progress);
    for (const n of names) {
      if (!n.endsWith(".json")) continue;
      const value = parseJSON(files[n], n);
      if (n === "config.json") modelShape(value);
    }
    return files;
  }

  /**
   * load()'s files, from the cache where they are intact, else from the network (then cached).
   * @param {string[]} names
   * @param {(p: Progress) => void} progress
   */
  async fill(names, progress) {
    const info = this.manifest.files, cache = this.cache;
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
    for (const name of names) { // checked all at once: the digests run off the JS thread meanwhile
      const bytes = cache && await cachedBytes(cache, this.base + name);
      if (bytes) {
        files[name] = bytes;
        report(name, bytes.byteLength, true);
      }
      checks.push(bytes ? intact(bytes, info[name]) : Promise.resolve(false));
    }
    const verdicts = await Promise.all(checks);
    const missing = names.filter((_, i) => !verdicts[i]);
    const store = new Store(cache, this.base, progress);
    if (missing.length) await store.incomplete();
    for (const name of missing) {
      if (files[name]) await store.drop(name); // a truncated, corrupt or stale entry
      files[name] = await this.download(name, (n) => report(name, n, false));
      await store.put(name, files[name]);
    }
    await store.complete(this.manifestBytes);
    return files;
  }

  /**
   * One file from the network, checked (one retry).
   * @param {string} name
   * @param {(n: number) => void} onBytes
   */
  async download(name, onBytes) {
    const url = this.base + name, info = this.manifest.files[name];
    for (let attempt = 0; attempt < 2; attempt++) {
      const got = await fetchBytes(this.fetch, url, onBytes);
      if (await intact(got, info)) return got;
      onBytes(0);
    }
    throw named("DataError", `${url} does not match its manifest (size ${info.size}, sha256 ${info.sha256.slice(0, 12)}…): ` +
      "truncated or corrupt on the server. Convert the model again ('nomoat convert').");
  }
}

/**
 * One load's writes to the cache: the manifest's entry off while files are written (incomplete),
 * the files (put), the manifest back last when all went in (complete). The first put that fails
 * ends caching for this load: the files it put are deleted again and one warning is reported.
 */
class Store {
  /** @param {Cache | null} cache @param {string} base @param {(p: Progress) => void} progress */
  constructor(cache, base, progress) {
    this.cache = cache;
    this.base = base;
    this.progress = progress;
    this.ok = !!cache;
    /** @type {string[]} URLs this load put */
    this.written = [];
  }
  async incomplete() {
    if (this.cache) await this.cache.delete(this.base + MANIFEST).catch(() => {});
  }
  /** @param {string} name */
  async drop(name) {
    if (this.cache) await this.cache.delete(this.base + name).catch(() => {});
  }
  /** @param {string} name @param {Uint8Array<ArrayBuffer>} bytes */
  async put(name, bytes) {
    if (!this.ok) return;
    const url = this.base + name;
    try {
      await /** @type {Cache} */ (this.cache).put(url, new Response(bytes, {headers: {"content-type": "application/octet-stream",
        "content-length": String(bytes.byteLength)}}));
      this.written.push(url);
    } catch (e) {
      this.ok = false;
      const kind = /** @type {Error | null} */ (e)?.name;
      const why = kind === "QuotaExceededError" ? "the browser's storage quota is too small" : `the cache refused it (${kind})`;
      for (const u of [url, ...this.written]) await /** @type {Cache} */ (this.cache).delete(u).catch(() => {});
      this.progress({stage: "cache", warning: `${url} could not be cached: ${why}. The model runs now (from the network) but ` +
        "is not kept, and will be downloaded again next time; free space (llm.cache.delete(...)) or allow more storage."});
    }
  }
  /** @param {Uint8Array<ArrayBuffer>} manifest */
  async complete(manifest) {
    if (this.ok) await /** @type {Cache} */ (this.cache).put(this.base + MANIFEST, new Response(manifest)).catch(() => {});
  }
}
