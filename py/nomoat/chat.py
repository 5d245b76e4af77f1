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


# --- tools on a model whose chat template has none (or that has no template) -----------------------

TOOL_PROMPT = """You can call tools. The tools, with the JSON Schema of each one's arguments:
{tools}
To call a tool, answer with only this line (the name and the arguments, as JSON):
<tool_call>{{"name": "<tool name>", "arguments": {{<the arguments>}}}}</tool_call>
The tool's result then comes back to you; answer the user with it."""


def tool_prompt(tools: list[dict]) -> str:
    """nomoat's generic tool prompt: the tools and the <tool_call> format (the one tool_calls.py parses
    and constrain/toolcall.py enforces), for a model whose chat template cannot describe tools."""
    lines = []
    for t in tools:
        f = t.get("function", t)
        lines.append(json.dumps({"name": f["name"], "description": f.get("description") or "",
                                 "parameters": f.get("parameters") or {}}, ensure_ascii=False))
    return TOOL_PROMPT.format(tools="\n".join(lines))


def _calls_text(m: dict) -> str:
    """An assistant message's tool calls, in the history, as a plain sentence: "Calling
    get_weather({"city": "Paris"})." (small models shown their own <tool_call> blocks there tend to
    repeat them instead of answering with the result)."""
    calls = []
    for c in m.get("tool_calls") or ():
        f = c.get("function", c)
        args = f.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        calls.append(f"Calling {f.get('name')}({json.dumps(args, ensure_ascii=False)}).")
    text = m.get("content") or ""
    return (text + "\n" if text and calls else text) + " ".join(calls)


def _response_text(m: dict) -> str:
    """A tool's result, in the history: "get_weather returned: 23.7 °C"."""
    return f"{m.get('name') or 'The tool'} returned: {m['content']}"


def with_tool_prompt(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """The messages for a chat template without tool support: the tool prompt joins the system
    message (or becomes one), assistant tool calls become their <tool_call> text and tool results
    a user message (consecutive results in one message, a line each)."""
    out: list[dict] = []
    for m in messages:
        if m["role"] == "tool":
            if out and out[-1].get("_tools"):
                out[-1]["content"] += "\n" + _response_text(m)
            else:
                out.append({"role": "user", "content": _response_text(m), "_tools": True})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            out.append({"role": "assistant", "content": _calls_text(m)})
        else:
            out.append({k: v for k, v in m.items() if k in ("role", "content")})
    out = [{"role": m["role"], "content": m["content"]} for m in out]
    if tools:
        note = tool_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{note}" if out[0]["content"] else note}
        else:
            out.insert(0, {"role": "system", "content": note})
    return out


TRANSCRIPT_ROLES = {"system": "", "user": "Question: ", "assistant": "Answer: "}
TRANSCRIPT_STOP = "\n"  # a base model's answer is one line: it ends where it would begin the next one


def transcript_text(messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool = True) -> str:
    """What a base model (no chat template) is given when the conversation has tools: a transcript
    it continues, "Question: …" and "Answer: …" lines after the tool prompt, ending with "Answer:"
    for the answer (Gemma-3-270M answers with a tool's result in this form, not in a User/Assistant
    one). A tool's result joins the question line it answers, "(get_weather returned: 23.7 °C)", and
    the answer that called the tool is left out. The answer stops at TRANSCRIPT_STOP, the end of the
    line (a tool call's grammar allows no newline there)."""
    check_messages(messages)
    lines = [tool_prompt(tools)] if tools else []
    for m in messages:
        if m["role"] == "tool" and lines:  # a result joins the question it answers (the call's own line is
            lines[-1] += f" ({_response_text(m)})"  # left out: Gemma-3-270M shown it repeats it instead of answering)
        elif m["role"] == "tool":
            lines.append(TRANSCRIPT_ROLES["user"] + _response_text(m))
        elif m["role"] == "assistant" and m.get("tool_calls"):
            continue
        elif m["role"] == "system":
            lines.insert(0, m["content"])
        else:
            lines.append(TRANSCRIPT_ROLES[m["role"]] + m["content"])
    text = "\n".join(lines)
    if add_generation_prompt:
        text += ("\n" if text else "") + "Answer:"
    return text
