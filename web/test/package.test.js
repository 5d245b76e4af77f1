// @ts-check
// The model package (web/src/package.js) with a stand-in server (fetch) and Cache API: every file
// checked against the manifest, a corrupt cached copy fetched again and never returned, a truncated
// server file a DataError naming it, progress per chunk, a full quota a warning.
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

/** A Cache API stand-in: one cache, entries by URL; put fails with `putError` when given. */
class FakeCaches {
  /** @param {Error} [putError] */
  constructor(putError) {
    /** @type {Map<string, Uint8Array>} */
    this.entries = new Map();
    this.putError = putError;
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
        return b ? new Response(/** @type {Uint8Array<ArrayBuffer>} */ (b)) : undefined;
      },
      async put(/** @type {string} */ url, /** @type {Response} */ r) {
        if (self.putError && !url.endsWith("nomoat.json")) throw self.putError;
        self.entries.set(url, new Uint8Array(await r.arrayBuffer()));
      },
      async delete(/** @type {string} */ url) {
        return self.entries.delete(url);
      },
    }));
  }
}

const bytes = (/** @type {number} */ n, /** @type {number} */ seed) => Uint8Array.from({length: n}, (_, i) => (i * 31 + seed) & 255);
const FILES = {"config.json": new TextEncoder().encode('{"vocab_size": 8}'), "onnx/model_q4.onnx_data": bytes(100, 1)};
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
  const total = 17 + 100;
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

test("a full storage quota is a warning; the files are still returned", async () => {
  const {fetch} = server(FILES);
  const quota = Object.assign(new Error("quota"), {name: "QuotaExceededError"});
  const caches = new FakeCaches(quota), seen = [];
  const got = await (await ModelPackage.open(BASE, {fetch, caches: /** @type {any} */ (caches)})).load(NAMES, (p) => seen.push(p));
  assert.deepEqual(got, FILES);
  const warnings = seen.filter((p) => p.stage === "cache");
  assert.equal(warnings.length, 2);
  assert.match(warnings[0].warning, /config\.json could not be cached: the browser's storage quota is too small/);
  assert.match(warnings[0].warning, /llm\.cache\.delete/);
});

test("only web origins are cached", async () => {
  const caches = new FakeCaches();
  const files = {"nomoat.json": manifestOf(FILES), ...FILES};
  /** @type {import("../src/package.js").Fetch} */
  const fetch = async (url) => new Response(files[url.slice("chrome-extension://x/m/".length)]);
  await (await ModelPackage.open("chrome-extension://x/m/", {fetch, caches: /** @type {any} */ (caches)})).load(NAMES);
  assert.deepEqual(caches.opened, []);
});
