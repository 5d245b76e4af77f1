"""The command line, run as a user runs it: a subprocess on the default model."""

from __future__ import annotations

import subprocess
import sys

# Greedy, default model, default system prompt, exact f32 math (--accuracy-level 0). The first
# token is a near-tie (margin 0.08 logit): with 8-bit activations (level 4, and llama.cpp) the
# answer starts "L'Étoile" instead.
GOLDEN_ANSWER = "The capital of France is Paris."
EXACT = ("--accuracy-level", "0")


def nomoat(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nomoat", *args], input=stdin, capture_output=True, text=True,
                          timeout=300)


def test_prompt_is_greedy_and_golden(default_model_dir):
    r = nomoat("prompt", "What is the capital of France?", "--temperature", "0", "--model", str(default_model_dir),
               *EXACT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == GOLDEN_ANSWER


def test_prompt_without_model_uses_the_default(default_model_dir):
    r = nomoat("prompt", "What is the capital of France?", "--max-tokens", "4", "--stats", *EXACT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of France"
    assert "4 generated" in r.stderr and "finish: length" in r.stderr


def test_stop_sequence_is_not_printed(default_model_dir):
    r = nomoat("prompt", "What is the capital of France?", "--stop", " Paris", "--model", str(default_model_dir),
               *EXACT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of France is"


def test_chat_answers_each_line_and_remembers(default_model_dir):
    r = nomoat("chat", "--temperature", "0", "--max-tokens", "40", "--model", str(default_model_dir), *EXACT,
               stdin="What is the capital of France?\nAnd of Italy?\n")
    assert r.returncode == 0, r.stderr
    assert GOLDEN_ANSWER in r.stdout
    assert "Rome" in r.stdout  # the second turn saw the first


def test_default_is_fast_int8_math_and_agrees_with_llama_cpp_here(default_model_dir):
    """At the default accuracy level (8-bit activations) the near-tie goes the way llama.cpp's does."""
    r = nomoat("prompt", "What is the capital of France?", "--max-tokens", "6", "--model", str(default_model_dir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("L'Étoile")


def test_bad_option_is_a_clear_error(default_model_dir):
    r = nomoat("prompt", "hi", "--temperature", "-1", "--model", str(default_model_dir))
    assert r.returncode == 1
    assert "temperature must be a number >= 0" in r.stderr and "Traceback" not in r.stderr


def test_convert_refuses_a_non_gguf(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_text("hello")
    r = nomoat("convert", str(bad), str(tmp_path / "out"))
    assert r.returncode == 1
    assert "not a GGUF file" in r.stderr and "Traceback" not in r.stderr


def test_missing_model_folder_names_the_fix(tmp_path):
    r = nomoat("prompt", "hi", "--model", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert "nomoat convert" in r.stderr


def test_prompt_from_stdin_takes_a_prompt_too_long_for_the_command_line(default_model_dir, tmp_path):
    """`nomoat prompt -` reads stdin: a 1 MB prompt is "Argument list too long" as an argument."""
    r = nomoat("prompt", "-", "--model", str(default_model_dir), "--max-tokens", "4", *EXACT,
               stdin="What is the capital of France?")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of France"
    huge = "word " * 200_000  # 1 MB: longer than the context, so a clear error, not a crash
    r = nomoat("prompt", "--model", str(default_model_dir), "--max-tokens", "1", stdin=huge)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "context" in r.stderr


def test_json_output_and_constraints(default_model_dir, tmp_path):
    import json

    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"capital": {"type": "string", "maxLength": 12}},
                                  "required": ["capital"]}))
    r = nomoat("prompt", "What is the capital of France?", "--json-schema", str(schema), "--json", "--max-tokens",
               "40", "--model", str(default_model_dir), *EXACT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(json.loads(out["text"])) == {"capital"}
    assert out["stats"]["completion_tokens"] > 0 and out["stats"]["finish_reason"] == "stop"
    r = nomoat("prompt", "Count to three.", "--regex", "[0-9]( [0-9]){2}", "--model", str(default_model_dir), *EXACT)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) == 3 and all(w.isdigit() for w in r.stdout.split())
    schema.write_text("{not json")
    r = nomoat("prompt", "hi", "--json-schema", str(schema), "--model", str(default_model_dir))
    assert r.returncode != 0 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr


def test_a_closed_pipe_ends_quietly(default_model_dir):
    p = subprocess.Popen(f"{sys.executable} -m nomoat prompt 'Write a long story about a cat.' --max-tokens 200 "
                         f"--model {default_model_dir} | head -c 10", shell=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=300)
    assert len(out) == 10 and "Traceback" not in err and "BrokenPipe" not in err


def test_os_errors_are_one_line_with_the_fix(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = nomoat("serve", "--port", str(port))
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert f"port {port}" in r.stderr and "--port" in r.stderr
    a_file = tmp_path / "out"
    a_file.write_text("")
    r = nomoat("convert", str(tmp_path / "x.gguf"), str(a_file))
    assert r.returncode == 3 and "not a folder" in r.stderr and "Traceback" not in r.stderr


def test_help_gives_every_default():
    r = nomoat("prompt", "--help")
    text = " ".join(r.stdout.split())
    for option, default in (("--top-k", "0"), ("--top-p", "1.0"), ("--min-p", "0.0"), ("--repetition-penalty", "1.0"),
                            ("--max-tokens", "512"), ("--seed", "a fresh one")):
        part = text.split(option, 2)[-1].split(" --", 1)[0]
        assert f"default: {default}" in part, (option, part)


def test_chat_commands_and_a_stopped_answer_is_forgotten(default_model_dir):
    r = nomoat("chat", "--temperature", "0", "--max-tokens", "12", "--model", str(default_model_dir), *EXACT,
               stdin="My name is Ada.\n/stats\n/clear\nWhat is my name?\n/system You only answer in French.\n/help\n")
    assert r.returncode == 0, r.stderr
    assert "generated" in r.stderr and "a new conversation" in r.stderr and "/clear" in r.stderr
    assert "Ada" not in r.stdout.split("\n", 1)[-1]  # after /clear the name is gone


def test_convert_shows_progress_and_records_the_quantization(tmp_path):
    from nomoat.convert.tiny import make_tiny_gguf

    gguf = make_tiny_gguf(tmp_path / "t.gguf", n_layers=3, linear_type="Q4_K", hidden=256, inter=512, head_dim=64)
    r = nomoat("convert", str(gguf), str(tmp_path / "pkg"))
    assert r.returncode == 0, r.stderr
    assert "reading the weights 3/3" in r.stderr and "writing the tokenizer 4/4" in r.stderr
    import json

    assert "quantization" not in json.loads((tmp_path / "pkg" / "nomoat.json").read_text())  # no general.file_type


def test_a_named_models_package_records_its_quantization(gemma_dir):
    import json

    assert json.loads((gemma_dir / "nomoat.json").read_text())["quantization"] == "Q4_K_M"
