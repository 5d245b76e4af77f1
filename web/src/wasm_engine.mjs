// nomoat's own wasm decoder engine for Llama-family models: the kernels (web/src/wasm/decoder.ts,
// compiled to nomoat-decoder.wasm with SIMD) read the 4-/8-bit blocks of onnx/model_q4.onnx_data
// in place, the KV cache lives in wasm memory, and logits are a Float32Array view of it.
// Same interface as runtime.mjs's onnxruntime Engine: newState(), newSampler(params, seen),
// step(state, start, ids, sampler, mask) → next token id (what Python calls: logits never leave
// it), logits(state, start, ids) → a copy of every position's logits (tests), dispose().
// forward(state, ids, allLogits) returns a view of the logits, valid only until the next
// forward() or fork() of any state (either may grow the memory or reuse the logits region).
//
// Memory (one WebAssembly.Memory): the weights (the whole data file, copied once), cos/sin tables,
// scratch for a chunk of up to CHUNK tokens, the logits, and one KV block per state:
// (layer, key|value, kv head, capacity, head_dim) int16 with an f32 scale per row (half an f32
// cache's bytes: decode at long contexts reads the cache more than the weights), grown by doubling.
//
// Threads: with crossOriginIsolated (SharedArrayBuffer) and 2+ cores, the memory is shared with a
// helper Worker (wasm_thread.mjs) running the same kernels; each matmul splits its rows and each
// attention its cached positions (then the partial softmaxes are merged). The arithmetic does not
// depend on the thread count: the same logits.

const CHUNK = 64; // prefill tokens per pass through the layers
const PAGE = 65536;

export async function loadDecoder(threads = 1, url = new URL(threads > 1 ? "nomoat-decoder-mt.wasm" : "nomoat-decoder.wasm",
                                                                 import.meta.url)) {
  if (url.protocol === "file:") { // Node (tests)
    const fs = await import("node:fs");
    return WebAssembly.compile(fs.readFileSync(url));
  }
  const r = await fetch(url);
  if (!r.ok) throw new Error(`Could not fetch nomoat's wasm decoder ${url} (HTTP ${r.status}); rebuild web/dist ('make web').`);
  return WebAssembly.compileStreaming ? WebAssembly.compileStreaming(r) : WebAssembly.compile(await r.arrayBuffer());
}

// First-fit allocator over the wasm memory, above the module's own data; grows the memory.
class Heap {
  constructor(memory, base) {
    this.memory = memory;
    this.top = align(base);
    this.free = []; // [{ptr, size}] sorted by ptr
  }
  alloc(bytes) {
    const size = align(Math.max(16, bytes));
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      if (f.size >= size) {
        const ptr = f.ptr;
        f.ptr += size;
        f.size -= size;
        if (!f.size) this.free.splice(i, 1);
        return ptr;
      }
    }
    const ptr = this.top;
    this.top += size;
    const need = Math.ceil(this.top / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (need > 0) {
      try {
        this.memory.grow(need);
      } catch (e) {
        this.top -= size;
        throw Object.assign(new Error(`nomoat's wasm decoder is out of memory (${(this.top / 2 ** 20).toFixed(0)} MB used, ` +
          `${(size / 2 ** 20).toFixed(0)} MB more asked): close other sessions or use a shorter context.`), {name: "QuotaExceededError"});
      }
    }
    return ptr;
  }
  release(ptr, bytes) {
    this.free.push({ptr, size: align(Math.max(16, bytes))});
    this.free.sort((a, b) => a.ptr - b.ptr);
    const merged = [];
    for (const f of this.free) { // coalesce neighbours
      const last = merged[merged.length - 1];
      if (last && last.ptr + last.size === f.ptr) last.size += f.size;
      else merged.push({...f});
    }
    const last = merged[merged.length - 1];
    if (last && last.ptr + last.size === this.top) { // the tail goes back to the bump pointer
      this.top = last.ptr;
      merged.pop();
    }
    this.free = merged;
  }
}

function align(n) {
  return (n + 63) & ~63;
}

function named(name, message) {
  return Object.assign(new Error(message), {name});
}

// The Linear layers of one model: each a quantized weight's addresses in memory.
function linear(dir, base, prefix) {
  const q = dir.tensors[prefix + ".qweight"], s = dir.tensors[prefix + ".scales"];
  const c = dir.tensors[prefix + ".block_offsets"];
  if (!q || !s) throw named("DataError", `nomoat_tensors.json has no ${prefix}.qweight/.scales; convert the model again ('nomoat convert').`);
  const [n, nb, blob] = q.shape;
  return {w: base + q.offset, s: base + s.offset, c: c ? base + c.offset : 0, n, k: nb * 32, bits: blob === 16 ? 4 : 8};
}

export class KVState {
  constructor(engine) {
    this.engine = engine;
    this.length = 0; // positions held
    this.cap = 0; // positions allocated
    this.ptr = 0;
  }
  // One block: the 16-bit rows of every (layer, key|value, kv head) slice, (L, 2, nkv, cap, hd) i16,
  // then their scales, (L, 2, nkv, cap) f32.
  bytesFor(cap) {
    const c = this.engine.c;
    return c.L * 2 * c.nkv * cap * (2 * c.hd + 4);
  }
  // The cache of layer l, key (kv = 0) or value (1): (nkv, cap, hd) i16 at this address ...
  at(l, kv) {
    const c = this.engine.c;
    return this.ptr + (l * 2 + kv) * c.nkv * this.cap * c.hd * 2;
  }
  // ... and its scales, (nkv, cap) f32.
  scalesAt(l, kv) {
    const c = this.engine.c;
    return this.ptr + c.L * 2 * c.nkv * this.cap * c.hd * 2 + (l * 2 + kv) * c.nkv * this.cap * 4;
  }
  // Copies the used part of every slice from `from` (another state's block) into this block.
  copyFrom(from) {
    const c = this.engine.c, u8 = new Uint8Array(this.engine.memory.buffer), slices = c.L * 2 * c.nkv;
    for (const [row, base, fbase] of [[2 * c.hd, this.ptr, from.ptr],
      [4, this.ptr + slices * this.cap * c.hd * 2, from.ptr + slices * from.cap * c.hd * 2]]) {
      for (let s = 0; s < slices; s++) {
        const src = fbase + s * from.cap * row;
        u8.copyWithin(base + s * this.cap * row, src, src + from.length * row);
      }
    }
  }
  ensure(n) {
    if (n <= this.cap) return;
    const e = this.engine, c = e.c;
    const cap = Math.min(c.maxPos, Math.max(n, 2 * this.cap, 64));
    const old = {ptr: this.ptr, cap: this.cap, length: this.length};
    this.ptr = e.heap.alloc(this.bytesFor(cap));
    this.cap = cap;
    if (old.ptr) {
      this.copyFrom(old);
      e.heap.release(old.ptr, this.bytesFor(old.cap));
    }
  }
  fork() {
    const s = new KVState(this.engine);
    if (this.length) {
      s.ensure(this.length);
      s.copyFrom(this);
      s.length = this.length;
    }
    return s;
  }
  truncate(n) {
    if (n < this.length) this.length = Math.max(0, n);
  }
  dispose() {
    if (this.ptr && this.engine.heap) this.engine.heap.release(this.ptr, this.bytesFor(this.cap));
    this.ptr = 0;
    this.cap = 0;
    this.length = 0;
  }
}

export class WasmEngine {
  // data: the bytes of onnx/model_q4.onnx_data; tensors: onnx/nomoat_tensors.json parsed; config:
  // config.json parsed; Sampler: runtime.mjs's JS sampler class; threads: 1 or 2 (default: 2 where
  // shared memory and 2+ cores are available).
  static async create({data, tensors, config, Sampler, threads = defaultThreads()}) {
    const e = new WasmEngine();
    e.device = "wasm";
    e.engine = "nomoat";
    e.threads = threads;
    e.Sampler = Sampler;
    const cfg = config;
    const c = e.c = {L: cfg.num_hidden_layers, H: cfg.hidden_size, I: cfg.intermediate_size, nq: cfg.num_attention_heads,
      nkv: cfg.num_key_value_heads, hd: cfg.head_dim || cfg.hidden_size / cfg.num_attention_heads, V: cfg.vocab_size,
      eps: cfg.rms_norm_eps, theta: cfg.rope_theta, maxPos: cfg.max_position_embeddings};
    if (c.hd % 16 || c.H % 32 || c.I % 32 || c.nq % c.nkv) {
      throw named("NotSupportedError", `nomoat's wasm decoder needs head_dim a multiple of 16 and hidden/intermediate sizes ` +
        `multiples of 32 (this model: ${c.hd}, ${c.H}, ${c.I}); use wasmEngine: "ort".`);
    }
    const module = await loadDecoder(threads);
    e.memory = new WebAssembly.Memory({initial: 1, maximum: 65536, shared: threads > 1});
    e.k = (await WebAssembly.instantiate(module, {env: {memory: e.memory, abort() {
      throw new Error("nomoat's wasm decoder aborted");
    }}})).exports;
    e.heap = new Heap(e.memory, e.k.heapBase());
    const W = e.heap.alloc(data.byteLength);
    new Uint8Array(e.memory.buffer, W, data.byteLength).set(data);
    const t = tensors.tensors, f32 = (name) => {
      if (!t[name]) throw named("DataError", `nomoat_tensors.json has no ${name}; convert the model again ('nomoat convert').`);
      return W + t[name].offset;
    };
    e.layers = [];
    for (let i = 0; i < c.L; i++) {
      const p = `model.layers.${i}`;
      e.layers.push({attnNorm: f32(`${p}.input_layernorm.weight`), ffnNorm: f32(`${p}.post_attention_layernorm.weight`),
        qkv: linear(tensors, W, `${p}.attn.qkv_proj`), o: linear(tensors, W, `${p}.attn.o_proj`),
        gateUp: linear(tensors, W, `${p}.mlp.gate_up_proj`), down: linear(tensors, W, `${p}.mlp.down_proj`)});
    }
    e.finalNorm = f32("model.norm.weight");
    if (!t["embed.qweight"]) {
      throw named("NotSupportedError", "nomoat's wasm decoder needs an 8-bit (Q8_0) token embedding; this model's is f32. " +
        "Use wasmEngine: \"ort\".");
    }
    e.embed = linear(tensors, W, "embed");
    e.head = t["lm_head.qweight"] ? linear(tensors, W, "lm_head") : e.embed;
    if (t["lm_head.weight"]) throw named("NotSupportedError", "nomoat's wasm decoder needs a quantized LM head; use wasmEngine: \"ort\".");
    // RoPE tables (positions, hd/2), as numpy computes them: angles in f64, cos/sin rounded to f32.
    const half = c.hd / 2;
    e.cos = e.heap.alloc(c.maxPos * half * 4);
    e.sin = e.heap.alloc(c.maxPos * half * 4);
    const cos = new Float32Array(e.memory.buffer, e.cos, c.maxPos * half), sin = new Float32Array(e.memory.buffer, e.sin, c.maxPos * half);
    for (let i = 0; i < half; i++) {
      const inv = 1 / c.theta ** ((2 * i) / c.hd);
      for (let p = 0; p < c.maxPos; p++) {
        cos[p * half + i] = Math.cos(p * inv);
        sin[p * half + i] = Math.sin(p * inv);
      }
    }
    // Scratch for CHUNK tokens.
    const T = CHUNK, qkvN = (c.nq + 2 * c.nkv) * c.hd, K = Math.max(c.H, c.I, c.nq * c.hd);
    e.qkvN = qkvN;
    e.s = {ids: e.heap.alloc(T * 4), x: e.heap.alloc(T * c.H * 4), h: e.heap.alloc(T * c.H * 4),
      xq: e.heap.alloc(T * K * 2), xs: e.heap.alloc(T * K / 8), xf: e.heap.alloc(T * K / 8),
      qkv: e.heap.alloc(T * qkvN * 4), att: e.heap.alloc(T * c.nq * c.hd * 4), o: e.heap.alloc(T * c.H * 4),
      gu: e.heap.alloc(T * 2 * c.I * 4), act: e.heap.alloc(T * c.I * 4),
      partA: e.heap.alloc(T * c.nq * (c.hd + 4) * 4), partB: e.heap.alloc(T * c.nq * (c.hd + 4) * 4)};
    e.scores = {ptr: 0, n: 0};
    e.scores2 = {ptr: 0, n: 0}; // the helper thread's (with threads > 1)
    e.logits = {ptr: 0, n: 0};
    if (threads > 1) e.pool = await Helper.start(module, e.memory, e.heap);
    return e;
  }
  newState() {
    return new KVState(this);
  }
  newSampler(params, seen = []) {
    return new this.Sampler(params.toJs ? params.toJs({dict_converter: Object.fromEntries}) : params, seen);
  }
  // One generation step, atomic: state back to `start` positions, ids appended, and with a sampler
  // the next token chosen from the last position's logits before any other call can run (the
  // logits region is shared by every state of this engine). Returns the token id, or -1 without a
  // sampler (a prefill only: the LM head is skipped).
  async step(state, start, ids, sampler, mask) {
    state.truncate(start);
    const logits = this.run(state, ids, false, !sampler);
    return sampler ? sampler.sample(logits, ids, mask) : -1;
  }
  // Every new position's logits, (len(ids) * vocab), copied out of wasm memory (tests).
  async logits(state, start, ids) {
    state.truncate(start);
    return this.run(state, ids, true, false).slice();
  }
  // Frees the wasm memory and stops the helper thread; the engine and its states are unusable after.
  dispose() {
    if (this.pool) this.pool.stop();
    this.pool = null;
    this.heap = null;
    this.k = null;
    this.memory = null;
  }
  // A scratch region of at least n floats, reused; grown when too small.
  grow(which, n) {
    const r = this[which];
    if (r.n < n) {
      if (r.ptr) this.heap.release(r.ptr, r.n * 4);
      r.n = Math.max(n, 2 * r.n);
      r.ptr = this.heap.alloc(r.n * 4);
    }
    return r.ptr;
  }
  // y (T, w.n) = x (T, w.k) @ W.T
  linear(w, x, T, y) {
    const s = this.s;
    this.k.quantize(x, w.k, T, w.bits === 4 ? 1 : 0, s.xq, s.xs, s.xf);
    const split = this.pool && w.n >= 64 ? (w.n >> 3) << 2 : 0; // the helper's rows: [0, split)
    if (split) this.pool.post(1, [w.w, w.s, w.c, w.n, w.k, w.bits, 0, split, T, s.xq, s.xs, s.xf, y, w.n]);
    this.k.matmul(w.w, w.s, w.c, w.n, w.k, w.bits, split, w.n, T, s.xq, s.xs, s.xf, y, w.n);
    if (split) this.pool.join();
  }
  // Attention of the chunk's T rows (positions pos..pos+T-1) over the cache in two ranges of
  // positions, [0, J) and [J, pos + T) (splitPoint); the helper thread (if any) takes the first, and
  // attendMerge joins them. The same split with one thread or two: the same logits.
  attention(state, l, pos, T, J) {
    const c = this.c, s = this.s, k = this.k, n = pos + T;
    const args = [s.qkv, this.qkvN, state.at(l, 0), state.scalesAt(l, 0), state.at(l, 1), state.scalesAt(l, 1),
      state.cap, c.nq, c.nkv, c.hd, pos, T];
    if (this.pool) this.pool.post(2, [...args, 0, J, s.partA, this.scores2.ptr]);
    else k.attend16(...args, 0, J, s.partA, this.scores.ptr);
    k.attend16(...args, J, n, s.partB, this.scores.ptr);
    if (this.pool) this.pool.join();
    k.attendMerge(s.partA, s.partB, T, c.nq, c.hd, s.att, c.nq * c.hd);
  }
  // Where a chunk's causal attention work (row t sees pos + t + 1 positions) is cut in half: the
  // least J with Σ_t min(pos + t + 1, J) >= half of it. The same for every layer of the chunk.
  static splitPoint(pos, T) {
    let J = 0;
    for (let hi = pos + T, half = (T * pos + T * (T + 1) / 2) / 2; J < hi;) {
      const mid = (J + hi) >> 1;
      let w = 0;
      for (let t = 0; t < T; t++) w += Math.min(pos + t + 1, mid);
      if (w >= half) hi = mid;
      else J = mid + 1;
    }
    return J;
  }
  // Append ids to state; returns a Float32Array view of the logits: (vocab,) for the last position,
  // or (len(ids) * vocab) when allLogits.
  async forward(state, ids, allLogits) {
    return this.run(state, ids, allLogits, false);
  }
  // forward(), synchronously; noLogits: skip the LM head (returns null).
  run(state, ids, allLogits, noLogits) {
    if (!this.heap) throw named("InvalidStateError", "This model was unloaded; load it again.");
    const c = this.c, S = ids.length, P = state.length;
    if (!S) throw named("TypeError", "forward() needs at least one token id.");
    const idArr = Int32Array.from(ids, (t) => {
      const id = Number(t);
      if (!(Number.isInteger(id) && id >= 0 && id < c.V)) throw named("TypeError", `token id ${t} is outside the vocabulary (0..${c.V - 1}).`);
      return id;
    });
    if (P + S > c.maxPos) {
      throw named("QuotaExceededError", `${P + S} tokens exceed the model's ${c.maxPos} positions.`);
    }
    state.ensure(P + S);
    const logits = this.grow("logits", (allLogits ? S : 1) * c.V);
    const scratch = c.hd + (c.nq / c.nkv) * (state.cap + 4); // attend16's: q as int16, a KV head's query heads' scores
    this.grow("scores", scratch);
    if (this.pool) this.grow("scores2", scratch); // the helper thread's
    if (this.pool) this.pool.hot(true);
    try {
      this.layersForward(state, idArr, allLogits, noLogits ? 0 : logits);
    } finally {
      if (this.pool) this.pool.hot(false);
    }
    if (noLogits) return null;
    return new Float32Array(this.memory.buffer, logits, (allLogits ? S : 1) * c.V);
  }
  layersForward(state, ids, allLogits, logits) {
    const c = this.c, k = this.k, s = this.s, S = ids.length, P = state.length;
    const qd = c.nq * c.hd, kvd = c.nkv * c.hd;
    for (let c0 = 0; c0 < S; c0 += CHUNK) {
      const T = Math.min(CHUNK, S - c0), pos = P + c0, J = WasmEngine.splitPoint(pos, T);
      new Int32Array(this.memory.buffer, s.ids, T).set(ids.subarray(c0, c0 + T));
      k.embed8(this.embed.w, this.embed.s, s.ids, T, c.H, s.x);
      for (let l = 0; l < c.L; l++) {
        const w = this.layers[l];
        k.rmsnorm(s.x, w.attnNorm, s.h, c.H, T, c.eps);
        this.linear(w.qkv, s.h, T, s.qkv);
        k.rope(s.qkv, this.qkvN, c.nq, c.hd, T, pos, this.cos, this.sin);
        k.rope(s.qkv + qd * 4, this.qkvN, c.nkv, c.hd, T, pos, this.cos, this.sin);
        k.kvWrite16(s.qkv, this.qkvN, qd, c.nkv, c.hd, T, state.at(l, 0), state.scalesAt(l, 0), state.cap, pos, k.KEY_LEVELS.value);
        k.kvWrite16(s.qkv, this.qkvN, qd + kvd, c.nkv, c.hd, T, state.at(l, 1), state.scalesAt(l, 1), state.cap, pos, 32767);
        this.attention(state, l, pos, T, J);
        this.linear(w.o, s.att, T, s.o);
        k.add(s.x, s.o, T * c.H);
        k.rmsnorm(s.x, w.ffnNorm, s.h, c.H, T, c.eps);
        this.linear(w.gateUp, s.h, T, s.gu);
        k.siluMul(s.gu, c.I, T, s.act);
        this.linear(w.down, s.act, T, s.o);
        k.add(s.x, s.o, T * c.H);
      }
      if (logits && allLogits) { // logits 0: a prefill only, no LM head
        k.rmsnorm(s.x, this.finalNorm, s.h, c.H, T, c.eps);
        this.linear(this.head, s.h, T, logits + c0 * c.V * 4);
      } else if (logits && c0 + T === S) {
        k.rmsnorm(s.x + (T - 1) * c.H * 4, this.finalNorm, s.h, c.H, 1, c.eps);
        this.linear(this.head, s.h, 1, logits);
      }
      state.length = pos + T;
    }
  }
}

function defaultThreads() {
  const cores = (globalThis.navigator && globalThis.navigator.hardwareConcurrency) || 1;
  return globalThis.crossOriginIsolated && typeof SharedArrayBuffer === "function" && typeof Worker === "function" &&
    cores >= 2 ? 2 : 1;
}

// The helper thread (wasm_thread.mjs) and its control block in the shared memory.
class Helper {
  static async start(module, memory, heap) {
    const h = new Helper();
    h.ctrl = heap.alloc(128);
    h.c = new Int32Array(memory.buffer, h.ctrl, 32);
    h.c.fill(0);
    h.seq = 0;
    h.worker = new Worker(new URL("nomoat-wasm-thread.mjs", import.meta.url), {type: "module"});
    await new Promise((resolve, reject) => {
      h.worker.onmessage = () => resolve();
      h.worker.onerror = (ev) => reject(new Error(`nomoat's wasm helper thread failed to start: ${ev.message || "script error"}`));
      h.worker.postMessage({module, memory, ctrl: h.ctrl});
    });
    return h;
  }
  post(op, args) {
    const c = this.c;
    c[2] = op;
    c.set(args, 3);
    this.seq = (this.seq + 1) | 0;
    Atomics.store(c, 0, this.seq);
    Atomics.notify(c, 0);
  }
  join() {
    for (let spins = 0; Atomics.load(this.c, 1) !== this.seq;) {
      if (++spins === 1 << 20) this.since = performance.now();
      else if (!(spins & 0xfffff) && performance.now() - this.since > 30000) { // never, unless the thread is gone
        throw new Error("nomoat's wasm helper thread stopped answering (30 s); reload the page.");
      }
    }
    if (this.c[31]) {
      this.c[31] = 0;
      throw new Error("nomoat's wasm helper thread failed (a kernel trapped)");
    }
  }
  hot(on) {
    Atomics.store(this.c, 30, on ? 1 : 0);
  }
  stop() {
    this.post(3, []); // the thread returns from its loop
    this.worker.terminate();
  }
}
