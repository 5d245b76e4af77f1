"""The JupyterLite example end to end: examples/jupyterlite/build.py builds the site into a temp
folder, a local static server serves it (plain, and cross-origin isolated), Debian's headless
Chromium opens the notebook in Jupyter Notebook's UI, runs all its cells in the Pyodide kernel and
reads the outputs. Fully offline: every request of the page, the kernel's worker and onnxruntime's
threads stays on the local server."""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path

import pytest
from offline import CHROMIUM, browser_flags

TIMEOUT = 300_000  # ms: kernel start (Pyodide, IPython) + model load + generation, on 2 busy cores
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "jupyterlite"
ANSWER = "The capital of France is Paris."  # greedy, on the browser's f32 math


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": browser_flags()}


@pytest.fixture(scope="session")
def build_script():
    spec = importlib.util.spec_from_file_location("jupyterlite_build", EXAMPLE / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The embedding model the notebook's last cell asks for (the build links it into the site)."""
    from nomoat.catalog import convert_named

    return convert_named("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def site(build_script, tmp_path_factory, default_model_dir, minilm_dir) -> Path:
    try:
        return build_script.build(tmp_path_factory.mktemp("jupyterlite"))
    except SystemExit as e:  # the script says what is missing (e.g. "run 'make web' first")
        pytest.fail(f"examples/jupyterlite/build.py failed: {e}")


@pytest.fixture(params=[False, True], ids=["plain", "isolated"])
def lite(request, build_script, site):
    """The site on localhost: plain static hosting (1 wasm thread) or with COOP/COEP (2)."""
    server = build_script.make_server(site, isolated=request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    server.shutdown()
    server.server_close()


# The outputs of the code cell whose source contains `marker`, as the page shows them.
OUTPUTS = """(marker) => {
    const cell = [...document.querySelectorAll('.jp-CodeCell')]
        .find((c) => c.querySelector('.jp-InputArea').innerText.includes(marker));
    return cell ? [...cell.querySelectorAll('.jp-OutputArea-output')].map((o) => o.innerText) : null;
}"""

# Record every text the streaming cell's output area shows, as it changes.
WATCH_STREAM = """(marker) => {
    const cell = [...document.querySelectorAll('.jp-CodeCell')]
        .find((c) => c.querySelector('.jp-InputArea').innerText.includes(marker));
    window.streamed = window.streamed || {};
    const seen = window.streamed[marker] = [];
    new MutationObserver(() => {
        const text = [...cell.querySelectorAll('.jp-OutputArea-output')].map((o) => o.innerText).join('');
        if (text && text !== seen.at(-1)) seen.push(text);
    }).observe(cell, {subtree: true, childList: true, characterData: true});
}"""


# The embedding cell's outputs are complete: the nearest passage ("[1] ...") and the answer after it.
RAG_DONE = """(outputs) => {
    const lines = (outputs || []).join('').split('\\n');
    const k = lines.findIndex((l) => l.startsWith('[1] '));
    return k >= 0 && lines.slice(k + 1).some((l) => l.trim());
}"""


def test_notebook_runs_nomoat_offline(browser, lite):
    base, isolated = lite
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT)
    requests: list[str] = []
    page.context.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    page.goto(base + "/notebooks/index.html?path=nomoat.ipynb")
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-CodeCell').length >= 5")
    assert page.evaluate("crossOriginIsolated") is isolated
    page.evaluate(WATCH_STREAM, "prompt_streaming")
    page.evaluate(WATCH_STREAM, "model.prompt(")

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
    page.wait_for_function(f"({RAG_DONE})(({OUTPUTS})('embedder.embed'))")

    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, errors.all_inner_texts()
    assert page.evaluate(OUTPUTS, "import nomoat") == []
    assert page.evaluate(OUTPUTS, "nomoat.load()")[-1] == "'wasm'"  # no WebGPU adapter here
    # `await model.prompt(...)` streams into the cell's output, and the answer is not shown twice
    answer = page.evaluate(OUTPUTS, "model.prompt(")
    assert [o.strip() for o in answer] == [ANSWER], answer
    grew = page.evaluate("window.streamed['model.prompt(']")
    assert len(grew) >= 3 and grew[-1].strip() == ANSWER
    assert all(b.startswith(a) for a, b in zip(grew, grew[1:], strict=False))
    # The streaming cell: its output grew piece by piece, each text extending the one before.
    final = page.evaluate(OUTPUTS, "prompt_streaming")
    assert len(final) == 1 and final[0].startswith("The waves of the sea")
    streamed = page.evaluate("window.streamed['prompt_streaming']")
    assert len(streamed) >= 5 and streamed[-1] == final[0]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(streamed, streamed[1:], strict=False))
    assert re.fullmatch(r"\d+ tokens at [\d.]+ tokens/s \(wasm\)\n?", page.evaluate(OUTPUTS, "session.last")[0])
    # Ask a document: the nearest passage by cosine similarity of the embeddings, then an answer from it
    rag = "".join(page.evaluate(OUTPUTS, "embedder.embed")).splitlines()  # (after the download's progress lines)
    cited = [i for i, line in enumerate(rag) if line.startswith("[1] ")]
    assert cited and rag[cited[0]].startswith("[1] The Bell Rock Lighthouse"), rag
    assert any(line.strip() for line in rag[cited[0] + 1:]), rag  # the model's answer

    offsite = [u for u in requests if not u.startswith((base + "/", base.replace("http", "ws", 1) + "/",
                                                        "data:", "blob:"))]
    assert any("/nomoat/models/" in u for u in requests) and any(u.endswith(".whl") for u in requests)
    assert offsite == []
    page.close()
