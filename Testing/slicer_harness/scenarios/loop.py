"""The TrainBridge panel's Annotation loop, clicked as a lab's ML engineer does: pre-annotate the project
connected in the hub with a trained model (least certain first), again (nothing twice), then the effort table
and its picture."""
from __future__ import annotations

import os

from slicer_harness.scenarios.common import connect_hub, wait


def preannotate_and_effort(app, project, work, model):
    """Pre-annotate with ``model`` (a MONAI job folder), twice; then 'Effort'."""
    import qt

    from DicomTeamAnnotateLib.store import open_store

    out = {}
    w = app.panel("TrainBridge")
    ui, p = w.ui, w.panel
    out["enabled_before_connect"] = [ui.preannotateButton.enabled, ui.effortButton.enabled]
    out["status_before_connect"] = ui.preannotateStatusLabel.text
    # an annotator: the model's versions are not theirs to push, so nothing is offered (nor installed)
    connect_hub(app, project, "alice", os.path.join(work, "hub-alice"))
    ui.loopModelLineEdit.currentPath = str(model)
    out["annotator"] = [ui.preannotateButton.enabled, ui.preannotateStatusLabel.text]
    connect_hub(app, project, "rev", os.path.join(work, "hub"))
    # a folder that is no model: refused before anything is installed, the status says what it expects
    not_a_model = os.path.join(work, "not-a-model")
    os.makedirs(not_a_model, exist_ok=True)
    ui.loopModelLineEdit.currentPath = not_a_model
    out["not_a_model"] = [ui.preannotateButton.enabled, ui.preannotateStatusLabel.text]
    ui.loopModelLineEdit.currentPath = str(model)
    ui.strategyComboBox.choose(ui.strategyComboBox.findData("first"))
    ui.strategyComboBox.choose(ui.strategyComboBox.findData("uncertainty"))
    ui.limitSpinBox.value = 1  # the least certain case only
    out["strategies"] = [ui.strategyComboBox.itemData(i) for i in range(ui.strategyComboBox.count)]
    out["enabled"] = ui.preannotateButton.enabled
    ui.preannotateButton.click()  # first use: torch (PyTorch extension), monai, pynrrd
    wait(app, p, timeout=600)
    out["status"] = ui.preannotateStatusLabel.text
    out["skipped_first"] = ui.preannotateStatusLabel.toolTip
    rev = open_store(project, "rev")
    out["kinds_first"] = {c["case_id"]: [v["kind"] for v in rev.list_versions(c["case_id"])] for c in rev.list_cases()}
    ui.limitSpinBox.value = 0  # every case not yet annotated: the other one
    ui.preannotateButton.click()
    wait(app, p, timeout=600)
    out["again"] = {"status": ui.preannotateStatusLabel.text, "skipped": ui.preannotateStatusLabel.toolTip}
    out["kinds"] = {c["case_id"]: [v["kind"] for v in rev.list_versions(c["case_id"])] for c in rev.list_cases()}
    out["scores"] = {c: v[-1]["meta"]["uncertainty"]["score"] for c in out["kinds"]
                     for v in [rev.list_versions(c)] if v and v[-1]["kind"] == "prediction"}
    ui.effortButton.click()  # first use: matplotlib
    wait(app, p, timeout=600)
    out["effort"] = {"status": ui.effortStatusLabel.text, "rows": ui.effortTableWidget.rows(),
                     "picture": getattr(getattr(ui.effortPictureLabel, "pixmap", None), "path", "")}
    out["questions"] = [b["text"] for b in qt.QMessageBox.shown if b["icon"] == qt.QMessageBox.Question]
    return out
