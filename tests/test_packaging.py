"""What ships: the npm package (web/), the Python wheel and sdist."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_npm_package_files_and_exports():
    out = subprocess.run(["npm", "pack", "--dry-run", "--json"], cwd=ROOT / "web", capture_output=True, text=True,
                         check=True).stdout
    files = {f["path"] for f in json.loads(out)[0]["files"]}
    pkg = json.loads((ROOT / "web" / "package.json").read_text())
    targets = {pkg["main"], pkg["module"]}
    for entry in pkg["exports"].values():
        targets |= set(entry.values()) if isinstance(entry, dict) else {entry}
    assert {t.removeprefix("./") for t in targets} <= files
    for need in ["dist/pyodide/pyodide.mjs", "dist/pyodide/pyodide.asm.wasm", "dist/pyodide/python_stdlib.zip",
                 "dist/ort/ort.wasm.min.mjs", "dist/ort/ort-wasm-simd-threaded.wasm", "dist/ort/ort.webgpu.min.mjs",
                 "README.md"]:
        assert need in files, need
    wheels = {f.split("/")[-1].split("-")[0].lower() for f in files if f.endswith(".whl")}
    assert wheels == {"nomoat", "jinja2", "markupsafe"}
    assert not pkg.get("dependencies"), "dist/ bundles its runtime: nothing to install at use time"
    assert not [f for f in files if "node_modules" in f or f.startswith(("src/", "build"))]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def test_wheel_is_pure_python_and_imports_without_dependencies(built, tmp_path):
    (wheel,) = built.glob("nomoat-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
    for need in ["nomoat/__init__.py", "nomoat/bpe.py", "nomoat/_unicode_ranges.py", "nomoat/worker.py",
                 "nomoat/backends/ort_web.py", "nomoat/convert/graph.py"]:
        assert need in names, need
    assert not [n for n in names if n.endswith((".so", ".pyd")) or n.startswith("tests/")]
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires)  # nothing unconditional: Pyodide has none
    # An isolated interpreter that sees only the unpacked wheel: no numpy, onnxruntime, tokenizers, jinja2.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import nomoat, nomoat.bpe, nomoat.worker, "
            "nomoat.backends.ort_web; print(nomoat.__version__)")
    r = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path / "site")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0.1.0"


def test_sdist_has_the_sources(built):
    (sdist,) = built.glob("nomoat-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "py/nomoat/__init__.py", "py/nomoat/bpe.py"} <= names
