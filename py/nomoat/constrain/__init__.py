"""Structured output: JSON that validates against a schema, guaranteed by masking tokens.

schema.py checks and compiles the schema (the supported subset is listed there), automaton.py
recognizes the JSON texts it allows byte by byte, tokens.py turns that into allowed token ids.
"""

from .schema import compile_schema
from .tokens import JSONConstraint, TokenIndex

__all__ = ["JSONConstraint", "TokenIndex", "compile_schema"]
