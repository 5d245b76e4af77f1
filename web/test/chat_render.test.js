// The chat demo's Markdown renderer (examples/chat/render.js) on its own, over jsdom: what a model's
// answer becomes, and that hostile text comes out inert.
import assert from "node:assert/strict";
import {test} from "node:test";
import DOMPurify from "dompurify";
import {JSDOM} from "jsdom";
import * as marked from "marked";
import {createRenderer} from "../../examples/chat/render.js";

const {window} = new JSDOM("<!doctype html><body></body>");
const {html, render} = createRenderer({marked, DOMPurify, window});

/** `text` rendered into a fresh element. @param {string} text */
function rendered(text) {
  const el = window.document.createElement("div");
  render(el, text);
  return el;
}

test("Markdown's elements: code blocks, lists, emphasis, headings, tables, links", () => {
  const el = rendered("# Title\n\nSome *emphasis*, **bold** and `code`.\n\n```python\nprint('<hi>')\n```\n\n" +
    "- one\n- two\n\n1. first\n2. second\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://example.org/x)");
  assert.equal(el.querySelector("h1").textContent, "Title");
  assert.equal(el.querySelector("em").textContent, "emphasis");
  assert.equal(el.querySelector("strong").textContent, "bold");
  assert.equal(el.querySelector("p code").textContent, "code");
  const code = el.querySelector(".code pre code.language-python");
  assert.equal(code.textContent, "print('<hi>')"); // as text, not markup
  assert.deepEqual([...el.querySelectorAll("ul li")].map((li) => li.textContent), ["one", "two"]);
  assert.deepEqual([...el.querySelectorAll("ol li")].map((li) => li.textContent), ["first", "second"]);
  assert.equal(el.querySelectorAll("td").length, 2);
  const a = el.querySelector("a");
  assert.equal(a.getAttribute("href"), "https://example.org/x");
  assert.equal(a.getAttribute("target"), "_blank");
  assert.equal(a.getAttribute("rel"), "noopener noreferrer");
});

test("each code block gets a Copy button; the text outside the blocks keeps no stray whitespace", () => {
  const el = rendered("Two blocks:\n\n```\na = 1\n```\n\n```js\nb\n```\n");
  const boxes = el.querySelectorAll("div.code");
  assert.equal(boxes.length, 2);
  for (const box of boxes) {
    const button = box.querySelector("button.copy");
    assert.equal(button.type, "button");
    assert.equal(button.textContent, "Copy");
  }
  assert.equal(rendered("The capital of France is Paris.").textContent, "The capital of France is Paris.");
});

test("streaming: every prefix of an answer renders, and an open code fence is already a code block", () => {
  const answer = "Here:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n- **done**";
  for (let i = 0; i <= answer.length; i++) rendered(answer.slice(0, i));
  const partial = rendered("Here:\n\n```python\ndef add(a, b):\n");
  assert.equal(partial.querySelector("pre code").textContent, "def add(a, b):");
  assert.equal(rendered(answer).querySelector("strong").textContent, "done");
});

const HOSTILE = [
  "<img src=x onerror=\"globalThis.pwned=1\">",
  "<script>globalThis.pwned=1</script>",
  "<svg onload=\"globalThis.pwned=1\"><circle/></svg>",
  "<iframe src=\"https://evil.example/\"></iframe>",
  "<a href=\"https://evil.example\" onclick=\"globalThis.pwned=1\">raw link</a>",
  "<style>body{background:url(https://evil.example/bg.png)}</style>",
  "<div style=\"background:url(https://evil.example/x.png)\">styled</div>",
  "<form action=\"https://evil.example\"><input name=q></form>",
  "[click](javascript:globalThis.pwned=1)",
  "[click2](JaVaScRiPt:globalThis.pwned=1)",
  "[data](data:text/html,<script>alert(1)</script>)",
  "![remote](https://evil.example/track.png)",
  "![remote2](//evil.example/track.png \"title\")",
  "<object data=\"https://evil.example/x.swf\"></object><embed src=\"https://evil.example/e\">",
  "<base href=\"https://evil.example/\"><link rel=stylesheet href=\"https://evil.example/s.css\">",
  "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
  "<details open ontoggle=\"globalThis.pwned=1\">x</details>",
  "`<img src=x onerror=alert(1)>` and <b id=\"log\" class=\"copy\">clobber</b>",
  "```\n</code></pre><img src=x onerror=alert(1)>\n```",
];

test("hostile Markdown renders inert: no script, handler, style, remote resource or javascript: link", () => {
  const fromString = (text) => {
    const t = window.document.createElement("template");
    t.innerHTML = html(text);
    return t.content;
  };
  for (const text of [...HOSTILE, HOSTILE.join("\n\n")]) for (const el of [rendered(text), fromString(text)]) {
    for (const node of el.querySelectorAll("*")) {
      assert.ok(!["SCRIPT", "IMG", "IFRAME", "STYLE", "SVG", "OBJECT", "EMBED", "BASE", "LINK", "META", "FORM", "INPUT",
        "DETAILS"].includes(node.nodeName), `${node.nodeName} survived in ${JSON.stringify(text)}`);
      for (const attr of node.getAttributeNames()) {
        assert.ok(!/^on/i.test(attr) && !["style", "src", "srcset", "id", "name", "action"].includes(attr),
          `${attr} survived in ${JSON.stringify(text)}`);
      }
      const href = node.getAttribute("href");
      assert.ok(href === null || /^(https?|mailto):/.test(href), `href ${href} survived in ${JSON.stringify(text)}`);
      const cls = node.getAttribute("class");
      assert.ok(cls === null || /^(language-\S+|code|copy)$/.test(cls), `class ${cls} survived`);
    }
  }
  // raw HTML is shown as the text it is; an image as its alt text
  assert.equal(rendered(HOSTILE[1]).textContent, "<script>globalThis.pwned=1</script>");
  assert.equal(rendered(HOSTILE[11]).textContent, "[image: remote]");
  assert.equal(rendered(HOSTILE[17]).querySelector("code").textContent, "<img src=x onerror=alert(1)>");
  assert.equal(rendered(HOSTILE[18]).querySelector("pre code").textContent, "</code></pre><img src=x onerror=alert(1)>");
  assert.equal(window.pwned, undefined);
});
