# ruff: noqa: E501  (the JavaScript in the strings reads better unwrapped)
"""The task APIs (Summarizer, Writer, Rewriter, Proofreader, Translator, LanguageDetector) in headless
Chromium, installed by `llm.polyfill()` over the real default model (SmolLM2-135M-Instruct, wasm):
conformance written from the spec texts (webmachinelearning/writing-assistance-apis, proofreader-api,
translation-api index.bs), each test naming the algorithm it checks, and one real answer per API
that can be checked. web/test/task_apis.test.js covers the same surface exhaustively over a fake back end."""

from __future__ import annotations

import pytest
from test_prompt_api import error_of, js  # the page's window.ERR shapes a throw
from test_web import TIMEOUT, blank_page, browser_type_launch_args, models, server  # noqa: F401

ERR = """(e) => ({name: e.name, ctor: e.constructor.name, message: e.message, requested: e.requested, quota: e.quota,
                  same: e === window.reason})"""
ARTICLE = ("The city of Lyon opened a new public library on Monday. The library has three floors, "
           "more than two hundred thousand books, a large reading room for children and free internet access. "
           "The mayor said the library cost forty million euros and took four years to build. "
           "It will be open every day from eight in the morning until ten at night.")


@pytest.fixture(scope="module")
def page(browser, server):  # noqa: F811
    page = blank_page(browser, server)
    page.evaluate(f"() => {{ window.ERR = {ERR}; window.ARTICLE = {ARTICLE!r}; }}")
    r = page.evaluate("""async () => {
        const names = ["Summarizer", "Writer", "Rewriter", "Proofreader", "Translator", "LanguageDetector"];
        const before = Object.fromEntries(names.map((n) => [n, typeof globalThis[n]]));
        const first = await llm.polyfill();
        const forced = await llm.polyfill({force: true});  // this Chromium's own Translator may say "downloadable"
        return {before, first: first.tasks, forced: forced.tasks, ours: names.every((n) => globalThis[n] === llm[n])};
    }""")
    print("native task APIs:", r["before"], "first polyfill():", r["first"])
    for name, t in r["first"].items():  # installed where missing or unavailable; a usable native one is kept
        assert t["installed"] or ("the browser's own" in t["reason"] and "unavailable" not in t["reason"]), (name, t)
        assert t["installed"] or r["before"][name] == "function"
    assert r["ours"], r
    yield page
    page.close()


def test_polyfill_installs_every_task_api_once(page):
    r = js(page, """const names = ["Summarizer", "Writer", "Rewriter", "Proofreader", "Translator", "LanguageDetector"];
        const again = await llm.polyfill();
        return {same: names.map((n) => globalThis[n] === llm[n]), again: again.tasks};""")
    assert r["same"] == [True] * 6
    assert all(t == {"installed": True, "reason": "already installed"} for t in r["again"].values())


def test_availability_by_language_and_the_model(page):
    # "compute AI model availability" / "compute language availability": the default model is English only
    r = js(page, """return {
        sum: await Summarizer.availability(), en: await Writer.availability({expectedInputLanguages: ["en-US"], outputLanguage: "en"}),
        fr: await Summarizer.availability({expectedInputLanguages: ["fr"]}), out: await Rewriter.availability({outputLanguage: "de"}),
        enfr: await Translator.availability({sourceLanguage: "en", targetLanguage: "fr"}),
        same: await Translator.availability({sourceLanguage: "en", targetLanguage: "en-GB"}),
        det: await LanguageDetector.availability({expectedInputLanguages: ["fr", "de"]}),
        ja: await LanguageDetector.availability({expectedInputLanguages: ["ja"]}),
        proof: await Proofreader.availability({expectedInputLanguages: ["es"]})};""")
    assert r["sum"] in ("downloadable", "available") and r["en"] == r["sum"]
    assert (r["fr"], r["out"], r["enfr"], r["ja"], r["proof"]) == ("unavailable",) * 5
    assert (r["same"], r["det"]) == ("available", "available")
    assert error_of(page, "await Summarizer.availability({type: 'essay'});")["ctor"] == "TypeError"
    assert error_of(page, "await Writer.availability({expectedInputLanguages: ['en_US!!']});")["ctor"] == "RangeError"
    assert error_of(page, "await Translator.create({sourceLanguage: 'en', targetLanguage: 'fr'});")["name"] == "NotSupportedError"
    assert error_of(page, "await Translator.create();")["ctor"] == "TypeError"


def test_create_fires_downloadprogress_and_loads_the_model(page):
    # "create an AI model object" / "initialize and return an AI model object": 0 first, 1 last
    r = js(page, """const seen = [];
        window.sum = await Summarizer.create({type: "tldr", format: "plain-text", length: "short", sharedContext: "A local news site.",
            monitor(m) { m.addEventListener("downloadprogress", (e) => seen.push([e.loaded, e.total])); }});
        return {seen, type: sum.type, format: sum.format, length: sum.length, shared: sum.sharedContext, quota: sum.inputQuota,
                langs: sum.expectedInputLanguages, after: await Summarizer.availability()};""")
    assert r["seen"][0] == [0, 1] and r["seen"][-1] == [1, 1], r["seen"]
    assert all(a[0] <= b[0] for a, b in zip(r["seen"], r["seen"][1:], strict=False))
    assert (r["type"], r["format"], r["length"], r["shared"], r["langs"]) == ("tldr", "plain-text", "short", "A local news site.", None)
    assert 0 < r["quota"] < 100_000 and r["after"] == "available"


def test_summarizer_gives_a_short_summary_that_names_the_subject(page):
    r = js(page, """const whole = await sum.summarize(ARTICLE);
        let streamed = "";
        for await (const piece of sum.summarizeStreaming(ARTICLE)) streamed += piece;
        return {whole, streamed, usage: await sum.measureInputUsage(ARTICLE), quota: sum.inputQuota};""")
    print("summary:", r)
    assert r["whole"] == r["streamed"]  # greedy: the same answer both ways
    assert 0 < len(r["whole"]) < len(ARTICLE)
    assert "library" in r["whole"].lower()
    assert 0 < r["usage"] < r["quota"]


def test_writer_and_rewriter_answer(page):
    r = js(page, """const w = await Writer.create({tone: "casual", length: "short", format: "plain-text"});
        const note = await w.write("A thank-you note to a colleague named Sam for helping with a report.");
        const rw = await Rewriter.create({length: "shorter"});
        const input = "The library, which was opened on Monday by the mayor of the city, has three floors and more than two hundred thousand books for everyone to read.";
        const shorter = await rw.rewrite(input);
        let streamed = "";
        for await (const piece of rw.rewriteStreaming(input)) streamed += piece;
        w.destroy(); rw.destroy();
        return {note, shorter, streamed, input, tones: [w.tone, w.length, w.format, rw.tone, rw.length, rw.format]};""")
    print("writer/rewriter:", r)
    assert r["tones"] == ["casual", "short", "plain-text", "as-is", "shorter", "as-is"]
    assert "sam" in r["note"].lower() and len(r["note"].split()) <= 120  # "short": at most 100 words (+ slack)
    assert r["shorter"] == r["streamed"]
    assert 0 < len(r["shorter"]) < len(r["input"]) and "library" in r["shorter"].lower()


def test_proofreader_fixes_a_seeded_typo(page):
    r = js(page, """const p = await Proofreader.create({includeCorrectionTypes: true});
        const input = "I have a black cat and a whit dog.";
        const result = await p.proofread(input);
        p.destroy();
        return {input, ...result};""")
    print("proofread:", r)
    assert "white dog" in r["correctedInput"]
    fixed = [c for c in r["corrections"] if r["input"][c["startIndex"]:c["endIndex"]].strip() == "whit"]
    assert fixed and fixed[0]["correction"].strip() == "white" and fixed[0]["types"] == ["spelling"]
    rebuilt = r["input"]
    for c in sorted(r["corrections"], key=lambda c: -c["startIndex"]):
        rebuilt = rebuilt[:c["startIndex"]] + c["correction"] + rebuilt[c["endIndex"]:]
    assert rebuilt == r["correctedInput"]


def test_translator_identity_and_language_detector(page):
    # translation-api: the identity arc returns the input; "detect languages": und last, best first
    r = js(page, """const t = await Translator.create({sourceLanguage: "en", targetLanguage: "en-US"});
        const d = await LanguageDetector.create();
        const out = {same: await t.translate("Hello, world."), quota: t.inputQuota,
            en: await d.detect(ARTICLE), fr: (await d.detect("La bibliothèque est ouverte tous les jours de la semaine."))[0],
            none: await d.detect("12345 67")};
        out.quotaIsInfinite = t.inputQuota === Infinity;
        return out;""")
    assert r["same"] == "Hello, world." and r["quotaIsInfinite"]
    assert r["en"][0]["detectedLanguage"] == "en" and r["en"][0]["confidence"] > 0.9 and r["en"][-1]["detectedLanguage"] == "und"
    assert r["fr"]["detectedLanguage"] == "fr"
    assert r["none"] == [{"detectedLanguage": "und", "confidence": 1}]


def test_abort_destroy_and_quota(page):
    # "get an aggregated/streaming AI model result": the signal's reason; destroy → AbortError; quota → QuotaExceededError
    r = js(page, """const s = await Summarizer.create({type: "key-points"});
        window.reason = new Error("stopped by the page");
        const c = new AbortController();
        const stream = s.summarizeStreaming(ARTICLE, {signal: c.signal});
        const reader = stream.getReader();
        const first = await reader.read();
        c.abort(window.reason);
        let streamErr = null;
        try { await reader.read(); } catch (e) { streamErr = ERR(e); }
        let pre = null;
        try { await s.summarize(ARTICLE, {signal: AbortSignal.abort(window.reason)}); } catch (e) { pre = ERR(e); }
        let quota = null;
        const big = "word ".repeat(s.inputQuota + 50);
        try { await s.summarize(big); } catch (e) { quota = ERR(e); }
        const pending = s.summarize(ARTICLE);
        s.destroy();
        let destroyed = null;
        try { await pending; } catch (e) { destroyed = ERR(e); }
        let later = null;
        try { s.summarizeStreaming("x"); } catch (e) { later = ERR(e); }
        return {first: first.value, streamErr, pre, quota, destroyed, later, inputQuota: s.inputQuota};""")
    assert r["first"] and r["streamErr"]["same"] and r["pre"]["same"]
    assert r["quota"]["name"] == "QuotaExceededError" and r["quota"]["requested"] > r["quota"]["quota"] == r["inputQuota"]
    assert r["destroyed"]["name"] == "AbortError" and r["later"]["name"] == "AbortError"
    # the back end let go of every task session (clones included) once destroyed
    left = js(page, "sum.destroy(); await new Promise((r) => setTimeout(r, 500)); return await llm.resources();")
    assert left["running"] == 0, left
