// @ts-check
// A stand-in model server for package.js tests: a fetch that answers files under a base URL as
// streams in small chunks (so hashing and progress see several), 404 for anything else, and counts
// the requests per file.
import {createHash} from "node:crypto";

/**
 * nomoat.json for `files` (sizes and sha256s); `unserved` adds entries by size only (never fetched).
 * @param {Record<string, Uint8Array>} files
 * @param {Record<string, number>} [unserved]
 */
export function manifestOf(files, unserved = {}) {
  /** @type {Record<string, {size: number, sha256: string}>} */
  const out = {};
  for (const [n, b] of Object.entries(files)) out[n] = {size: b.byteLength, sha256: createHash("sha256").update(b).digest("hex")};
  for (const [n, size] of Object.entries(unserved)) out[n] = {size, sha256: "0".repeat(64)};
  return new TextEncoder().encode(JSON.stringify({format: 2, files: out}));
}

/**
 * @param {string} base the package URL
 * @param {Record<string, Uint8Array>} all every file served, by name under `base`
 * @param {number} chunk bytes per streamed chunk
 */
export function fakeServer(base, all, chunk) {
  /** @type {Record<string, number>} */
  const hits = {};
  /** @type {import("../src/package.js").Fetch} */
  const fetch = async (url) => {
    const name = url.startsWith(base) ? url.slice(base.length) : "";
    hits[name] = (hits[name] || 0) + 1;
    const body = all[name];
    if (!body) return new Response("no", {status: 404});
    let o = 0;
    return new Response(new ReadableStream({pull(c) {
      if (o >= body.length) return c.close();
      c.enqueue(body.slice(o, o += chunk));
    }}));
  };
  return {fetch, hits};
}
