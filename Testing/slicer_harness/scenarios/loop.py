"""The TrainBridge panel's Annotation loop, clicked as a lab's ML engineer does: pre-annotate the project
connected in the hub with a trained model (least certain first), again (nothing twice), then the effort table
and its picture."""
from __future__ import annotations

import os


def _connect_hub(app, project, user, work):
    hub = app.panel("DicomTeamAnnotate")
    hub.ui.storeLocationLineEdit.type_text(str(project))
    hub.ui.userLineEdit.type_text(user)
    hub.ui.workFolderLineEdit.currentPath = str(work)
    hub.ui.connectButton.click()
    app.process_events(until=lambda: hub.panel.project.connected and not hub.panel.tasks.busy, timeout=120)


def _wait(app, panel, timeout=600):
    app.process_events(until=lambda: not panel.tasks.busy, timeout=timeout)
    app.process_events()


def preannotate_and_effort(app, project, work, model):
    """Pre-annotate with ``model`` (a MONAI job folder), twice; then 'Effort'."""
    import qt

    from DicomTeamAnnotateLib.store import open_store

    out = {}
    w = app.panel("TrainBridge")
    ui, p = w.ui, w.panel
    out["enabled_before_connect"] = [ui.preannotateButton.enabled, ui.effortButton.enabled]
    _connect_hub(app, project, "rev", os.path.join(work, "hub"))
    w = app.panel("TrainBridge")
    ui.loopModelLineEdit.currentPath = str(model)
    ui.strategyComboBox.choose(ui.strategyComboBox.findData("uncertainty"))
    out["strategies"] = [ui.strategyComboBox.itemData(i) for i in range(ui.strategyComboBox.count)]
    out["enabled"] = ui.preannotateButton.enabled
    ui.preannotateButton.click()  # first use: torch (PyTorch extension), monai, pynrrd
    _wait(app, p)
    out["status"] = ui.preannotateStatusLabel.text
    rev = open_store(project, "rev")
    out["kinds"] = {c["case_id"]: [v["kind"] for v in rev.list_versions(c["case_id"])] for c in rev.list_cases()}
    out["scores"] = {c: v[-1]["meta"]["uncertainty"]["score"] for c in out["kinds"]
                     for v in [rev.list_versions(c)] if v and v[-1]["kind"] == "prediction"}
    ui.preannotateButton.click()  # again: every case is pre-annotated already
    _wait(app, p)
    out["again"] = {"status": ui.preannotateStatusLabel.text, "skipped": ui.preannotateStatusLabel.toolTip}
    ui.effortButton.click()  # first use: matplotlib
    _wait(app, p)
    out["effort"] = {"status": ui.effortStatusLabel.text, "rows": ui.effortTableWidget.rows(),
                     "picture": getattr(getattr(ui.effortPictureLabel, "pixmap", None), "path", "")}
    out["questions"] = [b["text"] for b in qt.QMessageBox.shown if b["icon"] == qt.QMessageBox.Question]
    return out
