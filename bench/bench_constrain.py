"""Overhead of constrained decoding (JSON Schema) per token, CPython, the default model.

    .venv/bin/python bench/bench_constrain.py          # prints a table; --repeats N (default 3)

For each schema, in one run and interleaved with the same prompt unconstrained: decode tokens/s
(onnxruntime, 2 threads, accuracy level 4) and the time spent computing token masks per token
(the constraint's own timer), medians over repeats. Temperature 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import nomoat
from nomoat.constrain import JSONConstraint
from nomoat.generate import Stats, generate

SCHEMAS = {
    "person": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
               "age": {"type": "integer", "minimum": 0, "maximum": 150}}, "required": ["name", "age"],
               "additionalProperties": False},
    "list of enums": {"type": "array", "items": {"enum": ["red", "green", "blue", "yellow"]}, "minItems": 3,
                      "maxItems": 8},
    "nested": {"type": "object", "properties": {"title": {"type": "string", "maxLength": 60},
               "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 5},
               "score": {"type": "number", "minimum": 0, "maximum": 10}, "draft": {"type": "boolean"}},
               "required": ["title", "tags", "score", "draft"], "additionalProperties": False},
}
PROMPT = "Describe a made-up book as JSON."


async def run(model, schema):
    ids = model.encode_chat([{"role": "user", "content": PROMPT}])
    params = nomoat.SamplingParams(temperature=0, max_tokens=96)
    constraint = JSONConstraint(schema, model.tokenizer, model.stop_ids) if schema else None
    stats = Stats()
    text = "".join([p async for p in generate(model.backend, model.backend.new_state(), ids, params, model.tokenizer,
                                              model.stop_ids, model.context_window, stats, constraint)])
    mask_ms = 1000 * constraint.mask_s / max(constraint.masks, 1) if constraint else 0.0
    return stats.decode_tps, mask_ms, stats.completion_tokens, text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model = nomoat.load(threads=2)
    rows = []
    for name, schema in SCHEMAS.items():
        free, bound, masks, n = [], [], [], 0
        for _ in range(args.repeats):
            free.append(asyncio.run(run(model, None))[0])
            tps, mask_ms, n, text = asyncio.run(run(model, schema))
            bound.append(tps)
            masks.append(mask_ms)
        rows.append((name, n, statistics.median(free), statistics.median(bound), statistics.median(masks), text))
    print("| schema | tokens | decode tok/s free | decode tok/s constrained | mask ms/token | output |")
    print("|---|---:|---:|---:|---:|---|")
    for name, n, f, b, m, text in rows:
        print(f"| {name} | {n} | {f:.1f} | {b:.1f} ({100 * b / f:.0f} %) | {m:.2f} | `{text[:60]}` |")


if __name__ == "__main__":
    main()
