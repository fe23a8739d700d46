"""Scenario: the modules' own in-Slicer tests that need no Slicer application (see test_gui_xtests.py).

Each XTest class derives from slicer.ScriptedLoadableModule's test base; here (stand-ins) it is
combined with unittest.TestCase, and delayDisplay only records. Tests that need the layout,
slice views or Qt settings run inside Slicer only.
"""
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

RUNNABLE = {"DicomTeamAnnotate": ["test_RejectedFilesAreReported"],
            "TrainBridge": ["test_ExportFromNodes"]}
results = {}
for module_name, tests in RUNNABLE.items():
    module = gui_support.load_module(module_name)
    base = getattr(module, f"{module_name}Test")
    shown = []
    case_class = type(f"{module_name}Headless", (base, unittest.TestCase),
                      {"delayDisplay": lambda self, message, *a, shown=shown, **k: shown.append(message)})
    for name in tests:
        if not hasattr(base, name):
            results[f"{module_name}.{name}"] = "missing"
            continue
        test = case_class(name)
        test.setUp()
        outcome = unittest.TestResult()
        test.run(outcome)
        problems = outcome.errors + outcome.failures
        results[f"{module_name}.{name}"] = "passed" if not problems else problems[0][1][-2000:]
gui_support.emit(results)
