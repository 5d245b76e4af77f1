"""The results of `nomoat bench` (bench/results.json): schema, medians over repeats, targets, the
markdown table and the chart (decode tokens/s vs context length, a hand-written SVG).

    results = {"machine": {...}, "commit": ..., "settings": {...}, "targets": [...],
               "runs": [{"engine", "config", "device", "threads", "load_s": {"cold", "warm"},
                         "ttft_ms": {"32", "512"}, "prefill_tps", "decode_tps": {"128", "1024", "4096"},
                         "peak_mb", "repeats", "notes"}]}

A field that could not be measured is None, and `notes` says why. Pure Python: no browser needed.
"""

from __future__ import annotations

import statistics
from html import escape

TTFT_PROMPTS = ("32", "512")
CONTEXTS = ("128", "1024", "4096")
RUN_KEYS = ("engine", "config", "device", "threads", "load_s", "ttft_ms", "prefill_tps", "decode_tps",
            "peak_mb", "repeats", "notes")


def empty_run(engine: str, config: str, device: str, threads: int | None, notes: list[str]) -> dict:
    """A row with every measure None: an engine or device that could not run at all."""
    return {"engine": engine, "config": config, "device": device, "threads": threads,
            "load_s": {"cold": None, "warm": None}, "ttft_ms": dict.fromkeys(TTFT_PROMPTS),
            "prefill_tps": None, "decode_tps": dict.fromkeys(CONTEXTS), "peak_mb": None, "repeats": 0,
            "notes": list(notes)}


def _median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(engine: str, config: str, device: str, threads: int | None, samples: list[dict],
              notes: list[str]) -> dict:
    """One row from the repeats of one engine: the median of each measure over the repeats that have it.
    A sample is {"load_s": {cold, warm}, "ttft_ms": {...}, "prefill_tps", "decode_tps": {...}, "peak_mb"}."""
    row = empty_run(engine, config, device, threads, notes)
    if not samples:
        return row
    row["repeats"] = len(samples)
    for key in ("load_s", "ttft_ms", "decode_tps"):
        for sub in row[key]:
            row[key][sub] = _median([s.get(key, {}).get(sub) for s in samples])
    row["prefill_tps"] = _median([s.get("prefill_tps") for s in samples])
    row["peak_mb"] = _median([s.get("peak_mb") for s in samples])
    return row


def check_schema(results: dict) -> None:
    """Raise ValueError naming the first field that does not follow the schema above."""
    if not isinstance(results.get("machine"), dict):
        raise ValueError("results.machine: expected an object")
    for i, run in enumerate(results.get("runs", [])):
        missing = [k for k in RUN_KEYS if k not in run]
        if missing:
            raise ValueError(f"runs[{i}] lacks {missing}")
        for key, subs in (("load_s", ("cold", "warm")), ("ttft_ms", TTFT_PROMPTS), ("decode_tps", CONTEXTS)):
            if set(run[key]) != set(subs):
                raise ValueError(f"runs[{i}].{key}: expected keys {list(subs)}, got {sorted(run[key])}")
            for sub, v in run[key].items():
                if v is not None and not isinstance(v, (int, float)):
                    raise ValueError(f"runs[{i}].{key}.{sub}: expected a number or null")
        nulls = [k for k in ("prefill_tps", "peak_mb") if run[k] is None]
        nulls += [f"{k}.{s}" for k in ("load_s", "ttft_ms", "decode_tps") for s, v in run[k].items() if v is None]
        if nulls and not run["notes"]:
            raise ValueError(f"runs[{i}] ({run['engine']}) has null {nulls} but no note saying why")


def find(results: dict, engine: str, device: str = "wasm") -> dict | None:
    return next((r for r in results["runs"] if r["engine"] == engine and r["device"] == device), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(results: dict) -> list[dict]:
    """The issue's targets, as ratios from this run: [{target, value, goal, met}] (met None: not measurable)."""
    nm, tj, wl = (find(results, e) for e in ("nomoat", "transformers.js", "wllama"))
    lc = find(results, "llama.cpp", "cpu")
    default_model = results.get("model", {}).get("name", "SmolLM2-135M-Instruct") == "SmolLM2-135M-Instruct"

    def dec(r: dict | None, n: str) -> float | None:
        return r["decode_tps"][n] if r else None

    def t512(r: dict | None) -> float | None:
        return r["ttft_ms"]["512"] if r else None

    rows = [
        ("wasm decode at 128 tokens of context / transformers.js (fastest configuration)",
         _ratio(dec(nm, "128"), dec(tj, "128")), 1.5, ">="),
        ("wasm decode at 128 tokens of context / wllama", _ratio(dec(nm, "128"), dec(wl, "128")),
         1.0 if default_model else 2.0, ">="),  # issue 12: >= 2x wllama on the K-quant models
        ("wasm decode at 128 tokens of context / native llama.cpp (same GGUF)", _ratio(dec(nm, "128"), dec(lc, "128")),
         0.75, ">="),
        ("nomoat decode at 4096 / decode at 128", _ratio(dec(nm, "4096"), dec(nm, "128")), 0.8, ">="),
        ("time to first token, 512-token prompt / transformers.js's", _ratio(t512(nm), t512(tj)), 0.5, "<="),
    ]
    out = []
    for name, value, goal, op in rows:
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        out.append({"target": name, "value": value, "goal": f"{op} {goal}", "met": met})
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(results: dict) -> str:
    """The table of every run, then the targets with their ratios."""
    lines = ["| engine | configuration | device | threads | load cold / warm s | TTFT 32 / 512 ms | prefill tok/s "
             "| decode tok/s @128 / 1024 / 4096 | peak MB |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        lo, tt, de = r["load_s"], r["ttft_ms"], r["decode_tps"]
        lines.append(
            f"| {r['engine']} | {r['config']} | {r['device']} | {r['threads'] or 'n/a'} "
            f"| {_fmt(lo['cold'], '.1f')} / {_fmt(lo['warm'], '.1f')} "
            f"| {_fmt(tt['32'], '.0f')} / {_fmt(tt['512'], '.0f')} | {_fmt(r['prefill_tps'], '.0f')} "
            f"| {' / '.join(_fmt(de[n], '.1f') for n in CONTEXTS)} | {_fmt(r['peak_mb'], '.0f')} |")
    lines += ["", "| target | this run | goal | met |", "|---|---:|---|---|"]
    for t in results.get("targets") or targets(results):
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_fmt(t['value'], '.2f')} | {t['goal']} | {met} |")
    notes = [(r["engine"], r["device"], n) for r in results["runs"] for n in r["notes"]]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {e} ({d}): {n}" for e, d, n in notes]
    return "\n".join(lines) + "\n"


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def chart_svg(results: dict, width: int = 880, height: int = 420) -> str:
    """Decode tokens/s (y) vs context length (x, three evenly spaced points) per engine row with any
    decode number; a missing point breaks the line. Native (device "cpu") rows are dashed: ceilings."""
    series = [r for r in results["runs"] if any(v is not None for v in r["decode_tps"].values())]
    left, right, top, bottom = 60, 360, 40, 50
    pw, ph = width - left - right, height - top - bottom
    ymax = max([v for r in series for v in r["decode_tps"].values() if v is not None] + [1.0])
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if ymax / s <= 8)
    ymax = step * (int(ymax / step) + 1)
    x = {n: left + pw * i / (len(CONTEXTS) - 1) for i, n in enumerate(CONTEXTS)}

    def y(v: float) -> float:
        return top + ph * (1 - v / ymax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">Decode tokens/s vs context length '
           f'({escape(results.get("machine", {}).get("summary", ""))})</text>']
    for i in range(int(ymax / step) + 1):
        v = i * step
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for n, xv in x.items():
        out.append(f'<text x="{xv:.1f}" y="{top + ph + 18}" text-anchor="middle">{n}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 10}" text-anchor="middle">context (tokens)</text>')
    out.append(f'<text transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
               'decode tokens/s</text>')
    for k, r in enumerate(series):
        color = COLORS[k % len(COLORS)]
        dash = ' stroke-dasharray="6 4"' if r["device"] == "cpu" else ""
        seg: list[str] = []
        for n in (*CONTEXTS, None):
            v = r["decode_tps"][n] if n else None
            if v is not None:
                seg.append(f"{x[n]:.1f},{y(v):.1f}")
                out.append(f'<circle cx="{x[n]:.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}"/>')
            else:
                if len(seg) > 1:
                    out.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{color}" '
                               f'stroke-width="2"{dash}/>')
                seg = []
        ly = top + 10 + 18 * k
        label = escape(f"{r['engine']} ({r['config']}, {r['device']})")
        out.append(f'<line x1="{left + pw + 15}" x2="{left + pw + 35}" y1="{ly}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{left + pw + 40}" y="{ly + 4}" font-size="11">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
