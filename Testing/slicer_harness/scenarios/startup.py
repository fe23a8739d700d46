"""Startup: every module loads, the effect registers, every panel opens."""
from __future__ import annotations

import sys


def load_and_open_panels(app, modules=("DicomTeamAnnotate", "SamPrompt", "ConsensusReview", "TrainBridge")):
    import slicer

    effects = [e.name for e in slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects()]
    panels = {}
    for name in modules:
        try:
            widget = app.panel(name)
            panels[name] = {"ok": True, "class": type(widget).__name__}
        except Exception as exc:
            import traceback

            panels[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return {"effects": effects, "panels": panels,
            "sys_modules": {k: getattr(sys.modules.get(k), "__file__", None)
                            for k in ("SamPromptLib", "SegmentEditorSamPromptLib", "DicomTeamAnnotateLib")}}


def thread_guard_catches(app):
    """The guard itself: MRML, slicer.util and Qt used from a worker thread are recorded."""
    import threading

    import qt
    import slicer

    def worker():
        slicer.mrmlScene.GetNumberOfNodes()
        slicer.util.getNodes()
        qt.QTimer()

    thread = threading.Thread(target=worker, name="bad worker")
    thread.start()
    thread.join()
    return {"done": True}


def older_slicer(app):
    """A session started as Slicer 5.10 (no slicer.packaging): what the user meets in the SAM and hub modules."""
    import qt
    import slicer

    from DicomTeamAnnotateLib.slicer.packages import Feature, Installer
    from DicomTeamAnnotateLib.slicer.ui import SlicerUi

    effects = [e.name for e in slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects()]
    labels = {}
    for name in ("SamPrompt", "DicomTeamAnnotate"):
        w = app.panel(name)
        labels[name] = [c.text for c in w.parent.findChildren(qt.QLabel)]
    before = len(qt.QMessageBox.shown)
    # an install reached another way (a package this session's environment surely lacks)
    ensured = Installer("harness", SlicerUi()).ensure(Feature("a feature", ("dicomteam-harness-absent>=1.0",)))
    return {"effects": effects, "labels": labels, "ensured": ensured, "boxes": qt.QMessageBox.shown[before:]}


def failed_install(app):
    """pip fails (no such distribution): the user sees one error (Slicer's, with pip's log), not two."""
    import qt

    from DicomTeamAnnotateLib.slicer.packages import Feature, Installer
    from DicomTeamAnnotateLib.slicer.ui import SlicerUi

    before = len(qt.QMessageBox.shown)
    feature = Feature("a harness feature", ("dicomteam-harness-no-such-distribution>=1.0",))
    ok = Installer("harness", SlicerUi()).ensure(feature)
    return {"ok": ok, "boxes": qt.QMessageBox.shown[before:]}


def failed_torch_install(app):
    """The PyTorch extension's install fails: a message naming what failed, not a traceback in the console."""
    import os

    import qt

    from DicomTeamAnnotateLib.slicer.packages import Feature, Installer
    from DicomTeamAnnotateLib.slicer.ui import SlicerUi

    os.environ["HARNESS_TORCH_FAIL"] = "1"
    before = len(qt.QMessageBox.shown)
    feature = Feature("a torch feature", (), needs_torch=True, torch_requirement=">=99")  # never installed here
    ok = Installer("harness", SlicerUi()).ensure(feature)
    return {"ok": ok, "boxes": qt.QMessageBox.shown[before:]}
