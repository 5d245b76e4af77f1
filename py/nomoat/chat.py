"""Chat-template rendering: the model's own Jinja template, sandboxed, as Hugging Face renders it
(transformers' apply_chat_template environment: trim_blocks, lstrip_blocks, {% break %}/{% continue %},
{% generation %} blocks, its tojson filter, raise_exception and strftime_now)."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

from .errors import InvalidModelError, InvalidOptionError, UnsupportedModelError

ROLES = ("system", "user", "assistant", "tool")


def _raise(message: str):
    raise InvalidOptionError(f"The chat template refused these messages: {message}")


def _tojson(x, ensure_ascii: bool = False, indent=None, separators=None, sort_keys: bool = False) -> str:
    """HF's tojson: json.dumps as it is (Jinja's own escapes <, >, & and ' and sorts keys), so a tool
    described by Qwen's template reads as the model was trained on."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _generation_extension():
    """{% generation %}…{% endgeneration %} (HF marks the assistant's text with it): renders its body."""
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser):
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    return Generation


@lru_cache(maxsize=8)
def _compile(template: str):
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols, _generation_extension()])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except Exception as e:
        raise InvalidModelError(f"tokenizer_config.json: chat_template does not compile ({str(e)[:200]}); "
                                "convert the model again ('nomoat convert').") from e


def usv(text: str) -> str:
    """text with each lone surrogate replaced by U+FFFD, as WebIDL's USVString converts a JS string
    (what a tokenizer can encode; a surrogate pair written as two code points becomes its character)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def check_messages(messages: list[dict]) -> None:
    if not isinstance(messages, (list, tuple)):
        raise InvalidOptionError(f"messages must be a list of {{'role', 'content'}} dicts, "
                                 f"got {type(messages).__name__}.")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InvalidOptionError(
                f"messages[{i}] must be {{'role': one of {ROLES}, 'content': str}}, got {m!r}."
            )


def completion_text(messages: list[dict], source: str = "This model") -> str:
    """What a model without a chat template (a base model, such as Gemma-3-270M) is given: one text that
    it continues, each message's text right after the one before (the prompt, the answer, the next
    prompt…). A system or tool message needs a chat template: refused, naming the fix. The tokenizer
    then puts BOS first where the model wants one (encode(text, add_special_tokens=True))."""
    check_messages(messages)
    for m in messages:
        if m["role"] in ("system", "tool"):
            raise UnsupportedModelError(
                f"{source} is a base model (its package has no chat template): it continues text and takes no "
                f"{m['role']} message. Prompt it with the text to continue (no system prompt or tools), or use "
                "an instruct model, whose chat template gives it roles.")
    return "".join(m["content"] for m in messages)


def supports_tools(template: str) -> bool:
    """Whether the template renders a `tools` list (Hugging Face's convention for tool calling)."""
    return "tools" in template


def render(template: str, messages: list[dict], add_generation_prompt: bool = True,
           bos_token: str = "", eos_token: str = "", tools: list[dict] | None = None) -> str:
    """The template's text for these messages, in Jinja's immutable sandbox: a template that reaches
    for Python internals (``''.__class__``, ``cycler.__init__.__globals__`` …) or fails otherwise is an
    InvalidModelError naming tokenizer_config.json; raise_exception() in it an InvalidOptionError."""
    from jinja2.exceptions import TemplateError

    check_messages(messages)
    extra = {"tools": tools} if tools else {}
    try:
        return _compile(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=bos_token, eos_token=eos_token, **extra,
        )
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as e:
        if isinstance(e, (InvalidOptionError, InvalidModelError)):
            raise
        raise InvalidModelError(f"tokenizer_config.json: chat_template failed ({type(e).__name__}: {str(e)[:200]}); "
                                "the template is broken or hostile (the sandbox refused it). Convert the model "
                                "again ('nomoat convert') or use another model.") from e
