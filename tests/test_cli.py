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
    assert r.returncode == 2
    assert "temperature must be a number >= 0" in r.stderr and "Traceback" not in r.stderr


def test_convert_refuses_a_non_gguf(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_text("hello")
    r = nomoat("convert", str(bad), str(tmp_path / "out"))
    assert r.returncode == 2
    assert "not a GGUF file" in r.stderr and "Traceback" not in r.stderr


def test_missing_model_folder_names_the_fix(tmp_path):
    r = nomoat("prompt", "hi", "--model", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert "nomoat convert" in r.stderr
