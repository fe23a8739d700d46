"""Run one scenario inside a Slicer session (the harness's Slicer environment).

    <session python> Testing/slicer_harness/run.py --work DIR --scenario module:function [--args JSON]

Lays the extension out as Slicer's build does (``layout``), starts the application (``app``), loads
every module, emits startupCompleted, runs ``scenarios/<module>.py``'s ``function(app, **args)``,
and prints one JSON line (prefix ``HARNESS-RESULT``): modules loaded and failed, thread-rule
breaches, first-use installs, and what the scenario returned (or its error and traceback).
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MARKER = "HARNESS-RESULT "


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--args", default="{}")
    parser.add_argument("--no-pytorch-extension", action="store_true")
    parser.add_argument("--testing", action="store_true", help="ctest's testing mode (slicer.app.testingEnabled())")
    parser.add_argument("--slicer-version", default="5.12", help="the Slicer version the session claims (5.10: no "
                        "slicer.packaging)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # Slicer logs INFO
    sys.path.insert(0, str(HERE.parent))  # slicer_harness as a package
    from slicer_harness.app import SlicerApp
    from slicer_harness.layout import install_extension

    work = Path(args.work)
    out = {"loaded": [], "failed": {}, "violations": [], "installs": [], "torch": [], "message_boxes": [],
           "result": None, "error": None}
    try:
        scripted = install_extension(ROOT, work / "install")
        app = SlicerApp(work, pytorch_extension=not args.no_pytorch_extension,
                        slicer_version=tuple(int(v) for v in args.slicer_version.split(".")[:2]))
        app.app.testing = args.testing
        out["loaded"] = app.load_extension(scripted)
        out["failed"] = dict(app.failed)
        app.startup_completed()
        module_name, _, function = args.scenario.partition(":")
        scenario = importlib.import_module(f"slicer_harness.scenarios.{module_name}")
        out["result"] = getattr(scenario, function)(app, **json.loads(args.args))
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
    try:
        import threadguard
        out["violations"] = list(threadguard.violations)
        import qt
        out["message_boxes"] = list(qt.QMessageBox.shown)
        if "slicer.packaging" in sys.modules:  # the stand-in (absent before 5.12): what was asked and installed
            out["installs"] = list(sys.modules["slicer.packaging"].record)
        if "PyTorchUtils" in sys.modules:
            out["torch"] = list(sys.modules["PyTorchUtils"].record)
    except Exception as exc:  # the session never started
        out.setdefault("error", f"{type(exc).__name__}: {exc}")
    print(MARKER + json.dumps(out, default=str), flush=True)
    sys.stderr.flush()
    # Leave without interpreter teardown: onnxruntime/OpenVINO thread pools abort in their C++ destructors
    # when Python finalizes under them ("terminate called without an active exception"); Slicer's own exit
    # goes through Qt, never through that path.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
