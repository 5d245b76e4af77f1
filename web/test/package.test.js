// @ts-check
// The model package (web/src/package.js) with a stand-in server (fetch), Cache API and Web Locks:
// every file checked against the manifest, a corrupt, truncated, unreadable or evicted cached copy
// fetched again and never returned, a truncated server file a DataError naming it, progress per
// chunk; a full quota a warning, the model still loaded and no half model left in the cache looking
// complete (the manifest's entry is written last); two loads at once download once (one lock per
// model); hostile manifests and JSON files a DataError naming the file.
import assert from "node:assert/strict";
import {createHash} from "node:crypto";
import {test} from "node:test";

import {CACHE_NAME, ModelPackage} from "../src/package.js";

const BASE = "http://models.test/tiny/";

/** @param {Record<string, Uint8Array>} files what the package holds */
function manifestOf(files) {
  const out = {};
  for (const [n, b] of Object.entries(files)) out[n] = {size: b.byteLength, sha256: createHash("sha256").update(b).digest("hex")};
  return new TextEncoder().encode(JSON.stringify({format: 2, files: out}));
}

/**
 * A server of `files` at BASE (nomoat.json included), answering each body in chunks of 7 bytes;
 * serve[name] overrides what is sent. Counts requests per name.
 * @param {Record<string, Uint8Array>} files
 * @param {Record<string, Uint8Array>} [serve]
 */
function server(files, serve = {}) {
  const all = {...files, "nomoat.json": manifestOf(files), ...serve};
  /** @type {Record<string, number>} */
  const hits = {};
  /** @type {import("../src/package.js").Fetch} */
  const fetch = async (url) => {
    const name = url.startsWith(BASE) ? url.slice(BASE.length) : "";
    hits[name] = (hits[name] || 0) + 1;
    const body = all[name];
    if (!body) return new Response("no", {status: 404});
    let o = 0;
    return new Response(new ReadableStream({pull(c) {
      if (o >= body.length) return c.close();
      c.enqueue(body.slice(o, o += 7));
    }}));
  };
  return {fetch, hits};
}

/**
 * A Cache API stand-in: one cache, entries by URL. put fails with `putError` when given, after
 * `putsBefore` successful file puts, first writing half the body when `halfWrite` (a cache that
 * leaves a torn entry); entries in `unreadable` answer match() with a body that cannot be read.
 */
class FakeCaches {
  /** @param {Error} [putError] @param {{putsBefore?: number, halfWrite?: boolean}} [how] */
  constructor(putError, {putsBefore = 0, halfWrite = false} = {}) {
    /** @type {Map<string, Uint8Array>} */
    this.entries = new Map();
    this.putError = putError;
    this.putsBefore = putsBefore;
    this.halfWrite = halfWrite;
    /** @type {Set<string>} */
    this.unreadable = new Set();
    /** @type {string[]} */
    this.opened = [];
  }
  /** @param {string} name */
  async open(name) {
    this.opened.push(name);
    const self = this;
    return /** @type {Cache} */ (/** @type {unknown} */ ({
      async match(/** @type {string} */ url) {
        const b = self.entries.get(url);
        if (b && self.unreadable.has(url)) return {arrayBuffer: async () => { throw new DOMException("gone", "NotReadableError"); }};
        return b ? new Response(/** @type {Uint8Array<ArrayBuffer>} */ (b)) : undefined;
      },
      async put(/** @type {string} */ url, /** @type {Response} */ r) {
        const body = new Uint8Array(await r.arrayBuffer());
        if (self.putError && !url.endsWith("nomoat.json") && self.putsBefore-- <= 0) {
          if (self.halfWrite) self.entries.set(url, body.slice(0, body.length >> 1));
          throw self.putError;
        }
        self.entries.set(url, body);
      },
      async delete(/** @type {string} */ url) {
        return self.entries.delete(url);
      },
    }));
  }
}

const bytes = (/** @type {number} */ n, /** @type {number} */ seed) => Uint8Array.from({length: n}, (_, i) => (i * 31 + seed) & 255);
const CONFIG = {num_hidden_layers: 1, hidden_size: 64, intermediate_size: 64, num_attention_heads: 4, num_key_value_heads: 2,
  head_dim: 16, vocab_size: 8, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 64};
const CONFIG_TEXT = new TextEncoder().encode(JSON.stringify(CONFIG));
const FILES = {"config.json": CONFIG_TEXT, "onnx/model_q4.onnx_data": bytes(100, 1)};
const QUOTA = () => Object.assign(new Error("quota"), {name: "QuotaExceededError"});

/** Web Locks stand-in: requests for one name run one at a time, in order. */
class FakeLocks {
  constructor() {
    /** @type {Map<string, Promise<unknown>>} */
    this.tails = new Map();
    /** @type {string[]} */
    this.names = [];
  }
  /** @param {string} name @param {(lock: unknown) => Promise<any>} callback */
  async request(name, callback) {
    this.names.push(name);
    const before = this.tails.get(name) || Promise.resolve();
    /** @type {(v?: unknown) => void} */
    let release = () => {};
    this.tails.set(name, before.then(() => new Promise((r) => { release = r; })));
    await before;
    try {
      return await callback({name});
    } finally {
      release();
    }
  }
}
const NAMES = Object.keys(FILES);

test("files come from the server, checked, then cached; the next load reads the cache", async () => {
  const {fetch, hits} = server(FILES), caches = new FakeCaches();
  const pkg = await ModelPackage.open(BASE.slice(0, -1), {fetch, caches: /** @type {any} */ (caches)});
  assert.equal(pkg.base, BASE);
  assert.deepEqual(caches.opened, [CACHE_NAME]);
  assert.ok(pkg.has("config.json") && !pkg.has("onnx/nomoat_tensors.json"));
  const got = await pkg.load(NAMES);
  assert.deepEqual(got, FILES);
  assert.deepEqual([...caches.entries.keys()].sort(), [...NAMES, "nomoat.json"].map((n) => BASE + n).sort());
  const again = await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES);
  assert.deepEqual(again, FILES);
  assert.deepEqual(hits, {"nomoat.json": 2, "config.json": 1, "onnx/model_q4.onnx_data": 1});
});

test("progress: a first report, then the bytes so far per chunk, per file and in total", async () => {
  const {fetch} = server(FILES), seen = [];
  await (await ModelPackage.open(BASE, {fetch, caches: undefined})).load(NAMES, (p) => seen.push(p));
  const total = CONFIG_TEXT.byteLength + 100;
  assert.deepEqual(seen[0], {stage: "download", loaded: 0, total, fraction: 0});
  const data = seen.filter((p) => p.file === "onnx/model_q4.onnx_data");
  assert.equal(data.length, Math.ceil(100 / 7));
  assert.deepEqual(data.at(-1), {stage: "download", file: "onnx/model_q4.onnx_data", fileLoaded: 100, fileTotal: 100,
    loaded: total, total, fraction: 1, cached: false});
  const loaded = seen.slice(1).map((p) => p.loaded);
  assert.deepEqual(loaded, [...loaded].sort((a, b) => a - b)); // never goes back
});

test("a corrupt cached copy is dropped and fetched again, never returned", async () => {
  const {fetch, hits} = server(FILES), caches = new FakeCaches();
  const bad = FILES["onnx/model_q4.onnx_data"].slice();
  bad[50] ^= 1; // same size, other bytes
  caches.entries.set(BASE + "onnx/model_q4.onnx_data", bad);
  const seen = [];
  const got = await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES, (p) => seen.push(p));
  assert.deepEqual(got, FILES);
  assert.equal(hits["onnx/model_q4.onnx_data"], 1);
  assert.deepEqual(caches.entries.get(BASE + "onnx/model_q4.onnx_data"), FILES["onnx/model_q4.onnx_data"]);
  assert.ok(seen.some((p) => p.file === "onnx/model_q4.onnx_data" && p.cached === true));
  assert.equal(seen.at(-1).cached, false); // the last report is the fresh copy
});

test("a truncated file on the server is a DataError naming it (after one retry)", async () => {
  const {fetch, hits} = server(FILES, {"onnx/model_q4.onnx_data": FILES["onnx/model_q4.onnx_data"].slice(0, 60)});
  const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
  await assert.rejects(pkg.load(NAMES), (/** @type {any} */ e) => {
    assert.equal(e.name, "DataError");
    assert.match(e.message, /onnx\/model_q4\.onnx_data does not match its manifest \(size 100/);
    assert.match(e.message, /nomoat convert/);
    return true;
  });
  assert.equal(hits["onnx/model_q4.onnx_data"], 2);
});

test("a file the manifest does not list, a missing manifest, a bad one: clear errors", async () => {
  const {fetch} = server(FILES);
  const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
  await assert.rejects(pkg.load(["onnx/nomoat_tensors.json"]), {name: "DataError", message: /does not list onnx\/nomoat_tensors.json/});
  await assert.rejects(ModelPackage.open("http://models.test/none/", {fetch, caches: undefined}),
    {name: "NotFoundError", message: /was not found \(HTTP 404\)/});
  const broken = server(FILES, {"nomoat.json": new TextEncoder().encode("{nope")});
  await assert.rejects(ModelPackage.open(BASE, {fetch: broken.fetch, caches: undefined}), {name: "DataError", message: /not a model manifest/});
  const down = async () => { throw new TypeError("Failed to fetch"); };
  await assert.rejects(ModelPackage.open(BASE, {fetch: down, caches: undefined}), {name: "NetworkError", message: /Failed to fetch/});
});

test("offline: the cached manifest and files serve", async () => {
  const {fetch} = server(FILES), caches = new FakeCaches();
  await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES);
  const down = async () => { throw new TypeError("Failed to fetch"); };
  const got = await (await ModelPackage.open(BASE, {fetch: down, caches: /** @type {any} */ (caches)})).load(NAMES);
  assert.deepEqual(got, FILES);
});

test("a full storage quota is one warning; the files are still returned, no half model is left cached", async () => {
  for (const how of [{putsBefore: 0}, {putsBefore: 1}, {putsBefore: 1, halfWrite: true}]) {
    const {fetch, hits} = server(FILES);
    const caches = new FakeCaches(QUOTA(), how), seen = [];
    const got = await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES, (p) => seen.push(p));
    assert.deepEqual(got, FILES);
    const warnings = seen.filter((p) => p.stage === "cache");
    assert.equal(warnings.length, 1, JSON.stringify(how));
    const failed = how.putsBefore ? "onnx/model_q4\\.onnx_data" : "config\\.json";
    assert.match(warnings[0].warning, new RegExp(`${failed} could not be cached: the browser's storage quota is too small`));
    assert.match(warnings[0].warning, /runs now \(from the network\).*llm\.cache\.delete/);
    assert.deepEqual([...caches.entries.keys()], [], JSON.stringify(how)); // no file, no manifest: not "complete"
    // with room again, the next load downloads, checks and caches it all
    caches.putError = undefined;
    assert.deepEqual(await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES), FILES);
    assert.deepEqual([...caches.entries.keys()].sort(), [...NAMES, "nomoat.json"].map((n) => BASE + n).sort());
    assert.equal(hits["onnx/model_q4.onnx_data"], 2);
  }
});

test("a partly evicted model: the missing, truncated or unreadable files are fetched again, the rest read from the cache", async () => {
  for (const harm of ["evicted", "truncated", "unreadable"]) {
    const {fetch, hits} = server(FILES), caches = new FakeCaches();
    await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES);
    const data = BASE + "onnx/model_q4.onnx_data";
    if (harm === "evicted") caches.entries.delete(data);
    else if (harm === "truncated") caches.entries.set(data, FILES["onnx/model_q4.onnx_data"].slice(0, 37));
    else caches.unreadable.add(data);
    const got = await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES);
    caches.unreadable.clear();
    assert.deepEqual(got, FILES, harm);
    assert.deepEqual(hits, {"nomoat.json": 2, "config.json": 1, "onnx/model_q4.onnx_data": 2}, harm);
    assert.deepEqual(caches.entries.get(data), FILES["onnx/model_q4.onnx_data"], harm);
    assert.ok(caches.entries.has(BASE + "nomoat.json"));
  }
});

test("while files are being written the manifest's entry is absent: an interrupted load never looks complete", async () => {
  const {fetch: serve} = server(FILES), caches = new FakeCaches();
  await (await ModelPackage.open(BASE, {fetch: serve, caches: /** @type {any} */ (caches)})).load(NAMES);
  caches.entries.delete(BASE + "onnx/model_q4.onnx_data"); // evicted
  /** @type {boolean[]} */
  const manifestCached = [];
  /** @type {import("../src/package.js").Fetch} */
  const fetch = async (url, init) => {
    if (url.endsWith(".onnx_data")) {
      manifestCached.push(caches.entries.has(BASE + "nomoat.json"));
      throw new TypeError("Failed to fetch"); // the tab closes, the network goes
    }
    return serve(url, init);
  };
  await assert.rejects((await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES), {name: "NetworkError"});
  assert.deepEqual(manifestCached, [false]);
  assert.ok(!caches.entries.has(BASE + "nomoat.json")); // llm.cache.list(): complete false
  assert.deepEqual(await (await ModelPackage.open(BASE, {fetch: serve, caches: /** @type {any} */ (caches)})).load(NAMES), FILES);
  assert.ok(caches.entries.has(BASE + "nomoat.json"));
});

test("two workers loading one model at once: one download under the model's lock, the other reads the cache", async () => {
  for (const locks of [new FakeLocks(), null]) {
    const {fetch, hits} = server(FILES), caches = new FakeCaches();
    const io = {fetch, caches: /** @type {any} */ (caches), locks: /** @type {any} */ (locks)};
    const [a, b] = await Promise.all([ModelPackage.open(BASE, io), ModelPackage.open(BASE, io)]);
    const [ga, gb] = await Promise.all([a.load(NAMES), b.load(NAMES)]);
    assert.deepEqual(ga, FILES);
    assert.deepEqual(gb, FILES);
    assert.equal(hits["onnx/model_q4.onnx_data"], locks ? 1 : 2); // without Web Locks: twice, still correct
    if (locks) assert.deepEqual(locks.names, [`nomoat-model ${BASE}`, `nomoat-model ${BASE}`]);
    assert.deepEqual(caches.entries.get(BASE + "onnx/model_q4.onnx_data"), FILES["onnx/model_q4.onnx_data"]);
    assert.ok(caches.entries.has(BASE + "nomoat.json"));
  }
});

test("hostile manifests and JSON files (their sha256 in the manifest): a DataError naming the file and field", async () => {
  const sha = "0".repeat(64);
  for (const [manifest, re] of [
    [{files: null}, /"files" is null, not an object/],
    [{files: {"config.json": {size: -1, sha256: sha}}}, /config\.json: \{"size":-1,.* is not \{size: bytes, sha256/],
    [{files: {"config.json": {size: 3, sha256: "abc"}}}, /is not \{size: bytes, sha256: 64 hex digits\}/],
    [{files: {"../../etc/passwd": {size: 3, sha256: sha}}}, /file name "\.\.\/\.\.\/etc\/passwd" is not a relative path/],
    [[], /not a JSON object/],
  ]) {
    const {fetch} = server(FILES, {"nomoat.json": new TextEncoder().encode(JSON.stringify(manifest))});
    await assert.rejects(ModelPackage.open(BASE, {fetch, caches: undefined}), {name: "DataError", message: re});
  }
  for (const [config, re] of [
    ["{\"vocab_size\": ", /config\.json is not valid JSON/],
    [JSON.stringify({...CONFIG, vocab_size: "8"}), /config\.json: vocab_size is "8", not an integer in 1\.\.16777216; convert the model again/],
    [JSON.stringify({...CONFIG, num_key_value_heads: 3}), /config\.json: num_attention_heads 4 is not a multiple of num_key_value_heads 3/],
  ]) {
    const files = {...FILES, "config.json": new TextEncoder().encode(config)};
    const {fetch} = server(files); // the manifest matches: a hostile package, not a corrupt one
    const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
    await assert.rejects(pkg.load(NAMES), {name: "DataError", message: re});
  }
});

test("only web origins are cached", async () => {
  const caches = new FakeCaches();
  const files = {"nomoat.json": manifestOf(FILES), ...FILES};
  /** @type {import("../src/package.js").Fetch} */
  const fetch = async (url) => new Response(files[url.slice("chrome-extension://x/m/".length)]);
  await (await ModelPackage.open("chrome-extension://x/m/", {fetch, caches: /** @type {any} */ (caches)})).load(NAMES);
  assert.deepEqual(caches.opened, []);
});
