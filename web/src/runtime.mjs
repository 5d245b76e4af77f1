// @ts-check
// nomoat's JS runtime: what Python (py/nomoat/backends/ort_web.py, model.py) calls through the
// module `nomoat_js`. It picks the device, fetches the model package (package.js) and makes the
// engine that device runs (the interface: engine.js): nomoat's own wasm decoder (wasm_engine.mjs)
// or onnxruntime-web (engine_ort.mjs, the only module that imports onnxruntime-web, loaded only
// for WebGPU or wasmEngine "ort"). Full-vocabulary logits never cross into Python.
//
// Used by the nomoat worker (worker.mjs) and by any other Pyodide host, e.g. a JupyterLite kernel:
// `createRuntime({assets, progress})` returns the object to register as `nomoat_js`.

import {named} from "./errors.js";
import {ModelPackage} from "./package.js";
import {begin, span} from "./timeline.js";

/** @typedef {import("./engine.js").Engine} Engine */
/** @typedef {"wasm" | "webgpu"} Device */
/** @typedef {{device: Device, reason: string}} DeviceChoice */
/**
 * Where the runtime's files are: assets.ort the folder of onnxruntime-web's files; wasmEngine the
 * default wasm engine ("nomoat" | "ort").
 * @typedef {{ort: string, pyodide?: string, wasmEngine?: "nomoat" | "ort", kernels?: "auto" | "int16" | "int8"}} Assets
 */

// ---------------------------------------------------------------------------------------------
// WebGPU faults: an adapter that computes wrong results, a device lost mid-answer
// ---------------------------------------------------------------------------------------------

/** @type {string | null} why this worker does not use WebGPU any more (its device was lost), else null */
let gpuFault = null;
/** @type {Promise<string | null> | null} the self-test's verdict (null: passed), once per worker */
let selfTest = null;

/**
 * From now on this worker does not use WebGPU: "auto" picks wasm, "webgpu" is refused, both saying why.
 * @param {string} why e.g. "this worker's WebGPU device was lost (destroyed)"
 */
export function gpuUnusable(why) {
  if (gpuFault) return;
  gpuFault = why;
  console.warn(`nomoat: ${why}; new sessions use wasm.`);
}

// The self-test: a small compute with a known answer (exact integer-valued f32 dot products, a
// workgroup-memory reduction, exp, an atomic counter), compared with the same arithmetic in JS.
const SELF_TEST_WGSL = `
@group(0) @binding(0) var<storage, read> a: array<f32>;             // (256, 64)
@group(0) @binding(1) var<storage, read> x: array<f32>;             // (64,)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;       // a @ x (256) | group sums (4) | exp (256)
@group(0) @binding(3) var<storage, read_write> count: array<atomic<u32>, 1>;
var<workgroup> part: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let r = g.x;
  var s = 0.0;
  for (var k = 0u; k < 64u; k++) { s = fma(a[r * 64u + k], x[k], s); }
  y[r] = s;
  y[260u + r] = exp(f32(r) * -0.015625);
  part[l.x] = s;
  workgroupBarrier();
  for (var half = 32u; half > 0u; half >>= 1u) {
    if (l.x < half) { part[l.x] += part[l.x + half]; }
    workgroupBarrier();
  }
  if (l.x == 0u) { y[256u + w.x] = part[0]; }
  atomicAdd(&count[0], 1u);
}`;
const ROWS = 256, COLS = 64, OUT = ROWS + 4 + ROWS;

/** The self-test's inputs and its answer, in JS. */
function selfTestCase() {
  const a = Float32Array.from({length: ROWS * COLS}, (_, i) => ((Math.floor(i / COLS) * 7 + (i % COLS) * 3) % 17) - 8);
  const x = Float32Array.from({length: COLS}, (_, k) => ((k * 5) % 9) - 4);
  const want = new Float64Array(OUT);
  for (let r = 0; r < ROWS; r++) {
    let s = 0;
    for (let k = 0; k < COLS; k++) s += a[r * COLS + k] * x[k];
    want[r] = s;
    want[256 + (r >> 6)] += s;
    want[260 + r] = Math.exp(r * -0.015625);
  }
  return {a, x, want};
}

/**
 * Runs the self-test on its own device of `adapter`; resolves with why the adapter must not be
 * used, or null. Its readback is `y` (OUT f32) then the counter (u32).
 * @param {GPUAdapter} adapter
 * @returns {Promise<string | null>}
 */
async function checkGpu(adapter) {
  /** @type {GPUDevice} */
  let device;
  try {
    device = await adapter.requestDevice();
  } catch (e) {
    return `no WebGPU device could be made (${String(/** @type {Error} */ (e)?.message || e).slice(0, 200)})`;
  }
  const {a, x, want} = selfTestCase();
  try {
    const S = GPUBufferUsage.STORAGE, C = GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    /** @param {Float32Array<ArrayBuffer>} data */
    const input = (data) => {
      const b = device.createBuffer({size: data.byteLength, usage: S | C});
      device.queue.writeBuffer(b, 0, data);
      return b;
    };
    const bufs = [input(a), input(x), device.createBuffer({size: OUT * 4, usage: S | C}), device.createBuffer({size: 16, usage: S | C})];
    const read = device.createBuffer({size: OUT * 4 + 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST});
    const pipeline = await device.createComputePipelineAsync({layout: "auto",
      compute: {module: device.createShaderModule({code: SELF_TEST_WGSL}), entryPoint: "main"}});
    const bind = device.createBindGroup({layout: pipeline.getBindGroupLayout(0),
      entries: bufs.map((buffer, binding) => ({binding, resource: {buffer}}))});
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(ROWS / 64);
    pass.end();
    enc.copyBufferToBuffer(bufs[2], 0, read, 0, OUT * 4);
    enc.copyBufferToBuffer(bufs[3], 0, read, OUT * 4, 4);
    device.queue.submit([enc.finish()]);
    let timer;
    const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error("no answer in 20 s")), 20000); });
    await Promise.race([read.mapAsync(GPUMapMode.READ), late]).finally(() => clearTimeout(timer));
    const bytes = read.getMappedRange().slice(0);
    read.unmap();
    const got = new Float32Array(bytes, 0, OUT), count = new Uint32Array(bytes, OUT * 4, 1)[0];
    for (let i = 0; i < OUT; i++) {
      const tolerance = i < 260 ? 0 : 1e-4 * want[i]; // integer-valued sums are exact; exp within 1e-4
      if (!(Math.abs(got[i] - want[i]) <= tolerance)) {
        return `this WebGPU adapter failed nomoat's self-test (value ${i}: ${got[i]}, expected ${want[i]}): it computes wrong results`;
      }
    }
    if (count !== ROWS) return `this WebGPU adapter failed nomoat's self-test (atomic count ${count}, expected ${ROWS}): it computes wrong results`;
    return null;
  } catch (e) {
    return `nomoat's WebGPU self-test could not run (${String(/** @type {Error} */ (e)?.message || e).slice(0, 200)})`;
  } finally {
    device.destroy();
  }
}

/**
 * The device for `asked` ("webgpu" | "wasm" | "auto"), and why. A WebGPU adapter is used only once
 * it has passed the self-test (once per worker), and not after this worker's device was lost.
 * @param {string} asked
 * @returns {Promise<DeviceChoice>}
 */
export async function chooseDevice(asked) {
  const gpu = /** @type {any} */ (self.navigator)?.gpu;
  let adapter = null;
  if (gpu && asked !== "wasm" && !gpuFault) {
    try {
      adapter = await gpu.requestAdapter();
    } catch (e) {
      adapter = null;
    }
  }
  let fault = gpuFault;
  if (adapter && !fault) {
    if (!selfTest) {
      selfTest = checkGpu(adapter);
      selfTest.then((why) => why && console.warn(`nomoat: ${why}; WebGPU is not used.`));
    }
    fault = await selfTest;
  }
  if (asked === "webgpu") {
    if (fault) {
      throw named("NotSupportedError", `WebGPU was asked for (device: 'webgpu') but ${fault}. Use device: 'wasm' or 'auto'.`);
    }
    if (!adapter) {
      throw named("NotSupportedError",
        "WebGPU was asked for (device: 'webgpu') but this browser has no WebGPU adapter. " +
        "Use device: 'wasm' or 'auto', or enable WebGPU in the browser.");
    }
    return {device: "webgpu", reason: "asked for WebGPU; adapter found (self-test passed)"};
  }
  if (asked === "wasm") return {device: "wasm", reason: "asked for wasm"};
  if (fault) return {device: "wasm", reason: `auto: ${fault}; using wasm`};
  if (adapter) return {device: "webgpu", reason: "auto: a WebGPU adapter is available (self-test passed)"};
  return {device: "wasm", reason: gpu ? "auto: no WebGPU adapter, using wasm" : "auto: no WebGPU in this browser, using wasm"};
}

const DATA = "onnx/model_q4.onnx_data"; // every weight, 4-bit blocks (read by both engines)
const TENSORS = "onnx/nomoat_tensors.json"; // where each weight lies in DATA (nomoat's wasm decoder)
const GPU_GRAPH = "onnx/nomoat_q4.onnx", WASM_GRAPH = "onnx/nomoat_wasm.onnx", WASM_RECIPE = "onnx/nomoat_wasm.json";
const TEXTS = ["config.json", "tokenizer.json", "tokenizer_config.json"];

/**
 * The package files the device's engine reads. WebGPU runs the 4-bit graph on onnxruntime-web;
 * wasm nomoat's own decoder, which reads the 4-bit blocks in place (no graph), unless asked for
 * onnxruntime-web's wasm EP or the package predates its tensor directory: then the f32 graph,
 * whose weights are built from the same data by the recipe.
 * @param {ModelPackage} pkg
 * @param {Device} device
 * @param {string} wasmEngine
 */
function engineFiles(pkg, device, wasmEngine) {
  if (device === "webgpu") return {kind: "ort", files: [GPU_GRAPH, DATA]};
  if (wasmEngine !== "ort" && pkg.has(TENSORS)) return {kind: "nomoat", files: [TENSORS, DATA]};
  return {kind: "ort", files: [WASM_GRAPH, DATA, WASM_RECIPE]};
}

/** What onnxruntime-web's and nomoat's wasm32 memories can hold, less room for the rest (bytes). */
export const WASM_LIMIT = 4 * 2 ** 30;
const HEADROOM = 2 ** 28;
const GiB = (/** @type {number} */ n) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/**
 * Refuses, before the weights are downloaded, a model that onnxruntime-web cannot hold: its
 * external data (the data file, and on wasm the f32 weights the recipe builds) lives in its wasm32
 * memory while the session is made. nomoat's decoder checks its own need in WasmEngine.create,
 * which runs before its data file is streamed in (loadEngine).
 * @param {ModelPackage} pkg
 * @param {Device} device
 * @param {Record<string, unknown>} json the package's JSON files, parsed
 */
function refuseTooLarge(pkg, device, json) {
  const data = pkg.size(DATA), recipe = /** @type {{size?: unknown}} */ (json[WASM_RECIPE] ?? {});
  const f32 = device === "webgpu" || typeof recipe.size !== "number" ? 0 : recipe.size;
  if (data + f32 > WASM_LIMIT - HEADROOM) {
    throw named("QuotaExceededError", `This model is too large for onnxruntime-web on ${device}: ${DATA} is ${GiB(data)}` +
      (f32 ? ` and its f32 weights ${GiB(f32)}` : "") + `, and onnxruntime-web's wasm memory holds at most ${GiB(WASM_LIMIT)} ` +
      `(${GiB(HEADROOM)} of it kept for the rest). Nothing was downloaded. Use a smaller model` +
      (device === "webgpu" ? "." : " or nomoat's wasm decoder (wasmEngine: \"nomoat\")."));
  }
}

/**
 * A package's files and the engine that device runs, made as the files arrive. nomoat's wasm
 * decoder gets the data file streamed into its wasm memory (package.js load's `stream`):
 * WasmEngine.create checks config.json and the tensor directory against the manifest's size of
 * the data file, refuses a model its 4 GiB memory cannot hold, allocates the region, and only then
 * is the file downloaded (or read from the cache) into it, hashed as it comes — never held whole in
 * JS. onnxruntime-web (WebGPU, wasmEngine "ort") takes the data file as bytes, as before (a JS copy
 * next to its own), after refuseTooLarge. Returns the files read as bytes (not the streamed one).
 * @param {ModelPackage} pkg
 * @param {Device} device
 * @param {{assets: Assets, wasmEngine?: string, report?: (p: Record<string, unknown>) => void,
 *          wasm?: {threads?: number, decoder?: URL | string, kernels?: "auto" | "int16" | "int8"}}} options wasm:
 *   WasmEngine.create's options (kernels: llm.create's; threads and decoder: tests)
 * @returns {Promise<{files: Record<string, Uint8Array>, engine: Engine}>}
 */
export async function loadEngine(pkg, device, {assets, wasmEngine = "nomoat", report = () => {}, wasm = {}}) {
  const {kind, files: own} = engineFiles(pkg, device, wasmEngine);
  /** @type {Record<string, unknown>} */
  let json = {};
  /** @param {Record<string, unknown>} parsed */
  const check = (parsed) => {
    json = parsed;
    if (kind === "ort") refuseTooLarge(pkg, device, parsed);
  };
  const init = () => report({stage: "init", loaded: 0, total: 1});
  if (kind === "ort") {
    const files = await pkg.load([...TEXTS, ...own], report, {check});
    init();
    const {OrtEngine} = await import("./engine_ort.mjs");
    const engine = await OrtEngine.create({assets, device, config: json["config.json"], data: files[DATA],
      graph: files[device === "webgpu" ? GPU_GRAPH : WASM_GRAPH], recipe: device === "webgpu" ? null : /** @type {any} */ (json[WASM_RECIPE])});
    if (engine.lost) engine.lost.then(gpuUnusable); // its sessions fail (engine.step); new ones go to wasm
    return {files, engine};
  }
  /** @type {Engine | null} */
  let engine = null;
  const module = import("./wasm_engine.mjs"); // fetched and parsed while the texts come
  const files = await pkg.load([...TEXTS, ...own.filter((n) => n !== DATA)], report, {check, stream: {name: DATA,
    async consume(_, write) {
      const {WasmEngine} = await module;
      engine = await WasmEngine.create({...wasm, tensors: json[TENSORS], config: json["config.json"], data: {byteLength: pkg.size(DATA),
        async fill(view) {
          await write(view);
          init();
        }}});
    }}});
  return {files, engine: /** @type {Engine} */ (engine)};
}

/**
 * An embedding package's files and its encoder on `device`: on wasm nomoat's own (wasm_encoder.mjs
 * WasmEncoder, for a graph with its weights inline; wasmEngine "ort" for onnxruntime-web), else
 * engine_ort.mjs OrtEncoder. The texts,
 * then the graph nomoat.json's embedding.onnx names and its external weights (that name + "_data",
 * when listed), through the same fetch, verify, cache and progress path as a chat model's, refused
 * before the graph is fetched when onnxruntime-web's wasm32 memory could not hold it.
 * @param {ModelPackage} pkg
 * @param {Device} device
 * @param {{assets: Assets, wasmEngine?: string, report?: (p: Record<string, unknown>) => void}} options
 * @returns {Promise<{files: Record<string, Uint8Array>, engine: import("./engine.js").Encoder}>}
 */
export async function loadEncoder(pkg, device, {assets, wasmEngine = "nomoat", report = () => {}}) {
  const spec = pkg.embedding, graph = spec.onnx, data = pkg.has(graph + "_data") ? [graph + "_data"] : [];
  const check = () => {
    const bytes = [graph, ...data].reduce((s, n) => s + pkg.size(n), 0);
    if (bytes > WASM_LIMIT - HEADROOM) {
      throw named("QuotaExceededError", `This embedding model is too large for onnxruntime-web: its graph and weights are ` +
        `${GiB(bytes)}, and its wasm memory holds at most ${GiB(WASM_LIMIT)}. Nothing was downloaded. Use a smaller model.`);
    }
  };
  const files = await pkg.load([...TEXTS, graph, ...data], report, {check});
  report({stage: "init", loaded: 0, total: 1});
  if (device === "wasm" && wasmEngine !== "ort" && !data.length) {
    const {WasmEncoder} = await import("./wasm_encoder.mjs");
    const config = JSON.parse(new TextDecoder().decode(files["config.json"]));
    return {files, engine: await WasmEncoder.create({graph: files[graph], config, dimensions: spec.dimensions})};
  }
  const {OrtEncoder} = await import("./engine_ort.mjs");
  const engine = await OrtEncoder.create({assets, device, graph: files[graph], dimensions: spec.dimensions,
    external: data.map((n) => ({path: n.split("/").pop(), data: files[n]}))});
  if (engine.lost) engine.lost.then(gpuUnusable);
  return {files, engine};
}

/**
 * The object Python sees as `nomoat_js`. progress(requestId, p) reports download and load stages
 * ({stage: "download" | "cache" | "init", ...}) to whoever hosts the runtime.
 * loadModel(url, device, requestId) → {kind, device, reason, config, tokenizer, tokenizerConfig,
 * manifest (texts), engine}: the one place a model is loaded; device "auto" is resolved here. kind
 * is nomoat.json's: "llm" (engine: engine.js's Engine) or "embedding" (an Encoder). prefetch(url, device,
 * requestId) starts that early (while Pyodide boots); the next loadModel of the same model and
 * device takes it over. wasmEngine (or assets.wasmEngine): "nomoat" (default: nomoat's own wasm
 * decoder) or "ort" (onnxruntime-web's wasm EP, for comparison).
 * @param {{assets: Assets, progress?: (requestId: number, p: Record<string, unknown>) => void,
 *          wasmEngine?: string}} options
 */
export function createRuntime({assets, progress = () => {}, wasmEngine = assets.wasmEngine || "nomoat"}) {
  /** @typedef {{kind: "llm" | "embedding", config: string, tokenizer: string, tokenizerConfig: string, manifest: string,
   *             engine: Engine | import("./engine.js").Encoder}} Loaded */
  /** @type {Map<string, Promise<Loaded>>} */
  const early = new Map(); // "url|device" -> pending load
  /** @param {string} url @param {Device} device @param {number} requestId @returns {Promise<Loaded>} */
  const load = async (url, device, requestId) => {
    /** @param {Record<string, unknown>} p */
    const report = (p) => progress(requestId, p);
    const end = begin("model.load", {device});
    const pkg = await span("manifest", () => ModelPackage.open(new URL(url, self.location.href).href));
    const {files, engine} = pkg.kind === "embedding" ? await loadEncoder(pkg, device, {assets, wasmEngine, report})
      : await loadEngine(pkg, device, {assets, wasmEngine, report, wasm: {kernels: assets.kernels}});
    end();
    /** @param {Uint8Array} b */
    const text = (b) => new TextDecoder().decode(b);
    return {kind: pkg.kind, config: text(files["config.json"]), tokenizer: text(files["tokenizer.json"]),
      tokenizerConfig: text(files["tokenizer_config.json"]), manifest: text(pkg.manifestBytes), engine};
  };
  return {
    chooseDevice,
    // For Python's to_js (py/nomoat/_compat.py): JS's own Object.fromEntries, not read through Pyodide's `js`
    // module (in the worker that made the snapshot, a Proxy that made every step slower) nor got by eval
    // (refused by an extension's Content Security Policy).
    fromEntries: Object.fromEntries,
    /** @param {string} url @param {Device} device @param {number} requestId */
    prefetch(url, device, requestId) {
      const key = `${url}|${device}`;
      if (!early.has(key)) {
        const pending = load(url, device, requestId);
        pending.catch(() => {}); // reported when taken over
        early.set(key, pending);
      }
    },
    /** @param {string} url @param {string} asked @param {number} requestId */
    async loadModel(url, asked, requestId) {
      const choice = await chooseDevice(asked);
      const key = `${url}|${choice.device}`;
      const pending = early.get(key) || load(url, choice.device, requestId);
      early.delete(key);
      return {...(await pending), device: choice.device, reason: choice.reason};
    },
  };
}
