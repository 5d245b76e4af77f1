// protocol.js: option names, RegExp constraints, prompts and errors as they cross the wire.
import assert from "node:assert/strict";
import {test} from "node:test";
import {named} from "../src/errors.js";
import {PendingCalls, abortReason, checkSendable, constraintToWire, fromWire, samplingToWire, toWire, wireError,
  wireOptions}
  from "../src/protocol.js";

test("Prompt-API option names become the back end's snake_case; unknown and undefined ones stay behind", () => {
  assert.deepEqual(samplingToWire({temperature: 0, topK: 3, topP: 0.9, minP: 0.1, repetitionPenalty: 1.1, seed: 7,
    maxTokens: 9, stop: ["\n"], topk: 5, signal: undefined, device: "wasm"}),
  {temperature: 0, top_k: 3, top_p: 0.9, min_p: 0.1, repetition_penalty: 1.1, seed: 7, max_tokens: 9, stop: ["\n"]});
  assert.deepEqual(samplingToWire({temperature: undefined}), {});
});

test("a prompt's options carry the response constraint; a RegExp crosses as {regex, flags}", () => {
  assert.deepEqual(constraintToWire(/19\d\d/u), {regex: "19\\d\\d", flags: "u"});
  const schema = {type: "integer"};
  assert.equal(constraintToWire(schema), schema);
  assert.deepEqual(wireOptions({maxTokens: 4, responseConstraint: /a|b/, omitResponseConstraintInput: 1}),
    {max_tokens: 4, response_constraint: {regex: "a|b", flags: ""}, omit_response_constraint_input: true});
  assert.deepEqual(JSON.parse(JSON.stringify(wireOptions({responseConstraint: /x/g}))), {response_constraint: {regex: "x", flags: "g"}});
});

test("a single plain user turn crosses as a string, anything else as the list", () => {
  assert.equal(toWire([{role: "user", content: "hi", prefix: false}]), "hi");
  const prefixed = [{role: "user", content: "hi", prefix: true}];
  assert.equal(toWire(prefixed), prefixed);
  const two = [{role: "system", content: "s", prefix: false}, {role: "user", content: "u", prefix: false}];
  assert.equal(toWire(two), two);
});

test("errors round trip: name, message, requested, contextWindow and stats survive JSON", () => {
  const cases = [
    [new TypeError("bad"), TypeError, "TypeError"],
    [new RangeError("far"), RangeError, "RangeError"],
    [named("AbortError", "stopped", {stats: {completion_tokens: 3}}), DOMException, "AbortError"],
    [named("NotSupportedError", "no images"), DOMException, "NotSupportedError"],
    [named("QuotaExceededError", "too long", {requested: 900, contextWindow: 512}), DOMException, "QuotaExceededError"],
    [named("InvalidModelError", "corrupt"), Error, "InvalidModelError"],
  ];
  for (const [err, Class, name] of cases) {
    const wire = JSON.parse(JSON.stringify(wireError(err)));
    const back = fromWire(wire);
    assert.ok(back instanceof Class, `${name} → ${back.constructor.name}`);
    assert.equal(back.name, name);
    assert.equal(back.message, err.message);
    for (const k of ["requested", "contextWindow", "stats"]) assert.deepEqual(back[k], err[k]);
  }
  assert.deepEqual(wireError("plain"), {name: "Error", message: "plain"});
});

test("abortReason: the signal's own reason, else an AbortError", () => {
  const c = new AbortController();
  c.abort("mine");
  assert.equal(abortReason(c.signal), "mine");
  const d = {reason: undefined, aborted: true};
  const e = abortReason(d);
  assert.ok(e instanceof DOMException && e.name === "AbortError");
});

test("PendingCalls routes chunks, progress and events by id, then settles once", async () => {
  const calls = new PendingCalls();
  const seen = [];
  const a = calls.add({onChunk: (p) => seen.push(["chunk", p]), onProgress: (p) => seen.push(["progress", p]),
    onEvent: (p) => seen.push(["event", p])});
  const b = calls.add();
  assert.notEqual(a.id, b.id);
  calls.receive({kind: "progress", id: a.id, payload: 1});
  calls.receive({kind: "chunk", id: a.id, payload: "x"});
  calls.receive({kind: "event", id: a.id, payload: {type: "device"}});
  calls.receive({kind: "chunk", id: 999, payload: "nobody's"});
  calls.receive({kind: "return", id: a.id, payload: 42});
  calls.receive({kind: "chunk", id: a.id, payload: "late"});
  assert.equal(await a.promise, 42);
  assert.deepEqual(seen, [["progress", 1], ["chunk", "x"], ["event", {type: "device"}]]);
  calls.receive({kind: "throw", id: b.id, payload: {name: "DataError", message: "corrupt"}});
  await assert.rejects(b.promise, (e) => e instanceof DOMException && e.name === "DataError");
  const c = calls.add(), d = calls.add();
  calls.failAll(new Error("gone"));
  await assert.rejects(c.promise, /gone/);
  await assert.rejects(d.promise, /gone/);
});

test("what cannot cross as plain data is a TypeError naming the field, before anything is sent", () => {
  checkSendable("prompt", {session: 1, input: [{role: "user", content: "hi"}], options: {top_k: NaN, stop: ["a"], x: null}});
  const cyclic = {a: 1};
  cyclic.self = cyclic;
  for (const [bad, where] of [[{options: {top_k: Symbol("s")}}, "options.top_k is a symbol"],
    [{options: {temperature: () => 1}}, "options.temperature is a function"], [{input: [1, 2n]}, "input[1] is a bigint"],
    [{options: {seed: new Date(0)}}, "options.seed is a Date"], [{options: {stop: new Map()}}, "options.stop is a Map"],
    [{x: cyclic}, "x.self refers to itself"]]) {
    assert.throws(() => checkSendable("prompt", bad), (e) => e instanceof TypeError && e.message.includes(where), where);
  }
});
