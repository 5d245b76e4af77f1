"""What a caller passes as response_constraint, and what it becomes.

Two forms, the same in Python and on the worker's wire (web/src/llm.js sends a RegExp so):
  a JSON Schema (a dict or a boolean)   the answer is compact JSON valid against it (schema.py)
  {"regex": source, "flags": ""|"u"}     the whole answer matches the regular expression (regex.py),
                                         JavaScript RegExp syntax and meaning; a compiled re.Pattern
                                         without flags is read as {"regex": pattern.pattern}
"""

from __future__ import annotations

import re

from ..errors import InvalidOptionError
from .automaton import Automaton
from .regex import Regex
from .schema import compile_schema


def is_regex(spec) -> bool:
    return isinstance(spec, dict) and "regex" in spec and set(spec) <= {"regex", "flags"}


def compile_constraint(spec) -> Automaton:
    """The automaton of the texts `spec` allows; refuses what it cannot enforce
    (UnsupportedSchemaError) and what is malformed (InvalidOptionError)."""
    if isinstance(spec, re.Pattern):
        if spec.flags & ~re.UNICODE:
            raise InvalidOptionError("response_constraint: a compiled re.Pattern is read as {'regex': pattern.pattern} "
                                     "(JavaScript RegExp meaning), so it cannot carry flags; compile it without them.")
        spec = {"regex": spec.pattern}
    if is_regex(spec):
        return Automaton(Regex(spec["regex"], spec.get("flags", "")))
    return Automaton(compile_schema(spec))
