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


def python_blocks(in_slicer: bool = False) -> list[tuple[int, str]]:
    """(line, code) of the README's Python blocks: plain ones, or those marked ``# In Slicer``."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        code = m.group(1)
        if code.lstrip().startswith("# In Slicer") == in_slicer:
            blocks.append((text[: m.start()].count("\n") + 1, code))
    return blocks


def test_readme_starts_with_the_two_commands():
    head = README.read_text(encoding="utf-8").split("\n\n", 2)[1]
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
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          encoding="utf-8", errors="replace",
                          timeout=900)
    assert proc.returncode == 0, f"README block at line {line} failed:\n{proc.stderr[-3000:]}"


def test_readme_has_slicer_blocks():
    assert len(python_blocks(in_slicer=True)) >= 2


@pytest.mark.parametrize("line,code", python_blocks(in_slicer=True),
                         ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_readme_slicer_block_runs_in_slicer(line, code, tmp_path, slicer_env):
    """The '# In Slicer' blocks run in the Slicer harness's Python console, placeholders made real."""
    from slicer_support import run_in_slicer
    from store_support import make_team_project

    places = {"/path/to/dicom_folder_or_archive.zip": lambda: need(SHARED_DATA / "ct_abdomen" / "dicom"),
              "/data/project": lambda: make_team_project(tmp_path / "project") and tmp_path / "project"}
    for placeholder, make in places.items():
        if placeholder in code:
            code = code.replace(placeholder, str(make()))
    assert "/path/to/" not in code and '"/data/' not in code, f"README block at line {line}: a placeholder " \
        "this test does not know; add it to places"
    out = run_in_slicer(slicer_env, tmp_path, "scripts:console", timeout=900, code=code)
    assert out["result"]["printed"].strip(), f"README block at line {line} printed nothing"
