// Builds web/dist/: nomoat.js (classic script, sets window.llm), nomoat.mjs (ES module, exports
// llm), nomoat-worker.mjs, and the runtime files it serves next to them: pyodide/, ort/, wheels/.
// The Python wheels (nomoat, jinja2, markupsafe) must already be in dist/wheels/ (the Makefile
// puts them there). Usage: node build.mjs
import fs from "node:fs";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const dist = path.join(here, "dist");
const nm = path.join(here, "node_modules");
fs.mkdirSync(path.join(dist, "wheels"), {recursive: true});

const wheels = fs.readdirSync(path.join(dist, "wheels")).filter((f) => f.endsWith(".whl")).sort();
for (const need of ["nomoat-", "jinja2-", "markupsafe-"]) {
  if (!wheels.some((w) => w.toLowerCase().startsWith(need))) {
    throw new Error(`dist/wheels/ has no ${need}*.whl: run 'make web' (it builds the wheels first).`);
  }
}
const session = fs.readFileSync(path.join(here, "src", "session.js"), "utf8");
const src = session + "\n" + fs.readFileSync(path.join(here, "src", "openai.js"), "utf8") + "\n" +
  fs.readFileSync(path.join(here, "src", "llm.js"), "utf8").replaceAll("__NOMOAT_WHEELS__", JSON.stringify(wheels));
const header = "// nomoat " + JSON.parse(fs.readFileSync(path.join(here, "package.json"))).version + " — https://pypi.org/project/nomoat\n";
fs.writeFileSync(path.join(dist, "nomoat.js"), header +
  "(function () {\n" + src + "\nconst script = document.currentScript;\n" +
  "const base = new URL('.', script.src).href;\n" +
  "window.llm = createLLM(base, {model: script.dataset.model, device: script.dataset.device});\n})();\n");
fs.writeFileSync(path.join(dist, "nomoat.mjs"), header + src +
  "\nexport const llm = createLLM(new URL('.', import.meta.url).href);\nglobalThis.llm ??= llm;\nexport default llm;\n");
// The session class alone, for other transports (the extension's client): globalThis.NomoatSession.
fs.writeFileSync(path.join(dist, "nomoat-session.js"), header + "(function () {\n" + session +
  "\nglobalThis.NomoatSession = {LanguageModelSession, PendingCalls, toError, abortReason};\n})();\n");
fs.copyFileSync(path.join(here, "src", "worker.mjs"), path.join(dist, "nomoat-worker.mjs"));
fs.copyFileSync(path.join(here, "src", "runtime.mjs"), path.join(dist, "nomoat-runtime.mjs"));
// The GPU sampler (WebGPU), with the WGSL kernels of ../kernels/ inlined: {name: source}.
const kdir = path.join(here, "..", "kernels");
const kernels = Object.fromEntries(fs.readdirSync(kdir).filter((f) => f.endsWith(".wgsl")).sort()
  .map((f) => [f.slice(0, -5), fs.readFileSync(path.join(kdir, f), "utf8")]));
fs.writeFileSync(path.join(dist, "nomoat-gpu-sampler.mjs"),
  fs.readFileSync(path.join(here, "src", "gpu_sampler.mjs"), "utf8").replace("__NOMOAT_KERNELS__", JSON.stringify(kernels)));
// nomoat's own wasm decoder (device "wasm"): the engine module and its SIMD kernels (AssemblyScript).
fs.copyFileSync(path.join(here, "src", "wasm_engine.mjs"), path.join(dist, "nomoat-wasm-engine.mjs"));
fs.copyFileSync(path.join(here, "src", "wasm_thread.mjs"), path.join(dist, "nomoat-wasm-thread.mjs"));
const {default: asc} = await import("assemblyscript/asc");
for (const [out, extra] of [["nomoat-decoder.wasm", []], ["nomoat-decoder-mt.wasm", ["--sharedMemory", "--enable", "threads"]]]) { // 1 | 2 threads
  const built = await asc.main([path.join(here, "src", "wasm", "decoder.ts"), "-o", path.join(dist, out), "--enable", "simd",
    "--runtime", "stub", "--importMemory", "--maximumMemory", "65536", "-O3", "--noAssert", ...extra]);
  if (built.error) throw new Error(`AssemblyScript could not build src/wasm/decoder.ts: ${built.error.message}\n${built.stderr}`);
}

function copy(fromDir, toDir, names) {
  fs.mkdirSync(toDir, {recursive: true});
  for (const n of names) fs.copyFileSync(path.join(fromDir, n), path.join(toDir, n));
}
copy(path.join(nm, "pyodide"), path.join(dist, "pyodide"),
  ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]);
copy(path.join(nm, "onnxruntime-web", "dist"), path.join(dist, "ort"), [
  "ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
  "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm",
]);
console.log(`web/dist: nomoat.js, nomoat.mjs, nomoat-session.js, nomoat-worker.mjs, nomoat-runtime.mjs, nomoat-gpu-sampler.mjs, nomoat-wasm-engine.mjs, nomoat-wasm-thread.mjs, nomoat-decoder[-mt].wasm, pyodide/, ort/, wheels/ (${wheels.join(", ")})`);
