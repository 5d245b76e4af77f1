"""Read a .safetensors file with numpy alone (no torch).

The format: an 8-byte little-endian header length n, n bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the raw
little-endian tensor bytes, each tensor at data_offsets relative to the end of the header. Every
field is checked before any tensor is read (a truncated or hostile file is an InvalidModelError
naming the file and the tensor), and the tensors are read-only views of the file's bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InvalidModelError

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
          "U8": "u1", "BOOL": "?"}  # BF16 is not needed by the models nomoat reads
MAX_HEADER = 100 << 20  # as the safetensors library's limit


def read_safetensors(data: bytes | str | Path, where: str | None = None) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file (its bytes, or its path) as a read-only numpy array.
    `where` names the file in error messages."""
    if not isinstance(data, bytes | bytearray | memoryview):
        where = where or str(data)
        data = Path(data).read_bytes()
    where = where or "the safetensors file"
    buf = memoryview(data)

    def bad(what: str) -> InvalidModelError:
        return InvalidModelError(f"{where}: {what}; it is not a valid safetensors file (download it again).")

    if len(buf) < 8:
        raise bad(f"{len(buf)} bytes, too short for a header")
    n = int.from_bytes(buf[:8], "little")
    if n > MAX_HEADER or 8 + n > len(buf):
        raise bad(f"header length {n} exceeds the file ({len(buf)} bytes)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except ValueError as e:
        raise bad(f"the header is not JSON ({str(e)[:100]})") from e
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    body = buf[8 + n:]
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor {name!r} is described by {json.dumps(info)[:60]}, not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPES:
            raise bad(f"tensor {name!r} has dtype {dtype!r}, not one of {', '.join(DTYPES)}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise bad(f"tensor {name!r} has shape {json.dumps(shape)[:60]}, not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= len(body)):
            raise bad(f"tensor {name!r} has data_offsets {json.dumps(offsets)[:60]} outside the data "
                      f"({len(body)} bytes)")
        dt = np.dtype(DTYPES[dtype])
        begin, end = offsets
        if end - begin != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise bad(f"tensor {name!r}: {end - begin} bytes for shape {shape} of {dtype}")
        tensors[name] = np.frombuffer(body[begin:end], dt).reshape(shape)
    return tensors
