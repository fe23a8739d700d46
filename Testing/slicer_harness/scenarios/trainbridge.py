"""The TrainBridge panel, clicked as a lab's ML engineer does: export the project's adjudicated cases (and
cancel, and a case that fails), train MONAI for one epoch in a detached job, read its test-set evaluation,
compare a case side by side and overlaid, jump to the worst slice, export the model; a longer job cancelled,
resumed and attached; the module's own self-test."""
from __future__ import annotations

import os
import time

from slicer_harness.scenarios.common import capture_log, connect_hub, errors, questions, wait


def _views():
    """Slicer shows its views from startup on; the harness makes them on first use: make them now."""
    import slicer

    slicer.app.layoutManager()


def _views_state():
    """Layout, each slice view's plane, linking, in the application now."""
    import slicer

    layout = slicer.app.layoutManager()
    planes = {name: layout.sliceWidget(name).mrmlSliceNode().GetOrientation() for name in ("Red", "Yellow", "Green")}
    linked = sorted({c.GetLinkedControl() for c in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")})
    return {"layout": layout.layout, "planes": planes, "linked": linked}


def _displayed_in(node):
    display = node.GetDisplayNode()
    return [display.GetNthViewNodeID(i) for i in range(display.GetNumberOfViewNodeIDs())]


def _visible_segments(node):
    segmentation, display = node.GetSegmentation(), node.GetDisplayNode()
    return sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())
                  if display.GetSegmentVisibility(segmentation.GetNthSegmentID(i)))


def _dataset_facts(dataset):
    import json
    from pathlib import Path

    d = Path(dataset)
    cases = json.loads((d / "cases.json").read_text(encoding="utf-8"))
    return {"name": d.name, "labels": json.loads((d / "dataset.json").read_text(encoding="utf-8"))["labels"],
            "cases": sorted(cases), "kinds": sorted({c["source"].get("kind") for c in cases.values()}),
            "monai_json": (d / "dataset_monai.json").is_file(), "splits": (d / "splits_final.json").is_file()}


def export_train_evaluate(app, project, work, image_file, junk_label):
    """The reviewer exports the project, trains one epoch, reads the evaluation, compares, exports the model."""
    import qt
    import slicer

    log = capture_log()
    _views()
    out = {}
    w = app.panel("TrainBridge")
    ui, p = w.ui, w.panel
    out["hub_panel_built_early"] = app.app.moduleManager().module("DicomTeamAnnotate")._widget is not None
    out["store_text_before"] = ui.exportStoreStatusLabel.text
    out["export_enabled_before"] = ui.exportButton.enabled
    connect_hub(app, project, "rev", os.path.join(work, "hub"))
    w = app.panel("TrainBridge")
    out["store_text"] = ui.exportStoreStatusLabel.text
    raw = os.path.join(work, "raw")
    ui.datasetNameLineEdit.type_text("Team")
    ui.foldsSpinBox.value = 2
    ui.testFractionSpinBox.value = 0.34
    ui.rawFolderLineEdit.currentPath = raw
    ui.monaiJsonCheckBox.checked = True
    out["start_enabled_before_export"] = ui.startTrainingButton.enabled
    ui.exportButton.click()  # first use: pynrrd (the project's versions and images are NRRD)
    wait(app, p)
    out["export_status"] = ui.exportStatusLabel.text
    dataset = ui.datasetPathLineEdit.currentPath
    out["dataset"] = _dataset_facts(dataset)
    out["start_enabled"] = ui.startTrainingButton.enabled

    # Cancel mid-export: no dataset written, the earlier one intact
    before = sorted(os.listdir(raw))
    ui.exportButton.click()
    qt.QProgressDialog.instances[-1].cancel()
    wait(app, p)
    out["export_cancel"] = {"status": ui.exportStatusLabel.text, "folders_after": sorted(os.listdir(raw)),
                            "folders_before": before, "dataset_kept": os.path.isfile(os.path.join(dataset, "dataset.json"))}
    # a case whose label file is no segmentation: the task fails naming the file; then removed from the list
    ui.exportSourceComboBox.setCurrentIndex(ui.exportSourceComboBox.findData("files"))
    out["files_visible"] = [ui.exportStoreWidget.visible, ui.exportFilesWidget.visible, ui.exportCasesTableWidget.visible]
    qt.QFileDialog.answers.extend([str(image_file), str(junk_label)])
    ui.patientLineEdit.type_text("PX")
    ui.addFileCaseButton.click()
    out["file_cases"] = ui.exportCasesTableWidget.rows()
    out["patient_cleared"] = ui.patientLineEdit.text
    ui.datasetNameLineEdit.type_text("Broken")
    errors_before = len(log.records)
    ui.exportButton.click()
    wait(app, p)
    out["export_failed"] = {"status": ui.exportStatusLabel.text, "errors": errors(log, errors_before),
                            "folders": sorted(os.listdir(raw)), "dataset_path": ui.datasetPathLineEdit.currentPath}
    out["remove_enabled_without_selection"] = ui.removeCaseButton.enabled
    ui.exportCasesTableWidget.selectRow(0)
    ui.removeCaseButton.click()
    out["file_cases_after_remove"] = ui.exportCasesTableWidget.rows()

    # training: one epoch of MONAI on the exported dataset, in a detached job polled by the panel
    ui.epochsSpinBox.value = 1
    job1 = os.path.join(work, "jobs", "job1")
    ui.jobFolderLineEdit.currentPath = job1
    out["attach_enabled_without_job"] = ui.attachJobButton.enabled
    ui.startTrainingButton.click()  # first use: torch (PyTorch extension), then monai, matplotlib, nibabel
    out["running"] = {"cancel": ui.cancelJobButton.enabled, "start": ui.startTrainingButton.enabled,
                      "status": ui.jobStatusLabel.text}
    app.process_events(until=lambda: p.training.state in ("finished", "failed", "cancelled", "lost"), timeout=600)
    app.process_events()
    out["job"] = {"state": p.training.state, "status": ui.jobStatusLabel.text, "epoch": ui.epochProgressBar.value,
                  "epochs": ui.epochProgressBar.maximum, "curves": getattr(ui.curvesLabel, "pixmap", None) is not None,
                  "log": ui.logPlainTextEdit.toPlainText()[-2000:], "cancel": ui.cancelJobButton.enabled,
                  "resume": ui.resumeJobButton.enabled, "attach": ui.attachJobButton.enabled}
    # the finished job's evaluation, loaded into the Evaluation section
    out["evaluation"] = {"folder": ui.evaluationFolderLineEdit.currentPath, "rows": ui.evaluationTableWidget.rows(),
                         "worst": ui.worstSlicesTableWidget.rows(), "summary": ui.evaluationSummaryLabel.text,
                         "cases": [ui.comparisonCaseComboBox.itemData(i) for i in range(ui.comparisonCaseComboBox.count)],
                         "labels": [ui.comparisonLabelComboBox.itemData(i) for i in range(ui.comparisonLabelComboBox.count)]}
    if p.training.state != "finished":
        return out

    # the comparison: side by side on one plane, one label; overlaid; the views given back
    out["views_before"] = _views_state()
    ui.showCaseButton.click()
    wait(app, p)
    nodes = p.evaluation.comparison
    label = ui.comparisonLabelComboBox.currentData
    out["side_by_side"] = {**_views_state(), "gt_in": _displayed_in(nodes["gt"]), "pred_in": _displayed_in(nodes["pred"]),
                           "visible": _visible_segments(nodes["pred"]), "label": label,
                           "background": slicer.app.layoutManager().sliceWidget("Yellow").mrmlSliceCompositeNode()
                           .GetBackgroundVolumeID() == nodes["image"].GetID()}
    other = ui.comparisonLabelComboBox.findData(out["evaluation"]["labels"][-1])
    ui.comparisonLabelComboBox.choose(other)
    out["other_label_visible"] = _visible_segments(nodes["gt"])
    ui.comparisonModeComboBox.choose(ui.comparisonModeComboBox.findData("overlaid"))
    out["overlaid"] = {**_views_state(), "gt_in": _displayed_in(nodes["gt"]), "pred_in": _displayed_in(nodes["pred"]),
                       "fill": [nodes["gt"].GetDisplayNode().GetVisibility2DFill(),
                                nodes["pred"].GetDisplayNode().GetVisibility2DFill()]}
    ui.comparisonModeComboBox.choose(ui.comparisonModeComboBox.findData("side by side"))
    out["side_by_side_again"] = _views_state()
    app.panel("DicomTeamAnnotate")  # the user leaves the module
    out["after_leaving"] = {**_views_state(), "gt_in": _displayed_in(nodes["gt"]), "pred_in": _displayed_in(nodes["pred"])}
    w = app.panel("TrainBridge")
    # jump to the worst slice (the table's first row); the views centre on its error
    worst = p.evaluation.worst_slices
    if worst:
        ui.worstSlicesTableWidget.selectRow(0)
        ui.jumpToWorstSliceButton.click()
        wait(app, p)
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode().GetSliceToRAS()
        out["jump"] = {"to": [round(red.GetElement(r, 3), 3) for r in range(3)],
                       "center": [round(float(v), 3) for v in worst[0]["center_ras"]], "case": p.evaluation.comparison["case"],
                       "worst_case": worst[0]["case"]}
    # a double-click in the metrics table shows that row's case and label
    ui.evaluationTableWidget.double_click(0)
    wait(app, p)
    first = p.evaluation.rows[0]
    out["double_click"] = {"case": p.evaluation.comparison["case"], "label": ui.comparisonLabelComboBox.currentData,
                           "want": [first["case"], first["label"]]}

    # model export: ONNX (first use: onnx and onnxruntime), checked against PyTorch
    ui.modelFormatComboBox.setCurrentIndex(ui.modelFormatComboBox.findData("onnx"))
    ui.modelOutputLineEdit.currentPath = os.path.join(work, "models")
    out["model_export_enabled"] = ui.exportModelButton.enabled
    ui.exportModelButton.click()
    wait(app, p, timeout=600)
    out["model"] = {"status": ui.modelStatusLabel.text,
                    "manifest": os.path.isfile(os.path.join(work, "models", "manifest.json")),
                    "onnx": os.path.isfile(os.path.join(work, "models", "model.onnx"))}
    out["errors"] = errors(log)
    out["questions"] = questions()
    return out


def job_cancel_resume_attach(app, dataset, work):
    """A longer job: cancelled mid-run (after the user's Yes), resumed, followed again after 'Slicer restarted'
    (Attach in a fresh panel), cancelled again."""
    import qt
    import slicer

    from TrainBridgeLib.jobs.runner import pid_alive

    _views()
    out = {}
    w = app.panel("TrainBridge")
    ui, p = w.ui, w.panel
    ui.datasetPathLineEdit.currentPath = str(dataset)
    ui.epochsSpinBox.value = 200
    job = os.path.join(work, "jobs", "long")
    ui.jobFolderLineEdit.currentPath = job
    ui.startTrainingButton.click()
    app.process_events(until=lambda: p.training.state == "running" and p.training.epoch >= 1, timeout=600)
    out["running"] = {"state": p.training.state, "status": ui.jobStatusLabel.text, "cancel": ui.cancelJobButton.enabled}
    pid = p.logic.job.record["pid"]
    asked_before = len(questions())
    qt.QMessageBox.answers.append(qt.QMessageBox.Cancel)  # "Stop the training job?" Cancel
    ui.cancelJobButton.click()
    wait(app, p)
    p.training.poll()
    out["after_no"] = {"state": p.training.state, "alive": pid_alive(pid)}
    ui.cancelJobButton.click()  # then OK
    wait(app, p, timeout=120)
    out["cancelled"] = {"state": p.training.state, "asked": questions()[asked_before:],
                        "supervisor_gone": not pid_alive(pid),
                        "resume": ui.resumeJobButton.enabled, "cancel": ui.cancelJobButton.enabled}
    ui.resumeJobButton.click()
    out["resumed"] = {"state": p.training.state, "cancel": ui.cancelJobButton.enabled}
    # Slicer restarted: a new panel's logic follows the job from its folder
    p.logic.job = None
    p.training.state = None
    ui.jobFolderLineEdit.currentPath = ""
    out["attach_enabled_empty"] = ui.attachJobButton.enabled
    ui.jobFolderLineEdit.currentPath = job
    out["attach_enabled"] = ui.attachJobButton.enabled
    ui.attachJobButton.click()
    out["attached"] = {"state": p.training.state, "status": ui.jobStatusLabel.text}
    ui.cancelJobButton.click()
    wait(app, p, timeout=120)
    out["cancelled_again"] = p.training.state
    out["module"] = slicer.app.mainWindow.moduleSelector().selected
    return out


def self_test(app):
    """The module's own XTest (what Slicer's 'Reload and Test' and ctest run), inside the harness."""
    import slicer

    _views()
    started = time.monotonic()
    slicer.selfTests["TrainBridge"]()
    return {"passed": True, "seconds": round(time.monotonic() - started, 1)}


def older_slicer(app):
    """Slicer 5.10: the panel shows one message (which version, and why) instead of a UI that fails in a click."""
    import qt

    app.app.majorVersion, app.app.minorVersion = 5, 10
    w = app.panel("TrainBridge")
    app.panel("DicomTeamAnnotate")  # leaving and coming back must not fail either
    w = app.panel("TrainBridge")
    return {"panel": w.panel is not None, "ui": hasattr(w, "ui"),
            "labels": [c.text for c in w.parent.findChildren(qt.QLabel)]}


def nnunet_first_use(app, dataset, work):
    """nnU-Net's first use: nnunetv2 asked for and installed with Slicer's packages held, the job starts
    (planning and preprocessing first); it is cancelled there (an nnU-Net epoch is too long for a test)."""
    import qt

    _views()
    w = app.panel("TrainBridge")
    ui, p = w.ui, w.panel
    ui.datasetPathLineEdit.currentPath = str(dataset)
    ui.backendComboBox.setCurrentIndex(ui.backendComboBox.findData("nnunet"))
    out = {"arch_enabled": ui.archComboBox.enabled}
    ui.epochsSpinBox.value = 1
    ui.jobFolderLineEdit.currentPath = os.path.join(work, "jobs", "nnunet")
    ui.startTrainingButton.click()
    app.process_events(until=lambda: p.training.state in ("running", "finished", "failed", "cancelled", "lost"),
                       timeout=300)
    out["started"] = {"state": p.training.state, "status": ui.jobStatusLabel.text,
                      "backend": p.logic.job.record.get("backend") if p.logic.job else None,
                      "steps": [s["name"] for s in p.logic.job.record["steps"]] if p.logic.job else []}
    if p.training.state == "running":
        ui.cancelJobButton.click()  # the user's OK (the default answer)
        wait(app, p, timeout=120)
    out["cancelled"] = p.training.state
    out["questions"] = [b["text"] for b in qt.QMessageBox.shown if b["icon"] == qt.QMessageBox.Question]
    out["log"] = ui.logPlainTextEdit.toPlainText()[-1500:]
    return out
