"""Grammar-constrained tool calls: while the model writes a call, its JSON is constrained by the
tool list, so every call parses and validates.

A call is the block tool-calling chat templates teach (Hermes/Qwen), which tool_calls.py parses:

    <tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>

The JSON is {"name": const, "arguments": inputSchema} for one of the tools (an anyOf over them,
compiled by schema.py), the name always first. ToolCallConstraint is the generation loop's
Constraint (generate.Constraint) for a prompt with tools:

  "auto"       free text (no mask) until the text so far ends with "<tool_call>"; from there the
               call grammar (Calls) up to "</tool_call>", then only another call or the end of the
               answer (the model waits for the tools' results: they come in the next turn).
               Free text is never masked, except that a token which would complete the opening
               marker *and* run on past it (">{" after "<tool_call") is refused, so the grammar
               always starts at the marker's end.
  "required"   the call grammar from the first token: at least one call (at most one per answer).
  a tool name  as "required", with that tool only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from ..errors import InvalidOptionError, UnsupportedSchemaError
from .automaton import Automaton, Node
from .schema import compile_schema
from .tokens import GrammarConstraint, TokenIndex

OPEN, CLOSE = b"<tool_call>", b"</tool_call>"
SPACE, LINE_SPACE = frozenset(b" \n"), frozenset(b" ")  # whitespace around calls (LINE_SPACE: on one line)
MAX_SPACE = 2  # whitespace bytes allowed around a call's JSON and between calls
MAX_CALLS = 4  # calls in one answer ("auto"); "required" and a named tool make exactly one


def tool_function(tool: dict) -> dict:
    """{"name", "description", "parameters"} of a tool in OpenAI's shape ({"type": "function",
    "function": {...}}) or already flat."""
    return tool.get("function", tool) if isinstance(tool, dict) else {}


def call_schema(tools: list[dict]) -> dict:
    """The JSON Schema of one call: {"name": const, "arguments": parameters} for one of `tools`."""
    alts = []
    for t in tools:
        f = tool_function(t)
        params = f.get("parameters")
        alts.append({"type": "object", "properties": {"name": {"const": f["name"]},
                                                      "arguments": params if params is not None else {}},
                     "required": ["name", "arguments"]})
    return alts[0] if len(alts) == 1 else {"anyOf": alts}


def check_tools(tools: list[dict]) -> list[dict]:
    """The tools in OpenAI's shape, checked: each has a non-empty, unique name and a parameters
    schema nomoat can enforce (compiled now): InvalidOptionError (TypeError in a page) or
    UnsupportedSchemaError (NotSupportedError) naming the tool."""
    if not isinstance(tools, (list, tuple)):
        raise InvalidOptionError("tools must be a list of {name, description, parameters} definitions.")
    seen, out = set(), []
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            raise InvalidOptionError(f"tools[{i}] must be a {{name, description, parameters}} definition.")
        f = tool_function(t)
        name = f.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidOptionError(f"tools[{i}] needs a name (a non-empty string).")
        if name in seen:
            raise InvalidOptionError(f"tools[{i}]: two tools are named {name!r}; give each tool its own name.")
        seen.add(name)
        params = f.get("parameters")
        if params is not None and not isinstance(params, (dict, bool)):
            raise InvalidOptionError(f"tool {name!r}: its input schema must be a JSON Schema object.")
        try:
            compile_schema(params if params is not None else {})
        except UnsupportedSchemaError as e:
            raise type(e)(str(e).replace("response_constraint", f"tool {name!r}'s input schema", 1)) from None
        out.append({"type": "function", "function": {"name": name, "description": f.get("description") or "",
                                                     "parameters": params if params is not None else {}}})
    return out


class Calls(Node):
    """(ws OPEN ws JSON ws CLOSE)* ws with min_calls..max_calls calls, as one grammar node. Frame
    (self, phase, position, calls so far): phase "gap" (between calls; may end there once
    min_calls are made), "open"/"close" (inside a marker, at byte `position`), "pre"/"post" (the
    whitespace before and after the JSON; "post" waits under the JSON's frames until it ends)."""

    def __init__(self, call: Node, min_calls: int, max_calls: int, space: frozenset = SPACE,
                 lead: bool = True) -> None:
        self.call, self.min_calls, self.max_calls, self.space = call, min_calls, max_calls, space
        self.lead = lead  # whether whitespace may come before the first call

    def initial(self) -> tuple:
        return (self, "gap", 0 if self.lead else MAX_SPACE, 0)

    def step(self, frame: tuple, b: int) -> list[tuple]:
        _, phase, pos, n = frame
        if phase in ("gap", "pre", "post") and b in self.space:
            return [((self, phase, pos + 1, n),)] if pos < MAX_SPACE else []
        if phase == "gap":
            return [((self, "open", 1, n),)] if b == OPEN[0] and n < self.max_calls else []
        if phase in ("open", "close"):
            marker = OPEN if phase == "open" else CLOSE
            if b != marker[pos]:
                return []
            if pos + 1 < len(marker):
                return [((self, phase, pos + 1, n),)]
            return [((self, "pre", 0, n),)] if phase == "open" else [((self, "gap", 0, n),)]
        if phase == "pre":
            return [((self, "post", 0, n + 1), *r) for r in self.call.start(b)]
        return [((self, "close", 1, n),)] if b == CLOSE[0] else []  # "post"

    def done(self, frame: tuple) -> bool:
        return frame[1] == "gap" and frame[3] >= self.min_calls


def calls_grammar(tools: list[dict], min_calls: int = 1, max_calls: int = MAX_CALLS,
                  space: frozenset = SPACE, lead: bool = True) -> Automaton:
    return Automaton(Calls(compile_schema(call_schema(tools)), min_calls, max_calls, space, lead))


class ToolCallConstraint:
    """generate.Constraint for an answer that may call `tools` (see the module's docstring).
    allowed() is None (no mask) while the answer is free text."""

    def __init__(self, tools: list[dict], tokenizer, stop_ids: Iterable[int], choice: str = "auto",
                 one_line: bool = False) -> None:
        if choice not in ("auto", "required"):
            named = [t for t in tools if tool_function(t).get("name") == choice]
            if not named:
                raise InvalidOptionError(f"tool_choice names {choice!r}, which is not one of the tools "
                                         f"({', '.join(tool_function(t)['name'] for t in tools)}).")
            tools = named
        self.forced = choice != "auto"
        grammar = calls_grammar(tools, 1, 1 if self.forced else MAX_CALLS, LINE_SPACE if one_line else SPACE,
                                lead=not self.forced)  # a forced answer starts with "<tool_call>"
        self.inner = GrammarConstraint(grammar, tokenizer, stop_ids)
        self.index: TokenIndex = self.inner.index
        self.active = self.forced  # inside the tool-call part of the answer
        self.tail = b""  # free text: its last bytes (a partial opening marker)
        self.free_s, self.free_masks = 0.0, 0

    @property
    def complete(self) -> bool:
        return self.inner.complete if self.active else True

    @property
    def mask_s(self) -> float:
        return self.inner.mask_s + self.free_s

    @property
    def masks(self) -> int:
        return self.inner.masks + self.free_masks

    def allowed(self) -> bytes | None:
        if self.active:
            return self.inner.allowed()
        t0 = time.perf_counter()
        ks = tuple(k for k in range(len(OPEN) - 1, -1, -1) if self.tail.endswith(OPEN[:k]))
        mask = _free_mask(self.index, self.inner.mask_bytes, ks)
        self.free_s += time.perf_counter() - t0
        self.free_masks += 1
        return mask

    def advance(self, token: int) -> None:
        if self.active:
            self.inner.advance(token)
            return
        if token in self.inner.stop_ids:
            return
        data = self.tail + self.index.token_bytes[token]
        at = data.find(OPEN)
        if at >= 0:
            self.active = True
            self.inner.feed(data[at:])  # the marker (and nothing after it: free_mask refused that)
        else:
            self.tail = data[-(len(OPEN) - 1):]


def _free_mask(index: TokenIndex, size: int, ks: tuple[int, ...]) -> bytes | None:
    """The free-text mask after text that ends with OPEN[:k] for each k in ks: every token except
    those that would complete the marker and run on past it; None when no token would."""
    cache = index.__dict__.setdefault("_tool_free", {})
    if ks not in cache:
        banned = 0
        for k in ks:
            banned |= _overrun(index, k)
        cache[ks] = None if not banned else (((1 << (8 * size)) - 1) & ~banned).to_bytes(size, "little")
    return cache[ks]


def _overrun(index: TokenIndex, k: int) -> int:
    """Tokens t such that OPEN[:k] + t holds the whole marker followed by more bytes (a bitset)."""
    cache = index.__dict__.setdefault("_tool_overrun", {})
    if k not in cache:
        head, bits = OPEN[:k], 0
        for tid, t in enumerate(index.token_bytes):
            if not t or (k and not OPEN[k:].startswith(t[:len(OPEN) - k]) and OPEN not in t):
                continue
            s = head + t
            at = s.find(OPEN)
            if at >= 0 and at + len(OPEN) < len(s):
                bits |= 1 << tid
        cache[k] = bits
    return cache[k]


def call_json(name: str, arguments) -> str:
    """A call as the grammar writes it: compact JSON, the name first."""
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, separators=(",", ":"))
