"""Chat-template rendering: the model's own Jinja template, sandboxed, as Hugging Face renders it."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from .errors import InvalidModelError, InvalidOptionError

ROLES = ("system", "user", "assistant", "tool")


def _raise(message: str):
    raise InvalidOptionError(f"The chat template refused these messages: {message}")


@lru_cache(maxsize=8)
def _compile(template: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
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
