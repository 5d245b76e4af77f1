// The checks every browser runs (tests/test_browsers.py), written once: the page of the chat demo
// (served by `nomoat serve` with the test's /checks/ routes) imports this module and awaits
// run(options); each browser's driver hands the JSON report back, and the test asserts on it.
// Every section fills its record r with what it saw (and the error that ended it, if one did),
// never a verdict, so a section that breaks in one browser still lets the others report.
//
// options: {prompts: string[], parityTokens, person (a JSON Schema), tiny: "/models/tiny/", sectionMs}

/** The error `e` as data: its name, constructor, whether it is a DOMException, its message. */
const err = (e) => ({name: e?.name, ctor: e?.constructor?.name, isDOM: e instanceof DOMException,
  message: String(e?.message ?? e)});

/** {value} of `f()` or {error} of its throw. */
async function attempt(f) {
  try {
    return {value: await f()};
  } catch (e) {
    return {error: err(e)};
  }
}

async function until(test) {
  while (!test()) await new Promise((r) => setTimeout(r, 50));
}

async function readAll(stream) {
  const reader = stream.getReader();
  const chunks = [];
  for (;;) {
    const {done, value} = await reader.read();
    if (done) return chunks;
    chunks.push(value);
  }
}

/** What the browser offers: isolation, threads, wasm SIMD, WebGPU (and an adapter). */
async function environment(r) {
  const simd = WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1,
    0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]));
  let adapter = null;
  if (navigator.gpu) {
    adapter = await attempt(async () => {
      const a = await navigator.gpu.requestAdapter();
      return a ? (a.info?.vendor || "an adapter") : null;
    });
  }
  Object.assign(r, {userAgent: navigator.userAgent, crossOriginIsolated, sharedArrayBuffer: typeof SharedArrayBuffer === "function",
    wasmSimd: simd, cacheAPI: typeof caches !== "undefined", cores: navigator.hardwareConcurrency,
    webgpu: Boolean(navigator.gpu), adapter});
}

/** The chat demo as a user meets it: ready, then "What is the capital of France?" sent. */
async function demo(r) {
  const $ = (id) => document.getElementById(id);
  await until(() => document.body.dataset.ready === "1" || document.querySelector(".error"));
  const error = document.querySelector(".error");
  if (error) throw new Error(`the demo says: ${error.textContent}`);
  r.loaded = $("status").textContent; // "ready in N s"
  const t0 = performance.now();
  $("input").value = "What is the capital of France?";
  $("form").requestSubmit();
  await until(() => document.querySelector(".assistant[data-done='1']"));
  Object.assign(r, {answer: document.querySelector(".assistant").textContent, status: $("status").textContent,
    device: $("device").dataset.device, deviceLine: $("device").textContent, stats: $("stats").textContent,
    answerMs: Math.round(performance.now() - t0)});
}

/** Greedy answers of the default model on nomoat's wasm decoder: text and token ids per prompt. */
async function parity(r, prompts, maxTokens) {
  r.answers = [];
  for (const text of prompts) {
    const s = await llm.create({device: "wasm", temperature: 0, maxTokens});
    const answer = await s.prompt(text);
    r.answers.push({prompt: text, text: answer, tokenIds: s.lastStats.token_ids, device: s.device});
    s.destroy();
  }
}

/** responseConstraint: a JSON Schema on the default model, and a RegExp. */
async function structured(r, person) {
  const s = await llm.create({device: "wasm", temperature: 0, maxTokens: 64});
  r.json = await attempt(() => s.prompt("Give me a person as JSON: a name and an age.", {responseConstraint: person}));
  r.year = await attempt(() => s.prompt("When was the Eiffel Tower finished? Give the year.",
    {responseConstraint: /(1[89]|20)\d\d/}));
  r.unsupported = await attempt(() => s.prompt("x", {responseConstraint: {type: "string", format: "date"}}));
  s.destroy();
}

/** The Prompt API's calls and errors, through the LanguageModel that llm.polyfill() installs. */
async function promptApi(r, tiny) {
  r.polyfill = await llm.polyfill();
  const LM = globalThis.LanguageModel;
  const opts = {model: tiny, device: "wasm", maxTokens: 12};
  r.availability = await attempt(() => LM.availability(opts));
  r.params = await attempt(() => LM.params());
  const a = await LM.create({...opts, samplingMode: "most-predictable"});
  r.session = {contextWindow: a.contextWindow, samplingMode: a.samplingMode, topK: a.topK, temperature: a.temperature};
  r.prompt = await attempt(() => a.prompt("hello"));
  r.usageAfterPrompt = a.contextUsage;
  const b = await LM.create({...opts, samplingMode: "most-predictable"});
  r.streamed = await attempt(() => readAll(b.promptStreaming("hello")));
  r.clone = await attempt(async () => {
    const c = await a.clone();
    const [mine, theirs] = [await a.prompt("again"), await c.prompt("again")];
    c.destroy();
    return {same: mine === theirs, mine};
  });
  r.append = await attempt(async () => {
    const before = b.contextUsage;
    await b.append([{role: "user", content: "My name is Ada and I live in Paris."}]);
    return {before, after: b.contextUsage, answer: await b.prompt("What is my name?")};
  });
  r.abortMidStream = await attempt(async () => {
    const s = await LM.create({...opts, maxTokens: 200, samplingMode: "most-predictable"});
    const c = new AbortController();
    const reader = s.promptStreaming("Write a long story about a dragon.", {signal: c.signal}).getReader();
    let pieces = 0;
    try {
      for (;;) {
        const {done} = await reader.read();
        if (done) return {finished: true, pieces};
        if (++pieces === 3) c.abort();
      }
    } catch (e) {
      return {error: err(e), pieces, usage: s.contextUsage, after: typeof await s.prompt("hi")};
    } finally {
      s.destroy();
    }
  });
  r.abortedSignal = await attempt(async () => {
    const reason = new Error("my reason");
    const c = new AbortController();
    c.abort(reason);
    try {
      await a.prompt("hi", {signal: c.signal});
      return "resolved";
    } catch (e) {
      return e === reason ? "its own reason" : err(e);
    }
  });
  const rejects = async (f) => (await attempt(f)).error ?? "no error";
  r.errors = {
    device: await rejects(() => LM.create({...opts, device: "cuda"})),
    temperature: await rejects(() => LM.create({...opts, temperature: -1})),
    modeAndTopK: await rejects(() => LM.create({...opts, samplingMode: "balanced", topK: 3})),
    image: await rejects(() => LM.create({...opts, expectedInputs: [{type: "image"}]})),
    role: await rejects(() => LM.create({...opts, initialPrompts: [{role: "robot", content: "a"}]})),
    constraint: await rejects(() => a.prompt("x", {responseConstraint: "json"})),
    noInput: await rejects(() => a.prompt()),
    overflow: await rejects(() => LM.create({...opts, initialPrompts: [{role: "system", content: "word ".repeat(400)}]})),
    missingModel: await rejects(() => LM.create({...opts, model: "/models/no-such-model/"})),
  };
  a.destroy();
  r.errors.destroyed = await rejects(() => a.prompt("again"));
  b.destroy();
}

/** The Cache API holds the model: a second load (a fresh worker) works with the server refusing the
 * model's files, and a cached file with wrong bytes is never used. The server's /checks/refuse
 * turns the refusal on (?model=NAME) and off, and says how many requests it refused. */
async function cache(r, tiny) {
  const {createLLM} = await import("/llm.js");
  const fresh = () => createLLM(new URL("/", location.href).href);
  const refuse = async (name) => (await fetch(`/checks/refuse${name ? `?model=${name}` : ""}`)).json();
  const load = async (llm) => {
    const seen = [];
    const s = await llm.create({model: tiny, device: "wasm", maxTokens: 8, temperature: 0,
      monitor(m) { m.addEventListener("nomoatprogress", (e) => seen.push(e.detail)); }});
    const text = await s.prompt("hello");
    s.destroy();
    const files = seen.filter((p) => p.file);
    return {text, files: [...new Set(files.map((p) => p.file))], cached: files.every((p) => p.cached),
      fetched: [...new Set(files.filter((p) => !p.cached).map((p) => p.file))]};
  };
  await llm.cache.delete(tiny);
  r.first = await attempt(() => load(llm)); // this page's wasm worker: booted, the tiny model not loaded yet
  r.entry = (await llm.cache.list()).find((e) => e.model.endsWith(tiny)) ?? null;
  await refuse(tiny.split("/").at(-2));
  const offline = fresh(); // a new worker, which has not loaded the model
  r.availableOffline = await offline.availability({model: tiny});
  r.offline = await attempt(() => load(offline));
  r.refusedOffline = (await refuse(tiny.split("/").at(-2))).refused;

  const c = await caches.open("nomoat-models");
  const url = new URL(`${tiny}onnx/model_q4.onnx_data`, location.href).href;
  const good = new Uint8Array(await (await c.match(url)).arrayBuffer());
  const bad = good.slice();
  bad.fill(7, 1000, 5000); // same size, wrong bytes
  await c.put(url, new Response(bad));
  const again = fresh();
  r.corruptOffline = await attempt(() => load(again)); // the bad bytes and no network: refused
  r.refusedCorrupt = (await refuse()).refused;
  r.corruptOnline = await attempt(() => load(again)); // fetched again, never the cached bytes
  const now = new Uint8Array(await (await c.match(url)).arrayBuffer());
  r.repaired = now.length === good.length && now.every((b, i) => b === good[i]);
  r.deleted = await llm.cache.delete(tiny);
}

/**
 * @param {{prompts: string[], parityTokens: number, person: object, tiny: string, sectionMs: number}} options
 * @returns {Promise<object>} the report: one entry per section, each with its time in ms; a section
 *   still running after options.sectionMs ends the run (the sections after it are not run)
 */
export async function run(options) {
  const report = {};
  let stuck = false;
  const section = async (name, f, ...args) => {
    if (stuck) return;
    console.info(`check.js: ${name}`); // the driver passes the console on
    const t0 = performance.now();
    const r = report[name] = {value: {}};
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, options.sectionMs, "late"); });
    try {
      if (await Promise.race([f(r.value, ...args), late]) === "late") {
        stuck = true;
        throw new Error(`${name} was still running after ${options.sectionMs} ms`);
      }
    } catch (e) {
      r.error = err(e); // what the section saw up to here stays in r.value
    } finally {
      clearTimeout(timer);
    }
    r.ms = Math.round(performance.now() - t0);
  };
  await section("environment", environment);
  await section("demo", demo);
  await section("parity", parity, options.prompts, options.parityTokens);
  await section("structured", structured, options.person);
  await section("cache", cache, options.tiny); // before any other section loads the tiny model
  await section("promptApi", promptApi, options.tiny);
  return report;
}
