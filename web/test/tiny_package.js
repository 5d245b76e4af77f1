// @ts-check
// Tiny model packages made in JS for the wasm decoder's tests (wasm_engine.test.js,
// hostile_wasm_engine.test.js, wasm_arch.test.js): the data file and its tensor directory as the
// converter writes them (onnx/nomoat_tensors.json: offset, length, dtype, shape), every weight layout
// of the issue 12 contract; a plain f64 JS forward pass over the same weights (the reference the
// decoder's logits are compared with); and a Node stand-in for the browser's Worker, so the
// decoder's helper thread (wasm_thread.mjs) runs in Node's tests too.
import {Worker as NodeWorker} from "node:worker_threads";

/**
 * A weight's layout: quantized [bits, block] with or without block offsets, or f32.
 * q4: Q4_0, q4o: Q4_1/Q4_K, q8: Q8_0/Q5_0, q8o: Q5_1/Q5_K, q8b16: Q6_K, q8b16o: a fused Q6_K with a
 * K-quant, f32: F16/BF16/F32.
 * @typedef {"q4" | "q4o" | "q8" | "q8o" | "q8b16" | "q8b16o" | "f32"} Layout
 */
export const LAYOUT = {q4: [4, 32, false], q4o: [4, 32, true], q8: [8, 32, false], q8o: [8, 32, true],
  q8b16: [8, 16, false], q8b16o: [8, 16, true], f32: [32, 0, false]};

/** The data file and directory being built. */
export class TinyPackage {
  /** @param {() => number} rand uniform in [0, 1) */
  constructor(rand) {
    this.rand = rand;
    /** @type {Uint8Array[]} */
    this.parts = [];
    /** @type {Record<string, {offset: number, length: number, dtype: string, shape: number[]}>} */
    this.tensors = {};
    this.offset = 0;
  }
  /** @param {string} name @param {Uint8Array} bytes @param {string} dtype @param {number[]} shape */
  put(name, bytes, dtype, shape) {
    this.tensors[name] = {offset: this.offset, length: bytes.byteLength, dtype, shape};
    const padded = new Uint8Array((bytes.byteLength + 63) & ~63);
    padded.set(bytes);
    this.parts.push(padded);
    this.offset += padded.byteLength;
  }
  /** n f32s of f(), as bytes. @param {number} n @param {() => number} f */
  f32(n, f) {
    return new Uint8Array(Float32Array.from({length: n}, f).buffer);
  }
  /** A norm or bias (n,) f32. @param {string} name @param {number} n @param {() => number} f */
  vector(name, n, f) {
    this.put(name, this.f32(n, f), "float32", [n]);
  }
  /**
   * A weight (n, k) in `layout` whose dequantized entries are about `scale` in size (offsets a
   * quarter of it): random integers, scales in [0.5, 1.5) of the layout's step.
   * @param {string} prefix @param {number} n @param {number} k @param {Layout} layout @param {number} scale
   */
  linear(prefix, n, k, layout, scale) {
    const [bits, block, offsets] = LAYOUT[layout], rand = this.rand;
    if (!block) {
      this.put(prefix + ".weight", this.f32(n * k, () => scale * 1.7 * (2 * rand() - 1)), "float32", [n, k]);
      return;
    }
    const nb = k / block, step = scale / (bits === 4 ? 4.6 : 74);
    this.put(prefix + ".qweight", Uint8Array.from({length: n * k * bits / 8}, () => rand() * 256), "uint8", [n, nb, block * bits / 8]);
    this.put(prefix + ".scales", this.f32(n * nb, () => step * (0.5 + rand())), "float32", [n * nb]);
    if (offsets) this.put(prefix + ".block_offsets", this.f32(n * nb, () => scale * 0.5 * (rand() - 0.5)), "float32", [nb, n]);
  }
  /** The package's data file and directory. */
  build() {
    const data = new Uint8Array(this.offset);
    let o = 0;
    for (const p of this.parts) {
      data.set(p, o);
      o += p.byteLength;
    }
    return {data, tensors: {data: "model_q4.onnx_data", tensors: this.tensors}};
  }
}

/**
 * A weight of a package as f64 (n, k) row-major, dequantized plainly from its bytes (k: its input
 * width; block = k / qweight.shape[1], bits = qweight.shape[2] * 8 / block, as the contract says):
 * W[r, j] = (q - 2^(bits-1)) * scale[r, j / block] + offset[j / block, r]; 4-bit element 2i of a
 * block of 32 in the low nibble of its byte i.
 * @param {{data: Uint8Array, tensors: {tensors: Record<string, any>}}} m
 * @param {string} prefix
 * @param {number} k
 */
export function dequantize(m, prefix, k) {
  const t = m.tensors.tensors, buf = m.data.buffer, at = m.data.byteOffset;
  if (t[prefix + ".weight"]) {
    const e = t[prefix + ".weight"];
    return {n: e.shape[0], k, w: Float64Array.from(new Float32Array(buf, at + e.offset, e.shape[0] * k))};
  }
  const q = t[prefix + ".qweight"], [n, nb, bytes] = q.shape, block = k / nb, bits = bytes * 8 / block;
  const sc = new Float32Array(buf, at + t[prefix + ".scales"].offset, n * nb);
  const off = t[prefix + ".block_offsets"] ? new Float32Array(buf, at + t[prefix + ".block_offsets"].offset, n * nb) : null;
  const qb = new Uint8Array(buf, at + q.offset, n * nb * bytes), w = new Float64Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < k; j++) {
      const b = Math.floor(j / block);
      let v;
      if (bits === 4) {
        const byte = qb[(r * nb + b) * 16 + ((j % 32) >> 1)];
        v = (j % 2 ? byte >> 4 : byte & 15) - 8;
      } else {
        v = qb[r * k + j] - 128;
      }
      w[r * k + j] = v * sc[r * nb + b] + (off ? off[b * n + r] : 0);
    }
  }
  return {n, k, w};
}

/**
 * The JS f64 forward pass of a package (every architecture of the contract), every position's
 * logits for ids from position 0: the reference for the wasm decoder.
 * @param {{data: Uint8Array, tensors: {tensors: Record<string, any>}, config: Record<string, any>}} m
 * @param {number[]} ids
 */
export function referenceLogits(m, ids) {
  const c = m.config, H = c.hidden_size, I = c.intermediate_size, nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  const hd = c.head_dim ?? H / nq, L = c.num_hidden_layers, V = c.vocab_size, eps = c.rms_norm_eps, t = m.tensors.tensors;
  const vec = (/** @type {string} */ name) => t[name] ?
    Float64Array.from(new Float32Array(m.data.buffer, m.data.byteOffset + t[name].offset, t[name].shape[0])) : null;
  const lin = (/** @type {string} */ p, /** @type {number} */ k) => dequantize(m, p, k);
  const matvec = (/** @type {{n: number, k: number, w: Float64Array}} */ W, /** @type {Float64Array} */ x) => {
    const y = new Float64Array(W.n);
    for (let r = 0; r < W.n; r++) {
      let s = 0;
      for (let j = 0; j < W.k; j++) s += W.w[r * W.k + j] * x[j];
      y[r] = s;
    }
    return y;
  };
  const rms = (/** @type {Float64Array} */ x, /** @type {Float64Array} */ w) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const r = 1 / Math.sqrt(ss / x.length + eps);
    return x.map((v, j) => v * r * w[j]);
  };
  const types = c.layer_types ?? Array(L).fill("full_attention");
  // RoPE on each head's first rd values (partial_rotary_factor), cos/sin times LongRoPE's attention factor
  const rd = Math.round(hd * (c.partial_rotary_factor ?? 1)), s = c.rope_scaling, kind = s?.rope_type;
  const mscale = kind === "longrope" ? s.attention_factor : 1;
  const invFreq = (/** @type {number} */ base, /** @type {boolean} */ scaled) => Array.from({length: rd / 2}, (_, i) => {
    const f = Math.pow(base, -2 * i / rd);
    if (!scaled || !s) return f;
    if (kind === "linear") return f / s.factor;
    if (kind === "longrope") return f / (c.max_position_embeddings > s.original_max_position_embeddings ? s.long_factor : s.short_factor)[i];
    const wave = 2 * Math.PI / f, lo = s.original_max_position_embeddings / s.low_freq_factor;
    const hi = s.original_max_position_embeddings / s.high_freq_factor;
    if (wave < hi) return f;
    if (wave > lo) return f / s.factor;
    const sm = (s.original_max_position_embeddings / wave - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return (1 - sm) * f / s.factor + sm * f;
  });
  const rope = (/** @type {Float64Array} */ x, /** @type {number} */ pos, /** @type {number[]} */ inv) => {
    for (let h = 0; h < x.length / hd; h++) {
      for (let i = 0; i < rd / 2; i++) {
        const a = x[h * hd + i], b = x[h * hd + i + rd / 2], co = Math.cos(pos * inv[i]) * mscale, si = Math.sin(pos * inv[i]) * mscale;
        x[h * hd + i] = a * co - b * si;
        x[h * hd + i + rd / 2] = b * co + a * si;
      }
    }
  };
  const headNorm = (/** @type {Float64Array} */ x, /** @type {Float64Array | null} */ w) => {
    if (!w) return x;
    const out = new Float64Array(x.length);
    for (let h = 0; h < x.length / hd; h++) out.set(rms(x.subarray(h * hd, (h + 1) * hd), w), h * hd);
    return out;
  };
  const embed = lin("embed", H), head = t["lm_head.qweight"] || t["lm_head.weight"] ? lin("lm_head", H) : embed;
  const mult = c.model_type === "gemma3" ? Math.sqrt(H) : 1, scale = 1 / Math.sqrt(c.query_pre_attn_scalar ?? hd);
  const layers = Array.from({length: L}, (_, l) => {
    const p = `model.layers.${l}`, sliding = types[l] === "sliding_attention";
    return {an: vec(`${p}.input_layernorm.weight`), fn: vec(`${p}.post_attention_layernorm.weight`), qkv: lin(`${p}.attn.qkv_proj`, H),
      bias: vec(`${p}.attn.qkv_proj.bias`), qn: vec(`${p}.attn.q_norm.weight`), kn: vec(`${p}.attn.k_norm.weight`),
      pa: vec(`${p}.attn.post_norm.weight`), pf: vec(`${p}.mlp.post_norm.weight`), o: lin(`${p}.attn.o_proj`, nq * hd),
      gu: lin(`${p}.mlp.gate_up_proj`, H), down: lin(`${p}.mlp.down_proj`, I), win: sliding ? c.sliding_window : 0,
      inv: sliding ? invFreq(c.rope_local_base_freq ?? c.rope_theta, false) : invFreq(c.rope_theta, true),
      /** @type {Float64Array[]} */ K: [], /** @type {Float64Array[]} */ V: []};
  });
  const fnorm = /** @type {Float64Array} */ (vec("model.norm.weight"));
  const gelu = c.hidden_act === "gelu_pytorch_tanh";
  const out = new Float32Array(ids.length * V);
  ids.forEach((id, pos) => {
    let x = Float64Array.from(embed.w.subarray(id * H, (id + 1) * H), (v) => v * mult);
    for (const w of layers) {
      let qkv = matvec(w.qkv, rms(x, /** @type {Float64Array} */ (w.an)));
      if (w.bias) qkv = qkv.map((v, j) => v + /** @type {Float64Array} */ (w.bias)[j]);
      const q = headNorm(qkv.slice(0, nq * hd), w.qn), k = headNorm(qkv.slice(nq * hd, (nq + nkv) * hd), w.kn);
      rope(q, pos, w.inv);
      rope(k, pos, w.inv);
      w.K.push(k);
      w.V.push(qkv.slice((nq + nkv) * hd));
      const att = new Float64Array(nq * hd), g = nq / nkv, from = w.win ? Math.max(0, pos - w.win + 1) : 0;
      for (let h = 0; h < nq; h++) {
        const kv = Math.floor(h / g), s = [];
        for (let j = from; j <= pos; j++) {
          let d = 0;
          for (let i = 0; i < hd; i++) d += q[h * hd + i] * w.K[j][kv * hd + i];
          s.push(d * scale);
        }
        const mx = Math.max(...s), e = s.map((v) => Math.exp(v - mx)), z = e.reduce((a, b) => a + b, 0);
        for (let j = from; j <= pos; j++) {
          for (let i = 0; i < hd; i++) att[h * hd + i] += e[j - from] / z * w.V[j][kv * hd + i];
        }
      }
      let o = matvec(w.o, att);
      if (w.pa) o = rms(o, w.pa);
      x = x.map((v, j) => v + o[j]);
      const gu = matvec(w.gu, rms(x, /** @type {Float64Array} */ (w.fn)));
      const act = Float64Array.from({length: I}, (_, j) => {
        const a = gu[j];
        return (gelu ? 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3))) : a / (1 + Math.exp(-a))) * gu[I + j];
      });
      let d = matvec(w.down, act);
      if (w.pf) d = rms(d, w.pf);
      x = x.map((v, j) => v + d[j]);
    }
    out.set(matvec(head, rms(x, fnorm)), pos * V);
  });
  return out;
}

/**
 * A stand-in for the browser's Worker over node:worker_threads, enough for wasm_engine.mjs's helper
 * thread: `self` with postMessage/onmessage in the thread, onmessage/onerror/postMessage/terminate here.
 */
export class NodeWorkerShim {
  /** @param {URL | string} url a module URL */
  constructor(url) {
    const boot = `const {parentPort} = require("node:worker_threads");
      const queue = [];
      globalThis.self = {postMessage: (m) => parentPort.postMessage(m), onmessage: null};
      parentPort.on("message", (m) => self.onmessage ? self.onmessage({data: m}) : queue.push(m));
      import(${JSON.stringify(String(url))}).then(() => { for (const m of queue.splice(0)) self.onmessage({data: m}); });`;
    this.w = new NodeWorker(boot, {eval: true});
    /** @type {((ev: {data: unknown}) => void) | null} */
    this.onmessage = null;
    /** @type {((ev: {message: string}) => void) | null} */
    this.onerror = null;
    this.w.on("message", (data) => this.onmessage && this.onmessage({data}));
    this.w.on("error", (e) => this.onerror && this.onerror({message: e.message}));
  }
  /** @param {unknown} m */
  postMessage(m) {
    this.w.postMessage(m);
  }
  terminate() {
    this.w.terminate();
  }
}
