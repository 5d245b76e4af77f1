// @ts-check
// The incremental SHA-256 (web/src/sha256.js) against node:crypto: every length around the block and
// padding boundaries, random chunkings of one message (a chunk may end anywhere in a block), views
// of a SharedArrayBuffer (what the wasm decoder's memory is), the FIPS 180-4 examples; and its speed.
import assert from "node:assert/strict";
import {createHash} from "node:crypto";
import {test} from "node:test";

import {Sha256, sha256Hex} from "../src/sha256.js";

const nodeHex = (/** @type {Uint8Array} */ b) => createHash("sha256").update(b).digest("hex");
const bytes = (/** @type {number} */ n, /** @type {number} */ seed) => Uint8Array.from({length: n}, (_, i) => (i * 131 + seed * 7 + (i >> 8)) & 255);

test("the FIPS 180-4 examples", () => {
  assert.equal(sha256Hex(new Uint8Array(0)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(sha256Hex(new TextEncoder().encode("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(sha256Hex(new TextEncoder().encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
});

test("every length from 0 to 300 bytes, whole and byte by byte", () => {
  for (let n = 0; n <= 300; n++) {
    const b = bytes(n, n);
    assert.equal(sha256Hex(b), nodeHex(b), `length ${n}`);
    const h = new Sha256();
    for (let i = 0; i < n; i++) h.update(b.subarray(i, i + 1));
    assert.equal(h.hex(), nodeHex(b), `length ${n}, byte by byte`);
  }
});

test("random chunkings of one message, and views of shared memory", () => {
  let s = 1;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const msg = bytes(70_001, 3), want = nodeHex(msg);
  for (let trial = 0; trial < 40; trial++) {
    const h = new Sha256();
    for (let o = 0; o < msg.length;) {
      const n = Math.floor(rand() * (trial < 20 ? 200 : 20_000));
      h.update(msg.subarray(o, o += n));
    }
    assert.equal(h.hex(), want, `trial ${trial}`);
  }
  const shared = new Uint8Array(new SharedArrayBuffer(msg.length + 5), 5);
  shared.set(msg);
  assert.equal(new Sha256().update(shared.subarray(0, 40_000)).update(shared.subarray(40_000)).hex(), want);
  const h = new Sha256().update(msg);
  assert.equal(h.hex(), h.hex()); // hex() twice: the same digest
  assert.throws(() => h.update(msg), /after hex/);
});

test("speed (MB/s, printed)", () => {
  const b = bytes(16 << 20, 5), t = performance.now(), h = new Sha256();
  for (let o = 0; o < b.length; o += 1 << 16) h.update(b.subarray(o, o + (1 << 16)));
  const hex = h.hex(), s = (performance.now() - t) / 1000;
  assert.equal(hex, nodeHex(b));
  console.log(`sha256.js: ${(16 / s).toFixed(0)} MB/s (64 KiB chunks, 16 MiB)`);
});
