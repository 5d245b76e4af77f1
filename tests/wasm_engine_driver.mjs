// Drives nomoat's wasm decoder engine (web/dist/wasm_engine.mjs) in Node for
// tests/test_wasm_engine.py. Usage: node wasm_engine_driver.mjs DIST MODEL_DIR SCRIPT.json OUT.f32
// SCRIPT: [{op: "forward", state, ids, all} | {op: "fork", from, to} | {op: "truncate", state, n} |
//          {op: "dispose", state}]; every forward's logits (every new position's with all, else the
// last one's) are appended to OUT.f32 (f32), and a JSON line per forward ({state, length, n}) goes
// to stdout.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const [dist, model, script, out] = process.argv.slice(2);
const {WasmEngine} = await import(pathToFileURL(path.join(dist, "wasm_engine.mjs")).href);
const read = (n) => fs.readFileSync(path.join(model, n));
const config = JSON.parse(read("config.json"));
const engine = await WasmEngine.create({
  data: new Uint8Array(read("onnx/model_q4.onnx_data")),
  tensors: JSON.parse(read("onnx/nomoat_tensors.json")),
  config,
});
const states = {};
const fd = fs.openSync(out, "w");
for (const s of JSON.parse(fs.readFileSync(script))) {
  if (s.op === "forward") {
    const st = (states[s.state] ??= engine.newState());
    const all = await engine.logits(st, st.length, s.ids);
    const logits = s.all ? all : all.subarray(all.length - config.vocab_size);
    fs.writeSync(fd, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    console.log(JSON.stringify({state: s.state, length: st.length, n: logits.length}));
  } else if (s.op === "fork") {
    states[s.to] = states[s.from].fork();
  } else if (s.op === "truncate") {
    states[s.state].truncate(s.n);
  } else if (s.op === "dispose") {
    states[s.state].dispose();
  }
}
engine.dispose();
fs.closeSync(fd);
