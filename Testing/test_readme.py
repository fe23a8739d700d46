"""The README's Python blocks run as written (Slicer-only blocks, marked `# In Slicer`, are skipped).

Each block runs in its own interpreter from the project folder; its scratch folder
/tmp/dicomteam-readme is replaced by a fresh temporary folder so reruns start clean.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, SHARED_DATA, need

README = ROOT / "README.md"
SCRATCH = "/tmp/dicomteam-readme"


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        code = m.group(1)
        if not code.lstrip().startswith("# In Slicer"):
            blocks.append((text[: m.start()].count("\n") + 1, code))
    return blocks


def test_readme_starts_with_the_two_commands():
    head = README.read_text().split("\n\n", 2)[1]
    assert "make demo" in head and "make test" in head


def test_readme_has_runnable_blocks():
    assert len(python_blocks()) >= 6


@pytest.mark.parametrize("line,code", python_blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_readme_block_runs(line, code, tmp_path):
    if "../shared/data" in code:
        need(SHARED_DATA)
    code = code.replace(SCRATCH, str(tmp_path / "scratch"))
    env = dict(os.environ, MPLBACKEND="Agg", DICOMTEAM_CACHE=str(tmp_path / "cache"),
               DICOMTEAM_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"README block at line {line} failed:\n{proc.stderr[-3000:]}"
