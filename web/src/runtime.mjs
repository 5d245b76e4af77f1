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

/** @typedef {import("./engine.js").Engine} Engine */
/** @typedef {"wasm" | "webgpu"} Device */
/** @typedef {{device: Device, reason: string}} DeviceChoice */
/**
 * Where the runtime's files are: assets.ort the folder of onnxruntime-web's files; wasmEngine the
 * default wasm engine ("nomoat" | "ort").
 * @typedef {{ort: string, pyodide?: string, wasmEngine?: "nomoat" | "ort"}} Assets
 */

/**
 * The device for `asked` ("webgpu" | "wasm" | "auto"), and why.
 * @param {string} asked
 * @returns {Promise<DeviceChoice>}
 */
export async function chooseDevice(asked) {
  const gpu = /** @type {any} */ (self.navigator)?.gpu;
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

/**
 * The engine for a loaded package (its module imported only now).
 * @param {Assets} assets
 * @param {Device} device
 * @param {string} kind "nomoat" | "ort"
 * @param {Record<string, Uint8Array>} files
 * @param {Record<string, any>} config config.json parsed
 * @returns {Promise<Engine>}
 */
async function makeEngine(assets, device, kind, files, config) {
  /** @param {string} n */
  const json = (n) => JSON.parse(new TextDecoder().decode(files[n]));
  if (kind === "nomoat") {
    const {WasmEngine} = await import("./wasm_engine.mjs");
    return WasmEngine.create({data: files[DATA], tensors: json(TENSORS), config});
  }
  const {OrtEngine} = await import("./engine_ort.mjs");
  return OrtEngine.create({assets, device, config, data: files[DATA], graph: files[device === "webgpu" ? GPU_GRAPH : WASM_GRAPH],
    recipe: device === "webgpu" ? null : json(WASM_RECIPE)});
}

/**
 * The object Python sees as `nomoat_js`. progress(requestId, p) reports download and load stages
 * ({stage: "download" | "cache" | "init", ...}) to whoever hosts the runtime.
 * loadModel(url, device, requestId) → {device, reason, config, tokenizer, tokenizerConfig (texts),
 * engine}: the one place a model is loaded; device "auto" is resolved here. prefetch(url, device,
 * requestId) starts that early (while Pyodide boots); the next loadModel of the same model and
 * device takes it over. wasmEngine (or assets.wasmEngine): "nomoat" (default: nomoat's own wasm
 * decoder) or "ort" (onnxruntime-web's wasm EP, for comparison).
 * @param {{assets: Assets, progress?: (requestId: number, p: Record<string, unknown>) => void,
 *          wasmEngine?: string}} options
 */
export function createRuntime({assets, progress = () => {}, wasmEngine = assets.wasmEngine || "nomoat"}) {
  /** @type {Map<string, Promise<{config: string, tokenizer: string, tokenizerConfig: string, engine: Engine}>>} */
  const early = new Map(); // "url|device" -> pending load
  /** @param {string} url @param {Device} device @param {number} requestId */
  const load = async (url, device, requestId) => {
    /** @param {Record<string, unknown>} p */
    const report = (p) => progress(requestId, p);
    const pkg = await ModelPackage.open(new URL(url, self.location.href).href);
    const {kind, files: own} = engineFiles(pkg, device, wasmEngine);
    const files = await pkg.load([...TEXTS, ...own], report);
    /** @param {string} n */
    const text = (n) => new TextDecoder().decode(files[n]);
    report({stage: "init", loaded: 0, total: 1});
    const engine = await makeEngine(assets, device, kind, files, JSON.parse(text("config.json")));
    return {config: text("config.json"), tokenizer: text("tokenizer.json"), tokenizerConfig: text("tokenizer_config.json"), engine};
  };
  return {
    chooseDevice,
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
