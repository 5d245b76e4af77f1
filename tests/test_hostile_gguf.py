"""Hostile GGUF files: a seeded fuzz of the tiny model's GGUF (truncations, bit flips in the header,
huge counts and lengths, overlapping or misaligned offsets, unknown types, wrong shapes). Every case
must end in the file loading or in InvalidModelError / UnsupportedModelError naming what is wrong —
never another exception, a hang or a huge allocation."""

from __future__ import annotations

import collections
import random
import signal
import struct
from pathlib import Path

import pytest

from nomoat.convert import convert
from nomoat.convert.gguf_file import read_gguf
from nomoat.errors import InvalidModelError, UnsupportedModelError


def _tensor_records(raw: bytes, names: list[str]) -> dict[str, int]:
    """name → the offset of its record's rank field in the header."""
    out = {}
    for n in names:
        key = struct.pack("<Q", len(n)) + n.encode()
        at = raw.index(key, 24)
        out[n] = at + len(key)
    return out


def mutations(raw: bytes, names: list[str], seed: int, n: int):
    rng = random.Random(seed)
    records = _tensor_records(raw, names)
    header_end = max(records.values()) + 64
    tokens_key = b"tokenizer.ggml.tokens"
    tokens_count = raw.index(tokens_key) + len(tokens_key) + 8  # after the value type and element type
    kinds = ["truncate", "flip", "count", "length", "array", "offset", "type", "dims", "rank"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        b = bytearray(raw)
        name = rng.choice(names)
        rec = records[name]
        if kind == "truncate":
            b = b[: rng.randrange(len(raw))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(header_end)] ^= 1 << rng.randrange(8)
        elif kind == "count":
            struct.pack_into("<Q", b, rng.choice([8, 16]), rng.choice([2**63, 2**40, 10**6, 0xFFFFFFFF]))
        elif kind == "length":
            struct.pack_into("<Q", b, 24, rng.choice([2**63, 2**32, 10**9]))  # the first key's length
        elif kind == "array":
            struct.pack_into("<Q", b, tokens_count, rng.choice([2**62, 2**33, 10**8, 0]))
        elif kind == "offset":
            n_dims = struct.unpack_from("<I", raw, rec)[0]
            at = rec + 4 + 8 * n_dims + 4
            other = records[rng.choice(names)]
            other_offset = struct.unpack_from("<Q", raw, other + 4 + 8 * struct.unpack_from("<I", raw, other)[0] + 4)[0]
            struct.pack_into("<Q", b, at, rng.choice([other_offset, 2**62, 3, len(raw) * 4]))
        elif kind == "type":
            n_dims = struct.unpack_from("<I", raw, rec)[0]
            struct.pack_into("<I", b, rec + 4 + 8 * n_dims, rng.choice([3, 7, 12, 13, 99, 2**31]))  # Q4_2, K-quants …
        elif kind == "dims":
            struct.pack_into("<Q", b, rec + 4, rng.choice([0, 1, 31, 2**40, 64]))
        elif kind == "rank":
            struct.pack_into("<I", b, rec, rng.choice([0, 5, 2**31]))
        yield kind, bytes(b)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_ggufs_end_in_a_named_error(tiny_gguf, tmp_path, seed):
    from gguf import GGUFReader

    raw = tiny_gguf.read_bytes()
    names = [t.name for t in GGUFReader(tiny_gguf).tensors]
    outcomes: collections.Counter = collections.Counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    converted = 0
    try:
        for i, (kind, data) in enumerate(mutations(raw, names, seed, 180)):
            path = tmp_path / f"case{i}.gguf"
            path.write_bytes(data)
            signal.alarm(20)
            try:
                model = read_gguf(path)
                if converted < 3:  # a file that reads must also convert
                    convert(path, tmp_path / f"pkg{i}")
                    converted += 1
                outcomes[(kind, "loads")] += 1
                assert model.config.vocab_size > 0
            except (InvalidModelError, UnsupportedModelError) as e:
                assert path.name in str(e) or str(path) in str(e), e  # the message names the file
                outcomes[(kind, type(e).__name__)] += 1
            except Hang:
                pytest.fail(f"case {i} ({kind}) hung")
            finally:
                signal.alarm(0)
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous)
    print(dict(outcomes))
    assert sum(v for (k, o), v in outcomes.items() if o != "loads") > 100  # most mutations are refused
    for kind in ("truncate", "count", "length", "array", "rank"):
        assert outcomes[(kind, "loads")] == 0, (kind, outcomes)


def test_a_tensor_of_the_wrong_shape_is_named(tiny_gguf, tmp_path):
    from gguf import GGUFReader

    raw = bytearray(tiny_gguf.read_bytes())
    rec = _tensor_records(bytes(raw), [t.name for t in GGUFReader(tiny_gguf).tensors])["blk.0.ffn_down.weight"]
    d0, d1 = struct.unpack_from("<QQ", raw, rec + 4)
    struct.pack_into("<QQ", raw, rec + 4, d0 * 2, d1 // 2)  # same bytes, another shape
    p = Path(tmp_path / "shape.gguf")
    p.write_bytes(bytes(raw))
    with pytest.raises(InvalidModelError, match="blk.0.ffn_down.weight is"):
        read_gguf(p)
