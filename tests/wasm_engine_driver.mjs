// Drives nomoat's wasm decoder engine (web/dist/nomoat-wasm-engine.mjs) in Node for
// tests/test_wasm_engine.py. Usage: node wasm_engine_driver.mjs DIST MODEL_DIR SCRIPT.json OUT.f32
// SCRIPT: [{op: "forward", state, ids, all} | {op: "fork", from, to} | {op: "truncate", state, n} |
//          {op: "dispose", state}]; every forward's logits are appended to OUT.f32 (f32), and a JSON
// line per forward ({state, length, n}) goes to stdout. {op: "time", ids, steps} times decode steps.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const [dist, model, script, out] = process.argv.slice(2);
const {WasmEngine} = await import(pathToFileURL(path.join(dist, "nomoat-wasm-engine.mjs")).href);
const read = (n) => fs.readFileSync(path.join(model, n));
const engine = await WasmEngine.create({
  data: new Uint8Array(read("onnx/model_q4.onnx_data")),
  tensors: JSON.parse(read("onnx/nomoat_tensors.json")),
  config: JSON.parse(read("config.json")),
});
const states = {};
const fd = fs.openSync(out, "w");
for (const s of JSON.parse(fs.readFileSync(script))) {
  if (s.op === "forward") {
    states[s.state] ??= engine.newState();
    const logits = await engine.forward(states[s.state], s.ids, !!s.all);
    fs.writeSync(fd, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    console.log(JSON.stringify({state: s.state, length: states[s.state].length, n: logits.length}));
  } else if (s.op === "fork") {
    states[s.to] = states[s.from].fork();
  } else if (s.op === "truncate") {
    await states[s.state].truncate(s.n);
  } else if (s.op === "dispose") {
    states[s.state].dispose();
  } else if (s.op === "time") {
    const st = engine.newState();
    let t0 = performance.now();
    await engine.forward(st, s.ids, false);
    const prefill = performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < s.steps; i++) await engine.forward(st, [s.ids[i % s.ids.length]], false);
    console.log(JSON.stringify({prefill_ms: prefill, decode_ms: (performance.now() - t0) / s.steps, length: st.length}));
  }
}
fs.closeSync(fd);
