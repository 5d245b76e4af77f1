"""The command line: nomoat convert | prompt | chat | serve | bench."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from .errors import NomoatError


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a model package folder, or a model's name (SmolLM2-135M-Instruct, gemma-3-270m: "
                                    "fetched and converted on first use; default: SmolLM2-135M-Instruct)")
    p.add_argument("--system", help="system prompt (default: the chat template's own)")
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy (default 0.7 in chat, 0 in prompt)")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--stop", action="append", default=[], help="stop sequence (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    p.add_argument("--stats", action="store_true", help="print token counts and speeds to stderr")
    p.add_argument("--accuracy-level", type=int, default=4, choices=[0, 4],
                   help="onnxruntime MatMulNBits accuracy: 4 = int8 activations (fast, default), 0 = f32 (exact)")


def _session(args, default_temperature: float):
    import nomoat

    model = nomoat.load(args.model, threads=args.threads, accuracy_level=args.accuracy_level)
    t = default_temperature if args.temperature is None else args.temperature
    return model.session(system=args.system, temperature=t, top_k=args.top_k, top_p=args.top_p,
                         min_p=args.min_p, repetition_penalty=args.repetition_penalty, seed=args.seed,
                         max_tokens=args.max_tokens, stop=args.stop)


async def _stream(session, text: str, show_stats: bool) -> None:
    async for piece in session.prompt_streaming(text):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    s = session.last
    if show_stats and s:
        print(f"[{s.prompt_tokens} prompt tokens ({s.reused_tokens} reused), {s.completion_tokens} generated, "
              f"ttft {s.ttft_s * 1000:.0f} ms, prefill {s.prefill_tps:.0f} tok/s, decode {s.decode_tps:.1f} tok/s, "
              f"finish: {s.finish_reason}]", file=sys.stderr)


def _progress(what: str):
    """progress(done, total) printing bytes and percent to stderr, on one line."""
    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{what}: {done / 1e6:.0f} / {total / 1e6:.0f} MB ({100 * done / max(total, 1):.0f} %)", end=end,
              file=sys.stderr, flush=True)
    return show


def cmd_convert(args) -> None:
    from .catalog import convert_named, names
    from .convert import convert, convert_default

    t = time.perf_counter()
    if args.default:
        out = convert_default(force=args.force)
    elif args.model:
        out = convert_named(args.model, force=args.force, progress=_progress(f"assembling {args.model}"))
    elif args.gguf and args.out:
        out = convert(args.gguf, args.out, accuracy_level=args.accuracy_level)
    else:
        raise SystemExit(f"nomoat convert: give MODEL.gguf OUT_DIR, --default, or --model NAME ({names()}).")
    print(f"model package: {out} ({time.perf_counter() - t:.1f} s)")


def cmd_prompt(args) -> None:
    asyncio.run(_stream(_session(args, 0.0), args.text, args.stats))


def cmd_chat(args) -> None:
    session = _session(args, 0.7)
    print("nomoat chat: type a message, Ctrl-D to quit.", file=sys.stderr)
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return
        if text.strip():
            try:
                asyncio.run(_stream(session, text, args.stats))
            except KeyboardInterrupt:
                print("\n[stopped]", file=sys.stderr)


def cmd_serve(args) -> None:
    from .convert import convert_default
    from .serve import serve

    convert_default()  # the demo's default model must exist under /models/
    serve(args.port, args.host, args.verbose)


def cmd_bench(argv: list[str]) -> int:
    """`nomoat bench [...]`: bench/bench_peers.py of the source checkout, with its own options."""
    import importlib.util

    from .home import repo_root

    script = (repo_root() or Path("/nonexistent")) / "bench" / "bench_peers.py"
    if not script.is_file():
        raise SystemExit("nomoat bench runs from a source checkout (bench/bench_peers.py): "
                         "clone the repository, `make setup`, then `.venv/bin/nomoat bench`.")
    spec = importlib.util.spec_from_file_location("bench_peers", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its options are bench_peers.py's own
        return cmd_bench(argv[1:])
    parser = argparse.ArgumentParser(prog="nomoat", description="A small language model, local and offline.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="GGUF → nomoat model package")
    p.add_argument("gguf", nargs="?", help="a Llama-family .gguf file")
    p.add_argument("out", nargs="?", help="output folder")
    p.add_argument("--default", action="store_true", help="fetch and convert the default model (once)")
    p.add_argument("--model", help="fetch and convert a named model (once): SmolLM2-135M-Instruct, gemma-3-270m")
    p.add_argument("--force", action="store_true", help="with --default or --model: convert again")
    p.add_argument("--accuracy-level", type=int, default=0, choices=[0, 1, 2, 3, 4],
                   help="MatMulNBits accuracy_level written into the graph (0 = f32 accumulation)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("prompt", help="answer one prompt, streamed, then exit")
    p.add_argument("text")
    _sampling_args(p)
    p.set_defaults(func=cmd_prompt)

    p = sub.add_parser("chat", help="interactive streaming chat")
    _sampling_args(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="serve the chat demo and the browser runtime on localhost")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
                        "network, answering requests for any IP address of this machine)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=cmd_serve)

    sub.add_parser("bench", help="side-by-side benchmark vs transformers.js, wllama, llama.cpp (a checkout)")

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except NomoatError as e:
        print(f"nomoat: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
