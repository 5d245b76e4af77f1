// llm.js modelURL: what a `model` option names.
import assert from "node:assert/strict";
import {test} from "node:test";
import {modelURL} from "../src/llm.js";

const BASE = "http://host/dist/";
const PAGE = "http://host/app/page.html";
const DEFAULT = "http://host/dist/models/SmolLM2-135M-Instruct/";

test("a bare name is the package of that name next to nomoat.js; a path or URL is the page's", () => {
  assert.equal(modelURL("gemma-3-270m", BASE, PAGE, DEFAULT), "http://host/dist/models/gemma-3-270m/");
  assert.equal(modelURL("SmolLM2-1.7B_q4", BASE, PAGE, DEFAULT), "http://host/dist/models/SmolLM2-1.7B_q4/");
  assert.equal(modelURL("/models/tiny/", BASE, PAGE, DEFAULT), "http://host/models/tiny/");
  assert.equal(modelURL("pkgs/tiny/", BASE, PAGE, DEFAULT), "http://host/app/pkgs/tiny/");
  assert.equal(modelURL("../up", BASE, PAGE, DEFAULT), "http://host/up");
  assert.equal(modelURL("https://cdn.example/m/", BASE, PAGE, DEFAULT), "https://cdn.example/m/");
  for (const none of [undefined, null, ""]) assert.equal(modelURL(none, BASE, PAGE, DEFAULT), DEFAULT);
});
