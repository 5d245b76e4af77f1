"""SentencePiece-style BPE (tokenizer.ggml.model "llama": Gemma, Llama-2, Mistral, Phi-3): the exported
tokenizer.json, Hugging Face `tokenizers` on it, and the pure-Python BPETokenizer give the same ids,
and so does the `sentencepiece` package itself, an independent implementation, loading a ModelProto
built from the GGUF's pieces, scores and types with the model's normalizer settings.

Compared on the committed corpora (tokenizer_corpus.json and tokenizer_corpus_spm.json) and a seeded
fuzz, for a tiny vocabulary trained by sentencepiece (Llama-2's layout: space prefix, 256 byte
pieces) written as a GGUF, and for Gemma-3-270M's 262,144 pieces (no space prefix) where its GGUF is
in models/downloads ('nomoat convert --model gemma-3-270m' fetches it). The oracle cuts added tokens
(control, unknown, user-defined) out of the text as llama.cpp does and encodes each stretch between
them with sentencepiece, so each stretch gets the space prefix, as llama.cpp gives one after each
special token.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from gguf import GGUFReader

from nomoat.bpe import BPETokenizer
from nomoat.convert.tokenizer_export import spm_merges, tokenizer_config, tokenizer_json
from nomoat.errors import UnsupportedModelError
from nomoat.tokenizer import HFTokenizer

from conftest import load_fixture

HERE = Path(__file__).parent
GEMMA_GGUF = HERE.parent / "models" / "downloads" / "gemma-3-270m-q4_k_m.gguf"
CORPUS = load_fixture("tokenizer_corpus.json") + load_fixture("tokenizer_corpus_spm.json")
SPM_CORPUS = load_fixture("tokenizer_corpus_spm.json")
PLANES = [(0x20, 0x7E), (0xA0, 0x2FF), (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0xDFF), (0x1100, 0x11FF),
          (0x2000, 0x2BFF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF),
          (0xFF00, 0xFFFF), (0x10000, 0x1FFFF), (0x1F300, 0x1FAFF), (0x20000, 0x2FFFF), (0xE0000, 0x10FFFF)]
PIECES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "▁", "0", "42", "2026", "😀", "👨‍👩‍👧‍👦", "日本", "é",
          "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<unk>", "<s>", "</s>", "<|tool|>", "<table>",
          "</td>", "<unused12>", "[multimodal]", "<0x41>", "<start_of", "the", " the", "The", "ing", "Hello"]


def fuzz(n: int, seed: int = 20261207) -> list[str]:
    """Random strings: code points from every plane (byte fallback), whitespace runs, digits, added tokens
    whole and cut, words."""
    rng = random.Random(seed)

    def fragment() -> str:
        if rng.random() < 0.4:
            lo, hi = rng.choice(PLANES)
            return "".join(chr(c) for c in (rng.randint(lo, hi) for _ in range(rng.randint(1, 6)))
                           if not 0xD800 <= c <= 0xDFFF)
        return rng.choice(PIECES)

    return ["".join(fragment() for _ in range(rng.randint(1, 12))) for _ in range(n)]


FUZZ = fuzz(3000)


def gguf_meta(path: Path) -> dict:
    """A GGUF's tokenizer.* fields, as the converter reads them."""
    return {k: f.contents() for k, f in GGUFReader(path).fields.items() if k.startswith("tokenizer.")}


def write_package(meta: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json(meta), ensure_ascii=False))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(meta, 512), ensure_ascii=False))
    return out


def sentencepiece_oracle(meta: dict):
    """text → ids by the `sentencepiece` package, from a ModelProto built of the GGUF's pieces. Added
    tokens are cut out of the raw text first, as llama.cpp does: sentencepiece itself would match a
    user-defined piece such as Gemma's "▁▁" in the normalized text, where a literal "▁" and a space are
    one (llama.cpp and HF match the raw "  "), so here they are control pieces, never matched inside."""
    spm = pytest.importorskip("sentencepiece")
    from sentencepiece import sentencepiece_model_pb2 as pb

    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    unk = meta["tokenizer.ggml.unknown_token_id"]
    proto = pb.ModelProto()
    proto.trainer_spec.model_type = pb.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = len(tokens)
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.unk_id = unk
    proto.trainer_spec.bos_id = meta["tokenizer.ggml.bos_token_id"]
    proto.trainer_spec.eos_id = meta["tokenizer.ggml.eos_token_id"]
    proto.trainer_spec.pad_id = meta.get("tokenizer.ggml.padding_token_id", -1)
    proto.normalizer_spec.name = "identity"  # Gemma's and Llama-2's: no NFKC, spaces kept as they are
    proto.normalizer_spec.add_dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    for i, (tok, kind, score) in enumerate(zip(tokens, types, meta["tokenizer.ggml.scores"], strict=True)):
        piece = proto.pieces.add()
        piece.piece = tok.replace(" ", "▁") if kind == 4 else tok  # as in the model's tokenizer.model
        piece.score = score
        piece.type = pb.ModelProto.SentencePiece.UNKNOWN if i == unk else 3 if kind == 4 else kind
    sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    added = {t: i for i, (t, kind) in enumerate(zip(tokens, types, strict=True)) if kind in (2, 3, 4)}
    cut = re.compile("|".join(map(re.escape, sorted(added, key=len, reverse=True))))

    def encode(text: str) -> list[int]:
        ids: list[int] = []
        for stretch, token in re.findall(f"(.*?)({cut.pattern}|\\Z)", text, re.DOTALL):
            ids += sp.encode(stretch) if stretch else []
            ids += [added[token]] if token else []
        return ids

    return encode


def three_way(meta: dict, folder: Path, texts: list[str]) -> tuple[int, list]:
    """(strings compared, those where HF, pure Python and sentencepiece do not all agree)."""
    hf, bpe, spm = HFTokenizer(folder), BPETokenizer.from_dir(folder), sentencepiece_oracle(meta)
    bad = [(s, a, b, c) for s in texts if not (a := hf.encode(s)) == (b := bpe.encode(s)) == (c := spm(s))]
    return len(texts), bad


@pytest.fixture(scope="module")
def tiny_meta(tmp_path_factory) -> dict:
    from fixtures.make_spm_fixtures import write_gguf

    path = write_gguf(tmp_path_factory.mktemp("spm") / "tiny-spm.gguf", load_fixture("spm_tiny_vocab.json"))
    return gguf_meta(path)


@pytest.fixture(scope="module")
def tiny_spm_dir(tiny_meta, tmp_path_factory) -> Path:
    return write_package(tiny_meta, tmp_path_factory.mktemp("tiny-spm-package"))


@pytest.fixture(scope="module")
def gemma_meta() -> dict:
    if not GEMMA_GGUF.is_file():
        pytest.skip(f"{GEMMA_GGUF} is absent: 'nomoat convert --model gemma-3-270m' fetches it")
    return gguf_meta(GEMMA_GGUF)


@pytest.fixture(scope="module")
def gemma_dir(gemma_meta, tmp_path_factory) -> Path:
    return write_package(gemma_meta, tmp_path_factory.mktemp("gemma-tokenizer"))


def test_corpus_covers_sentencepiece_cases():
    text = "".join(SPM_CORPUS)
    for needle in ["   ", "\t\t", "\n\n\n", "2026", "😀", "日本語", "<start_of_turn>", "<end_of_turn>", "<0x41>",
                   "\x00", "\ue000", "▁▁", "<table>", "<bos><start_of_turn>user\n"]:
        assert needle in text, repr(needle)
    assert len(FUZZ) == 3000 and len(set(FUZZ)) > 2800


def test_tiny_vocabulary_is_llama2_shaped(tiny_meta, tiny_spm_dir):
    tj = json.loads((tiny_spm_dir / "tokenizer.json").read_text())
    assert tiny_meta["tokenizer.ggml.model"] == "llama" and tiny_meta["tokenizer.ggml.add_space_prefix"] is True
    assert tj["model"]["byte_fallback"] and tj["model"]["unk_token"] == "<unk>" and tj["pre_tokenizer"] is None
    assert tj["normalizer"]["normalizers"][0] == {"type": "Prepend", "prepend": "▁"}
    assert {a["content"]: a["special"] for a in tj["added_tokens"]} == {
        "<unk>": True, "<s>": True, "</s>": True, "<start_of_turn>": True, "<end_of_turn>": True, "<|tool|>": False}
    assert 300 < len(tj["model"]["merges"]) < 2000


def test_tiny_hf_pure_python_and_sentencepiece_agree(tiny_meta, tiny_spm_dir):
    n, bad = three_way(tiny_meta, tiny_spm_dir, CORPUS + FUZZ)
    assert n == len(CORPUS) + 3000 and bad[:3] == []


def test_tiny_without_byte_pieces_falls_back_to_unk_as_hf(tiny_meta, tmp_path):
    """No byte fallback: a character outside the vocabulary is <unk>, consecutive ones fused."""
    keep = [i for i, kind in enumerate(tiny_meta["tokenizer.ggml.token_type"]) if kind != 6]
    meta = {**tiny_meta, **{k: [tiny_meta[k][i] for i in keep] for k in
                            ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")}}
    folder = write_package(meta, tmp_path)
    hf, bpe = HFTokenizer(folder), BPETokenizer.from_dir(folder)
    assert hf.encode("aꙮꙮbꙮ") == bpe.encode("aꙮꙮbꙮ") and hf.encode("aꙮꙮbꙮ").count(0) == 2
    assert [s for s in CORPUS + FUZZ if hf.encode(s) != bpe.encode(s)][:3] == []


def test_gemma_hf_pure_python_and_sentencepiece_agree(gemma_meta, gemma_dir):
    n, bad = three_way(gemma_meta, gemma_dir, CORPUS + FUZZ)
    assert n == len(CORPUS) + 3000 and bad[:3] == []


def test_gemma_exports_as_hf_gemma(gemma_meta, gemma_dir):
    tj = json.loads((gemma_dir / "tokenizer.json").read_text())
    config = json.loads((gemma_dir / "tokenizer_config.json").read_text())
    assert tj["normalizer"] == {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    assert len(tj["model"]["vocab"]) == 262144 and len(tj["model"]["merges"]) > 500_000
    assert "chat_template" not in config  # a base model: nothing to mistake for a chat model
    assert config["add_bos_token"] is True and config["bos_token"] == "<bos>" and config["eos_token"] == "<eos>"
    added = {a["content"]: a for a in tj["added_tokens"]}
    assert added["<start_of_turn>"]["special"] and not added["    "]["special"] and not added["<table>"]["special"]


def test_gemma_encodes_as_expected(gemma_dir):
    for tok in (HFTokenizer(gemma_dir), BPETokenizer.from_dir(gemma_dir)):
        assert tok.encode("The capital of France is") == [818, 5279, 529, 7001, 563]
        assert tok.encode("The capital", add_special_tokens=True)[0] == 2  # BOS, as llama.cpp's add_bos
        assert tok.encode("<start_of_turn>user\nhi<end_of_turn>") == [105, 2364, 107, 2202, 106]
        assert tok.encode("  x") == [138, 236781] and tok.encode("\x00") == [238]  # user-defined "  "; byte <0x00>


def test_gemma_decodes_every_string_back(gemma_dir):
    """Every string but one holding a literal "▁", which SentencePiece reads as a space; and as HF's decoder
    (Replace, ByteFallback, Fuse) decodes, special tokens kept or skipped. Bytes that are not UTF-8 are
    where the two part: nomoat writes U+FFFD for each invalid sequence of the byte stream (as llama.cpp's
    bytes decode, and byte-level models), HF for every byte token of a run that is not UTF-8 as a whole."""
    hf, bpe = HFTokenizer(gemma_dir), BPETokenizer.from_dir(gemma_dir)
    texts = [s for s in CORPUS + FUZZ if "▁" not in s]
    assert len(texts) > 3000 and [s for s in texts if bpe.decode(hf.encode(s), skip_special_tokens=False) != s] == []
    for skip in (False, True):
        assert [s for s in CORPUS + FUZZ if bpe.decode(ids := hf.encode(s), skip) != hf._hf.decode(ids, skip)] == []
    assert bpe.decode([270, 491]) == " \ufffd" and hf._hf.decode([270, 491]) == "\ufffd\ufffd"  # <0x20> <0xFD>
    assert bpe.decode(hf.encode("a▁b")) == "a b"
    assert bpe.decode(bpe.encode("<start_of_turn>model\nParis<end_of_turn>")) == "model\nParis"


def test_tiny_decodes_with_the_space_prefix(tiny_spm_dir):
    """SentencePiece with a space prefix: decoding gives it back (HF's Strip decoder drops one leading
    space of a whole sequence; a generated continuation keeps its spaces)."""
    bpe = BPETokenizer.from_dir(tiny_spm_dir)
    assert bpe.decode(bpe.encode("Hello world")) == " Hello world"
    assert bpe.decode(bpe.encode("x<s>y"), skip_special_tokens=False) == " x<s> y"


def test_merges_follow_sentencepiece_scores():
    tokens = ["<unk>", "a", "b", "c", "ab", "bc", "abc", "▁", "▁a"]
    scores = [0, -1, -2, -3, -10, -5, -20, -4, -6]
    types = [2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert spm_merges(tokens, scores, types) == [("b", "c"), ("▁", "a"), ("a", "b"), ("a", "bc"), ("ab", "c")]


def test_unsupported_sentencepiece_tokenizers_are_refused(tiny_meta, tiny_spm_dir):
    with pytest.raises(UnsupportedModelError, match="tokenizer.ggml.scores"):
        tokenizer_json({k: v for k, v in tiny_meta.items() if k != "tokenizer.ggml.scores"})
    tj = json.loads((tiny_spm_dir / "tokenizer.json").read_text())
    for change in [{"pre_tokenizer": {"type": "Metaspace"}}, {"normalizer": None},
                   {"normalizer": {"type": "NFKC"}}]:
        with pytest.raises(UnsupportedModelError):
            BPETokenizer({**tj, **change})


@pytest.mark.parametrize("name,folder,gguf", [("gemma", "gemma_dir", "models/downloads/gemma-3-270m-q4_k_m.gguf"),
                                              ("spm_tiny", "tiny_spm_dir", "tiny-spm")])
def test_equals_llama_cpp_where_its_fixture_exists(request, name, folder, gguf):
    """llama.cpp's ids for both corpora, made by tests/fixtures/make_llama_fixtures.py --tokens (llama-cpp-python,
    the optional llama extra, which compiles llama.cpp: ~20 min); the suite never needs llama.cpp."""
    path = HERE / "fixtures" / f"llama_tokens_{name}.json"
    if not path.is_file():
        pytest.skip(f"no {path.name}: make it with python tests/fixtures/make_llama_fixtures.py --tokens {gguf} "
                    f"{path.name}")
    expected = json.loads(path.read_text())["ids"]
    bpe = BPETokenizer.from_dir(request.getfixturevalue(folder))
    assert len(expected) == len(CORPUS)
    assert [(s, bpe.encode(s), ids) for s, ids in zip(CORPUS, expected, strict=True) if bpe.encode(s) != ids] == []


# Chat templates (chat.py) and base models


GEMMA_STYLE = (  # written here in the shape of Gemma 3's template (not its text): BOS, the system text
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"  # folded into the first user turn, 'model'
    "{%- set first = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


def test_chat_template_environment_is_hfs():
    """As transformers' apply_chat_template: its tojson (no HTML escapes, keys in order, non-ASCII kept),
    {% break %} / {% continue %}, {% generation %} blocks; still the immutable sandbox."""
    from nomoat.chat import render
    from nomoat.errors import InvalidModelError

    template = ("{%- for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{% if m.role == 'tool' %}"
                "{% continue %}{% endif %}{% generation %}[{{ m.content | trim }}]{% endgeneration %}{% endfor %}"
                "{{ tools | tojson }}")
    messages = [{"role": "user", "content": " a<b "}, {"role": "tool", "content": "x"},
                {"role": "user", "content": "never"}]
    tools = [{"name": "f", "z": 1, "a": "é<&>'"}]
    assert render(template, messages, tools=tools) == '[a<b][{"name": "f", "z": 1, "a": "é<&>\'"}]'
    with pytest.raises(InvalidModelError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", messages)


def test_gemma_style_chat_renders_and_tokenizes(gemma_dir):
    from nomoat.chat import render
    from nomoat.errors import InvalidOptionError

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France? "},
                {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Japan?"}]
    text = render(GEMMA_STYLE, messages, True, "<bos>", "<eos>")
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nCapital of France?<end_of_turn>\n<start_of_turn>model\n"
                    "Paris.<end_of_turn>\n<start_of_turn>user\nAnd Japan?<end_of_turn>\n<start_of_turn>model\n")
    hf, bpe = HFTokenizer(gemma_dir), BPETokenizer.from_dir(gemma_dir)
    ids = hf.encode(text)
    assert ids == bpe.encode(text) and ids[:3] == [2, 105, 2364] and ids[-3:] == [105, 4368, 107]
    with pytest.raises(InvalidOptionError, match="alternate"):
        render(GEMMA_STYLE, messages[1:2] * 2, True, "<bos>")


def test_base_model_text_is_continued_and_chat_is_refused(gemma_dir):
    """A model without a chat template completes text: the messages' texts in a row, BOS first where
    the tokenizer adds one; a system or tool message is refused, naming the fix."""
    from nomoat.chat import completion_text

    turns = [{"role": "user", "content": "The capital of France is"}, {"role": "assistant", "content": " Paris."}]
    assert completion_text(turns) == "The capital of France is Paris."
    assert BPETokenizer.from_dir(gemma_dir).encode(completion_text(turns[:1]), add_special_tokens=True) == \
        [2, 818, 5279, 529, 7001, 563]
    for role in ("system", "tool"):
        with pytest.raises(UnsupportedModelError, match="base model .* instruct model"):
            completion_text([{"role": role, "content": "x"}, *turns], "gemma-3-270m")


def test_byte_level_bos_for_models_that_add_one(tiny_gguf, tmp_path):
    """A byte-level GGUF with add_bos (Llama-3.x) gets HF's BOS post-processor too; without (SmolLM2), none."""
    meta = gguf_meta(tiny_gguf)
    assert not meta.get("tokenizer.ggml.add_bos_token")
    assert json.loads(json.dumps(tokenizer_json(meta)))["post_processor"]["type"] == "ByteLevel"
    folder = write_package({**meta, "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.bos_token_id": 1},
                           tmp_path)
    hf, bpe = HFTokenizer(folder), BPETokenizer.from_dir(folder)
    assert hf.encode("Hello world", add_special_tokens=True) == bpe.encode("Hello world", add_special_tokens=True) \
        == [1, *hf.encode("Hello world")]


def test_qwen25_template_renders_as_hf():
    """Qwen2.5-Instruct's own template (tools, tool calls, tool responses) renders exactly as HF renders
    it (the expected text of huggingface.js's test: see the fixture's source)."""
    from nomoat.chat import render, supports_tools

    q = load_fixture("qwen2.5_chat_template.json")
    assert supports_tools(q["chat_template"])
    assert render(q["chat_template"], q["messages"], q["add_generation_prompt"], tools=q["tools"]) == q["expected"]
    plain = render(q["chat_template"], [{"role": "user", "content": "Hi"}], True)
    assert plain == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                     "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_hostile_sentencepiece_tokenizer_json_is_refused_by_name(tiny_spm_dir):
    """300 seeded mutations of the tiny SentencePiece tokenizer.json (wrong types in the normalizer,
    decoder, post-processor, added tokens and model fields): the pure-Python tokenizer builds and
    encodes, or refuses with InvalidModelError / UnsupportedModelError, never another exception."""
    import copy

    from nomoat.errors import InvalidModelError

    base = json.loads((tiny_spm_dir / "tokenizer.json").read_text())
    values = [None, 1, -1, 2.5, True, "x", [], {}, [1], [None], {"type": "Replace"}, {"type": "Prepend", "prepend": 3},
              {"type": "Sequence"}, {"type": "Sequence", "normalizers": [1]}, {"type": "Sequence", "decoders": "x"},
              {"type": "Replace", "pattern": {"String": 1}, "content": "x"}, {"type": "TemplateProcessing"},
              {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<zz>"}}, {"Sequence": {}}],
               "special_tokens": {}}]
    fields = [("normalizer",), ("decoder",), ("pre_tokenizer",), ("post_processor",), ("added_tokens",), ("model",),
              ("model", "vocab"), ("model", "merges"), ("model", "unk_token"), ("model", "byte_fallback"),
              ("model", "fuse_unk"), ("model", "type")]
    rng, other = random.Random(12), []
    for _ in range(300):
        tj = copy.deepcopy(base)
        for _ in range(rng.randint(1, 2)):
            *where, key = rng.choice(fields)
            node = tj
            for k in where:
                node = node.get(k) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node[key] = copy.deepcopy(rng.choice(values))
        try:
            tok = BPETokenizer(tj)
            tok.decode(tok.encode("Hello <s> world\n😀", add_special_tokens=True))
        except (InvalidModelError, UnsupportedModelError):
            pass
        except Exception as e:  # noqa: BLE001 - what this test looks for
            other.append(f"{type(e).__name__}: {e}")
    assert other == []


def llama_cpp_agrees_by_construction(meta: dict) -> list[str]:
    """Where llama.cpp's SentencePiece tokenizer works otherwise than HF and sentencepiece, and why that
    does not change the ids for this vocabulary (problems found, [] if none):
    - it merges two symbols into any token with that text (control, byte, user-defined too), not only a
      normal piece: the same unless some other token is the join of two normal pieces;
    - it cuts added tokens out longest first, each everywhere left to right (HF: leftmost, then longest):
      the same unless one added token lies inside another or overlaps it (a proper suffix of one is a
      proper prefix of another), runs of one character (Gemma's whitespace pieces) aside."""
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    normal = {t for t, kind in zip(tokens, types, strict=True) if kind == 1}
    problems = [f"{t!r} = {t[:k]!r} + {t[k:]!r}" for t, kind in zip(tokens, types, strict=True) if kind != 1
                for k in range(1, len(t)) if t[:k] in normal and t[k:] in normal]
    added = {t for t, kind in zip(tokens, types, strict=True) if kind in (2, 3, 4)}

    def run(*ts: str) -> bool:
        return len(set("".join(ts))) == 1

    prefixes = {a[:k] for a in added for k in range(1, len(a))}
    not_run_prefixes = {a[:k] for a in added if not run(a) for k in range(1, len(a))}
    for a in added:
        problems += [f"{s!r} inside {a!r}" for s in {a[i:j] for i in range(len(a)) for j in range(i + 1, len(a) + 1)}
                     if s != a and s in added and not run(s, a)]
        problems += [f"{a!r} overlaps a token starting {a[k:]!r}" for k in range(1, len(a))
                     if a[k:] in (not_run_prefixes if run(a) else prefixes)]
    return problems


def test_llama_cpp_gives_the_same_ids_by_construction(tiny_meta, gemma_meta):
    assert llama_cpp_agrees_by_construction(tiny_meta) == []
    assert llama_cpp_agrees_by_construction(gemma_meta) == []


@pytest.mark.parametrize("folder", ["tiny_spm_dir", "gemma_dir"])
def test_pyodide_encodes_as_hf(request, folder, tmp_path):
    """The pure-Python tokenizer in Pyodide itself (Node; only the tokenizer's modules, the standard
    library) gives HF's ids. Its load time is printed (Gemma: about 1 s for json.loads and the build)."""
    import shutil
    import subprocess

    pyodide = HERE.parent / "web" / "node_modules" / "pyodide"
    if not shutil.which("node") or not (pyodide / "pyodide.mjs").is_file():
        pytest.skip("needs node and web/node_modules/pyodide (cd web && npm ci)")
    model_dir = request.getfixturevalue(folder)
    texts = CORPUS + FUZZ[:500]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    r = subprocess.run(["node", str(HERE / "fixtures" / "pyodide_tokenizer.mjs"), str(pyodide),
                        str(model_dir / "tokenizer.json"), str(tmp_path / "texts.json"), str(tmp_path / "out.json")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    hf = HFTokenizer(model_dir)
    assert [s for s, ids in zip(texts, out["ids"], strict=True) if ids != hf.encode(s)] == []
    print(f"Pyodide: {folder} tokenizer built in {out['load_s']:.2f} s")
