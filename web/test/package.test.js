// @ts-check
// The model package (web/src/package.js) with a stand-in server (fetch), Cache API and Web Locks:
// every file checked against the manifest, a corrupt, truncated, unreadable or evicted cached copy
// fetched again and never returned, a truncated server file a DataError naming it, progress per
// chunk; a full quota a warning, the model still loaded and no half model left in the cache looking
// complete (the manifest's entry is written last); two loads at once download once (one lock per
// model); hostile manifests and JSON files a DataError naming the file. The same for a file streamed
// into place (a view of shared memory, hashed as it comes), and a check that refuses a model before
// its data is fetched.
import assert from "node:assert/strict";
import {test} from "node:test";

import {CACHE_NAME, ModelPackage, VERIFIED} from "../src/package.js";
import {Sha256} from "../src/sha256.js";
import {fakeServer, manifestOf} from "./fake_server.js";

const BASE = "http://models.test/tiny/";

/**
 * A server of `files` at BASE (nomoat.json included), answering each body in chunks of 7 bytes;
 * serve[name] overrides what is sent. Counts requests per name.
 * @param {Record<string, Uint8Array>} files
 * @param {Record<string, Uint8Array>} [serve]
 */
function server(files, serve = {}) {
  return fakeServer(BASE, {...files, "nomoat.json": manifestOf(files), ...serve}, 7);
}

/** A response whose body sends 10 bytes of `b`, then nothing, for ever. @param {Uint8Array} b */
function stalling(b) {
  let sent = false;
  return new Response(new ReadableStream({pull(c) {
    if (!sent) c.enqueue(b.slice(0, 10));
    sent = true;
    return new Promise(() => {});
  }}));
}

/**
 * A Cache API stand-in: one cache, entries by URL. put fails with `putError` when given, after
 * `putsBefore` successful file puts, first writing half the body when `halfWrite` (a cache that
 * leaves a torn entry); entries in `unreadable` answer match() with a body that cannot be read.
 */
class FakeCaches {
  /** @param {Error} [putError] @param {{putsBefore?: number, halfWrite?: boolean, headers?: boolean}} [how] */
  constructor(putError, {putsBefore = 0, halfWrite = false, headers = false} = {}) {
    /** @type {Map<string, Uint8Array>} */
    this.entries = new Map();
    /** @type {Map<string, Headers> | null} each entry's response headers, kept when `headers` (as the Cache API does) */
    this.headers = headers ? new Map() : null;
    this.putError = putError;
    this.putsBefore = putsBefore;
    this.halfWrite = halfWrite;
    /** @type {Set<string>} */
    this.unreadable = new Set();
    /** @type {Set<string>} entries whose body fails after its first chunk */
    this.failing = new Set();
    /** @type {Set<string>} entries whose body sends its first chunk, then nothing, for ever */
    this.stalling = new Set();
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
        if (b && self.stalling.has(url)) return stalling(b);
        if (b && self.failing.has(url)) {
          let sent = false;
          return new Response(new ReadableStream({pull(c) {
            if (sent) c.error(new DOMException("gone", "NotReadableError"));
            else c.enqueue(b.slice(0, 10));
            sent = true;
          }}));
        }
        return b ? new Response(/** @type {Uint8Array<ArrayBuffer>} */ (b), {headers: self.headers?.get(url)}) : undefined;
      },
      async put(/** @type {string} */ url, /** @type {Response} */ r) {
        const body = new Uint8Array(await r.arrayBuffer());
        if (self.putError && !url.endsWith("nomoat.json") && self.putsBefore-- <= 0) {
          if (self.halfWrite) self.entries.set(url, body.slice(0, body.length >> 1));
          throw self.putError;
        }
        self.entries.set(url, body);
        self.headers?.set(url, r.headers);
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

// -- a file streamed into place (load's `stream`): the data file poured chunk by chunk into a view
// (as into the wasm decoder's shared memory), hashed as it comes, never returned as bytes.

const DATA = "onnx/model_q4.onnx_data";
const TEXT_NAMES = ["config.json"];

/**
 * load() with the data file streamed into a view of a SharedArrayBuffer; resolves to the files
 * returned, the view and whether write resolved.
 * @param {ModelPackage} pkg
 * @param {{check?: (json: Record<string, unknown>) => void, progress?: (p: any) => void, size?: number}} [how]
 */
async function streamLoad(pkg, {check, progress, size = FILES[DATA].byteLength} = {}) {
  const view = new Uint8Array(new SharedArrayBuffer(size + 8), 4, size);
  let written = false;
  const files = await pkg.load(TEXT_NAMES, progress, {check, stream: {name: DATA, async consume(got, write) {
    assert.deepEqual(Object.keys(got), TEXT_NAMES); // the other files are in before the stream
    await write(view);
    written = true;
  }}});
  return {files, view, written};
}

test("stream: the data file is poured into a shared view from the network, cached, then poured from the cache", async () => {
  const {fetch, hits} = server(FILES), caches = new FakeCaches(), seen = [];
  const io = {fetch, caches: /** @type {any} */ (caches)};
  const {files, view, written} = await streamLoad(await ModelPackage.open(BASE, io), {progress: (p) => seen.push(p)});
  assert.ok(written);
  assert.deepEqual(files, {"config.json": CONFIG_TEXT}); // not returned as bytes
  assert.deepEqual(new Uint8Array(view), FILES[DATA]);
  assert.deepEqual(caches.entries.get(BASE + DATA), FILES[DATA]); // cached from the view
  assert.ok(caches.entries.has(BASE + "nomoat.json"));
  const data = seen.filter((p) => p.file === DATA);
  assert.equal(data.length, Math.ceil(100 / 7));
  assert.deepEqual(data.at(-1), {stage: "download", file: DATA, fileLoaded: 100, fileTotal: 100, loaded: CONFIG_TEXT.byteLength + 100,
    total: CONFIG_TEXT.byteLength + 100, fraction: 1, cached: false});
  const again = await streamLoad(await ModelPackage.open(BASE, io));
  assert.deepEqual(new Uint8Array(again.view), FILES[DATA]);
  assert.deepEqual(hits, {"nomoat.json": 2, "config.json": 1, [DATA]: 1});
});

test("stream: a corrupt, truncated, too long or unreadable cached copy is poured again from the network", async () => {
  for (const harm of ["corrupt", "truncated", "long", "unreadable", "fails midway"]) {
    const {fetch, hits} = server(FILES), caches = new FakeCaches();
    const io = {fetch, caches: /** @type {any} */ (caches)};
    await streamLoad(await ModelPackage.open(BASE, io));
    const url = BASE + DATA, good = FILES[DATA];
    if (harm === "corrupt") caches.entries.set(url, Uint8Array.from(good, (b, i) => i === 99 ? b ^ 4 : b));
    else if (harm === "truncated") caches.entries.set(url, good.slice(0, 50));
    else if (harm === "long") caches.entries.set(url, Uint8Array.of(...good, 0));
    else if (harm === "unreadable") caches.unreadable.add(url);
    else caches.failing.add(url);
    const {view} = await streamLoad(await ModelPackage.open(BASE, io));
    caches.unreadable.clear();
    caches.failing.clear();
    assert.deepEqual(new Uint8Array(view), good, harm);
    assert.equal(hits[DATA], 2, harm);
    assert.deepEqual(caches.entries.get(url), good, harm);
    assert.ok(caches.entries.has(BASE + "nomoat.json"), harm);
  }
});

test("stream: a source that stops sending is given up after stallMs: the cache's copy for the network's, the network's after one retry (NetworkError)", async () => {
  const url = BASE + DATA, good = FILES[DATA];
  { // a cached copy that stalls midway: poured again from the network, the entry replaced
    const {fetch, hits} = server(FILES), caches = new FakeCaches();
    const io = {fetch, caches: /** @type {any} */ (caches), stallMs: 30};
    await streamLoad(await ModelPackage.open(BASE, io));
    caches.stalling.add(url);
    const {view} = await streamLoad(await ModelPackage.open(BASE, io));
    caches.stalling.clear();
    assert.deepEqual(new Uint8Array(view), good);
    assert.equal(hits[DATA], 2);
    assert.deepEqual(caches.entries.get(url), good);
    assert.ok(caches.entries.has(BASE + "nomoat.json"));
  }
  { // the server stalls once: the retry gets it
    const {fetch, hits} = server(FILES), caches = new FakeCaches();
    let stalls = 1;
    const flaky = /** @type {import("../src/package.js").Fetch} */ (async (u, init) => {
      if (u === url && stalls-- > 0) { hits[DATA] = (hits[DATA] || 0) + 1; return stalling(good); }
      return fetch(u, init);
    });
    const {view} = await streamLoad(await ModelPackage.open(BASE, {fetch: flaky, caches: /** @type {any} */ (caches), stallMs: 30}));
    assert.deepEqual(new Uint8Array(view), good);
    assert.equal(hits[DATA], 2);
  }
  { // the server stalls every time: a NetworkError that says so, not a corrupt file; nothing complete cached
    const {fetch} = server(FILES), caches = new FakeCaches();
    const dead = /** @type {import("../src/package.js").Fetch} */ (async (u, init) => u === url ? stalling(good) : fetch(u, init));
    const pkg = await ModelPackage.open(BASE, {fetch: dead, caches: /** @type {any} */ (caches), stallMs: 30});
    await assert.rejects(streamLoad(pkg), {name: "NetworkError", message: /server stopped sending .*model_q4\.onnx_data \(no data for 0\.03 s, twice\)/});
    assert.ok(!caches.entries.has(url) && !caches.entries.has(BASE + "nomoat.json"));
  }
});

test("stream: bytes from the server that do not match are a DataError (after one retry); the model is not complete", async () => {
  for (const sent of [FILES[DATA].slice(0, 60), Uint8Array.of(...FILES[DATA], 1, 2), Uint8Array.from(FILES[DATA], (b) => b ^ 1)]) {
    const {fetch, hits} = server(FILES, {[DATA]: sent}), caches = new FakeCaches();
    const pkg = await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)});
    await assert.rejects(streamLoad(pkg), {name: "DataError", message: /onnx\/model_q4\.onnx_data does not match its manifest \(size 100/});
    assert.equal(hits[DATA], 2);
    assert.ok(!caches.entries.has(BASE + DATA) && !caches.entries.has(BASE + "nomoat.json"));
  }
});

test("stream: check() sees the JSON files first and can refuse the model before its data is fetched", async () => {
  const {fetch, hits} = server(FILES);
  const pkg = await ModelPackage.open(BASE, {fetch, caches: undefined});
  assert.equal(pkg.size(DATA), 100);
  /** @type {Record<string, unknown>[]} */
  const saw = [];
  const refuse = (/** @type {Record<string, unknown>} */ json) => {
    saw.push(json);
    throw Object.assign(new Error(`too large: ${pkg.size(DATA)} bytes`), {name: "QuotaExceededError"});
  };
  await assert.rejects(streamLoad(pkg, {check: refuse}), {name: "QuotaExceededError", message: /too large: 100 bytes/});
  assert.deepEqual(saw, [{"config.json": CONFIG}]);
  assert.equal(hits[DATA], undefined); // never asked for
  // the same for files returned as bytes
  await assert.rejects(pkg.load(NAMES, undefined, {check: refuse}), {name: "QuotaExceededError"});
  assert.equal(hits[DATA], undefined);
});

test("stream: a full quota is one warning, the view still filled, nothing left cached; a wrong view or no write is refused", async () => {
  const {fetch} = server(FILES), caches = new FakeCaches(QUOTA(), {putsBefore: 1, halfWrite: true}), seen = [];
  const pkg = await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)});
  const {view} = await streamLoad(pkg, {progress: (p) => seen.push(p)});
  assert.deepEqual(new Uint8Array(view), FILES[DATA]);
  assert.equal(seen.filter((p) => p.stage === "cache").length, 1);
  assert.deepEqual([...caches.entries.keys()], []);
  await assert.rejects(streamLoad(pkg, {size: 99}), {name: "TypeError", message: /into a Uint8Array of its 100 bytes, not 99/});
  await assert.rejects(pkg.load(TEXT_NAMES, undefined, {stream: {name: DATA, consume: async () => {}}}),
    {name: "InvalidStateError", message: /never written/});
  await assert.rejects(pkg.load(TEXT_NAMES, undefined, {stream: {name: "onnx/other", consume: async () => {}}}),
    {name: "DataError", message: /does not list onnx\/other/});
});

test("stream: two workers streaming one model at once download it once (the model's lock)", async () => {
  const {fetch, hits} = server(FILES), caches = new FakeCaches();
  const io = {fetch, caches: /** @type {any} */ (caches), locks: /** @type {any} */ (new FakeLocks())};
  const [a, b] = await Promise.all([ModelPackage.open(BASE, io), ModelPackage.open(BASE, io)]);
  const [ra, rb] = await Promise.all([streamLoad(a), streamLoad(b)]);
  assert.deepEqual(new Uint8Array(ra.view), FILES[DATA]);
  assert.deepEqual(new Uint8Array(rb.view), FILES[DATA]);
  assert.equal(hits[DATA], 1);
});

test("stream: byte streams (what fetch and the Cache API answer) are read into one reused buffer, the same checks", async () => {
  /** @type {Record<string, Uint8Array>} */
  const sent = {...FILES, "nomoat.json": manifestOf(FILES)};
  let byob = 0;
  /** @type {import("../src/package.js").Fetch} */
  const fetch = async (url) => {
    const body = sent[url.slice(BASE.length)];
    let o = 0;
    return new Response(new ReadableStream({type: "bytes", pull(c) {
      if (o >= body.length) {
        c.close();
        return c.byobRequest?.respond(0); // (a pending BYOB read ends with the stream)
      }
      if (c.byobRequest?.view) byob++;
      c.enqueue(body.slice(o, o += 7));
    }}));
  };
  const caches = new FakeCaches();
  const {view} = await streamLoad(await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)}));
  assert.deepEqual(new Uint8Array(view), FILES[DATA]);
  assert.ok(byob >= Math.ceil(100 / 7), `BYOB reads: ${byob}`);
  assert.ok(new Response(new Uint8Array(1)).body?.getReader({mode: "byob"})); // the cache's answers: byte streams too
  sent[DATA] = Uint8Array.of(...FILES[DATA], 9); // one byte too many: refused, not written past the view
  caches.entries.clear();
  await assert.rejects(streamLoad(await ModelPackage.open(BASE, {fetch, caches: undefined})), {name: "DataError"});
});

// Integrity without hashing twice: an entry nomoat put carries the sha256 its bytes were verified
// with (VERIFIED); a later load that finds it equal to the manifest's reads it (whole or streamed)
// unhashed, checking its length; an entry without it, or with another sha256, is hashed as before.

/** How many bytes sha256.js hashes while `work` runs. @param {() => Promise<unknown>} work */
async function hashed(work) {
  const update = Sha256.prototype.update;
  let n = 0;
  Sha256.prototype.update = function (/** @type {Uint8Array} */ data) {
    n += data.byteLength;
    return update.call(this, data);
  };
  try {
    await work();
  } finally {
    Sha256.prototype.update = update;
  }
  return n;
}

/** How many times crypto.subtle.digest runs while `work` runs. @param {() => Promise<unknown>} work */
async function digests(work) {
  const digest = crypto.subtle.digest;
  let n = 0;
  crypto.subtle.digest = function (/** @type {any} */ ...args) {
    n += 1;
    return digest.apply(this, /** @type {any} */ (args));
  };
  try {
    await work();
  } finally {
    crypto.subtle.digest = digest;
  }
  return n;
}

test("verified: nomoat's own cache entries carry their sha256; files read whole or streamed are not hashed again", async () => {
  const {fetch, hits} = server(FILES), caches = new FakeCaches(undefined, {headers: true});
  const io = {fetch, caches: /** @type {any} */ (caches)};
  const manifest = JSON.parse(new TextDecoder().decode(manifestOf(FILES)));
  assert.ok(await hashed(async () => streamLoad(await ModelPackage.open(BASE, io))) >= 100); // downloaded: hashed
  for (const name of [...TEXT_NAMES, DATA]) {
    assert.equal(caches.headers?.get(BASE + name)?.get(VERIFIED), manifest.files[name].sha256, name);
  }
  /** @type {any} */
  let got;
  assert.equal(await hashed(async () => { got = await streamLoad(await ModelPackage.open(BASE, io)); }), 0); // streamed: trusted
  assert.deepEqual(new Uint8Array(got.view), FILES[DATA]);
  caches.headers?.set(BASE + DATA, new Headers()); // no header (a page's own put): hashed as it streams
  assert.ok(await hashed(async () => { got = await streamLoad(await ModelPackage.open(BASE, io)); }) >= 100);
  assert.deepEqual(new Uint8Array(got.view), FILES[DATA]);
  caches.headers?.set(BASE + DATA, new Headers({[VERIFIED]: manifest.files[DATA].sha256}));
  assert.equal(await digests(async () => { got = await (await ModelPackage.open(BASE, io)).load(NAMES); }), 0); // whole: trusted
  assert.deepEqual(got[DATA], FILES[DATA]);
  assert.deepEqual(got["config.json"], FILES["config.json"]);
  assert.equal(hits[DATA], 1);
  caches.headers?.set(BASE + DATA, new Headers()); // no header (a page's own put): hashed
  assert.equal(await digests(async () => { got = await (await ModelPackage.open(BASE, io)).load(NAMES); }), 1);
});

test("verified: an entry without nomoat's header, or with another sha256, is hashed, and a corrupt one fetched again", async () => {
  for (const header of [null, "0".repeat(64)]) {
    const {fetch, hits} = server(FILES), caches = new FakeCaches(undefined, {headers: true});
    const io = {fetch, caches: /** @type {any} */ (caches)};
    await streamLoad(await ModelPackage.open(BASE, io));
    const url = BASE + DATA, bad = Uint8Array.from(FILES[DATA], (b, i) => i === 50 ? b ^ 1 : b);
    caches.entries.set(url, bad); // as a page's own cache.put(url, new Response(bad)) would leave it
    caches.headers?.set(url, new Headers(header ? {[VERIFIED]: header} : {}));
    const {view} = await streamLoad(await ModelPackage.open(BASE, io));
    assert.deepEqual(new Uint8Array(view), FILES[DATA], String(header));
    assert.equal(hits[DATA], 2, String(header)); // refused, fetched again
    assert.deepEqual(caches.entries.get(url), FILES[DATA]); // and repaired, with the header
    assert.equal(caches.headers?.get(url)?.get(VERIFIED), JSON.parse(new TextDecoder().decode(manifestOf(FILES))).files[DATA].sha256);
  }
});

test("verified: a verified entry of the wrong length (truncated, too long) is still refused and fetched again", async () => {
  for (const harm of ["truncated", "long"]) {
    const {fetch, hits} = server(FILES), caches = new FakeCaches(undefined, {headers: true});
    const io = {fetch, caches: /** @type {any} */ (caches)};
    await streamLoad(await ModelPackage.open(BASE, io));
    for (const name of [DATA, "config.json"]) { // the header stays: only the body is damaged
      const good = FILES[/** @type {keyof typeof FILES} */ (name)];
      caches.entries.set(BASE + name, harm === "truncated" ? good.slice(0, good.length - 1) : Uint8Array.of(...good, 0));
    }
    const {view, files} = await streamLoad(await ModelPackage.open(BASE, io));
    assert.deepEqual(new Uint8Array(view), FILES[DATA], harm);
    assert.deepEqual(files["config.json"], FILES["config.json"], harm);
    assert.equal(hits[DATA], 2, harm);
    assert.equal(hits["config.json"], 2, harm);
  }
});
