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
        raise InvalidModelError(f"The model's chat template does not compile ({e}).") from e


def check_messages(messages: list[dict]) -> None:
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
    check_messages(messages)
    extra = {"tools": tools} if tools else {}
    return _compile(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt,
        bos_token=bos_token, eos_token=eos_token, **extra,
    )
