"""The chat demo (examples/chat) as a person meets it, in Debian's headless Chromium, offline: the
model line and the picker (nomoat serve's /models/index.json), the status while generating, a
rendered code block with its Copy button, Stop, Clear, the settings, a base model's completion box,
?model= refused off this origin, hostile Markdown inert; screenshots at desktop and phone widths.

The Markdown renderer on its own is tested in node (web/test/chat_render.test.js)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from offline import CHROMIUM, browser_flags

from nomoat.package import MANIFEST, PROOF, write_manifest
from nomoat.serve import make_server

TIMEOUT = 240_000  # ms
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CONTROLS = ["#models", "#status", "#input", "#send", "#stop", "#clear", "#settings summary"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": browser_flags()}


def base_copy(tiny_dir: Path, dest: Path) -> Path:
    """The tiny model as a base model: its tokenizer_config.json without a chat template (the
    manifest written again, so that its hashes still hold)."""
    shutil.copytree(tiny_dir, dest)
    (dest / PROOF).unlink(missing_ok=True)
    tok = json.loads((dest / "tokenizer_config.json").read_text())
    del tok["chat_template"]
    (dest / "tokenizer_config.json").write_text(json.dumps(tok))
    manifest = json.loads((dest / MANIFEST).read_text())
    write_manifest(dest, {k: v for k, v in manifest.items() if k not in ("format", "files")})
    return dest


@pytest.fixture(scope="module")
def models(tmp_path_factory, default_model_dir, tiny_dir) -> Path:
    """The served models folder: the default model, the tiny one, the tiny one without a chat
    template, and things the index must leave out."""
    root = tmp_path_factory.mktemp("demo_models")
    (root / "SmolLM2-135M-Instruct").symlink_to(default_model_dir)
    (root / "tiny").symlink_to(tiny_dir)
    base_copy(tiny_dir, root / "tiny-base")
    quant = shutil.copytree(tiny_dir, root / "tiny-q8", ignore=shutil.ignore_patterns("onnx"))
    manifest = json.loads((quant / MANIFEST).read_text())
    (quant / MANIFEST).write_text(json.dumps({**manifest, "quantization": "Q8_0"}))
    (root / "not-json").mkdir()
    (root / "not-json" / MANIFEST).write_text("{nope")
    (root / "bad-manifest").mkdir()
    (root / "bad-manifest" / MANIFEST).write_text(json.dumps({"files": {"../x": {"size": 1, "sha256": "0" * 64}}}))
    shutil.copytree(tiny_dir, root / "no-config", ignore=shutil.ignore_patterns("onnx", "config.json"))
    escape = shutil.copytree(tiny_dir, root / "escaping-config", ignore=shutil.ignore_patterns("onnx", "config.json"))
    (escape / "config.json").symlink_to(tiny_dir / "config.json")  # a link out of the package: not read
    (root / "downloads").mkdir()
    (root / "stray.txt").write_text("not a package")
    return root


def start(models: Path):
    srv = make_server(0, models=models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def server(models):
    srv = start(models)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def get_json(url: str):
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/" + url.split("//")[1].split("/", 1)[1])
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read()


# --- /models/index.json ------------------------------------------------------------------------------

def test_models_index_lists_the_valid_packages(server, models, default_model_dir, tiny_dir):
    status, ctype, body = get_json(server + "/models/index.json")
    assert status == 200 and ctype == "application/json"
    index = {m["name"]: m for m in json.loads(body)["models"]}
    assert list(index) == ["SmolLM2-135M-Instruct", "tiny", "tiny-base", "tiny-q8"]  # the broken ones left out
    manifest = json.loads((default_model_dir / MANIFEST).read_text())
    assert index["SmolLM2-135M-Instruct"] == {
        "name": "SmolLM2-135M-Instruct", "url": "/models/SmolLM2-135M-Instruct/",
        "bytes": sum(f["size"] for f in manifest["files"].values()), "model_type": "llama", "context_window": 8192,
        "chat": True, "quantization": manifest.get("quantization", "SmolLM2-135M-Instruct.Q4_1.gguf"), "kind": "llm"}
    config = json.loads((tiny_dir / "config.json").read_text())
    tiny_manifest = json.loads((tiny_dir / MANIFEST).read_text())  # a GGUF without general.file_type: its name
    assert "quantization" not in tiny_manifest and index["tiny"]["quantization"] == tiny_manifest["source"]["gguf"]
    assert index["tiny"]["chat"] is True and index["tiny-base"]["chat"] is False
    assert index["tiny"]["context_window"] == config["max_position_embeddings"]
    assert index["tiny-q8"]["quantization"] == "Q8_0"  # nomoat.json's own field wins over the GGUF's name


def test_a_real_index_file_wins(tmp_path, tiny_dir):
    (tmp_path / "tiny").symlink_to(tiny_dir)
    (tmp_path / "index.json").write_text('{"models": []}')
    srv = start(tmp_path)
    try:
        assert get_json(f"http://127.0.0.1:{srv.server_address[1]}/models/index.json")[2] == b'{"models": []}'
    finally:
        srv.shutdown()


# --- the page ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Screenshots go under pytest's temporary folder, or to $NOMOAT_SCREENSHOTS (README's picture:
    `NOMOAT_SCREENSHOTS=docs .venv/bin/pytest tests/test_demo.py -k markdown` makes docs/desktop-answer.png)."""
    if os.environ.get("NOMOAT_SCREENSHOTS"):
        d = Path(os.environ["NOMOAT_SCREENSHOTS"])
        d.mkdir(parents=True, exist_ok=True)
        return d
    d = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots: {d}")
    return d


WATCH_STATUS = """document.addEventListener("DOMContentLoaded", () => {
    window.statuses = [];
    new MutationObserver(() => window.statuses.push(document.getElementById("status").textContent))
        .observe(document.getElementById("status"), {childList: true, characterData: true, subtree: true});
});"""


@pytest.fixture(scope="module")
def demo(browser, server):
    """The demo on the default model at temperature 0, in a desktop-sized window; the tests below
    use it in turn (chat, stop, settings, clear, then a switch to the base model)."""
    ctx = browser.new_context(viewport=DESKTOP)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    ctx.add_init_script(WATCH_STATUS)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + "/?temperature=0")
    page.wait_for_function("document.body.dataset.ready === '1' || document.querySelector('.error')")
    yield page
    ctx.close()


def visible_and_inside(page, selector: str) -> None:
    """`selector` is shown whole within the window (not clipped off an edge, not scrolled away)."""
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None, f"{selector} is not shown"
    assert box["width"] > 0 and box["height"] > 0, f"{selector} has no size"
    assert box["x"] >= 0 and box["y"] >= 0, f"{selector} starts outside the window: {box}"
    assert box["x"] + box["width"] <= size["width"] + 0.5, f"{selector} is cut off at the right: {box} in {size}"
    assert box["y"] + box["height"] <= size["height"] + 0.5, f"{selector} is cut off at the bottom: {box} in {size}"


def no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), "the page scrolls sideways"


def test_model_line_and_picker(demo):
    assert demo.query_selector(".error") is None
    assert demo.text_content("#status").startswith("ready in ")
    line = demo.text_content("#model")
    for part in ("SmolLM2-135M-Instruct", "llama", "MB", "Q4_1", "8,192-token context", "chat"):
        assert part in line, line
    options = demo.eval_on_selector_all("#models option", "os => os.map((o) => [o.textContent, o.selected])")
    assert options == [["SmolLM2-135M-Instruct", True], ["tiny", False], ["tiny-base (base)", False],
                       ["tiny-q8", False]]
    assert demo.get_attribute("#device", "data-device") == "wasm"


def test_answer_as_markdown_with_a_live_status(demo, shots):
    demo.evaluate("window.statuses.length = 0")
    demo.fill("#input", "Show me hello world in Python in a code block.")
    demo.click("#send")
    demo.wait_for_selector(".assistant[data-done='1']")
    seen = demo.evaluate("window.statuses")
    assert any(s.startswith("generating") for s in seen), seen
    assert any(s.startswith("generating") and "tok/s" in s for s in seen), seen
    assert demo.text_content("#status") == "ready"
    assert "tok/s" in demo.text_content("#stats") and "first token" in demo.text_content("#stats")
    code = demo.locator(".assistant .code pre code.language-python")
    assert code.text_content() == '# Hello, World in Python\nprint("Hello, World!")'
    assert "```" not in demo.text_content(".assistant")
    demo.click(".assistant .code button.copy")
    demo.wait_for_function("document.querySelector('.assistant .copy').textContent !== 'Copy'")
    assert demo.text_content(".assistant .copy") == "Copied"
    assert demo.evaluate("navigator.clipboard.readText()") == code.text_content()
    demo.screenshot(path=shots / "desktop-answer.png")
    for sel in CONTROLS:
        visible_and_inside(demo, sel)
    no_horizontal_scroll(demo)
    demo.set_viewport_size(PHONE)
    demo.screenshot(path=shots / "phone-answer.png")
    for sel in CONTROLS:
        visible_and_inside(demo, sel)
    visible_and_inside(demo, ".assistant .code button.copy")
    no_horizontal_scroll(demo)
    demo.set_viewport_size(DESKTOP)


def test_stop_is_shown_while_generating_on_a_phone(demo, shots):
    demo.set_viewport_size(PHONE)
    demo.fill("#input", "Write a long story about a dragon.")
    demo.click("#send")
    demo.wait_for_function("document.getElementById('status').textContent.includes('tok/s')")
    assert demo.get_attribute("#status", "data-state") == "generating"
    assert demo.is_enabled("#stop") and not demo.is_enabled("#send")
    demo.screenshot(path=shots / "phone-generating.png")
    for sel in CONTROLS:
        visible_and_inside(demo, sel)
    demo.click("#stop")
    demo.wait_for_selector(".assistant[data-done='1'] >> nth=1")
    assert demo.text_content(".assistant >> nth=1").endswith("[stopped]")
    assert demo.text_content("#status") == "ready" and not demo.is_enabled("#stop")
    demo.set_viewport_size(DESKTOP)


def test_settings_start_a_new_conversation(demo):
    demo.click("#settings summary")
    demo.fill("#system", "Answer in one word.")
    demo.fill("#temperature", "0")
    demo.press("#temperature", "Tab")  # a change event for each field
    demo.wait_for_function("document.querySelector('.divider') && document.getElementById('send').disabled === false")
    note = demo.text_content(".divider >> nth=-1")
    assert note.startswith("New conversation: temperature 0, top-k 40") and "Answer in one word." in note
    assert demo.eval_on_selector_all(".msg.user", "ms => ms.every((m) => m.classList.contains('old'))")
    demo.fill("#input", "What is the capital of France?")
    demo.click("#send")
    demo.wait_for_selector(".assistant:not(.old)[data-done='1']")
    assert "prompt" in demo.text_content("#stats")


def test_clear_empties_the_chat(demo):
    demo.click("#clear")
    demo.wait_for_function("document.getElementById('log').children.length === 0 && "
                           "document.getElementById('status').textContent === 'ready'")
    assert demo.text_content("#stats") == ""
    assert demo.is_enabled("#input")


def test_picking_a_base_model_gives_a_completion_box(demo, shots):
    demo.select_option("#models", label="tiny-base (base)")
    demo.wait_for_function("document.body.dataset.ready === '1' || document.querySelector('.error')")
    assert demo.query_selector(".error") is None
    assert "model=%2Fmodels%2Ftiny-base%2F" in demo.url or "model=/models/tiny-base/" in demo.url
    assert demo.get_attribute("body", "data-mode") == "completion"
    assert "tiny-base" in demo.text_content("#model") and "base model: plain completion" in demo.text_content("#model")
    assert demo.text_content("#send") == "Complete" and not demo.is_enabled("#system")
    assert "continues" in demo.get_attribute("#input", "placeholder")
    demo.fill("#input", "Once upon a time")
    demo.click("#send")
    demo.wait_for_selector(".completion .assistant[data-done='1']", state="attached")
    # The UI only: the continuation (or, until prompt() continues plain text on a model without a
    # chat template, the error saying so) follows the prompt, which stays in the box.
    assert demo.text_content(".completion .prompt") == "Once upon a time"
    assert demo.input_value("#input") == "Once upon a time"
    assert demo.text_content("#status") == "ready"
    demo.screenshot(path=shots / "desktop-completion.png")
    demo.set_viewport_size(PHONE)
    demo.screenshot(path=shots / "phone-completion.png")
    for sel in CONTROLS:
        visible_and_inside(demo, sel)
    no_horizontal_scroll(demo)


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport=PHONE)
    p = ctx.new_page()
    p.set_default_timeout(TIMEOUT)
    yield p
    ctx.close()


@pytest.mark.parametrize("model", ["https://elsewhere.example/models/x/", "//elsewhere.example/models/x/",
                                   "javascript:alert(1)", "data:text/plain,x"])
def test_model_parameter_names_only_this_origin(page, server, model, shots):
    seen: list[str] = []
    page.context.on("request", lambda r: seen.append(r.url))
    page.goto(server + "/?model=" + model.replace("&", "%26").replace(":", "%3A").replace("/", "%2F"))
    page.wait_for_selector("#notice:not([hidden])")
    assert "may only name a model package on this server" in page.text_content("#notice")
    assert page.text_content("#status") == "refused"
    assert page.get_attribute("body", "data-ready") is None and not page.is_enabled("#input")
    assert page.is_enabled("#models")  # a model of this server can still be picked
    assert all(u.startswith(server + "/") for u in seen), seen
    if model.startswith("https"):
        page.screenshot(path=shots / "phone-refused.png")


def test_a_bare_model_name_is_a_package_here(page, server):
    page.goto(server + "/?model=tiny")
    page.wait_for_function("document.body.dataset.ready === '1' || document.querySelector('.error')")
    assert page.query_selector(".error") is None
    assert page.text_content("#model").startswith("tiny · llama")
    assert page.input_value("#models") == server + "/models/tiny/"


HOSTILE = ("Look: <img src=x onerror=\"window.pwned=1\"> <script>window.pwned=2</script> "
           "[click](javascript:window.pwned=3) ![pixel](https://evil.example/p.png) ![local](/models/index.json)\n\n"
           "<iframe src=\"https://evil.example/\"></iframe><div style=\"background:url(https://evil.example/b.png)\">x</div>"
           "\n\n```html\n<img src=x onerror=\"window.pwned=4\">\n```\n")


def test_hostile_markdown_renders_inert_in_the_page(page, server):
    """The page's own renderer (render.js over the vendored marked and DOMPurify), into the live
    document: nothing runs, nothing loads."""
    seen: list[str] = []
    page.context.on("request", lambda r: seen.append(r.url))
    page.goto(server + "/?load=0")
    r = page.evaluate("""async (text) => {
        const {createRenderer} = await import("/render.js");
        const marked = await import("/vendor/marked.esm.js");
        const {default: DOMPurify} = await import("/vendor/purify.es.mjs");
        const el = document.createElement("div");
        el.className = "msg assistant";
        document.getElementById("log").append(el);
        createRenderer({marked, DOMPurify, window}).render(el, text);
        await new Promise((r) => setTimeout(r, 500));
        return {pwned: window.pwned ?? null, html: el.innerHTML, text: el.textContent,
                links: [...el.querySelectorAll("a")].map((a) => a.getAttribute("href")),
                loads: [...el.querySelectorAll("img, script, iframe, [style], [src]")].length};
    }""", HOSTILE)
    assert r["pwned"] is None and r["loads"] == 0, r
    assert r["links"] == [None], r  # the javascript: link keeps its text, loses its target
    assert "[image: pixel]" in r["text"] and '<img src=x onerror="window.pwned=4">' in r["text"]
    assert not [u for u in seen if "evil.example" in u or u.endswith("/models/index.json")], seen
