"""The command line: nomoat convert | prompt | chat | embed | serve | bench."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from .errors import NomoatError


class Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default (where it has one that is not None or False)."""

    def _get_help_string(self, action):
        d = action.default
        if d is None or d is False or d == [] or d is argparse.SUPPRESS or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# Exit codes: 0 done; 1 a model or option error (NomoatError); 2 a usage error (argparse); 3 the
# system refused (a port in use, a path that is not a folder, no permission); 130 stopped with Ctrl-C;
# 141 the reader of the output went away (`nomoat prompt … | head`), quietly, as other tools do.
EXIT_MODEL, EXIT_OS, EXIT_INTERRUPTED, EXIT_PIPE = 1, 3, 130, 141


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a model package folder, or a model's name (SmolLM2-135M-Instruct, gemma-3-270m: "
                                    "fetched and converted on first use) (default: SmolLM2-135M-Instruct)")
    p.add_argument("--system", help="system prompt (default: the chat template's own)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature, 0 = greedy (default: 0.7 in chat, 0 in prompt)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens, 0 = all")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: the smallest set of tokens whose "
                                                            "probabilities sum to p, 1 = all")
    p.add_argument("--min-p", type=float, default=0.0, help="drop tokens less likely than min-p times the likeliest")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="divide the logits of tokens already seen by this, 1 = off")
    p.add_argument("--seed", type=int, default=None, help="random seed for sampling (default: a fresh one each run)")
    p.add_argument("--max-tokens", type=int, default=512, help="stop the answer after this many tokens")
    p.add_argument("--stop", action="append", default=[], help="stop sequence, not printed (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    p.add_argument("--stats", action="store_true", help="print token counts and speeds to stderr")
    p.add_argument("--accuracy-level", type=int, default=4, choices=[0, 4],
                   help="onnxruntime MatMulNBits accuracy: 4 = int8 activations (fast), 0 = f32 (exact)")


def _session(args, default_temperature: float, system: str | None = None):
    import nomoat

    if getattr(args, "loaded", None) is None:
        args.loaded = nomoat.load(args.model, threads=args.threads, accuracy_level=args.accuracy_level)
    t = default_temperature if args.temperature is None else args.temperature
    return args.loaded.session(system=args.system if system is None else system, temperature=t, top_k=args.top_k,
                               top_p=args.top_p, min_p=args.min_p, repetition_penalty=args.repetition_penalty,
                               seed=args.seed, max_tokens=args.max_tokens, stop=args.stop)


def _stats_line(s) -> str:
    return (f"[{s.prompt_tokens} prompt tokens ({s.reused_tokens} reused), {s.completion_tokens} generated, "
            f"ttft {s.ttft_s * 1000:.0f} ms, prefill {s.prefill_tps:.0f} tok/s, decode {s.decode_tps:.1f} tok/s, "
            f"finish: {s.finish_reason}]")


def _stats_dict(s) -> dict:
    return {"prompt_tokens": s.prompt_tokens, "reused_tokens": s.reused_tokens,
            "completion_tokens": s.completion_tokens, "finish_reason": s.finish_reason,
            "ttft_ms": round(s.ttft_s * 1000, 1), "prefill_tokens_per_s": round(s.prefill_tps, 1),
            "decode_tokens_per_s": round(s.decode_tps, 1)}


async def _stream(session, text: str, show_stats: bool, constraint=None, keep_partial: bool = True) -> None:
    async for piece in session.prompt_streaming(text, constraint, keep_partial=keep_partial):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    if show_stats and session.last:
        print(_stats_line(session.last), file=sys.stderr)


def _progress(what: str):
    """progress(done, total) printing bytes and percent to stderr, on one line."""
    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{what}: {done / 1e6:.0f} / {total / 1e6:.0f} MB ({100 * done / max(total, 1):.0f} %)", end=end,
              file=sys.stderr, flush=True)
    return show


def _bar(width: int = 30):
    """progress(stage, done, total) drawing a bar on stderr; a new line when a stage ends."""
    def show(stage: str, done: int, total: int) -> None:
        fill = width * done // max(total, 1)
        end = "\n" if done >= total else ""
        print(f"\r[{'#' * fill}{'.' * (width - fill)}] {stage} {done}/{total}\033[K", end=end, file=sys.stderr,
              flush=True)
    return show


def cmd_convert(args) -> None:
    from .catalog import convert_default, convert_named, names
    from .convert import convert

    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise NotADirectoryError(20, "not a directory", args.out)
    t = time.perf_counter()
    if args.default:
        out = convert_default(force=args.force, progress=_bar())
    elif args.model:
        out = convert_named(args.model, force=args.force, progress=_progress(f"assembling {args.model}"),
                            convert_progress=_bar())
    elif args.gguf and args.out and (Path(args.gguf).is_dir() or args.gguf.endswith(".zip")):
        from .convert.encoder import convert_encoder  # a sentence-transformers BERT: an embedding package

        out = convert_encoder(args.gguf, args.out, progress=_bar())
    elif args.gguf and args.out:
        out = convert(args.gguf, args.out, accuracy_level=args.accuracy_level, progress=_bar(), context=args.context)
    else:
        raise SystemExit(f"nomoat convert: give MODEL.gguf OUT_DIR, --default, or --model NAME ({names()}).")
    print(f"model package: {out} ({time.perf_counter() - t:.1f} s)")


def _prompt_text(args) -> str:
    """The prompt: the argument, or standard input when it is `-` or absent and stdin is not a terminal."""
    if args.text not in (None, "-"):
        return args.text
    if args.text is None and sys.stdin.isatty():
        raise SystemExit("nomoat prompt: give the prompt as an argument, or '-' to read it from standard input.")
    return sys.stdin.read()


def _constraint(args):
    import json

    if args.json_schema and args.regex:
        raise SystemExit("nomoat prompt: give --json-schema or --regex, not both.")
    if args.regex:
        return {"regex": args.regex, "flags": "u"}
    if not args.json_schema:
        return None
    try:
        return json.loads(Path(args.json_schema).read_text(encoding="utf-8"))
    except ValueError as e:
        raise SystemExit(f"nomoat prompt: {args.json_schema} is not valid JSON ({e}); --json-schema takes a "
                         "JSON Schema file.") from None


def cmd_prompt(args) -> None:
    text, constraint = _prompt_text(args), _constraint(args)
    session = _session(args, 0.0)
    if not args.json:
        asyncio.run(_stream(session, text, args.stats, constraint))
        return
    import json

    answer = asyncio.run(session.prompt(text, constraint))
    print(json.dumps({"text": answer, "stats": _stats_dict(session.last)}, ensure_ascii=False))


CHAT_HELP = "commands: /clear (a new conversation), /system TEXT (a new conversation with that system prompt), " \
            "/stats (the last answer's numbers), /help; Ctrl-C stops an answer (it is then forgotten), Ctrl-D quits."


def cmd_chat(args) -> None:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    session = _session(args, 0.7)
    print(f"nomoat chat on {session.model.source}. {CHAT_HELP}", file=sys.stderr)
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return
        command, _, rest = text.strip().partition(" ")
        if command == "/clear":
            session = _session(args, 0.7)
            print("[a new conversation]", file=sys.stderr)
        elif command == "/system":
            session = _session(args, 0.7, system=rest.strip())
            print("[a new conversation with that system prompt]", file=sys.stderr)
        elif command == "/stats":
            print(_stats_line(session.last) if session.last else "[no answer yet]", file=sys.stderr)
        elif command == "/help":
            print(CHAT_HELP, file=sys.stderr)
        elif text.strip():
            try:
                asyncio.run(_stream(session, text, True, keep_partial=False))
            except KeyboardInterrupt:
                print("\n[stopped: that answer is forgotten]", file=sys.stderr)


def cmd_embed(args) -> None:
    """Sentence embeddings as OpenAI's embeddings response, one JSON object on stdout."""
    import json

    import nomoat

    if args.texts in ([], ["-"]):
        if not args.texts and sys.stdin.isatty():
            raise SystemExit("nomoat embed: give the texts as arguments, or '-' to read them from standard input "
                             "(one text per line).")
        texts = [line for line in sys.stdin.read().splitlines() if line.strip()]
        if not texts:
            raise SystemExit("nomoat embed: standard input holds no text (one text per line).")
    else:
        texts = args.texts
    model = nomoat.load(args.model, threads=args.threads)
    if not hasattr(model, "embed"):
        raise SystemExit(f"nomoat embed: {args.model} is a chat model; give an embedding model "
                         "(--model all-MiniLM-L6-v2).")
    vectors, tokens = asyncio.run(model.embed_counted(texts, truncate=args.truncate))
    print(json.dumps({"object": "list", "model": model.name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                      "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}))


def cmd_serve(args) -> None:
    from .catalog import convert_default
    from .serve import serve

    convert_default()  # the demo's default model must exist under /models/
    serve(args.port, args.host, args.verbose, openai=args.openai)


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

    p = sub.add_parser("convert", help="GGUF → nomoat model package", formatter_class=Help)
    p.add_argument("gguf", nargs="?", help="a Llama-family .gguf file, or a sentence-transformers BERT folder (or "
                                           "its .zip): an embedding model")
    p.add_argument("out", nargs="?", help="output folder")
    p.add_argument("--default", action="store_true", help="fetch and convert the default model (once)")
    p.add_argument("--model", help="fetch and convert a named model (once): SmolLM2-135M-Instruct, gemma-3-270m, "
                                    "all-MiniLM-L6-v2")
    p.add_argument("--force", action="store_true", help="with --default or --model: convert again")
    p.add_argument("--accuracy-level", type=int, default=0, choices=[0, 1, 2, 3, 4],
                   help="MatMulNBits accuracy_level written into the graph (0 = f32 accumulation)")
    p.add_argument("--context", type=int, metavar="N",
                   help="the package's context window, at most the GGUF's (default: the GGUF's); like llama.cpp's "
                        "n_ctx it picks LongRoPE's factors (Phi-3.5/Phi-4-mini: long above 4096)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("prompt", help="answer one prompt, streamed, then exit", formatter_class=Help)
    p.add_argument("text", nargs="?", help="the prompt; '-' or none (with stdin not a terminal): read standard input")
    _sampling_args(p)
    p.add_argument("--json-schema", metavar="FILE", help="constrain the answer to JSON valid against this JSON Schema")
    p.add_argument("--regex", help="constrain the answer to match this regular expression (JavaScript syntax)")
    p.add_argument("--json", action="store_true", help="print {text, stats} as one JSON object instead of streaming")
    p.set_defaults(func=cmd_prompt)

    p = sub.add_parser("chat", help="interactive streaming chat", formatter_class=Help, epilog=CHAT_HELP)
    _sampling_args(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="serve the chat demo and the browser runtime on localhost", formatter_class=Help)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
                        "network, answering requests for any IP address of this machine)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.add_argument("--openai", action="store_true",
                   help="also serve OpenAI's API at /v1 (chat completions, streamed or not; embeddings; models) from "
                        "the packages in the models folder: point an OpenAI client's base_url at http://HOST:PORT/v1")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("embed", help="sentence embeddings of texts, as OpenAI's embeddings JSON", formatter_class=Help)
    p.add_argument("texts", nargs="*", help="the texts; '-' or none (with stdin not a terminal): standard input, "
                                            "one text per line")
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="an embedding model's name or package folder")
    p.add_argument("--truncate", action="store_true", help="cut texts past the model's limit (256 tokens for "
                                                          "all-MiniLM-L6-v2) instead of refusing them")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    p.set_defaults(func=cmd_embed)

    sub.add_parser("bench", help="side-by-side benchmark vs transformers.js, wllama, llama.cpp (a checkout)")

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except NomoatError as e:
        print(f"nomoat: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_MODEL
    except KeyboardInterrupt:
        print("\nnomoat: stopped.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader left (`| head`): say nothing more, and don't let Python complain at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except OSError as e:
        print(f"nomoat: {_os_error(e, args)}", file=sys.stderr)
        return EXIT_OS
    return 0


def _os_error(e: OSError, args) -> str:
    """An OSError as one line that names the fix."""
    import errno

    where = f"{e.filename}: " if e.filename else ""
    if e.errno == errno.EADDRINUSE:
        return f"port {args.port} on {args.host} is in use: stop what uses it, or pick another with --port."
    if e.errno == errno.EADDRNOTAVAIL:
        return f"{args.host} is not an address of this machine: use --host 127.0.0.1 (or another of its addresses)."
    if e.errno == errno.ENOTDIR or isinstance(e, NotADirectoryError):
        return f"{where}is a file, not a folder: give a folder path (it is made if missing)."
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{where}permission denied: choose a place you can write to."
    if e.errno == errno.ENOSPC:
        return f"{where}no space left on the device: free some space and run it again."
    return f"{where}{e.strerror or e}."


if __name__ == "__main__":
    sys.exit(main())
