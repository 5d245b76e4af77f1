"""Hostile model packages on CPython: a seeded fuzz mutates copies of the default package
(models/SmolLM2-135M-Instruct) — config.json, tokenizer_config.json (its chat template), tokenizer.json,
nomoat.json, the graph and the data file: truncations, bit flips, bad JSON, wrong types, huge,
negative or inconsistent numbers, sandbox escapes — and rewrites the manifest's sizes and sha256s, so
the integrity check passes (a hostile package, not a corrupt one). Every case must end in
InvalidModelError / UnsupportedModelError / ModelNotFoundError naming the file, or in a model that
loads and answers; never another exception. The counts per outcome are printed (pytest -s).

The browser's side of the same rules: web/test/hostile_wasm_engine.test.js (the wasm decoder's
tensor directory and config.json) and web/test/package.test.js (manifests, JSON files).
NOMOAT_FUZZ_CASES sets the number of cases (default 90).
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
from pathlib import Path

import pytest

import nomoat
from nomoat.chat import render
from nomoat.config import ModelConfig
from nomoat.errors import InvalidModelError, ModelNotFoundError, UnsupportedModelError
from nomoat.package import MANIFEST, PROOF, sha256

CASES = int(os.environ.get("NOMOAT_FUZZ_CASES", "90"))
FIELDS = ["num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
          "head_dim", "vocab_size", "rms_norm_eps", "rope_theta", "max_position_embeddings", "bos_token_id",
          "eos_token_id", "pad_token_id", "tie_word_embeddings", "architectures"]
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{% set x = messages[0].__getitem__ %}{{ x.__self__.__class__ }}",
]


def copy_package(src: Path, dst: Path) -> None:
    """Hard links to every file (nothing is copied or changed in src; a mutated file is replaced, never
    written through its link)."""
    for p in src.rglob("*"):
        if p.is_file() and p.name != PROOF:
            q = dst / p.relative_to(src)
            q.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, q)


def replace(pkg: Path, name: str, data: bytes, rehash: bool = True) -> None:
    """Writes a new `name` (unlinking the old one) and, with rehash, its size and sha256 into the manifest."""
    p = pkg / name
    p.unlink()
    p.write_bytes(data)
    if rehash and name != MANIFEST:
        mf = pkg / MANIFEST
        manifest = json.loads(mf.read_text())
        manifest["files"][name] = {"size": len(data), "sha256": sha256(p)}
        mf.unlink()
        mf.write_text(json.dumps(manifest))


def mutate(pkg: Path, rng: random.Random) -> tuple[str, str]:
    """One seeded mutation of the package at pkg: (what it did, the file it touched)."""
    def load(name: str):
        return json.loads((pkg / name).read_text())

    def put(name: str, value) -> None:
        replace(pkg, name, json.dumps(value).encode())

    def mangle(data: bytes) -> bytes:
        if rng.random() < 0.5:
            return data[:rng.randrange(len(data))]
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)

    kind = rng.choice(["config"] * 5 + ["config_consistent", "config_root", "tokenizer_config", "tokenizer_config",
                       "template_escape", "tokenizer", "tokenizer", "manifest", "manifest", "text", "text",
                       "graph", "data"])
    if kind == "config":
        cfg, f = load("config.json"), rng.choice(FIELDS)
        v = cfg.get(f)
        nv = rng.choice([0, -1, 2**31, 2**53, 1e308, float("nan"), float("inf"), "7", None, [v], {}, True, "missing"]
                        + ([v + 1, v - 1, v * 2, v // 2 or 1, v + 0.5] if isinstance(v, int | float) else []))
        if nv == "missing":
            cfg.pop(f, None)
        else:
            cfg[f] = nv
        put("config.json", cfg)
        return f"config.json {f} = {nv!r}", "config.json"
    if kind == "config_consistent":  # a valid config that does not fit the graph, or that does
        cfg = load("config.json")
        f, nv = rng.choice([("num_hidden_layers", 29), ("num_hidden_layers", 1), ("num_key_value_heads", 1),
                            ("num_key_value_heads", 9), ("head_dim", 32), ("vocab_size", 49151), ("vocab_size", 60000),
                            ("max_position_embeddings", 100), ("rope_theta", 1e6), ("rms_norm_eps", 1e-3)])
        cfg[f] = nv
        put("config.json", cfg)
        return f"config.json {f} = {nv} (valid alone)", "config.json"
    if kind == "config_root":
        v = rng.choice([None, [], "x", 42, {}])
        put("config.json", v)
        return f"config.json = {v!r}", "config.json"
    if kind == "tokenizer_config":
        tc = load("tokenizer_config.json")
        key = rng.choice(["chat_template", "bos_token", "eos_token"])
        tc[key] = rng.choice([42, ["x"], {"a": 1}, True, "{% if %}", "{{ messages[0].content", "{% endfor %}"])
        put("tokenizer_config.json", tc)
        return f"tokenizer_config.json {key} = {tc[key]!r}", "tokenizer_config.json"
    if kind == "template_escape":
        tc = load("tokenizer_config.json")
        tc["chat_template"] = rng.choice(ESCAPES)
        put("tokenizer_config.json", tc)
        return f"chat_template = {tc['chat_template']}", "tokenizer_config.json"
    if kind == "tokenizer":
        tok = load("tokenizer.json")
        op = rng.choice(["vocab", "merges", "added", "model", "ids"])
        if op == "vocab":
            tok["model"]["vocab"] = rng.choice([[], "x", None, {}])
        elif op == "merges":
            tok["model"]["merges"] = rng.choice(["x", [1, 2], [["a"]], None, [["zz-not-a-token", "qq"]]])
        elif op == "added":
            tok["added_tokens"] = rng.choice([{"x": 1}, [{"id": "1"}], [None], "x"])
        elif op == "model":
            tok["model"] = rng.choice([None, [], {"type": "Unigram"}])
        else:  # token ids beyond the vocabulary
            vocab = tok["model"]["vocab"]
            for k in rng.sample(sorted(vocab), 3):
                vocab[k] = rng.choice([-1, 2**31, 10**6, "7"])
        put("tokenizer.json", tok)
        return f"tokenizer.json {op}", "tokenizer.json"
    if kind == "manifest":
        m = load(MANIFEST)
        name = rng.choice(sorted(m["files"]))
        op = rng.choice(["size", "sha", "files", "traversal", "drop"])
        if op == "size":
            m["files"][name]["size"] = rng.choice([-1, "12", None, 1.5, True, 2**60])
        elif op == "sha":
            m["files"][name]["sha256"] = rng.choice([42, None, "abc", "0" * 64])
        elif op == "files":
            m["files"] = rng.choice([None, [], "x"])
        elif op == "traversal":
            m["files"]["../../../etc/passwd"] = {"size": 1, "sha256": "0" * 64}
        else:
            del m["files"][name]  # a file the manifest no longer vouches for: still checked where it is used?
        replace(pkg, MANIFEST, json.dumps(m).encode(), rehash=False)
        return f"nomoat.json {op} ({name})", f"{MANIFEST}|{name}"  # the message names the manifest or the file
    if kind == "text":  # a JSON file's text cut or bit-flipped
        name = rng.choice(["config.json", "tokenizer_config.json", "tokenizer.json", MANIFEST])
        replace(pkg, name, mangle((pkg / name).read_bytes()), rehash=name != MANIFEST)
        return f"{name} text mangled", name
    name = "onnx/nomoat_q4.onnx" if kind == "graph" else "onnx/model_q4.onnx_data"
    data = (pkg / name).read_bytes()
    if kind == "data" and rng.random() < 0.6:  # flipped weights: loads and answers (nonsense)
        b = bytearray(data)
        for _ in range(64):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        data = bytes(b)
    else:
        data = mangle(data)
    replace(pkg, name, data)
    return f"{name} mangled ({len(data)} bytes)", name


def attempt(pkg: Path) -> str:
    try:
        model = nomoat.load(pkg, threads=1)
        answer = model.prompt_sync("Hi", max_tokens=2, temperature=0)
        assert isinstance(answer, str)
        return "answered"
    except (InvalidModelError, UnsupportedModelError, ModelNotFoundError) as e:
        return type(e).__name__ + ": " + str(e)


def test_fuzz_hostile_packages(default_model_dir, tmp_path):
    rng = random.Random(2026)
    counts: collections.Counter[str] = collections.Counter()
    failures = []
    for i in range(CASES):
        pkg = tmp_path / f"case{i}"
        copy_package(default_model_dir, pkg)
        what, file = mutate(pkg, rng)
        try:
            outcome = attempt(pkg)
        except Exception as e:  # noqa: BLE001 — the very thing this test looks for
            failures.append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
        else:
            kind, _, message = outcome.partition(": ")
            if kind != "answered" and Path(file).name not in message and MANIFEST not in message:
                failures.append(f"{what}: {outcome[:300]} (does not name {file})")
            counts[kind] += 1
        shutil.rmtree(pkg)
    print(f"\nhostile packages: {CASES} cases: {dict(counts)}; {len(failures)} failures")
    assert failures == [], "\n".join(failures)
    assert counts["InvalidModelError"] > CASES // 2 and counts["answered"] > 3, dict(counts)


@pytest.mark.parametrize("template", ESCAPES)
def test_chat_template_sandbox(template):
    """The immutable sandbox refuses every reach for Python internals: an InvalidModelError naming
    tokenizer_config.json, or an empty rendering (an undefined attribute), never Python's objects."""
    try:
        text = render(template, [{"role": "user", "content": "hi"}])
    except InvalidModelError as e:
        assert "tokenizer_config.json: chat_template failed (SecurityError" in str(e)
    else:
        assert "class" not in text and "module" not in text and "function" not in text, text


def test_config_rules_match_the_browser():
    """config.json is refused with the messages web/src/package.js's modelShape gives (same rules)."""
    cfg = json.loads((Path(__file__).parent.parent / "models" / "SmolLM2-135M-Instruct" / "config.json").read_text()) \
        if (Path(__file__).parent.parent / "models" / "SmolLM2-135M-Instruct" / "config.json").is_file() else {
            "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 80, "rms_norm_eps": 1e-5, "rope_theta": 10000,
            "max_position_embeddings": 128}
    assert ModelConfig.from_dict({**cfg, "hidden_size": float(cfg["hidden_size"])}).hidden_size == cfg["hidden_size"]
    for change, message in [
        ({"num_hidden_layers": "2"}, 'num_hidden_layers is "2", not an integer in 1..1024'),
        ({"max_position_embeddings": 2**40}, "max_position_embeddings is 1099511627776, not an integer in 1..16777216"),
        ({"num_key_value_heads": 7}, f"num_attention_heads {cfg['num_attention_heads']} is not a multiple of "
                                     "num_key_value_heads 7"),
        ({"rms_norm_eps": 0}, "rms_norm_eps is 0, not a number in (0, 1]"),
        ({"rope_theta": float("nan")}, "rope_theta is NaN, not a number in (0, 1000000000000]"),
        ({"head_dim": 15}, "head_dim 15 is odd"),
        ({"vocab_size": None}, "vocab_size is null, not an integer in 1..16777216"),
    ]:
        with pytest.raises(InvalidModelError, match="config.json: ") as e:
            ModelConfig.from_dict({**cfg, **change})
        assert message in str(e.value) and "convert the model again ('nomoat convert')" in str(e.value)
