"""Run a logic-level scenario script (Testing/gui_scenarios/*.py) inside the Slicer session.

The scripts call the modules' logic the way a user's Python console would, on the modules Slicer has
loaded (``gui_support.load_module`` gives the loaded module file); what a feature would have
installed at its first use is installed first, through the module's own Installer.
"""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

TESTING = Path(__file__).resolve().parents[2]


def run_script(app, script, argv=(), features=("segmentation files",)):
    from DicomTeamAnnotateLib.slicer import packages
    from DicomTeamAnnotateLib.slicer.ui import SlicerUi

    by_name = {"segmentation files": packages.SEGMENTATION_FILES, "dicom decoders": packages.DICOM_DECODERS,
               "reports": packages.REPORTS, "nifti": packages.NIFTI_FILES}
    installer = packages.Installer("harness", SlicerUi())
    for name in features:
        if not installer.ensure(by_name[name]):
            raise RuntimeError(f"could not install {name}")
    if str(TESTING) not in sys.path:
        sys.path.insert(0, str(TESTING))
    import gui_support

    emitted = []
    gui_support.load_module = lambda name: sys.modules[name]  # the module file Slicer loaded
    gui_support.emit = lambda result: emitted.append(json.loads(json.dumps(result, default=str)))
    sys.argv = [str(script), *map(str, argv)]
    runpy.run_path(str(TESTING / "gui_scenarios" / f"{script}.py"), run_name="__main__")
    if not emitted:
        raise RuntimeError(f"{script} emitted no result")
    return emitted[-1]


def self_tests(app, tests):
    """Each module's own in-Slicer test methods, as ctest runs them ({'Module': ['test_X', ...]})."""
    import unittest

    results = {}
    for module_name, names in tests.items():
        base = getattr(sys.modules[module_name], f"{module_name}Test")
        for name in names:
            case = type(f"{module_name}Case", (base,), {"runTest": getattr(base, name)})()
            outcome = unittest.TestResult()
            case.setUp()
            case.run(outcome)
            problems = outcome.errors + outcome.failures
            results[f"{module_name}.{name}"] = "passed" if not problems else problems[0][1][-3000:]
    return results


def console(app, code):
    """``code`` as typed into Slicer's Python console (slicer, qt, vtk, ctk at hand); what it printed."""
    import contextlib
    import io

    import ctk
    import qt
    import slicer
    import vtk

    namespace = {"__name__": "__main__", "slicer": slicer, "qt": qt, "vtk": vtk, "ctk": ctk}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<console>", "exec"), namespace)
    return {"printed": printed.getvalue()}
