"""Every error nomoat raises, one class per condition, each message naming the fix.

The names map onto the DOMException names the Prompt API uses when they cross into
JavaScript (see ``dom_name``): a page sees AbortError, NotSupportedError, QuotaExceededError,
InvalidStateError or a TypeError, never a Python traceback.
"""

from __future__ import annotations


class NomoatError(Exception):
    """Base class. ``dom_name`` is the DOMException name this error becomes in a page."""

    dom_name = "OperationError"


class InvalidOptionError(NomoatError, ValueError):
    """A sampling or session option is out of range or of the wrong type."""

    dom_name = "TypeError"


class InvalidPromptError(NomoatError, ValueError):
    """A prompt whose messages break the Prompt API's rules (e.g. a misplaced assistant prefix)."""

    dom_name = "SyntaxError"


class ModelNotFoundError(NomoatError, FileNotFoundError):
    """The model folder or one of its files does not exist."""

    dom_name = "NotFoundError"


class InvalidModelError(NomoatError):
    """A model file is not what it claims to be: not GGUF, truncated, corrupt."""

    dom_name = "DataError"


class UnsupportedModelError(NomoatError):
    """A valid model that nomoat cannot run: another architecture or quantization type."""

    dom_name = "NotSupportedError"


class ContextOverflowError(NomoatError):
    """The prompt (plus what must be generated) does not fit the context window."""

    dom_name = "QuotaExceededError"

    def __init__(self, message: str, *, requested: int, context_window: int) -> None:
        super().__init__(message)
        self.requested = requested
        self.context_window = context_window


class UnsupportedSchemaError(NomoatError):
    """A response_constraint (JSON Schema or RegExp) uses a keyword or construct nomoat cannot
    enforce; the message names it."""

    dom_name = "NotSupportedError"


class InvalidSchemaError(UnsupportedSchemaError, InvalidOptionError):
    """A response_constraint that is no valid JSON Schema or regular expression ({"type": "soup"}):
    malformed, so an InvalidOptionError in Python, and in a page the NotSupportedError the Prompt API
    gives for a constraint it cannot enforce (a TypeError is kept for one that is not an object)."""


class IncompleteOutputError(NomoatError):
    """A constrained generation ran out of tokens (max_tokens or the context window) before its JSON
    was complete; the partial text is kept in the history, never returned as if it were valid."""

    dom_name = "QuotaExceededError"


class AbortedError(NomoatError):
    """The caller aborted the call (in a page: its AbortSignal); what it computed is dropped."""

    dom_name = "AbortError"
