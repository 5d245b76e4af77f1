// Evaluated in a Chromium page by tests/test_wasm_engine.py (page.evaluate): nomoat's wasm decoder
// kernels on one random weight, a = {n, k, T, bits, block, w: bytes, s: f32, c: f32 | null, x: f32 (T*k),
// relaxed: whether to run matmul8}: byteRange; quantize + matmul (the int16 path, the plain build);
// quantize8 + matmul8 and, for 4-bit blocks of 32, quantize + split16 + matmul16s (the relaxed-SIMD build),
// rows in two calls as the engine splits them between threads.
async ([a, plainUrl, relaxedUrl]) => {
  const load = async (url) => {
    const memory = new WebAssembly.Memory({initial: 256, maximum: 65536});
    const {instance} = await WebAssembly.instantiate(await (await fetch(url)).arrayBuffer(), {env: {memory, abort() {
      throw new Error("abort");
    }}});
    const k = instance.exports;
    let top = (k.heapBase() + 63) & ~63;
    const alloc = (bytes) => {
      const p = top;
      top = (top + bytes + 63) & ~63;
      return p;
    };
    const w = alloc(a.w.length), s = alloc(a.s.length * 4), c = a.c ? alloc(a.c.length * 4) : 0, x = alloc(a.x.length * 4);
    new Uint8Array(memory.buffer, w, a.w.length).set(a.w);
    new Float32Array(memory.buffer, s, a.s.length).set(a.s);
    if (c) new Float32Array(memory.buffer, c, a.c.length).set(a.c);
    new Float32Array(memory.buffer, x, a.x.length).set(a.x);
    const nk = a.T * a.k, xq = alloc(nk * 2), xs = alloc(nk / 8), xf = alloc(nk / 4), xi = alloc(nk * 3), y = alloc(a.T * a.n * 4);
    return {k, memory, w, s, c, x, xq, xs, xf, xi, y};
  };
  const {n, k: K, T, bits, block} = a, perm = bits === 4 ? 1 : 0, half = block === 16 && a.c ? 1 : 0;
  const out = {};
  const p = await load(plainUrl);
  out.range = p.k.byteRange(p.w, a.w.length);
  p.k.quantize(p.x, K, T, perm, half, p.xq, p.xs, p.xf);
  p.k.matmul(p.w, p.s, p.c, n, K, bits, block, 0, n, T, p.xq, p.xs, p.xf, p.y, n);
  out.y16 = Array.from(new Float32Array(p.memory.buffer, p.y, T * n));
  out.xq16 = Array.from(new Int16Array(p.memory.buffer, p.xq, T * K));
  out.y16each = []; // each token alone (T = 1), as decode steps take them
  for (let t = 0; t < T; t++) {
    p.k.quantize(p.x + t * K * 4, K, 1, perm, half, p.xq, p.xs, p.xf);
    p.k.matmul(p.w, p.s, p.c, n, K, bits, block, 0, n, 1, p.xq, p.xs, p.xf, p.y, n);
    out.y16each.push(...new Float32Array(p.memory.buffer, p.y, n));
  }
  out.relaxedPlain = p.k.RELAXED.value;
  if (a.relaxed) {
    const r = await load(relaxedUrl), lo = bits === 4 ? 0 : out.range & 255, bias = bits === 4 ? -8 : lo - 128;
    out.relaxed = r.k.RELAXED.value;
    if (bits === 4 && block === 32) { // the int16 path's split16 + matmul16s, rows in two calls
      r.k.quantize(r.x, K, T, 1, 0, r.xq, r.xs, r.xf);
      const xp = r.xi + 0, xb = xp + T * K * 2; // (scratch: xi's region is reused below)
      r.k.split16(r.xq, K, T, xp, xb);
      const split = (n >> 3) << 2;
      r.k.matmul16s(r.w, r.s, r.c, n, K, 0, split, T, xp, xb, r.xs, r.xf, r.y, n);
      r.k.matmul16s(r.w, r.s, r.c, n, K, split, n, T, xp, xb, r.xs, r.xf, r.y, n);
      out.y16s = Array.from(new Float32Array(r.memory.buffer, r.y, T * n));
    }
    r.k.quantize8(r.x, K, T, perm, half, bias, block, r.xq, r.xs, r.xf, r.xi);
    const split = (n >> 3) << 2;
    r.k.matmul8(r.w, r.s, r.c, n, K, bits, block, lo, 0, split, T, r.xq, r.xs, r.xf, r.xi, r.y, n);
    r.k.matmul8(r.w, r.s, r.c, n, K, bits, block, lo, split, n, T, r.xq, r.xs, r.xf, r.xi, r.y, n);
    out.xq = Array.from(new Int8Array(r.memory.buffer, r.xq, T * K));
    out.xs = Array.from(new Float32Array(r.memory.buffer, r.xs, T * K / 32));
    out.xi = Array.from(new Int32Array(r.memory.buffer, r.xi, T * K / block));
    out.y8 = Array.from(new Float32Array(r.memory.buffer, r.y, T * n));
  }
  return out;
}
