"""Logic-level scenario scripts (Testing/gui_scenarios/*.py), run inside the Slicer harness.

A scenario calls ``load_module(name)`` for a module file Slicer has loaded, does its work on real
stores and files, and ends with ``emit(result)``. ``run_scenario`` runs it in a fresh Slicer session
(Slicer 5.12's packages, the extension laid out and loaded as Slicer does: Testing/slicer_harness),
where the two functions are replaced by the harness, and returns the result.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

TESTING = Path(__file__).resolve().parent
_env: dict = {}


def load_module(name: str):
    """Inside a scenario: the loaded module file ``name`` (the harness provides it)."""
    raise RuntimeError("gui_scenarios run inside the Slicer harness (gui_support.run_scenario)")


def emit(result) -> None:
    """Inside a scenario: hand ``result`` (JSON-able) to the test (the harness provides it)."""
    raise RuntimeError("gui_scenarios run inside the Slicer harness (gui_support.run_scenario)")


def run_scenario(script: str, *args, timeout: float = 900, env: dict | None = None, features=("segmentation files",)):
    """Run ``gui_scenarios/<script>.py args`` in a Slicer session; its emitted result."""
    from slicer_support import make_session_env, run_in_slicer

    if "env" not in _env:
        _env["env"] = make_session_env(Path(tempfile.mkdtemp(prefix="slicer-session-")))
    work = Path(tempfile.mkdtemp(prefix=f"{script}-"))
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        result = run_in_slicer(_env["env"], work, "scripts:run_script", timeout=timeout, script=script,
                               argv=list(args), features=list(features))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return result["result"]



