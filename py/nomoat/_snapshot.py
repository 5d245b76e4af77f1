"""What a Pyodide memory snapshot of nomoat's worker holds (web/src/pyodide_boot.mjs takes it once
per browser profile and restores it on every later start).

prepare() imports what the first llm.create() and prompt would otherwise import lazily (the browser
back end, the chat template's jinja2) and compiles a trivial template with nomoat's chat-template
settings, so that jinja2's lexer for them (cached per settings) is in the heap too, and the default
model's pre-tokenizer regexes (in `re`'s cache of compiled patterns): a worker restored from the
snapshot spends none of that on its first answer. Nothing here may touch JS (`js`,
`nomoat_js`, pyodide.ffi proxies): a snapshot cannot hold references to JS objects.
"""

from __future__ import annotations


def prepare() -> None:
    from . import worker  # noqa: F401  (the worker's API; nomoat_js is imported lazily, later)
    from .backends import ort_web  # noqa: F401
    from .bpe import _splitter
    from .chat import _compile

    _compile("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    for step in ({"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True}):
        _splitter(step)  # SmolLM2's pre-tokenizer: BPETokenizer's re.compile of the same patterns hits the cache
