"""Structured output: text that matches a JSON Schema or a regular expression, guaranteed by masking tokens.

spec.py reads the response_constraint, schema.py (JSON Schema subset) and regex.py (RegExp subset)
compile it into grammar nodes, automaton.py recognizes the texts allowed byte by byte, tokens.py
turns that into the allowed token ids, a bitmask the samplers apply where the logits are.
"""

from .schema import compile_schema
from .spec import compile_constraint, is_regex
from .tokens import GrammarConstraint, TokenIndex

__all__ = ["GrammarConstraint", "TokenIndex", "compile_constraint", "compile_schema", "is_regex"]
