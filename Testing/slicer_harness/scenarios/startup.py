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
