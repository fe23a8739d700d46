"""Drive a module's Logic class headless: real MRML (slicer-core), real files, real stores.

A module file (X.py) needs Slicer's application modules to import; slicer-core lacks some of
them (qt, ctk, slicer.i18n, slicer.ScriptedLoadableModule, slicer.parameterNodeWrapper), so,
as in the contract tests, each scenario runs in a fresh interpreter where
``contract_support.install_app_stand_ins`` provides those (base classes, i18n, decorator only;
MRML, slicer.util and vtk are slicer-core's own). The widgets are not exercised here: they
need the Qt application, and each module's own XTest runs them inside Slicer.

A scenario is a script in ``Testing/gui_scenarios/``: it calls ``load_module(name)``, does its
work and ends with ``emit(result)``; ``run_scenario`` runs it and returns that result.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTING = Path(__file__).resolve().parent
ROOT = TESTING.parent
SCENARIOS = TESTING / "gui_scenarios"
MARKER = "GUI-SCENARIO-RESULT "


def load_module(name: str):
    """Inside a scenario: import module file ``name`` the way Slicer does (stand-ins, a scene)."""
    sys.path.insert(0, str(TESTING))
    import contract_support as cs

    cs._import_path_setup()
    cs.install_app_stand_ins()
    import importlib

    import slicer

    if getattr(slicer, "mrmlScene", None) is None:
        slicer.mrmlScene = slicer.vtkMRMLScene()  # what the application provides
    return importlib.import_module(name)


def emit(result) -> None:
    """Inside a scenario: hand ``result`` (JSON-able) to the test."""
    print(MARKER + json.dumps(result, default=str), flush=True)


def run_scenario(script: str, *args, timeout: float = 600, env: dict | None = None) -> dict:
    """Run ``gui_scenarios/<script>.py args`` in a fresh interpreter; its emitted result."""
    proc = subprocess.run([sys.executable, str(SCENARIOS / f"{script}.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=str(ROOT), env={**os.environ, **(env or {})})
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"scenario {script} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return json.loads(lines[-1][len(MARKER):])
