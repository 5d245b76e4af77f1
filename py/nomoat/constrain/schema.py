"""The JSON Schema subset nomoat can enforce, checked up front and compiled into grammar nodes.

Supported (anything else is refused with UnsupportedSchemaError naming the keyword):
  type          a name or a list: object, array, string, number, integer, boolean, null
                (absent: any of them, each with its own keywords below)
  object        properties, required (names of declared properties), additionalProperties: false or
                absent. Properties come out in the schema's order; required ones always, optional ones
                may be left out; undeclared ones never (so additionalProperties true/a schema is refused)
  array         items (a schema; absent = any value), minItems, maxItems
  string        minLength, maxLength (in characters); escapes limited to \\" \\\\ \\/ \\b \\f \\n \\r \\t;
                or pattern (a regular expression, regex.py: unanchored unless it uses ^ / $, as JSON
                Schema means it), not together with minLength/maxLength
  number        minimum, maximum (inclusive), in plain decimal notation (no exponent); integer: no fraction.
                A missing bound is replaced by one 10**15 away, so numbers stay exact in a double
  boolean, null
  enum, const   at any level, with or without other keywords (values that break them are dropped)
  anyOf         alone (beside annotations only)
  annotations   title, description, default, examples, $schema, $id, $comment (ignored)
  true / {}     any value (objects in it are empty)
Refused, among others: format, $ref/$defs, oneOf, allOf, not, if/then/else, patternProperties,
exclusiveMinimum/Maximum, multipleOf, uniqueItems, prefixItems, minProperties, a false schema.
Output is compact JSON: no whitespace anywhere.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

from ..errors import InvalidOptionError, InvalidSchemaError, UnsupportedSchemaError
from .automaton import AnyOf, Array, Automaton, Literal, Node, Number, Object, String
from .regex import Regex

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment"})
KEYWORDS = {
    "object": {"properties", "required", "additionalProperties"},
    "array": {"items", "minItems", "maxItems"},
    "string": {"minLength", "maxLength", "pattern"},
    "number": {"minimum", "maximum"},
}
KEYWORDS["integer"] = KEYWORDS["number"]
SUPPORTED = ANNOTATIONS | {"type", "enum", "const", "anyOf"} | set().union(*KEYWORDS.values())
DEFAULT_SPAN = 10**15  # a missing numeric bound lies this far from the other one (or from 0)


def compile_schema(schema) -> Node:
    """The grammar of the compact JSON texts valid against `schema`; refuses what it can't enforce."""
    return _compile(schema, "#")


def dumps(value) -> bytes:
    """A value as compact JSON, the form the grammar emits."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _refuse(where: str, message: str) -> UnsupportedSchemaError:
    return UnsupportedSchemaError(f"response_constraint at {where}: {message}")


def _bad(where: str, message: str) -> InvalidSchemaError:
    return InvalidSchemaError(f"response_constraint at {where}: {message}")


def _compile(schema, where: str) -> Node:
    if schema is True:
        return any_value()
    if schema is False:
        raise _refuse(where, "the schema false matches nothing.")
    if not isinstance(schema, dict):
        raise _bad(where, f"a schema must be a dict (JSON object) or a boolean, got {type(schema).__name__}.")
    unknown = sorted(k for k in schema if k not in SUPPORTED)
    if unknown:
        raise _refuse(where, f"the keyword {unknown[0]!r} is not supported (yet); supported: "
                             f"{', '.join(sorted(SUPPORTED - ANNOTATIONS))}.")
    rest = {k: v for k, v in schema.items() if k not in ANNOTATIONS}
    if "enum" in rest or "const" in rest:
        return _literal(rest, where)
    if "anyOf" in rest:
        alts = rest.pop("anyOf")
        if rest:
            raise _refuse(where, f"anyOf together with {sorted(rest)[0]!r} is not supported; move it into each "
                                 "alternative.")
        if not isinstance(alts, list) or not alts:
            raise _bad(where, "anyOf must be a non-empty list of schemas.")
        return AnyOf([_compile(alt, f"{where}/anyOf/{i}") for i, alt in enumerate(alts)])
    types = rest.get("type", list(TYPES))
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list) or not types or any(t not in TYPES for t in types):
        raise _bad(where, f"type must be one of {', '.join(TYPES)} or a non-empty list of them, got {types!r}.")
    if "number" in types:
        types = [t for t in types if t != "integer"]
    nodes = [_typed(t, rest, where) for t in dict.fromkeys(types)]
    return nodes[0] if len(nodes) == 1 else AnyOf(nodes)


def _literal(rest: dict, where: str) -> Node:
    values = None
    if "enum" in rest:
        values = rest.pop("enum")
        if not isinstance(values, list) or not values:
            raise _bad(where, "enum must be a non-empty list.")
    if "const" in rest:
        const = rest.pop("const")
        values = [const] if values is None else [v for v in values if _same(v, const)]
    try:
        texts = [dumps(v) for v in values]
    except (TypeError, ValueError) as e:
        raise _bad(where, f"enum/const values must be JSON values: {e}.") from None
    if rest:  # other keywords too: keep the values they allow
        grammar = Automaton(_compile(rest, where))
        texts = [t for t in texts if grammar.matches(t)]
    if not texts:
        raise _refuse(where, "no enum/const value satisfies the rest of the schema.")
    return Literal(list(dict.fromkeys(texts)))


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _count(schema: dict, key: str, where: str) -> int | None:
    v = schema.get(key)
    if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        raise _bad(where, f"{key} must be an integer >= 0, got {v!r}.")
    return v


def _bound(schema: dict, key: str, where: str) -> Fraction | None:
    v = schema.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(where, f"{key} must be a finite number, got {v!r}.")
    return Fraction(v)


def _typed(t: str, schema: dict, where: str) -> Node:
    if t == "null":
        return Literal([b"null"])
    if t == "boolean":
        return Literal([b"true", b"false"])
    if t == "string" and "pattern" in schema:
        return _pattern(schema, where)
    if t == "string":
        lo, hi = _count(schema, "minLength", where) or 0, _count(schema, "maxLength", where)
        if hi is not None and lo > hi:
            raise _refuse(where, f"minLength {lo} > maxLength {hi}: no string fits.")
        return String(lo, hi)
    if t in ("number", "integer"):
        lo, hi = _bound(schema, "minimum", where), _bound(schema, "maximum", where)
        if t == "integer":
            lo = None if lo is None else Fraction(math.ceil(lo))
            hi = None if hi is None else Fraction(math.floor(hi))
        if hi is None:
            hi = max(lo or 0, Fraction(0)) + DEFAULT_SPAN
        if lo is None:
            lo = min(hi, Fraction(0)) - DEFAULT_SPAN
        if lo > hi:
            raise _refuse(where, f"no {t} lies within minimum..maximum.")
        return Number(t == "integer", lo, hi)
    if t == "array":
        lo, hi = _count(schema, "minItems", where) or 0, _count(schema, "maxItems", where)
        if hi is not None and lo > hi:
            raise _refuse(where, f"minItems {lo} > maxItems {hi}: no array fits.")
        items = schema.get("items", True)
        if isinstance(items, list):
            raise _refuse(where, "items as a list (tuple validation) is not supported.")
        return Array(_compile(items, f"{where}/items") if items is not True else any_value(), lo, hi)
    return _object(schema, where)


def _pattern(schema: dict, where: str) -> Node:
    if "minLength" in schema or "maxLength" in schema:
        raise _refuse(where, "pattern together with minLength/maxLength is not supported; put the length into "
                             "the pattern (for example ^.{1,20}$).")
    if not isinstance(schema["pattern"], str):
        raise _bad(where, f"pattern must be a string, got {schema['pattern']!r}.")
    try:
        return Regex(schema["pattern"], "u", json_string=True)
    except (UnsupportedSchemaError, InvalidOptionError) as e:
        raise type(e)(str(e).replace("response_constraint:", f"response_constraint at {where}/pattern:", 1)) from None


def _object(schema: dict, where: str) -> Node:
    props = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(props, dict):
        raise _bad(where, "properties must be a dict of schemas.")
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _bad(where, "required must be a list of property names.")
    missing = [r for r in required if r not in props]
    if missing:
        raise _refuse(where, f"required property {missing[0]!r} is not declared in properties; nomoat only "
                             "generates declared properties.")
    extra = schema.get("additionalProperties", False)
    if extra is not False:
        raise _refuse(where, "additionalProperties must be false or absent: nomoat only generates the declared "
                             "properties.")
    return Object([(name, _compile(sub, f"{where}/properties/{name}"), name in required)
                   for name, sub in props.items()])


_ANY: AnyOf | None = None


def any_value() -> AnyOf:
    """Any JSON value (objects empty, strings and numbers with the default limits)."""
    global _ANY
    if _ANY is None:
        _ANY = AnyOf([])
        number = Number(False, Fraction(-DEFAULT_SPAN), Fraction(DEFAULT_SPAN))
        _ANY.alternatives += [Literal([b"null", b"true", b"false"]), number, String(), Array(_ANY), Object([])]
    return _ANY
