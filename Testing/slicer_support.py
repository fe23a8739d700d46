"""Run scenarios inside the Slicer harness (Testing/slicer_harness) from pytest.

The harness needs ``.venv-slicer`` (Slicer 5.12's packages + slicer-core), which ``make test``
builds. Without it the Slicer tests skip, except under CI, where they fail. One throwaway session
environment is made per pytest session on top of it: first-use installs land there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parent
ROOT = TESTING.parent
BASE_ENV = Path(os.environ.get("DICOMTEAM_SLICER_ENV", ROOT / ".venv-slicer"))
MARKER = "HARNESS-RESULT "


def make_session_env(folder: Path) -> dict:
    """A throwaway Slicer environment for one pytest session (the ``slicer_env`` fixture)."""
    if not (BASE_ENV / "bin" / "python").exists():
        message = f"the Slicer 5.12 environment {BASE_ENV} is missing (make test builds it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sys.path.insert(0, str(TESTING))
    from slicer_harness.environment import session_environment

    return session_environment(BASE_ENV, Path(folder) / "env")


def run_in_slicer(env: dict, tmp_path: Path, scenario: str, timeout: float = 900, check: bool = True,
                  pytorch_extension: bool = True, testing: bool = False, slicer_version: str = "5.12",
                  **args) -> dict:
    """Run ``scenarios/<module>.py:<function>`` in a fresh Slicer session; the harness's JSON result.

    With ``check``: fail when a module failed to load, when the scenario raised, or when a Slicer,
    Qt or MRML call happened off the main thread.
    """
    work = tmp_path / "slicer"
    argv = [env["python"], str(TESTING / "slicer_harness" / "run.py"), "--work", str(work),
            "--scenario", scenario, "--args", json.dumps(args, default=str)]
    if not pytorch_extension:
        argv.append("--no-pytorch-extension")
    if testing:  # ctest's testing mode: slicer.util answers the message boxes itself
        argv.append("--testing")
    argv += ["--slicer-version", slicer_version]
    proc = subprocess.run(argv, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout, cwd=str(ROOT),
                          env={**os.environ, "HARNESS_TORCH_SITE": env["torch_site"], "PYTHONNOUSERSITE": "1",
                               # a project server a scenario starts runs on the test environment's Python
                               "DICOMTEAM_SERVER_PYTHON": sys.executable})
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise AssertionError(f"scenario {scenario} gave no result (exit {proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    result = json.loads(lines[-1][len(MARKER):])
    result["log"] = proc.stderr
    if check:
        assert not result["error"], f"{scenario}: {result['error']}\n{result.get('traceback', '')}\n{proc.stderr[-4000:]}"
        assert not result["failed"], f"modules failed to load: {result['failed']}"
        assert not result["violations"], "calls off the main thread:\n" + "\n".join(result["violations"])
    return result
