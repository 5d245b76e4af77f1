// Runs the wasm decoder's 16-bit KV cache kernels alone (kvWrite16, attend16, attendMerge) for
// tests/test_wasm_engine.py. Usage: node attention_driver.mjs DIST IN.json OUT.json
// IN: {nq, nkv, hd, P, T, J, q: (T, nq*hd) flat, k, v: (P+T, nkv*hd) flat, win (0: causal, else the
// last win positions), qscalar (scores times qscalar^-1/2; default hd)}. The cache is written with
// kvWrite16 for all P+T positions, then attend16 runs over [0, J) and [J, P+T) and attendMerge joins them. OUT: {out (T, nq*hd), k16, v16 (nkv, P+T, hd) ints, ks, vs (nkv, P+T) scales}.
import fs from "node:fs";
import path from "node:path";

const [dist, inp, outp] = process.argv.slice(2);
const a = JSON.parse(fs.readFileSync(inp));
const memory = new WebAssembly.Memory({initial: 256, maximum: 65536});
const k = (await WebAssembly.instantiate(fs.readFileSync(path.join(dist, "nomoat-decoder.wasm")),
  {env: {memory, abort() { throw new Error("abort"); }}})).instance.exports;
let top = (k.heapBase() + 63) & ~63;
const alloc = (bytes) => { const p = top; top += (bytes + 63) & ~63; return p; };
const {nq, nkv, hd, P, T, J, win = 0, qscalar = hd} = a, n = P + T, cap = n + 3, qd = nq * hd;
const f32 = (ptr, len) => new Float32Array(memory.buffer, ptr, len);
const kin = alloc(n * nkv * hd * 4), vin = alloc(n * nkv * hd * 4), q = alloc(T * qd * 4);
f32(kin, n * nkv * hd).set(a.k);
f32(vin, n * nkv * hd).set(a.v);
f32(q, T * qd).set(a.q);
const K = alloc(nkv * cap * hd * 2), V = alloc(nkv * cap * hd * 2), Ks = alloc(nkv * cap * 4), Vs = alloc(nkv * cap * 4);
k.kvWrite16(kin, nkv * hd, 0, nkv, hd, n, K, Ks, cap, 0, k.KEY_LEVELS.value);
k.kvWrite16(vin, nkv * hd, 0, nkv, hd, n, V, Vs, cap, 0, 32767);
const pa = alloc(T * nq * (hd + 4) * 4), pb = alloc(T * nq * (hd + 4) * 4), sc = alloc((hd + (nq / nkv) * (cap + 4)) * 4);
const out = alloc(T * qd * 4);
k.attend16(q, qd, K, Ks, V, Vs, cap, nq, nkv, hd, P, T, 0, J, pa, sc, win, qscalar);
k.attend16(q, qd, K, Ks, V, Vs, cap, nq, nkv, hd, P, T, J, n, pb, sc, win, qscalar);
k.attendMerge(pa, pb, T, nq, hd, out, qd);
const rows = (ptr, Arr, width) => {
  const r = [];
  for (let h = 0; h < nkv; h++) r.push(...new Arr(memory.buffer, ptr + h * cap * width * Arr.BYTES_PER_ELEMENT, n * width));
  return r;
};
fs.writeFileSync(outp, JSON.stringify({out: Array.from(f32(out, T * qd)), k16: rows(K, Int16Array, hd), v16: rows(V, Int16Array, hd),
  ks: rows(Ks, Float32Array, 1), vs: rows(Vs, Float32Array, 1)}));
