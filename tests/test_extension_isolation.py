"""The web page that the extension's "Ask nomoat" panel sits on is the attacker: its own script
tries to read the question the user types and the model's answer, to write into the panel, to
stop the panel from appearing, to make a real user click send a question (clickjacking), and to
reach the extension's back end. Each attack must fail, and the panel must still answer.

The panel is an extension page (panel.html) in an iframe that content.js puts in a closed shadow
root. Against the old panel (a <div id="nomoat-panel"> with an open shadow root in the page's DOM)
the same page script read the typed prompt (the textarea's value and every key event), read the
answer, wrote "your session expired" into it, suppressed the panel with a same-id element, and a
real click on the faded panel sent the page's own question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_extension import ANSWER, QUESTION, extension_dir, launch, panel_of, serve_folder  # noqa: F401 (extension_dir: a fixture)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "my bank password is hunter2"
VISIBLE_MS = 500  # panel.js: how long the panel must have been fully visible before it sends

# The page's spy, installed before anything is typed: capture-phase listeners on window and document
# for every key and input event, and a walk of everything the page's script can reach (the DOM,
# open shadow roots, same-origin frames, computed styles, window.frames).
SPY = """() => {
    window.spied = [];
    for (const target of [window, document])
        for (const type of ["keydown", "keypress", "keyup", "input", "beforeinput", "compositionend", "paste"])
            target.addEventListener(type, (e) => window.spied.push(e.key ?? e.data ?? ""), true);
}"""
READ = """() => {
    const seen = [];
    const walk = (root) => {
        for (const el of root.querySelectorAll("*")) {
            seen.push(el.textContent || "", el.value || "", el.getAttribute("src") || "",
                      getComputedStyle(el).content, getComputedStyle(el, "::before").content);
            if (el.shadowRoot) walk(el.shadowRoot);
            if (el.tagName === "IFRAME") {
                try { walk(el.contentDocument); } catch (e) { seen.push("frame:" + e.name); }
            }
        }
    };
    walk(document);
    const frames = [];
    for (let i = 0; i < window.length; i++) {
        try { frames.push(window.frames[i].document.body.innerText); } catch (e) { frames.push(e.name); }
    }
    return {text: seen.join("\\n") + document.documentElement.innerText, keys: window.spied.join(""),
            frames, iframes: document.querySelectorAll("iframe").length,
            shadowRoots: [...document.querySelectorAll("*")].filter((el) => el.shadowRoot).length};
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two localhost pages: a plain one, and one that already holds the old panel's id."""
    root = tmp_path_factory.mktemp("hostile-site")
    (root / "index.html").write_text("<!doctype html><title>a page</title><h1>A page on localhost</h1>")
    (root / "same-id.html").write_text('<!doctype html><title>same id</title><div id="nomoat-panel">mine</div>'
                                       '<iframe id="panel" name="nomoat-panel"></iframe>')
    yield from serve_folder(root)


@pytest.fixture(scope="module")
def ext(playwright, extension_dir, tmp_path_factory):  # noqa: F811
    """(context, extension id, nomoat's service worker)."""
    ctx, workers = launch(playwright, tmp_path_factory.mktemp("isolation-profile"), [extension_dir])
    sw = workers["nomoat: a local LLM"]
    yield ctx, sw.url.split("/")[2], sw
    ctx.close()


def wait_visible(panel, visible: bool = True) -> None:
    """Until IntersectionObserver v2 has told the panel whether it is visible (and, when it is, for
    long enough that it will send)."""
    panel.wait_for_selector(f"body[data-visible='{str(visible).lower()}']", state="attached")  # no eval: CSP
    if visible:
        panel.wait_for_timeout(VISIBLE_MS + 200)


def refused(panel) -> int:
    return int(panel.get_attribute("#status", "data-refused") or 0)


def click_ask(page, panel) -> None:
    """A real mouse click (trusted input) where the panel's Ask button is on the screen."""
    box = panel.locator("#ask").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_postmessage_and_runtime_from_the_page_reach_nothing(ext, site):
    """A page that knows the extension id: no chrome.runtime to message it with, window.postMessage
    in the protocol's shapes relayed by no one (the back end is not even started by it), and
    panel.html cannot be framed by the page itself (use_dynamic_url)."""
    ctx, ext_id, sw = ext
    sw.evaluate("closeOffscreen()")
    page = ctx.new_page()
    page.goto(site)
    panel_of(page, ext_id)
    r = page.evaluate("""async (id) => {
        const runtime = typeof chrome === "undefined" ? undefined : chrome.runtime;
        const out = {runtime: runtime ? typeof runtime.sendMessage : "absent"};
        if (runtime && runtime.sendMessage) {
            try { out.send = await runtime.sendMessage(id, {type: "nomoat:ensure"}); } catch (e) { out.send = "error"; }
        }
        if (runtime && runtime.connect) {
            try { runtime.connect(id, {name: "nomoat"}); out.connect = "made"; } catch (e) { out.connect = "error"; }
        }
        for (const m of [{type: "nomoat:ensure"}, {kind: "create", id: 1, payload: {options: {}}},
                         {kind: "prompt", id: 2, payload: {session: 1, input: "hi"}}, {question: "hi"}]) {
            window.postMessage(m, "*");
            window.top.postMessage(m, "*");
        }
        out.frames = window.length;
        out.framed = await new Promise((resolve) => {
            const f = document.createElement("iframe");
            f.src = `chrome-extension://${id}/panel.html`;
            f.onload = () => { try { resolve(f.contentWindow.location.href); } catch (e) { resolve("cross-origin"); } };
            document.body.appendChild(f);
            setTimeout(() => resolve("no load"), 5000);
        });
        await new Promise((r) => setTimeout(r, 2000));
        return out;
    }""", ext_id)
    assert r["runtime"] in ("absent", "undefined"), r  # externally_connectable matches nothing
    assert r["frames"] == 0  # the panel's frame is not in window.frames: nothing to postMessage to
    own = [f.url for f in page.frames if f.parent_frame == page.main_frame and "panel.html" in f.url]
    assert len(own) == 1, own  # only content.js's panel; the page's own iframe was refused
    assert sw.evaluate("offscreenExists()") is False  # nothing the page sent started the back end
    manifest = json.loads((ROOT / "examples" / "extension" / "manifest.json").read_text())
    assert manifest["externally_connectable"] == {"ids": [], "matches": []}
    assert manifest["web_accessible_resources"] == [{"resources": ["panel.html"], "use_dynamic_url": True,
                                                     "matches": manifest["content_scripts"][0]["matches"]}]
    for name in ("content.js", "panel.js"):  # no window.postMessage channel to spoof
        source = (ROOT / "examples" / "extension" / name).read_text()
        assert '"message"' not in source and "onmessage" not in source, name
    page.close()


def test_the_page_reads_and_writes_nothing_and_the_panel_answers(ext, site):
    ctx, ext_id, _ = ext
    page = ctx.new_page()
    page.goto(site)
    panel = panel_of(page, ext_id)
    page.evaluate(SPY)
    # The user types into the panel: real key events, sent to the focused panel frame.
    panel.click("#question")
    page.keyboard.type(SECRET)
    assert panel.input_value("#question") == SECRET
    spied = page.evaluate(READ)
    assert SECRET not in spied["text"] and spied["keys"] == "", spied["keys"]
    assert spied["frames"] == [] and spied["iframes"] == 0 and spied["shadowRoots"] == 0
    # The user asks; the panel answers; the page still sees nothing of either.
    panel.fill("#question", QUESTION)
    wait_visible(panel)
    panel.click("#ask")
    panel.wait_for_selector("#answer[data-done='1']", timeout=240_000)
    assert panel.text_content("#answer") == ANSWER
    spied = page.evaluate(READ)
    for private in (SECRET, QUESTION, ANSWER, "Paris"):
        assert private not in spied["text"], private
    assert spied["keys"] == ""
    # The page writes its own text into everything it can reach, the panel's host included.
    page.evaluate("""() => {
        const fake = "Your session expired, visit https://evil.example/login";
        for (const el of document.querySelectorAll("body *, html > :not(head):not(body)")) {
            try { el.attachShadow({mode: "open"}).textContent = fake; } catch (e) { el.append(fake); }
        }
    }""")
    assert "expired" not in panel.evaluate("document.documentElement.innerText")
    assert panel.text_content("#answer") == ANSWER and panel.input_value("#question") == QUESTION
    page.close()


def test_an_element_with_the_panels_old_id_does_not_suppress_it(ext, site):
    ctx, ext_id, _ = ext
    page = ctx.new_page()
    page.goto(site + "same-id.html")
    panel = panel_of(page, ext_id)
    wait_visible(panel)
    assert page.evaluate("document.getElementById('nomoat-panel').textContent") == "mine"
    page.close()


# Page script: style the panel's host (the page can find it: the last element of <html>) and put
# the page's own button, which the user means to click, where the panel is.
FADE = """(css) => {
    const host = document.documentElement.lastElementChild;
    host.style.cssText += ";" + css;
    const r = host.getBoundingClientRect();
    const b = document.createElement("button");
    b.textContent = "Claim your prize";
    b.style.cssText = `position: fixed; left: ${r.left}px; top: ${r.top}px; width: ${r.width}px;
                       height: ${r.height}px`;
    b.onclick = () => { window.pageClicks = (window.pageClicks || 0) + 1; };
    document.body.appendChild(b);
    window.pageButton = b;
}"""
# Page script: draw the page's own decoy over the panel (after it in the DOM, or in the top layer).
COVER = """([css, topLayer]) => {
    const r = document.documentElement.lastElementChild.getBoundingClientRect();
    const d = document.createElement("div");
    d.textContent = "Your session expired: click to continue";
    d.style.cssText = `position: fixed; margin: 0; left: ${r.left}px; top: ${r.top}px; width: ${r.width}px;
                       height: ${r.height}px; z-index: 2147483647; background: white; ${css}`;
    document.documentElement.appendChild(d);
    if (topLayer) { d.popover = "manual"; d.showPopover(); }
    d.onclick = () => { window.pageClicks = (window.pageClicks || 0) + 1; };
    window.decoy = d;
}"""
UNDO = """() => {
    const host = document.documentElement.lastElementChild;
    for (const p of ["opacity", "filter", "pointer-events"]) host.style.removeProperty(p);
    host.style.setProperty("right", "12px", "important");
    for (const el of [window.pageButton, window.decoy]) if (el) el.remove();
    window.pageButton = window.decoy = null;
}"""

# attack -> (page script, its argument, what becomes of the click: "refused" by the panel, or
# "missed": it went to the page's own element)
CLICKJACKS = {
    "faded": (FADE, "opacity: 0.01 !important", "refused"),
    "filtered": (FADE, "filter: opacity(0.05) !important", "refused"),
    "pushed nearly off screen": (FADE, "right: -290px !important", "refused"),
    "decoy over it, clicks pass through": (COVER, ["pointer-events: none", False], "refused"),
    "nearly transparent decoy in the top layer": (COVER, ["pointer-events: none; opacity: 0.02", True], "refused"),
    "decoy catching the click": (COVER, ["", False], "missed"),
    "panel letting clicks through to the page": (FADE, "opacity: 0 !important; pointer-events: none !important",
                                                 "missed"),
}


@pytest.mark.parametrize("attack", list(CLICKJACKS))
def test_clickjacking_sends_nothing(ext, site, attack):
    """The user's question sits in the panel; the page hides or covers the panel and gets a real
    click on it. The panel sends nothing: it refuses (covered or faded), or never gets the click."""
    ctx, ext_id, _ = ext
    page = ctx.new_page()
    page.goto(site)
    panel = panel_of(page, ext_id)
    panel.fill("#question", QUESTION)
    wait_visible(panel)
    script, arg, outcome = CLICKJACKS[attack]
    page.evaluate(script, arg)
    wait_visible(panel, False)
    before = refused(panel)
    click_ask(page, panel)
    page.wait_for_timeout(1000)
    assert panel.get_attribute("#answer", "data-done") is None and panel.text_content("#answer") == ""
    assert panel.text_content("#status") != "thinking…"
    if outcome == "missed":  # the click went to the page's own element
        assert refused(panel) == before and page.evaluate("window.pageClicks") == 1
    else:
        assert refused(panel) == before + 1, panel.text_content("#status")
    # Once the page stops, a real click sends the question.
    page.evaluate(UNDO)
    wait_visible(panel)
    click_ask(page, panel)
    panel.wait_for_selector("#answer[data-done='1']", timeout=240_000)
    assert panel.text_content("#answer") == ANSWER
    page.close()


def test_a_panel_that_only_just_appeared_under_the_cursor_does_not_send(ext, site):
    """The page keeps the panel invisible and shows it just as the user clicks its own button."""
    ctx, ext_id, _ = ext
    page = ctx.new_page()
    page.goto(site)
    panel = panel_of(page, ext_id)
    panel.fill("#question", QUESTION)
    page.evaluate(FADE, "opacity: 0 !important")
    wait_visible(panel, False)
    before = refused(panel)
    page.evaluate(UNDO)
    click_ask(page, panel)
    page.wait_for_timeout(1000)
    assert refused(panel) == before + 1, panel.text_content("#status")
    assert panel.get_attribute("#answer", "data-done") is None
    page.close()


def test_a_script_made_click_in_the_panel_is_ignored(ext, site):
    """Not something a page can do (the panel is another origin), but the panel acts on user input
    only: a click made by script in the panel's own document is refused."""
    ctx, ext_id, _ = ext
    page = ctx.new_page()
    page.goto(site)
    panel = panel_of(page, ext_id)
    panel.fill("#question", QUESTION)
    wait_visible(panel)
    panel.evaluate("document.getElementById('ask').click()")
    assert refused(panel) == 1 and panel.get_attribute("#answer", "data-done") is None
    page.close()
