"""A multi-turn conversation: history, sampling options, and a KV cache reused across turns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Protocol

from . import _compat
from .backends.base import Backend
from .chat import TRANSCRIPT_STOP, check_messages, usv
from .constrain.toolcall import check_tools
from .errors import ContextOverflowError, InvalidOptionError, InvalidPromptError
from .generate import Stats, generate, prefill
from .sampling import SamplingParams
from .tokenizer import ByteLevelDecoder
from .tool_calls import new_call_id, parse_tool_calls


class ChatModel(Protocol):
    """What a session needs of its model (nomoat.Model is one)."""

    backend: Backend
    tokenizer: ByteLevelDecoder
    stop_ids: frozenset[int]

    @property
    def context_window(self) -> int: ...

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True, suffix: str = "",
                    tools: list[dict] | None = None) -> list[int]: ...


def constraint_input(messages: list[dict], response_constraint) -> list[dict]:
    """The messages with the response constraint described to the model (as the Prompt API lets an
    implementation do): a line after the last user message's text."""
    import json

    regex = getattr(response_constraint, "pattern", None)  # re.compile(...)
    if isinstance(response_constraint, dict) and "regex" in response_constraint:  # {"regex": source} (from JS)
        regex = response_constraint["regex"]
    if isinstance(regex, str):
        note = f"Answer with text matching the regular expression /{regex}/."
    else:
        note = "Answer with JSON matching this JSON Schema: " + json.dumps(response_constraint, separators=(",", ":"))
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = f"{m['content']}\n\n{note}" if m["content"] else note
            return out
    return [*out[:-1], {"role": "user", "content": note}, out[-1]] if out[-1].get("prefix") else \
        [*out, {"role": "user", "content": note}]


class Session:
    def __init__(self, model: ChatModel, system: str | None = None, messages: list[dict] | None = None,
                 tools: list[dict] | None = None, **sampling) -> None:
        self.model = model
        self.params = SamplingParams.build(**sampling)
        self.messages: list[dict] = []
        if system is not None:
            if not isinstance(system, str):
                raise InvalidOptionError(f"system must be a string, got {system!r}.")
            self.messages.append({"role": "system", "content": usv(system)})
        if messages:
            check_messages(messages)
            self.messages.extend({**m, "content": usv(m["content"])} for m in messages)
        self.initial = len(self.messages)  # system + initial messages: never dropped when the context overflows
        # tool definitions (OpenAI's shape, {"type": "function", "function": {name, description, parameters}}):
        # described to the model (its chat template, or nomoat's generic tool prompt) and its calls constrained
        self.tools: list[dict] | None = check_tools(tools) if tools else None
        self.last_tool_calls: list[dict] = []  # the latest answer's calls: [{"id", "name", "arguments": JSON text}]
        self.state = model.backend.new_state()
        self.last: Stats | None = None  # stats of the latest prompt
        self._before: list[dict] | None = None  # the history before the latest prompt or append (undo_last)
        self._lock: asyncio.Lock | None = None  # prompts on one session run in order, never interleaved
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def context_window(self) -> int:
        return self.model.context_window

    @property
    def context_usage(self) -> int:
        """Tokens the conversation so far occupies (what the next prompt builds on)."""
        return self._usage(self.messages)

    def _queue(self) -> asyncio.Lock:
        """The lock that orders prompts, for the running event loop. The *_sync wrappers run
        each call on a fresh loop; a prompt still streaming on another loop is an error."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            if self._lock is not None and self._lock.locked():
                raise InvalidOptionError(
                    "This session is still streaming a prompt on another event loop; finish or close "
                    "that stream first (or clone() the session)."
                )
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def prompt_streaming(self, prompt: str | list[dict], response_constraint: dict | None = None, *,
                               omit_response_constraint_input: bool = False, keep_partial: bool = True,
                               on_overflow: Callable[[int], None] | None = None, history: list[dict] | None = None,
                               tools: list[dict] | None = None, tool_choice: str = "auto",
                               continues: bool = False, cancelled: Callable[[], bool] | None = None,
                               **sampling) -> AsyncIterator[str]:
        """Stream the answer to `prompt`: a string (one user turn) or messages [{role, content}] whose
        last may be {"role": "assistant", "content": text, "prefix": True}, which the answer continues.
        The exchange joins the history when it ends; when the caller stops early, what was produced
        is kept (also when it fails: an IncompleteOutputError leaves its partial text; undo_last()
        takes it back), or with keep_partial=False the history is as it was before the call (the
        Prompt API's abort).
        If history + prompt overflow the context window, the oldest exchanges after the initial
        messages are dropped (on_overflow(count) is called; they come back if the exchange is dropped) — or
        ContextOverflowError, with nothing dropped, when even that is not enough.
        response_constraint: a JSON Schema (the subset in constrain/schema.py; the answer is then
        compact JSON valid against it), or a regular expression as {"regex": source, "flags": "" | "u"}
        (JavaScript RegExp syntax and meaning, the subset in constrain/regex.py; the whole answer then
        matches it; a compiled re.Pattern without flags is read as {"regex": pattern.pattern}). With an
        assistant prefix, the prefix and the answer together are what the constraint covers (a prefix
        no allowed text starts with is an UnsupportedSchemaError).
        Unsupported parts raise UnsupportedSchemaError, malformed ones InvalidOptionError; running out
        of max_tokens first raises IncompleteOutputError. The constraint is also described in the
        prompt (constraint_input), unless omit_response_constraint_input. history: replaces the
        conversation (all of it then counts as initial messages) once the calls before this one are
        done, and `tools` the tool definitions — an OpenAI-style request that carries the whole
        conversation. cancelled() is asked between prefill chunks and tokens: true raises
        AbortedError and drops the exchange.
        Tools (the session's, or `tools` with `history`): the answer may call them, as
        <tool_call>{"name", "arguments"}</tool_call> blocks whose JSON is grammar-constrained by the
        tool list (constrain/toolcall.py); tool_choice "auto" (free text until a call starts), "required"
        (one call, from the first token), a tool's name (a call of that tool), or "none" (no calls).
        The streamed text includes the blocks (tool_calls.CallStream splits them); the history keeps
        the answer's text and its calls (OpenAI's shape, arguments as objects), and last_tool_calls
        lists them with their ids. The tools' results come back as {"role": "tool", "content",
        "tool_call_id", "name"} messages in the next prompt; continues=True makes that prompt part of
        the same exchange (undo_last() and an abort then drop the whole exchange)."""
        params = self.params.replace(**sampling)
        if history is not None and tools:
            check_tools(tools)
        constraint = self._constraint(response_constraint, params)
        async with self._queue():
            if history is not None:
                self.messages, self.initial, self.tools = [dict(m) for m in history], len(history), tools or None
            base = self.tools and not getattr(self.model, "chat_template", True)  # a transcript (chat.py)
            tool_constraint = self._tool_constraint(tool_choice, bool(base)) if constraint is None else None
            if tool_constraint is not None:
                constraint = tool_constraint
            if base:
                params = params.replace(stop=(*params.stop, TRANSCRIPT_STOP))
            before = self._before if continues and self._before is not None else self.messages
            new = self._new_messages(prompt, response_constraint, omit_response_constraint_input)
            prefix = new[-1]["content"] if new[-1].get("prefix") else ""
            if constraint is not None and prefix and tool_constraint is None:
                constraint.feed(prefix.encode())  # the constraint covers prefix + continuation (issue 14)
            history, ids, dropped = self._fit(new, generation=True)
            if dropped and on_overflow is not None:
                on_overflow(dropped)
            turn = [*history, *(m for m in new if not m.get("prefix"))]
            self.last = stats = Stats()
            self.last_tool_calls = []
            parts: list[str] = []
            done = False
            try:
                async with contextlib.aclosing(generate(
                        self.model.backend, self.state, ids, params, self.model.tokenizer, self.model.stop_ids,
                        self.context_window, stats, constraint, cancelled)) as pieces:  # closed now, however we stop
                    async for piece in pieces:
                        parts.append(piece)
                        yield piece
                done = True
            finally:
                if done or keep_partial:
                    self._before = before
                    self.messages = [*turn, self._answer(prefix + "".join(parts), tool_constraint is not None)]
                else:
                    self.messages = before  # as if never asked: turns dropped for room come back too

    def _tool_constraint(self, choice: str, one_line: bool = False):
        """The tool-call constraint of an answer (None without tools or with tool_choice "none")."""
        if not isinstance(choice, str):
            raise InvalidOptionError(f"tool_choice must be 'auto', 'required', 'none' or a tool's name, "
                                     f"got {choice!r}.")
        if not self.tools or choice == "none":
            if choice not in ("auto", "none"):
                raise InvalidOptionError(f"tool_choice {choice!r} needs tools; this session has none.")
            return None
        from .constrain.toolcall import ToolCallConstraint

        return ToolCallConstraint(self.tools, self.model.tokenizer, self.model.stop_ids, choice, one_line)

    def _answer(self, text: str, tools: bool) -> dict:
        """The assistant message of an answer: with tools, its text and its calls (given ids)."""
        if not tools:
            return {"role": "assistant", "content": text}
        import json

        content, calls = parse_tool_calls(text)
        self.last_tool_calls = [{"id": new_call_id(), **c} for c in calls]
        if not calls:
            return {"role": "assistant", "content": text}
        return {"role": "assistant", "content": content, "tool_calls": [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": json.loads(c["arguments"])}} for c in self.last_tool_calls]}

    async def prompt(self, prompt: str | list[dict], response_constraint: dict | None = None, **options) -> str:
        return "".join([piece async for piece in self.prompt_streaming(prompt, response_constraint, **options)])

    async def append(self, prompt: str | list[dict], *, on_overflow: Callable[[int], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> None:
        """Add messages to the conversation without answering; their tokens are computed now (the
        next prompt reuses them). Overflow and cancelled as in prompt_streaming."""
        async with self._queue():
            new = [{k: v for k, v in m.items() if k != "prefix"} for m in self._new_messages(prompt)]
            history, ids, dropped = self._fit(new, generation=False)
            if dropped and on_overflow is not None:
                on_overflow(dropped)
            await prefill(self.model.backend, self.state, ids, cancelled=cancelled)
            self._before = self.messages
            self.messages = [*history, *new]

    def measure(self, prompt: str | list[dict], response_constraint: dict | None = None,
                omit_response_constraint_input: bool = False) -> int:
        """Tokens `prompt`'s messages would add to the context: what append(prompt) adds to
        context_usage, and what a prompt() that does not fit reports as requested - context_usage
        (ContextOverflowError). The one accounting: a message costs its tokens as the chat template
        renders it in the conversation (its role header and end marker included, the constraint's
        description too); the answer's own header is the answer's, counted once it is there. The
        prompt is checked as a fresh one (the Prompt API's measureContextUsage(): a system message
        is measured even when the session has content)."""
        if response_constraint is not None:
            from .constrain import compile_constraint

            compile_constraint(response_constraint)  # a constraint prompt() would refuse is refused here too
        new = self._new_messages(prompt, response_constraint, omit_response_constraint_input, fresh=True)
        return self._usage([*self.messages, *new]) - self.context_usage

    def _usage(self, messages: list[dict]) -> int:
        """Tokens `messages` occupy as a conversation (context_usage's definition); an assistant
        prefix counts as the assistant message it starts."""
        plain = [{k: v for k, v in m.items() if k != "prefix"} for m in messages]
        if not plain and not self.tools:  # the tools' description takes room from the start (index.bs, create)
            return 0
        return len(self.model.encode_chat(plain, add_generation_prompt=False, tools=self.tools))

    def _new_messages(self, prompt: str | list[dict], response_constraint=None, omit_constraint_input: bool = False,
                      fresh: bool = False) -> list[dict]:
        """A prompt as the messages it adds (the Prompt API's rules: a system message only first in a
        new conversation, or first in a `fresh` prompt (measure); `prefix` only on a final assistant
        message; [] is an empty user turn), with the response constraint described in them
        (constraint_input) unless omit_constraint_input."""
        new = self._prompt_messages(prompt, fresh)
        if response_constraint is not None and not omit_constraint_input:
            new = constraint_input(new, response_constraint)
        return new

    def _prompt_messages(self, prompt: str | list[dict], fresh: bool = False) -> list[dict]:
        if isinstance(prompt, str):
            return [{"role": "user", "content": usv(prompt)}]
        if not isinstance(prompt, (list, tuple)):
            raise InvalidOptionError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}.")
        if not prompt:
            return [{"role": "user", "content": ""}]
        out = []
        for i, m in enumerate(prompt):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool") \
                    or not isinstance(m.get("content"), str):
                raise InvalidOptionError(f"prompt[{i}] must be {{'role': 'system'|'user'|'assistant'|'tool', "
                                         f"'content': str}}, got {m!r}.")
            if m.get("prefix"):
                if m["role"] != "assistant" or i != len(prompt) - 1:
                    raise InvalidPromptError(f"prompt[{i}] has prefix: true; only the last message may, and only an "
                                             "assistant one.")
            if m["role"] == "system" and (i > 0 or (self.messages and not fresh)):
                raise InvalidOptionError(f"prompt[{i}] is a system message; it must be the first message of the "
                                         "conversation (give it to create() as the system prompt).")
            extra = {k: m[k] for k in ("tool_calls", "tool_call_id", "name") if m.get(k) is not None}
            if m.get("prefix"):
                extra["prefix"] = True
            out.append({"role": m["role"], "content": usv(m["content"]), **extra})
        return out

    def _encode(self, messages: list[dict], generation: bool) -> list[int]:
        """Token ids of `messages` as the model sees them; a trailing assistant prefix is continued."""
        if generation and messages and messages[-1].get("prefix"):
            return self.model.encode_chat(messages[:-1], add_generation_prompt=True, suffix=messages[-1]["content"],
                                          tools=self.tools)
        return self.model.encode_chat(messages, add_generation_prompt=generation, tools=self.tools)

    def _fit(self, new: list[dict], generation: bool) -> tuple[list[dict], list[int], int]:
        """(history to keep, ids of history + new, exchanges dropped): drops the oldest exchange after
        the initial messages (up to and including the next assistant message) while the ids do not
        fit (a prompt leaves room for one answer token)."""
        limit = self.context_window - (1 if generation else 0)
        history, dropped = self.messages, 0
        while True:
            ids = self._encode([*history, *new], generation)
            if len(ids) <= limit:
                return history, ids, dropped
            if len(history) <= self.initial:
                # requested = context_usage + measure(prompt) (index.bs, prefill step 8), nothing dropped
                requested = self._usage([*self.messages, *new])
                raise ContextOverflowError(
                    f"The conversation needs {len(ids)} tokens even without earlier turns (the prompt's messages "
                    f"{requested - self.context_usage}, and room for the answer); the context window is "
                    f"{self.context_window}. Shorten the prompt (or the initial prompts) or start a new session.",
                    requested=requested, context_window=self.context_window)
            end = self.initial
            while end < len(history) - 1 and history[end]["role"] != "assistant":
                end += 1
            history, dropped = [*history[: self.initial], *history[end + 1:]], dropped + 1

    def _constraint(self, schema: dict | None, params: SamplingParams):
        if schema is None:
            return None
        if params.stop:
            raise InvalidOptionError("stop strings cannot be combined with response_constraint (they could cut "
                                     "the answer short); the answer ends when it is complete.")
        from .constrain import GrammarConstraint, compile_constraint

        return GrammarConstraint(compile_constraint(schema), self.model.tokenizer, self.model.stop_ids)

    def undo_last(self) -> None:
        """Drop the latest prompt's exchange (or append's messages) from the history, once, as if it had
        been aborted (turns it dropped for room come back): an abort that arrived after the answer was done."""
        if self._before is not None and not (self._lock is not None and self._lock.locked()):
            self.messages, self._before = self._before, None

    async def clone_when_idle(self) -> Session:
        """clone(), once the calls queued before it are done (an aborted answer may still be
        finishing its last step)."""
        async with self._queue():
            return self.clone()

    def clone(self) -> Session:
        """An independent session with the same history; the KV cache is copied, not recomputed."""
        other = Session.__new__(Session)
        other.model, other.params, other.messages = self.model, self.params, [dict(m) for m in self.messages]
        other.initial, other.tools = self.initial, self.tools
        other.state, other.last, other._lock, other._lock_loop = self.state.fork(), None, None, None
        other._before, other.last_tool_calls = None, []
        return other

    def close(self) -> None:
        """Release the KV cache now (in the browser: wasm or GPU memory); the session is unusable after."""
        self.state.close()

    # Thin synchronous wrappers (CPython).
    def prompt_sync(self, text: str, response_constraint: dict | None = None, **sampling) -> str:
        return _compat.run_sync(self.prompt(text, response_constraint, **sampling))

    def prompt_streaming_sync(self, text: str, response_constraint: dict | None = None, **sampling) -> Iterator[str]:
        return _compat.iter_sync(self.prompt_streaming(text, response_constraint, **sampling))
