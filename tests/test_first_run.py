"""The set-up on a machine that lacks something: one line naming the command to run, at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make(target: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("make"), "-s", target], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": path}, timeout=60)


def test_no_node_names_the_install_command(tmp_path):
    (tmp_path / "python3").symlink_to(sys.executable)
    (tmp_path / "sh").symlink_to("/bin/sh")
    r = make("needs", str(tmp_path))
    assert r.returncode != 0
    assert "sudo apt-get install -y nodejs npm" in r.stdout and "Traceback" not in r.stderr


def test_needs_pass_here():
    assert make("needs", os.environ["PATH"]).returncode == 0
