// nomoat's JS runtime: what Python (backends/ort_web.py) calls through the module `nomoat_js`.
// The only module that imports onnxruntime-web. It fetches model packages (with progress), builds
// the wasm graph's f32 weights, and owns the ort sessions, KV states and samplers, so that
// full-vocabulary logits never cross into Python.
//
// Used by the nomoat worker (nomoat-worker.mjs) and by any other Pyodide host, e.g. a JupyterLite
// kernel: `createRuntime({assets, progress})` returns the object to register as `nomoat_js`.

let ort = null; // onnxruntime-web, the build chosen for the first device

// ---------------------------------------------------------------------------------------------
// Device choice and onnxruntime-web
// ---------------------------------------------------------------------------------------------

export async function chooseDevice(asked) {
  const gpu = self.navigator && self.navigator.gpu;
  let adapter = null;
  if (gpu && asked !== "wasm") {
    try {
      adapter = await gpu.requestAdapter();
    } catch (e) {
      adapter = null;
    }
  }
  if (asked === "webgpu") {
    if (!adapter) {
      throw named("NotSupportedError",
        "WebGPU was asked for (device: 'webgpu') but this browser has no WebGPU adapter. " +
        "Use device: 'wasm' or 'auto', or enable WebGPU in the browser.");
    }
    return {device: "webgpu", reason: "asked for WebGPU; adapter found"};
  }
  if (asked === "wasm") return {device: "wasm", reason: "asked for wasm"};
  if (adapter) return {device: "webgpu", reason: "auto: a WebGPU adapter is available"};
  return {device: "wasm", reason: gpu ? "auto: no WebGPU adapter, using wasm" : "auto: no WebGPU in this browser, using wasm"};
}

export async function loadOrt(assets, device) {
  // wasm: the plain threaded build (faster than asyncify on CPU); webgpu: the native WebGPU EP.
  // One build per JS realm: the first device asked for decides it.
  if (ort) return ort;
  const file = device === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
  ort = await import(assets.ort + file);
  ort.env.wasm.wasmPaths = assets.ort;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.max(1, Math.min(8, self.navigator.hardwareConcurrency || 1)) : 1;
  ort.env.logLevel = "error";
  return ort;
}

export function named(name, message, extra) {
  const e = new Error(message);
  e.name = name;
  Object.assign(e, extra || {});
  return e;
}

// ---------------------------------------------------------------------------------------------
// Fetching a model package with progress
// ---------------------------------------------------------------------------------------------

async function fetchBytes(url, onBytes) {
  let r;
  try {
    r = await fetch(url, {cache: "no-cache"});
  } catch (e) {
    throw named("NetworkError", `Could not fetch ${url}: ${e.message}. Check the model URL and that the server is running.`);
  }
  if (!r.ok) {
    throw named("NotFoundError", `The model file ${url} was not found (HTTP ${r.status}). Check the model URL.`);
  }
  const reader = r.body.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.byteLength;
    onBytes(n);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The model cache: Cache API storage "nomoat-models", one entry per file URL, every file checked
// against the manifest's size and sha256 before use, whether it came from the cache or the network.
// ---------------------------------------------------------------------------------------------

export const CACHE_NAME = "nomoat-models";

async function openCache() {
  try {
    return self.caches ? await self.caches.open(CACHE_NAME) : null;
  } catch (e) {
    return null; // e.g. an opaque origin: no persistent storage, fetch every time
  }
}

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function intact(bytes, info) {
  return bytes.byteLength === info.size && (await sha256(bytes)) === info.sha256;
}

// One file: the cached copy, else the network (one retry, checked), then cached. A cached copy
// comes with `checked`, a promise of its size + sha256 check: the caller awaits it before the
// bytes are used for anything but building (the digest runs off the JS thread meanwhile); a
// copy that fails is deleted from the cache and fetched again, never used.
async function loadFile(cache, url, info, onBytes, warn) {
  if (cache) {
    const hit = await cache.match(url);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      onBytes(bytes.byteLength, true);
      return {bytes, checked: intact(bytes, info)};
    }
  }
  let bytes = null;
  for (let attempt = 0; attempt < 2 && !bytes; attempt++) {
    const got = await fetchBytes(url, (n) => onBytes(n, false));
    if (await intact(got, info)) bytes = got;
    else onBytes(0, false);
  }
  if (!bytes) {
    throw named("DataError", `${url} does not match its manifest (size ${info.size}, sha256 ${info.sha256.slice(0, 12)}…): ` +
      "truncated or corrupt on the server. Convert the model again ('nomoat convert').");
  }
  if (cache) {
    try {
      await cache.put(url, new Response(bytes, {headers: {"content-type": "application/octet-stream",
                                                          "content-length": String(bytes.byteLength)}}));
    } catch (e) {
      const why = e && e.name === "QuotaExceededError" ?
        "the browser's storage quota is too small" : `the cache refused it (${e && e.name})`;
      warn(`${url} could not be cached: ${why}. The model runs now but will be downloaded again next time; ` +
        "free space (llm.cache.delete(...)) or allow more storage.");
    }
  }
  return {bytes, checked: Promise.resolve(true)};
}

async function loadManifest(cache, base) {
  const url = base + "nomoat.json";
  let bytes;
  try {
    bytes = await fetchBytes(url, () => {});
  } catch (e) {
    const hit = cache && await cache.match(url); // offline, or the server is gone: use the cached copy
    if (!hit) throw e;
    bytes = new Uint8Array(await hit.arrayBuffer());
  }
  try {
    return {manifest: JSON.parse(new TextDecoder().decode(bytes)), bytes};
  } catch (e) {
    throw named("DataError", `${url} is not a model manifest (${e.message}).`);
  }
}

// The wasm graph's f32 weights, built from the 4-bit blocks as onnx/nomoat_wasm.json says (the
// same arithmetic as nomoat.convert.quant.QLinear.dequantize): w = (q - 2^(bits-1)) * d (+ c).
function buildF32(recipe, data) {
  const out = new Float32Array(recipe.size / 4);
  const f32At = ([off, len]) => new Float32Array(data.slice(off, off + len).buffer);
  for (const t of recipe.tensors) {
    const nb = t.k / 32, zero = t.bits === 4 ? 8 : 128, blob = t.bits === 4 ? 16 : 32;
    const q = data.subarray(t.qweight[0], t.qweight[0] + t.qweight[1]); // (n, nb, blob)
    const d = f32At(t.scales); // (n, nb)
    const c = t.offsets ? f32At(t.offsets) : null; // (nb, n)
    let o = t.offset / 4;
    for (let r = 0; r < t.n; r++) {
      for (let b = 0; b < nb; b++) {
        const s = d[r * nb + b], add = c ? c[b * t.n + r] : 0, base = (r * nb + b) * blob;
        if (t.bits === 4) {
          for (let j = 0; j < 16; j++) {
            const byte = q[base + j];
            out[o++] = ((byte & 15) - zero) * s + add;
            out[o++] = ((byte >> 4) - zero) * s + add;
          }
        } else {
          for (let j = 0; j < 32; j++) out[o++] = (q[base + j] - zero) * s + add;
        }
      }
    }
  }
  return new Uint8Array(out.buffer);
}

// Fetch config, tokenizer and graph (cache first); progress per file and in total, in bytes and
// as a fraction of the manifest's sizes.
async function fetchPackage(baseURL, device, requestId, post, wasmEngine = "nomoat") {
  const base = new URL(baseURL.endsWith("/") ? baseURL : baseURL + "/", self.location.href).href;
  // Cache only web origins: the Cache API refuses e.g. chrome-extension:// URLs (files that are
  // already local anyway).
  const cache = /^https?:/.test(base) ? await openCache() : null;
  const {manifest, bytes: manifestBytes} = await loadManifest(cache, base);
  // WebGPU runs the 4-bit graph; wasm the f32 variant, whose weights are built here from the same data.
  // nomoat's own wasm decoder (wasm_engine.mjs) reads the 4-bit blocks in place: no graph, no f32
  // weights; packages converted before its tensor directory existed fall back to onnxruntime-web.
  const own = device !== "webgpu" && wasmEngine !== "ort" && !!(manifest.files && manifest.files[TENSORS]);
  const graph = device === "webgpu" ? "onnx/nomoat_q4.onnx" : "onnx/nomoat_wasm.onnx";
  const names = ["config.json", "tokenizer.json", "tokenizer_config.json", own ? TENSORS : graph, "onnx/model_q4.onnx_data"];
  if (device !== "webgpu" && !own) names.push("onnx/nomoat_wasm.json");
  for (const n of names) {
    if (!manifest.files || !manifest.files[n]) throw named("DataError", `${base}nomoat.json does not list ${n}.`);
  }
  const total = names.reduce((s, n) => s + manifest.files[n].size, 0);
  const done = {};
  const report = (file, fileLoaded, cached) => {
    done[file] = fileLoaded;
    const loaded = Object.values(done).reduce((a, b) => a + b, 0);
    post("progress", requestId, {stage: "download", file, fileLoaded, fileTotal: manifest.files[file].size,
      loaded, total, fraction: total ? loaded / total : 1, cached});
  };
  const warn = (warning) => post("progress", requestId, {stage: "cache", warning});
  post("progress", requestId, {stage: "download", loaded: 0, total, fraction: 0});
  const files = {}, checks = {};
  for (const name of names) {
    const got = await loadFile(cache, base + name, manifest.files[name], (n, cached) => report(name, n, cached), warn);
    files[name] = got.bytes;
    checks[name] = got.checked;
  }
  const external = [{path: "model_q4.onnx_data", data: files["onnx/model_q4.onnx_data"]}];
  if (device !== "webgpu" && !own && await checks["onnx/nomoat_wasm.json"]) { // the recipe must be sound to build
    post("progress", requestId, {stage: "init", loaded: 0, total: 1});
    const recipe = JSON.parse(new TextDecoder().decode(files["onnx/nomoat_wasm.json"]));
    external.push({path: recipe.f32, data: buildF32(recipe, files["onnx/model_q4.onnx_data"])}); // while digests run
  }
  const failed = [];
  for (const n of names) if (!(await checks[n])) failed.push(n);
  if (failed.length) { // a corrupt or stale cache entry: drop it, fetch those files again
    for (const n of failed) await cache.delete(base + n);
    return fetchPackage(baseURL, device, requestId, post, wasmEngine);
  }
  if (cache) await cache.put(base + "nomoat.json", new Response(manifestBytes)).catch(() => {});
  const text = (n) => new TextDecoder().decode(files[n]);
  return {config: text("config.json"), tokenizer: text("tokenizer.json"), tokenizer_config: text("tokenizer_config.json"),
          onnx: own ? {kind: "nomoat", data: files["onnx/model_q4.onnx_data"], tensors: JSON.parse(text(TENSORS))}
            : {graph: files[graph], external}};
}

// ---------------------------------------------------------------------------------------------
// Engine: one ort session; KV states; samplers
// ---------------------------------------------------------------------------------------------

class KVState {
  // onnxruntime-web's wasm path: past is name -> ort.Tensor (1, n_kv, T, head_dim) in JS memory,
  // replaced (never written in place) by each step's present.*, so a fork shares them.
  constructor(engine, past, length) {
    this.engine = engine;
    this.past = past;
    this.length = length;
  }
  replace(past, length) {
    this.past = past;
    this.length = length;
  }
  fork() {
    return new KVState(this.engine, {...this.past}, this.length);
  }
  async truncate(n) {
    if (n >= this.length) return;
    const past = {};
    for (const [name, t] of Object.entries(this.past)) {
      const [b, h, T, d] = t.dims;
      const out = new Float32Array(b * h * n * d);
      for (let i = 0; i < b * h; i++) out.set(t.data.subarray(i * T * d, i * T * d + n * d), i * n * d);
      past[name] = new ort.Tensor("float32", out, [b, h, n, d]);
    }
    this.replace(past, n);
  }
  dispose() {
    this.past = {};
  }
}

// WebGPU: the KV cache in preallocated GPU buffers, one per past input, (1, n_kv, cap, head_dim)
// f32, grown by doubling (a GPU copy of the used rows). Each step feeds them as past_key_values.*
// and binds the same tensors as the present.* outputs, so GroupQueryAttention runs in its
// share-buffer mode: it writes the new rows in place (attention_mask gives the valid length) and
// nothing is allocated, copied or read back per token. A fork copies the used rows (GPU to GPU);
// truncate only shortens the length.
class GpuKVState {
  constructor(engine) {
    this.engine = engine;
    this.length = 0;
    this.cap = 0;
    this.buffers = {}; // name -> GPUBuffer
    this.past = {}; // name -> ort.Tensor over that buffer
    this.logits = null;
  }
  ensure(n) {
    if (n <= this.cap) return;
    const e = this.engine, c = e.config;
    const cap = Math.min(Math.max(n, 2 * this.cap, 64), Math.max(n, c.max_position_embeddings || n));
    const old = {buffers: this.buffers, past: this.past, cap: this.cap, length: this.length};
    this.buffers = {};
    this.past = {};
    this.cap = cap;
    for (const name of e.pastNames) {
      const b = e.gpu.createBuffer({size: c.num_key_value_heads * cap * c.head_dim * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST});
      this.buffers[name] = b;
      this.past[name] = ort.Tensor.fromGpuBuffer(b, {dataType: "float32", dims: [1, c.num_key_value_heads, cap, c.head_dim]});
    }
    if (old.length) this.copyFrom(old);
    GpuKVState.free(old); // destroy() waits for the copy already submitted
  }
  // Copies the used rows of each head of every buffer of `from` (a state, or ensure's old buffers).
  copyFrom(from) {
    const c = this.engine.config, row = c.head_dim * 4, enc = this.engine.gpu.createCommandEncoder();
    for (const name of this.engine.pastNames) {
      for (let h = 0; h < c.num_key_value_heads; h++) {
        enc.copyBufferToBuffer(from.buffers[name], h * from.cap * row, this.buffers[name], h * this.cap * row, from.length * row);
      }
    }
    this.engine.gpu.queue.submit([enc.finish()]);
  }
  fork() {
    const s = new GpuKVState(this.engine);
    if (this.length) {
      s.ensure(this.length);
      s.copyFrom(this);
      s.length = this.length;
    }
    return s;
  }
  async truncate(n) {
    if (n < this.length) this.length = Math.max(0, n);
  }
  static free({buffers, past}) {
    for (const t of Object.values(past)) t.dispose();
    for (const b of Object.values(buffers)) b.destroy();
  }
  dispose() {
    GpuKVState.free(this);
    this.buffers = {};
    this.past = {};
    this.cap = this.length = 0;
    this.dropLogits();
  }
  dropLogits() {
    if (this.logits) this.logits.dispose();
    this.logits = null;
  }
}

// Token ids by logit, highest first (ties: lower id first); only the best k when k > 0, found with
// a k-sized heap instead of sorting the whole vocabulary (~18 ms per token at 49,152 tokens).
function ranked(x, k) {
  const before = (a, b) => x[a] > x[b] || (x[a] === x[b] && a < b); // a ranks before b
  if (k <= 0 || k >= x.length) return Array.from(x.keys()).sort((a, b) => (before(a, b) ? -1 : 1));
  const heap = []; // the best k so far; heap[0] is the worst of them
  const down = (i) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < heap.length && before(heap[w], heap[l])) w = l;
      if (r < heap.length && before(heap[w], heap[r])) w = r;
      if (w === i) return;
      [heap[i], heap[w]] = [heap[w], heap[i]];
      i = w;
    }
  };
  for (let t = 0; t < x.length; t++) {
    if (heap.length < k) {
      heap.push(t);
      for (let i = heap.length - 1; i > 0;) { // sift up: the worse rises to the root
        const up = (i - 1) >> 1;
        if (!before(heap[up], heap[i])) break;
        [heap[up], heap[i]] = [heap[i], heap[up]];
        i = up;
      }
    } else if (before(t, heap[0])) {
      heap[0] = t;
      down(0);
    }
  }
  return heap.sort((a, b) => (before(a, b) ? -1 : 1));
}

// allowedMask (structured output): a Uint32Array, bit i & 31 of word i >> 5 set = token i may be
// chosen; tokens past its end may not. Every other logit becomes -Infinity, in place.
function maskLogits(x, allowedMask) {
  for (let w = 0; w * 32 < x.length; w++) {
    const bits = w < allowedMask.length ? allowedMask[w] : 0;
    if (bits === 0xffffffff) continue;
    for (let i = w * 32, end = Math.min(x.length, i + 32); i < end; i++) if (!((bits >>> (i & 31)) & 1)) x[i] = -Infinity;
  }
}

export class Sampler {
  // Same processors and order as nomoat/sampler.py: allowed-token mask, repetition penalty,
  // temperature (0 = argmax), top-k, top-p, min-p, seeded draw. The seeded stream differs from
  // numpy's. sample(logits, newIds, allowedMask?) is also the GPU sampler's contract.
  constructor(p, seen = []) {
    this.p = p;
    this.seen = new Set(Array.from(seen, Number));
    let s = (p.seed === null || p.seed === undefined) ? (Math.random() * 2 ** 32) >>> 0 : (p.seed >>> 0);
    this.rand = () => { // mulberry32
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  dispose() {} // nothing outside the JS heap
  sample(logits, newIds, allowedMask) {
    for (const t of newIds) this.seen.add(t);
    const p = this.p;
    const x = logits; // Float32Array (vocab,)
    if (allowedMask) maskLogits(x, allowedMask);
    if (p.repetition_penalty !== 1) {
      for (const t of this.seen) x[t] = x[t] > 0 ? x[t] / p.repetition_penalty : x[t] * p.repetition_penalty;
    }
    if (p.temperature === 0) {
      let best = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
      return best;
    }
    let idx = ranked(x, p.top_k);
    if (allowedMask) { // masked tokens have probability 0: drop them, so rounding can never draw one
      idx = idx.filter((i) => x[i] !== -Infinity);
      if (!idx.length) throw named("OperationError", "No allowed token has a finite logit.");
    }
    const m = x[idx[0]] / p.temperature;
    let probs = idx.map((i) => Math.exp(x[i] / p.temperature - m));
    let sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((q) => q / sum);
    if (p.top_p < 1) {
      let c = 0, k = 0;
      while (k < probs.length && c < p.top_p) c += probs[k++];
      idx = idx.slice(0, Math.max(1, k));
      probs = probs.slice(0, Math.max(1, k));
    }
    if (p.min_p > 0) {
      const keep = probs.map((q) => q >= p.min_p * probs[0]);
      idx = idx.filter((_, i) => keep[i]);
      probs = probs.filter((_, i) => keep[i]);
    }
    sum = probs.reduce((a, b) => a + b, 0);
    let r = this.rand() * sum;
    for (let i = 0; i < idx.length; i++) {
      r -= probs[i];
      if (r <= 0) return idx[i];
    }
    return idx[idx.length - 1];
  }
}

class Engine {
  static async create(onnx, device, config) {
    const e = new Engine();
    e.device = device;
    e.threads = device === "webgpu" ? 1 : ort.env.wasm.numThreads;
    e.config = JSON.parse(config);
    const opts = {
      executionProviders: device === "webgpu" ? [{name: "webgpu"}] : [{name: "wasm"}],
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      externalData: onnx.external,
    };
    if (device === "webgpu") {
      // Keep the KV cache on the GPU (GpuKVState binds present.* to its own buffers). The logits
      // stay there too: the GPU sampler (nomoat-gpu-sampler.mjs) reads them in place.
      opts.preferredOutputLocation = {logits: "gpu-buffer"};
    }
    // onnxruntime-web creates one session at a time per device ("another WebGPU EP inference
    // session is being created"): creations wait for each other here, so two create() calls at
    // once both work. Its other failures are the graph's.
    const creating = sessionCreation.then(() => ort.InferenceSession.create(onnx.graph, opts));
    sessionCreation = creating.catch(() => {});
    try {
      e.session = await creating;
    } catch (err) {
      throw named("DataError", `onnxruntime-web could not load the model graph (${String(err.message || err).slice(0, 300)}). ` +
        "The file is corrupt or truncated: convert the model again ('nomoat convert').");
    }
    e.pastNames = e.session.inputNames.filter((n) => n.startsWith("past_key_values."));
    const c = e.config;
    e.empty = new ort.Tensor("float32", new Float32Array(0), [1, c.num_key_value_heads, 0, c.head_dim]);
    if (device === "webgpu") {
      e.gpu = ort.env.webgpu.device; // onnxruntime-web's own GPUDevice: the KV buffers and the sampler live there
      await e.startGpuSampling();
    }
    return e;
  }
  // WebGPU: the sampling kernels on onnxruntime-web's own GPUDevice. Should that fail (the module
  // missing from a copied runtime, a device without the limits), the logits are read back and the
  // JS Sampler runs: slower, same tokens. `sampling` says which and why.
  async startGpuSampling() {
    try {
      const {GpuSampling} = await import(new URL("./nomoat-gpu-sampler.mjs", import.meta.url).href);
      this.gpuSampling = await GpuSampling.create(this.gpu, this.config.vocab_size);
      this.sampling = "gpu";
    } catch (err) {
      this.gpuSampling = null;
      this.sampling = `cpu (GPU sampling unavailable: ${String(err && err.message || err).slice(0, 200)})`;
    }
  }
  newState() {
    return this.gpu ? new GpuKVState(this) : new KVState(this, {}, 0);
  }
  newSampler(params, seen = []) {
    const p = params.toJs ? params.toJs({dict_converter: Object.fromEntries}) : params;
    return this.gpuSampling ? this.gpuSampling.newSampler(p, seen) : new Sampler(p, seen);
  }
  // One generation step (what Python calls): state back to `start` positions, ids appended, and with
  // a sampler the next token id chosen from this state's own logits (-1 without one). Logits
  // never leave this call.
  async step(state, start, ids, sampler, mask) {
    await state.truncate(start);
    const logits = await this.forward(state, ids, false);
    return sampler ? sampler.sample(logits, ids, mask) : -1;
  }
  // Every new position's logits, (len(ids) * vocab), as a Float32Array of its own (tests).
  async logits(state, start, ids) {
    await state.truncate(start);
    return (await this.forward(state, ids, true)).slice();
  }
  dispose() {
    if (this.gpuSampling) this.gpuSampling.dispose();
    this.gpuSampling = null;
    const session = this.session;
    this.session = null;
    if (session) return session.release();
  }
  // Append ids to state; returns a Float32Array of logits: (vocab,) for the last position, or
  // (len(ids) * vocab) when allLogits. With GPU sampling, the last position's logits stay on the
  // GPU: an onnxruntime-web tensor for the sampler, owned by the state until its next forward.
  async forward(state, ids, allLogits) {
    if (this.gpu && ids.length > GPU_CHUNK) return this.forwardChunked(state, Array.from(ids), allLogits);
    const P = state.length, S = ids.length;
    const i64 = (n, f) => BigInt64Array.from({length: n}, (_, i) => BigInt(f(i)));
    const feeds = {
      input_ids: new ort.Tensor("int64", i64(S, (i) => ids[i]), [1, S]),
      attention_mask: new ort.Tensor("int64", i64(P + S, () => 1), [1, P + S]),
      position_ids: new ort.Tensor("int64", i64(S, (i) => P + i), [1, S]),
      logits_to_keep: new ort.Tensor("int64", BigInt64Array.from([allLogits ? 0n : 1n]), []),
    };
    let out;
    if (state instanceof GpuKVState) {
      state.ensure(P + S);
      const fetches = {logits: null};
      for (const n of this.pastNames) {
        feeds[n] = state.past[n];
        fetches["present." + n.slice("past_key_values.".length)] = state.past[n]; // the same buffer: written in place
      }
      out = await this.session.run(feeds, fetches);
      state.length = P + S;
      state.dropLogits(); // the previous forward's GPU logits, consumed by now
    } else {
      for (const n of this.pastNames) feeds[n] = state.past[n] || this.empty;
      out = await this.session.run(feeds);
      const past = {};
      for (const n of this.pastNames) past[n] = out["present." + n.slice("past_key_values.".length)];
      state.replace(past, P + S);
    }
    if (out.logits.location !== "gpu-buffer") return out.logits.data;
    if (this.gpuSampling && !allLogits) return (state.logits = out.logits);
    return out.logits.getData(true); // read back and release the GPU buffer
  }
  async forwardChunked(state, ids, allLogits) {
    const parts = [];
    let last;
    for (let i = 0; i < ids.length; i += GPU_CHUNK) {
      last = await this.forward(state, ids.slice(i, i + GPU_CHUNK), allLogits);
      if (allLogits) parts.push(last);
    }
    if (!allLogits) return last; // the earlier chunks' GPU logits were dropped by the next forward
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

// WebGPU prompts go through the graph GPU_CHUNK tokens at a time: onnxruntime-web 1.30's WebGPU
// GroupQueryAttention returns wrong values for rows 4+ once a pass holds 32 or more new tokens
// (tests/test_kernels.py::test_webgpu_group_query_attention_long_pass pins this; ORT issue
// microsoft/onnxruntime#26064 reports its flash-attention path going wrong), while up to 31 match
// the CPU exactly. Chunks of 24 keep a margin below that.
const GPU_CHUNK = 24;

let sessionCreation = Promise.resolve(); // the onnxruntime-web session being created, if any (Engine.create)

const TENSORS = "onnx/nomoat_tensors.json"; // where each weight lies in the data file

// device "wasm": nomoat's own decoder (onnx.kind "nomoat"), else onnxruntime-web's session
// (onnxruntime-web is loaded only then).
async function makeEngine(assets, onnx, device, config) {
  if (onnx.kind !== "nomoat") {
    await loadOrt(assets, device);
    return Engine.create(onnx, device, config);
  }
  const {WasmEngine} = await import("./nomoat-wasm-engine.mjs");
  return WasmEngine.create({data: onnx.data, tensors: onnx.tensors, config: JSON.parse(config), Sampler});
}

// The object Python sees as `nomoat_js`. progress(requestId, {stage, loaded, total}) reports
// download and load stages to whoever hosts the runtime.
// loadModel(url, device, requestId) → {device, reason, config, tokenizer, tokenizerConfig (texts),
// engine}: the one place a model is loaded; device "auto" is resolved here. prefetch(url, device,
// requestId) starts that early (while Pyodide boots); the next loadModel of the same model and
// device takes it over. wasmEngine (or assets.wasmEngine): "nomoat" (default: nomoat's own wasm
// decoder) or "ort" (onnxruntime-web's wasm EP, for comparison).
export function createRuntime({assets, progress = () => {}, wasmEngine = assets.wasmEngine || "nomoat"}) {
  const early = new Map(); // "url|device" -> pending load
  const load = async (url, device, requestId) => {
    const pkg = await fetchPackage(url, device, requestId, (kind, id, p) => progress(id, p), wasmEngine);
    const engine = await makeEngine(assets, pkg.onnx, device, pkg.config);
    return {config: pkg.config, tokenizer: pkg.tokenizer, tokenizerConfig: pkg.tokenizer_config, engine};
  };
  return {
    chooseDevice,
    prefetch(url, device, requestId) {
      const key = `${url}|${device}`;
      if (!early.has(key)) {
        const pending = load(url, device, requestId);
        pending.catch(() => {}); // reported when taken over
        early.set(key, pending);
      }
    },
    async loadModel(url, asked, requestId) {
      const choice = await chooseDevice(asked);
      const key = `${url}|${choice.device}`;
      const pending = early.get(key) || load(url, choice.device, requestId);
      early.delete(key);
      return {...(await pending), device: choice.device, reason: choice.reason};
    },
  };
}
