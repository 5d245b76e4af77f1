"""Every byte of a GGUF's structure checked before the `gguf` package parses it.

A hostile or damaged file must end in InvalidModelError naming the field, never in a hang, an
out-of-memory or another exception: so the header, every metadata key and value (string lengths,
array counts, nesting), every tensor record (name, dimensions, type, offset) and the data layout
(inside the file, aligned, not overlapping) are walked here with bounds checks first.
Layout: magic, version, tensor count, metadata count; metadata (key string, value type, value;
arrays carry an element type and a count); tensor records (name, rank, dims, type, offset); then
the data section at the next multiple of general.alignment (default 32).
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import InvalidModelError

# value type → (struct format, size); 8 = string, 9 = array
SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
           7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
STRING, ARRAY = 8, 9
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_KEY = 1 << 16
MAX_NESTING = 2


class _Bytes:
    """A cursor over the file's bytes that refuses to read past the end."""

    def __init__(self, data: memoryview, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise InvalidModelError(f"{self.name} is truncated or corrupt: {what} needs {n} bytes at offset "
                                    f"{self.pos}, the file has {len(self.data)}. Download it again.")

    def unpack(self, fmt: str, size: int, what: str):
        self.need(size, what)
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return v

    def string(self, what: str, limit: int | None = None) -> str:
        n = self.unpack("<Q", 8, f"the length of {what}")
        if limit is not None and n > limit:
            raise InvalidModelError(f"{self.name}: {what} claims {n} bytes (at most {limit} make sense): corrupt.")
        self.need(n, what)
        raw = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidModelError(f"{self.name}: {what} is not UTF-8: corrupt. Download it again.") from None


def _value(b: _Bytes, vtype: int, key: str, depth: int = 0):
    if vtype in SCALARS:
        fmt, size = SCALARS[vtype]
        return b.unpack(fmt, size, f"the value of {key}")
    if vtype == STRING:
        return b.string(f"the value of {key}")
    if vtype == ARRAY:
        if depth >= MAX_NESTING:
            raise InvalidModelError(f"{b.name}: {key} nests arrays {depth + 1} deep: corrupt.")
        etype = b.unpack("<I", 4, f"the element type of {key}")
        count = b.unpack("<Q", 8, f"the length of {key}")
        smallest = SCALARS[etype][1] if etype in SCALARS else 8 if etype in (STRING, ARRAY) else None
        if smallest is None:
            raise InvalidModelError(f"{b.name}: {key} is an array of unknown type {etype}: corrupt.")
        b.need(count * smallest, f"the {count} elements of {key}")  # before walking them: no huge loops
        if etype in SCALARS:
            b.pos += count * smallest
            return None
        for _ in range(count):
            _value(b, etype, key, depth + 1)
        return None
    raise InvalidModelError(f"{b.name}: {key} has unknown value type {vtype}: corrupt.")


def check_gguf_structure(path: Path, data: memoryview) -> None:
    """Raise InvalidModelError unless `data` (the whole file) is a structurally sound GGUF."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    b = _Bytes(data, path.name)
    if b.unpack("<4s", 4, "the magic") != b"GGUF":
        raise InvalidModelError(f"{path} is not a GGUF file (expected b'GGUF'). nomoat convert takes llama.cpp GGUFs.")
    version = b.unpack("<I", 4, "the version")
    if version not in (2, 3):
        raise InvalidModelError(f"{path.name}: GGUF version {version}; nomoat reads versions 2 and 3.")
    n_tensors = b.unpack("<Q", 8, "the tensor count")
    n_kv = b.unpack("<Q", 8, "the metadata count")
    b.need(n_kv * 13 + n_tensors * 32, f"{n_kv} metadata entries and {n_tensors} tensor records")
    alignment = 32
    for i in range(n_kv):
        key = b.string(f"metadata key {i}", MAX_KEY)
        vtype = b.unpack("<I", 4, f"the type of {key}")
        v = _value(b, vtype, key)
        if key == "general.alignment":
            if not (isinstance(v, int) and 0 < v <= 1 << 16 and v & (v - 1) == 0):
                raise InvalidModelError(f"{path.name}: general.alignment = {v!r} is not a power of two: corrupt.")
            alignment = v
    records = []
    for i in range(n_tensors):
        name = b.string(f"tensor name {i}", MAX_KEY)
        n_dims = b.unpack("<I", 4, f"the rank of {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise InvalidModelError(f"{path.name}: tensor {name} has {n_dims} dimensions (1..{MAX_DIMS}): corrupt.")
        dims = [b.unpack("<Q", 8, f"dimension {d} of {name}") for d in range(n_dims)]
        qtype = b.unpack("<I", 4, f"the type of {name}")
        offset = b.unpack("<Q", 8, f"the offset of {name}")
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
        except (ValueError, KeyError):
            raise InvalidModelError(f"{path.name}: tensor {name} has unknown type {qtype}: corrupt.") from None
        count = 1
        for d in dims:
            if d == 0:
                raise InvalidModelError(f"{path.name}: tensor {name} has a zero dimension {dims}: corrupt.")
            count *= d
        if dims[0] % block:
            raise InvalidModelError(f"{path.name}: tensor {name}'s rows ({dims[0]}) are not whole "
                                    f"{GGMLQuantizationType(qtype).name} blocks of {block}: corrupt.")
        if offset % alignment:
            raise InvalidModelError(f"{path.name}: tensor {name} starts at {offset}, not a multiple of {alignment}.")
        records.append((offset, count // block * type_size, name))
    start = -(-b.pos // alignment) * alignment  # the data section
    end_prev, prev = 0, None
    for offset, n_bytes, name in sorted(records):
        if offset < end_prev:
            raise InvalidModelError(f"{path.name}: tensors {prev} and {name} overlap: corrupt.")
        if start + offset + n_bytes > len(data):
            raise InvalidModelError(f"{path} is truncated: tensor {name} needs bytes up to {start + offset + n_bytes}, "
                                    f"the file has {len(data)}. Download it again.")
        end_prev, prev = offset + n_bytes, name
    if len({r[2] for r in records}) != len(records):
        raise InvalidModelError(f"{path.name} names a tensor twice: corrupt.")
