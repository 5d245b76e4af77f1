"""The model package on disk: its file names and its manifest (sizes and sha256 of every file)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InvalidModelError, ModelNotFoundError

MANIFEST = "nomoat.json"
ONNX_FILE = "onnx/nomoat_q4.onnx"  # nomoat's graph: logits_to_keep is an input
OPTIMUM_FILE = "onnx/model_q4.onnx"  # the same graph with Optimum's inputs (transformers.js)
DATA_FILE = "onnx/model_q4.onnx_data"  # the weights, shared by all graphs
WASM_FILE = "onnx/nomoat_wasm.onnx"  # wasm variant: f32 Gemms whose weights the browser builds at load
WASM_RECIPE = "onnx/nomoat_wasm.json"  # how: each f32 weight from blocks in DATA_FILE
TENSORS_FILE = "onnx/nomoat_tensors.json"  # where each weight lies in DATA_FILE (nomoat's wasm decoder)
FORMAT_VERSION = 2
LOADED = ("config.json", "tokenizer.json", "tokenizer_config.json", ONNX_FILE, DATA_FILE)  # read by every CPython load


def loaded_files(manifest: dict) -> tuple[str, ...]:
    """The files every CPython load of this package reads: LOADED for a language model; for an
    embedding model (kind "embedding", convert/encoder.py) its JSON files and the graph it names."""
    kind = manifest.get("kind", "llm")
    if kind == "llm":
        return LOADED
    if kind != "embedding":
        raise ValueError(f'"kind" is {json.dumps(kind)[:40]}, not "llm" or "embedding": a newer nomoat made it? '
                         "Update nomoat")
    emb = manifest.get("embedding")
    graph = emb.get("onnx") if isinstance(emb, dict) else None
    return ("config.json", "tokenizer.json", "tokenizer_config.json",
            graph if isinstance(graph, str) else "the graph named by embedding.onnx")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def written_package(out_dir: str | Path) -> Iterator[Path]:
    """A package folder written whole or not at all: the converter fills the temporary folder this
    yields (beside out_dir, with an onnx/ inside); when the block ends without an error it replaces
    out_dir in one rename, else it is removed and out_dir is left as it was."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        (tmp / "onnx").mkdir()
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_manifest(model_dir: Path, extra: dict) -> dict:
    manifest = {
        "format": FORMAT_VERSION,
        **extra,
        "files": {
            p.relative_to(model_dir).as_posix(): {"size": p.stat().st_size, "sha256": sha256(p)}
            for p in sorted(model_dir.rglob("*")) if p.is_file() and p.name not in (MANIFEST, PROOF)
        },
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")


def manifest_problem(manifest: object) -> str:
    """What is wrong with a parsed nomoat.json, or "": "files" maps relative names inside the package
    to {size: integer >= 0, sha256: 64 hex digits} (web/src/package.js checks the same)."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return f'"files" is {json.dumps(files)[:40]}, not an object'
    for name, info in files.items():
        if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in name.split("/")):
            return f"file name {json.dumps(name)[:60]} is not a relative path inside the package"
        if not (isinstance(info, dict) and type(info.get("size")) is int and info["size"] >= 0
                and isinstance(info.get("sha256"), str) and _SHA256.fullmatch(info["sha256"])):
            return f"{name}: {json.dumps(info)[:60]} is not {{size: bytes, sha256: 64 hex digits}}"
    return ""


def read_json(model_dir: str | Path, name: str) -> object:
    """A package file's JSON (strict UTF-8); an InvalidModelError naming the file if it is not JSON."""
    path = Path(model_dir) / name
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise InvalidModelError(f"{path} is not valid JSON ({str(e)[:200]}); convert the model again "
                                "('nomoat convert').") from e


def check_tokenizer_config(raw: object, where: str = "tokenizer_config.json") -> dict:
    """tokenizer_config.json's fields that nomoat reads: chat_template a string that compiles (or
    absent), bos_token / eos_token strings (or absent)."""
    from .chat import _compile

    def bad(what: str) -> InvalidModelError:
        return InvalidModelError(f"{where}: {what}; convert the model again ('nomoat convert').")

    if not isinstance(raw, dict):
        raise bad(f"is {json.dumps(raw)[:40]}, not a JSON object")
    for key in ("chat_template", "bos_token", "eos_token"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise bad(f"{key} is {json.dumps(raw[key])[:40]}, not a string")
    if raw.get("chat_template"):
        _compile(raw["chat_template"])
    return raw


PROOF = ".nomoat-verified.json"  # sha256 checks already done here, by file identity (check_package)


def _identity(p: Path) -> list[int]:
    """What changes whenever the file's bytes may have: size, inode, mtime and ctime (ctime cannot be
    set back by a user), so a remembered check is only reused for the very same file."""
    st = p.stat()
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def check_package(model_dir: str | Path, verify_sha256: bool = True) -> dict:
    """Raise if a file is missing, truncated (size differs) or corrupt (sha256 differs).

    Integrity means what it means in the browser: every file's sha256 equals the manifest's before
    it is used. A check that passed is remembered in the package's .nomoat-verified.json with the
    file's identity (_identity) and reused while that identity is unchanged, so a warm load hashes
    nothing; any write to a file changes its identity and it is hashed again. verify_sha256=False
    checks sizes only (a conversion in progress)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelNotFoundError(
            f"No model folder at {d}. Make one with 'nomoat convert MODEL.gguf {d}', "
            "or use the default model ('nomoat convert --default')."
        )
    mf = d / MANIFEST
    if not mf.is_file():
        raise ModelNotFoundError(f"{d} is not a nomoat model package (no {MANIFEST}); run 'nomoat convert'.")
    try:
        manifest = json.loads(mf.read_bytes().decode("utf-8"))
        problem = manifest_problem(manifest)
        if problem:
            raise ValueError(problem)
        files = manifest["files"]
        if verify_sha256:
            unlisted = [n for n in loaded_files(manifest) if n not in files]
            if unlisted:
                raise ValueError(f"it does not list {', '.join(unlisted)}, which every load reads")
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidModelError(f"{mf} is not a model manifest ({str(e)[:200]}); re-run 'nomoat convert'.") from e
    try:
        proofs = json.loads((d / PROOF).read_text()) if verify_sha256 else {}
    except (OSError, ValueError):
        proofs = {}
    proven = {}
    for name, info in files.items():
        p = d / name
        if not p.is_file() or not p.resolve().is_relative_to(d.resolve()):
            raise ModelNotFoundError(f"{p} is missing; re-run 'nomoat convert' for {d}.")
        if p.stat().st_size != info["size"]:
            raise InvalidModelError(
                f"{p} is {p.stat().st_size} bytes, the manifest says {info['size']}: truncated or "
                f"replaced. Re-run 'nomoat convert' for {d}."
            )
        if not verify_sha256:
            continue
        identity = _identity(p)
        if proofs.get(name) != [info["sha256"], *identity]:
            if sha256(p) != info["sha256"]:
                raise InvalidModelError(f"{p} is corrupt (sha256 mismatch); re-run 'nomoat convert' for {d}.")
        proven[name] = [info["sha256"], *identity]
    if verify_sha256 and proven != proofs:
        try:
            (d / PROOF).write_text(json.dumps(proven))
        except OSError:
            pass  # a read-only package: verified again next time
    return manifest
