"""Tool calls in a model's answer, in the form tool-calling chat templates teach (Hermes/Qwen):
<tool_call>{"name": …, "arguments": {…}}</tool_call>, one block per call."""

from __future__ import annotations

import json
import re

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def parse_tool_calls(text: str) -> tuple[str, list[dict]]:
    """(the text outside the calls, [{"name", "arguments": JSON text}]). A block that is not a JSON
    object with a string name stays in the text: it is not a call."""
    calls: list[dict] = []
    kept: list[str] = []
    last = 0
    for m in _BLOCK.finditer(text):
        try:
            body = json.loads(m.group(1))
        except ValueError:
            continue
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            continue
        args = body.get("arguments", body.get("parameters", {}))
        calls.append({"name": body["name"], "arguments": args if isinstance(args, str) else json.dumps(args)})
        kept.append(text[last:m.start()])
        last = m.end()
    if not calls:
        return text, []
    kept.append(text[last:])
    return "".join(kept).strip(), calls
