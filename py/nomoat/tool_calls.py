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


class CallStream:
    """Splits an answer that streams in (tool-call blocks as the grammar writes them, constrain/
    toolcall.py) into its text and its calls as they come: push(piece) returns the events the piece
    completes, ("text", str) for text outside the calls (held back from "<tool_call>" on, and a
    partial marker at the end) and ("call", index, name, arguments chunk) for calls: the name once
    it is known (with an empty chunk), then the arguments' JSON text piece by piece (OpenAI's
    streaming tool_calls deltas)."""

    def __init__(self) -> None:
        self.text, self.sent = "", 0  # all the answer so far; text streamed out
        self.calls: list[list] = []  # per call: [name or None, arguments chars streamed]

    def push(self, piece: str) -> list[tuple]:
        self.text += piece
        at = self.text.find(OPEN)
        end = at if at >= 0 else len(self.text) - _partial(self.text, OPEN)
        events: list[tuple] = []
        if end > self.sent:
            events.append(("text", self.text[self.sent:end]))
            self.sent = end
        if at >= 0:
            blocks = self.text[at:].split(OPEN)[1:]
            for i, block in enumerate(blocks):
                events.extend(self._block(i, block))
        return events

    def _block(self, i: int, block: str) -> list[tuple]:
        while len(self.calls) <= i:
            self.calls.append([None, 0])
        call, events = self.calls[i], []
        closed = block.find(CLOSE)
        body = (block[:closed] if closed >= 0 else block[:len(block) - _partial(block, CLOSE)]).strip()
        m = _HEAD.match(body)
        if m is None:
            return events
        if call[0] is None:
            call[0] = json.loads(m.group(1))
            events.append(("call", i, call[0], ""))
        args = body[m.end():]
        if args.endswith("}"):
            args = args[:-1]  # the call object's own "}" (or, while it is open, maybe: wait for more)
        if len(args) > call[1]:
            events.append(("call", i, call[0], args[call[1]:]))
            call[1] = len(args)
        return events


OPEN, CLOSE = "<tool_call>", "</tool_call>"
_HEAD = re.compile(r'\{"name":("(?:[^"\\]|\\.)*"),"arguments":')


def _partial(text: str, marker: str) -> int:
    """How many characters at the end of text could begin `marker`."""
    return next((k for k in range(min(len(marker) - 1, len(text)), 0, -1) if text.endswith(marker[:k])), 0)


def new_call_id() -> str:
    import uuid

    return "call_" + uuid.uuid4().hex[:24]
