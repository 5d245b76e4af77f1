// @ts-check
// An incremental SHA-256 (FIPS 180-4) in plain JS: update(bytes) any number of times, then
// hex(). WebCrypto's digest() takes the whole message at once and refuses views of a
// SharedArrayBuffer, so a file streamed chunk by chunk into the wasm decoder's (shared) memory is
// hashed here as its chunks arrive (package.js). Tested against node:crypto on every length around
// the block boundaries and on random chunkings (web/test/sha256.test.js).

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export class Sha256 {
  constructor() {
    this.h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Int32Array(64);
    this.buf = new Uint8Array(64); // a block's bytes not yet hashed
    this.fill = 0; // how many of them
    this.length = 0; // bytes so far
    this.done = false;
  }

  /**
   * Adds bytes (any Uint8Array, a view of shared memory included) to the message.
   * @param {Uint8Array} bytes
   * @returns {this}
   */
  update(bytes) {
    if (this.done) throw new Error("Sha256: update() after hex()");
    let i = 0;
    const n = bytes.length;
    this.length += n;
    if (this.fill) { // complete the pending block first
      const take = Math.min(64 - this.fill, n);
      this.buf.set(bytes.subarray(0, take), this.fill);
      this.fill += take;
      i = take;
      if (this.fill < 64) return this;
      this.blocks(this.buf, 0, 64);
      this.fill = 0;
    }
    const whole = i + ((n - i) & ~63);
    if (whole > i) this.blocks(bytes, i, whole);
    if (whole < n) {
      this.buf.set(bytes.subarray(whole), 0);
      this.fill = n - whole;
    }
    return this;
  }

  /** The digest as 64 lowercase hex digits; the hash takes no more bytes after. */
  hex() {
    if (!this.done) {
      const bits = this.length * 8, pad = new Uint8Array(((this.fill + 8) >> 6) * 64 + 64 - this.fill);
      pad[0] = 0x80;
      const hi = Math.floor(bits / 2 ** 32), lo = bits >>> 0, e = pad.length;
      pad[e - 8] = hi >>> 24; pad[e - 7] = hi >>> 16; pad[e - 6] = hi >>> 8; pad[e - 5] = hi;
      pad[e - 4] = lo >>> 24; pad[e - 3] = lo >>> 16; pad[e - 2] = lo >>> 8; pad[e - 1] = lo;
      const length = this.length;
      this.update(pad);
      this.length = length;
      this.done = true;
    }
    return Array.from(this.h, (x) => (x >>> 0).toString(16).padStart(8, "0")).join("");
  }

  /**
   * The compression function over the 64-byte blocks of bytes[from, to). The rounds go eight at a
   * time with the eight working variables renamed instead of shifted (round t's h is round t+1's
   * g, ...): each pair of lines is one round (T1, then d += T1 and the new a = T1 + T2). About 1.2x
   * the speed of a one-round loop in V8 (web/test/sha256.test.js prints the speed).
   * @param {Uint8Array} p @param {number} from @param {number} to
   */
  blocks(p, from, to) {
    const w = this.w, h = this.h;
    let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
    for (let o = from; o < to; o += 64) {
      for (let t = 0; t < 16; t++) {
        const j = o + t * 4;
        w[t] = (p[j] << 24) | (p[j + 1] << 16) | (p[j + 2] << 8) | p[j + 3];
      }
      for (let t = 16; t < 64; t++) {
        const x = w[t - 15], y = w[t - 2];
        w[t] = (w[t - 16] + (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) + w[t - 7] +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, k = h7, t1 = 0;
      for (let t = 0; t < 64; t += 8) {
        t1 = (k + S1(e) + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
        d = (d + t1) | 0; k = (t1 + S0(a) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        t1 = (g + S1(d) + ((d & e) ^ (~d & f)) + K[t + 1] + w[t + 1]) | 0;
        c = (c + t1) | 0; g = (t1 + S0(k) + ((k & a) ^ (k & b) ^ (a & b))) | 0;
        t1 = (f + S1(c) + ((c & d) ^ (~c & e)) + K[t + 2] + w[t + 2]) | 0;
        b = (b + t1) | 0; f = (t1 + S0(g) + ((g & k) ^ (g & a) ^ (k & a))) | 0;
        t1 = (e + S1(b) + ((b & c) ^ (~b & d)) + K[t + 3] + w[t + 3]) | 0;
        a = (a + t1) | 0; e = (t1 + S0(f) + ((f & g) ^ (f & k) ^ (g & k))) | 0;
        t1 = (d + S1(a) + ((a & b) ^ (~a & c)) + K[t + 4] + w[t + 4]) | 0;
        k = (k + t1) | 0; d = (t1 + S0(e) + ((e & f) ^ (e & g) ^ (f & g))) | 0;
        t1 = (c + S1(k) + ((k & a) ^ (~k & b)) + K[t + 5] + w[t + 5]) | 0;
        g = (g + t1) | 0; c = (t1 + S0(d) + ((d & e) ^ (d & f) ^ (e & f))) | 0;
        t1 = (b + S1(g) + ((g & k) ^ (~g & a)) + K[t + 6] + w[t + 6]) | 0;
        f = (f + t1) | 0; b = (t1 + S0(c) + ((c & d) ^ (c & e) ^ (d & e))) | 0;
        t1 = (a + S1(f) + ((f & g) ^ (~f & k)) + K[t + 7] + w[t + 7]) | 0;
        e = (e + t1) | 0; a = (t1 + S0(b) + ((b & c) ^ (b & d) ^ (c & d))) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + k) | 0;
    }
    h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4; h[5] = h5; h[6] = h6; h[7] = h7;
  }
}

/** Σ1(x) of FIPS 180-4. @param {number} x */
const S1 = (x) => ((x >>> 6) | (x << 26)) ^ ((x >>> 11) | (x << 21)) ^ ((x >>> 25) | (x << 7));
/** Σ0(x). @param {number} x */
const S0 = (x) => ((x >>> 2) | (x << 30)) ^ ((x >>> 13) | (x << 19)) ^ ((x >>> 22) | (x << 10));

/** The sha256 of bytes, hex. @param {Uint8Array} bytes */
export function sha256Hex(bytes) {
  return new Sha256().update(bytes).hex();
}
