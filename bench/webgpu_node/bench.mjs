// nomoat's WebGPU engine (web/src/engine_ort.mjs: onnxruntime-web's WebGPU EP, plus the WGSL GPU
// sampler of web/src/gpu_sampler.mjs) run by Node with the npm `webgpu` package (Dawn) as
// navigator.gpu: no browser. For a GPU machine without one (bench/webgpu_node/run.sh) and for the
// correctness test here on SwiftShader (tests/test_webgpu_node.py).
//
//   node bench.mjs --pkg MODEL_DIR --ort ORT_DIST_DIR --webgpu WEBGPU_INDEX_JS [--out R.json]
//        [--greedy IDS_JSON --new N]   greedy tokens first (parity with bench/webgpu_node/oracle.py)
//        [--timings 1 --prompt 512 --context 128 --decode 64 --repeats 3 --long 0 --max-seconds 300]
//
// Timings (greedy, token ids fed directly, no tokenizer): TTFT = a fresh state's prefill of a
// `prompt`-token prompt plus its first sampled token; prefill tok/s = prompt / that prefill;
// decode tok/s at `context` tokens of context = `decode` steps after a `context`-token prefill.
// Counts per decode token: queue.submit calls, mapAsync calls (readbacks), writeBuffer calls and
// compute passes, by wrapping Dawn's GPUQueue / GPUBuffer / GPUCommandEncoder prototypes.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const args = {pkg: "", ort: "", webgpu: "", src: path.resolve(HERE, "../../web/src"), out: "", greedy: "", new: "16",
  timings: "1", prompt: "512", context: "128", decode: "64", repeats: "3", long: "0", "max-seconds": "300"};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, "");
  if (!(k in args)) throw new Error(`unknown option --${k} (known: ${Object.keys(args).join(", ")})`);
  args[k] = process.argv[i + 1];
}
const t0 = performance.now();
const result = {engine: "nomoat webgpu (onnxruntime-web WebGPU EP + WGSL sampler) in Node + npm webgpu (Dawn)",
  node: process.version, errors: []};
const done = () => {
  const text = JSON.stringify(result, null, 1);
  if (args.out) fs.writeFileSync(args.out, text);
  else console.log(text);
};

// ---- navigator.gpu from Dawn, counted -----------------------------------------------------------
const {create, globals} = await import(pathToFileURL(path.resolve(args.webgpu)).href);
Object.assign(globalThis, globals);
const counts = {submit: 0, mapAsync: 0, writeBuffer: 0, computePass: 0, dispatch: 0, copyB2B: 0, errorScope: 0,
  createBindGroup: 0};
/** @param {any} proto @param {string} name @param {string} key */
const count = (proto, name, key) => {
  const f = proto[name];
  proto[name] = function (...a) {
    counts[key]++;
    return f.apply(this, a);
  };
};
count(globals.GPUQueue.prototype, "submit", "submit");
count(globals.GPUQueue.prototype, "writeBuffer", "writeBuffer");
count(globals.GPUBuffer.prototype, "mapAsync", "mapAsync");
count(globals.GPUCommandEncoder.prototype, "beginComputePass", "computePass");
count(globals.GPUCommandEncoder.prototype, "copyBufferToBuffer", "copyB2B");
count(globals.GPUComputePassEncoder.prototype, "dispatchWorkgroups", "dispatch");
count(globals.GPUDevice.prototype, "pushErrorScope", "errorScope");
count(globals.GPUDevice.prototype, "createBindGroup", "createBindGroup");
// Dawn's node bindings refuse views of a SharedArrayBuffer ("Invalid argument"), which Chromium
// accepts; onnxruntime-web's wasm memory is shared, and it uploads straight from it: copy those.
{
  const write = globals.GPUQueue.prototype.writeBuffer;
  globals.GPUQueue.prototype.writeBuffer = function (buffer, offset, data, dataOffset = 0, size) {
    if (typeof SharedArrayBuffer !== "undefined" && data?.buffer instanceof SharedArrayBuffer) {
      const bpe = data.BYTES_PER_ELEMENT || 1, n = size ?? data.length - dataOffset;
      data = new Uint8Array(data.buffer, data.byteOffset + dataOffset * bpe, n * bpe).slice();
      return write.call(this, buffer, offset, data);
    }
    return write.call(this, buffer, offset, data, dataOffset, size);
  };
}
const snap = () => ({...counts});
const per = (a, b, n) => Object.fromEntries(Object.keys(counts).map((k) => [k, +((b[k] - a[k]) / n).toFixed(2)]));
const gpu = create((process.env.NOMOAT_DAWN_OPTIONS || "").split(",").filter(Boolean));
const nav = globalThis.navigator || {};
Object.defineProperty(nav, "gpu", {value: gpu, configurable: true});
if (!globalThis.navigator) Object.defineProperty(globalThis, "navigator", {value: nav, configurable: true});

const adapter = await gpu.requestAdapter({powerPreference: "high-performance"});
if (!adapter) {
  result.errors.push("navigator.gpu.requestAdapter() returned null: no Vulkan driver Dawn accepts " +
    "(install the Vulkan loader and a driver; set VK_ICD_FILENAMES)");
  done();
  process.exit(2);
}
result.adapter = {vendor: adapter.info.vendor, architecture: adapter.info.architecture, device: adapter.info.device,
  description: adapter.info.description, features: [...adapter.features].sort(),
  shader_f16: adapter.features.has("shader-f16")};

// ---- the engine, as runtime.mjs makes it ---------------------------------------------------------
const {OrtEngine, loadOrt, GPU_CHUNK} = await import(pathToFileURL(path.join(path.resolve(args.src), "engine_ort.mjs")).href);
const ortDir = path.resolve(args.ort) + "/";
const assets = {ort: pathToFileURL(ortDir).href};
const ort = await loadOrt(assets, "webgpu");
ort.env.wasm.wasmPaths = ortDir; // Node's emscripten reads the .wasm with fs: a path, not a URL
ort.env.wasm.numThreads = 1;
// NOMOAT_ORT_OPTIONS (JSON): merged into the session options engine_ort.mjs gives onnxruntime-web,
// for A/B runs of its settings (e.g. {"extra": {"ep": {"webgpuexecutionprovider": {"maxNumPendingDispatches": "64"}}}})
if (process.env.NOMOAT_ORT_OPTIONS) {
  const more = JSON.parse(process.env.NOMOAT_ORT_OPTIONS), make = ort.InferenceSession.create;
  result.ort_options = more;
  ort.InferenceSession.create = (graph, opts) => make.call(ort.InferenceSession, graph, {...opts, ...more});
}
const pkg = path.resolve(args.pkg);
const read = (f) => new Uint8Array(fs.readFileSync(path.join(pkg, f)));
const config = JSON.parse(fs.readFileSync(path.join(pkg, "config.json"), "utf8"));
result.model = {dir: pkg, layers: config.num_hidden_layers, hidden: config.hidden_size, vocab: config.vocab_size,
  heads: config.num_attention_heads, kv_heads: config.num_key_value_heads, ffn: config.intermediate_size};
{
  const make = ort.InferenceSession.create;
  ort.InferenceSession.create = async (...a) => {
    const s0 = performance.now();
    try {
      return await make.apply(ort.InferenceSession, a);
    } finally {
      result.load_session_s = +((performance.now() - s0) / 1000).toFixed(3); // the rest of load_s: the sampler's pipelines
    }
  };
}
{
  const start = OrtEngine.prototype.startGpuSampling;
  OrtEngine.prototype.startGpuSampling = async function () {
    const s0 = performance.now();
    try {
      return await start.call(this);
    } finally {
      result.load_sampler_s = +((performance.now() - s0) / 1000).toFixed(3);
    }
  };
}
let t = performance.now();
const engine = await OrtEngine.create({assets, device: "webgpu", config, graph: read("onnx/nomoat_q4.onnx"),
  data: read("onnx/model_q4.onnx_data"), recipe: null});
result.load_s = +((performance.now() - t) / 1000).toFixed(3);
result.sampling = engine.sampling;
result.gpu_chunk = GPU_CHUNK;
result.ort_version = ort.env.versions?.web || null;
// the share of onnxruntime-web's session.run in the counts (the rest is the GPU sampler's)
const inOrt = Object.fromEntries(Object.keys(counts).map((k) => [k, 0]));
{
  const run = engine.run.bind(engine);
  engine.run = async (...a) => {
    const c0 = snap();
    try {
      return await run(...a);
    } finally {
      const c1 = snap();
      for (const k of Object.keys(counts)) inOrt[k] += c1[k] - c0[k];
    }
  };
}
const greedy = {temperature: 0, top_k: 0, top_p: 1, min_p: 0, repetition_penalty: 1, seed: 0};

/** prefill ids into a fresh state, then `n` greedy tokens; returns tokens and timings */
async function generate(ids, n, {counted = false} = {}) {
  const st = engine.newState(), sampler = engine.newSampler(greedy, ids);
  const a = performance.now();
  let tok = await engine.step(st, 0, ids, sampler);
  const first = performance.now();
  const out = [tok];
  const c0 = snap(), o0 = {...inOrt}, d0 = performance.now();
  for (let i = 1; i < n; i++) {
    tok = await engine.step(st, st.length, [tok], sampler);
    out.push(tok);
  }
  const d1 = performance.now(), c1 = snap(), o1 = {...inOrt};
  st.dispose();
  await sampler.dispose();
  const r = {tokens: out, ttft_s: (first - a) / 1000, decode_s: (d1 - d0) / 1000, steps: n - 1};
  if (counted && n > 1) r.per_token = {...per(c0, c1, n - 1), onnxruntime: per(o0, o1, n - 1)};
  return r;
}

try {
  if (args.greedy) {
    const ids = JSON.parse(args.greedy);
    const r = await generate(ids, +args.new, {counted: true});
    result.greedy = {prompt: ids, tokens: r.tokens, per_decode_token: r.per_token};
  }
  if (args.timings !== "0") {
    const V = config.vocab_size, P = +args.prompt, C = +args.context, D = +args.decode, R = +args.repeats;
    const ids = (n, s) => Array.from({length: n}, (_, i) => 3 + ((i * 7919 + s * 104729) % (V - 3)));
    const deadline = t0 + 1000 * +args["max-seconds"];
    t = performance.now();
    await generate(ids(32, 99), 4); // warm-up: pipelines compiled, buffers made
    result.warmup_s = +((performance.now() - t) / 1000).toFixed(3);
    const runs = {prefill: [], ttft: [], decode: []};
    for (let r = 0; r < R && performance.now() < deadline; r++) {
      const p = await generate(ids(P, r), 1);
      runs.ttft.push(p.ttft_s);
      runs.prefill.push(P / p.ttft_s); // includes one sample: the first token
      const d = await generate(ids(C, r + 10), D + 1, {counted: r === 0});
      runs.decode.push(d.steps / d.decode_s);
      if (d.per_token) result.per_decode_token = d.per_token;
    }
    const med = (a) => a.length ? +[...a].sort((x, y) => x - y)[a.length >> 1].toFixed(3) : null;
    result.settings = {prompt: P, context: C, decode: D, repeats: runs.decode.length};
    result.prefill_tok_s = med(runs.prefill);
    result.ttft_s = med(runs.ttft);
    result.decode_tok_s = med(runs.decode);
    result.runs = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.map((x) => +x.toFixed(4))]));
    // --long N: decode at N tokens of context too (one run: the prefill is N / GPU_CHUNK passes)
    if (+args.long > 0 && performance.now() < deadline) {
      const d = await generate(ids(+args.long, 7), D + 1);
      result.decode_tok_s_long = {context: +args.long, tok_s: +(d.steps / d.decode_s).toFixed(3),
        prefill_tok_s: +(+args.long / d.ttft_s).toFixed(3)};
    }
  }
} catch (err) {
  result.errors.push(String(err?.stack || err).slice(0, 2000));
}
result.total_s = +((performance.now() - t0) / 1000).toFixed(3);
await engine.dispose();
done();
process.exit(result.errors.length ? 1 : 0);
