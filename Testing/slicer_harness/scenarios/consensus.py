"""The ConsensusReview panel, clicked as a reviewer does: a project case (connected in the hub module),
segmentation nodes and files as inputs; the map overlay; the report; adjudication and publication; the
review queue; Cancel mid-task and failing tasks; the module's own self-test."""
from __future__ import annotations

import time

from slicer_harness.scenarios.common import capture_log, connect_hub, errors, questions, status_messages, wait


def _combo_items(combo):
    return [(combo.itemData(i), combo.itemText(i)) for i in range(combo.count)]


def _red():
    import slicer

    return slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()


def _views():
    """Slicer shows its views from startup on; the harness makes them on first use: make them now."""
    import slicer

    slicer.app.layoutManager()


def project_review(app, project, work):
    """Reviewer 'rev': cases from the hub's connection, consensus of c1, map overlay, report, adjudication
    from a2 and publication, the review queue (marking), a double-click in the queue, Cancel, a failing case."""
    import numpy as np
    import qt
    import slicer

    from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, node_to_volume, segmentation_to_node

    log = capture_log()
    _views()
    out = {}
    w = app.panel("ConsensusReview")
    ui, p = w.ui, w.panel
    # opening this panel first neither builds the hub's panel nor finds a store (B9)
    out["hub_panel_built_early"] = app.app.moduleManager().module("DicomTeamAnnotate")._widget is not None
    out["store_text_before"] = ui.storeStatusLabel.text
    out["refresh_enabled_before"] = ui.refreshCasesButton.enabled
    out["queue_enabled_before"] = ui.buildQueueButton.enabled
    ui.openHubButton.click()
    out["module_after_open_hub"] = app.app.mainWindow.moduleSelector().selected
    connect_hub(app, project, "rev", work)
    w = app.panel("ConsensusReview")  # back to this module: enter() reads the connection
    out["store_text"] = ui.storeStatusLabel.text
    ui.refreshCasesButton.click()
    wait(app, p)
    out["cases"] = _combo_items(ui.caseComboBox)
    ui.caseComboBox.setCurrentIndex(ui.caseComboBox.findData("c1"))
    out["run_enabled"] = ui.runButton.enabled
    ui.runButton.click()  # first use: pynrrd + matplotlib asked for and installed
    wait(app, p)
    out["run_status"] = ui.runStatusLabel.text
    out["review_status"] = ui.reviewStatusLabel.text
    out["label_rows"] = ui.labelTableWidget.rows()
    out["annotator_rows"] = len(ui.annotatorTableWidget.rows())
    out["annotator_headers"] = ui.annotatorTableWidget.horizontalHeaderLabels()
    out["report_enabled"] = ui.openReportButton.enabled
    out["map_choices"] = [k for k, _t in _combo_items(ui.mapComboBox)]
    run = p.results.run
    result = run["result"]
    nodes = p.results.nodes
    consensus = node_to_segmentation(nodes["consensus"], reference_geometry=result.inputs.geometry)
    out["consensus_node_equal"] = all(np.array_equal(consensus.mask(s.name), result.mask(s.name))
                                      for s in result.inputs.labels)
    out["reference_is_case_image"] = nodes["reference"].GetAttribute("DicomTeamAnnotate.CaseId") == "c1"
    map_node = nodes["map"]
    out["map_overlaid"] = _red().GetForegroundVolumeID() == map_node.GetID()
    out["map_equal"] = bool(np.allclose(slicer.util.arrayFromVolume(map_node), result.disagreement))
    out["map_geometry_error"] = float(np.abs(np.subtract(node_to_volume(map_node).geometry.origin,
                                                         result.inputs.geometry.to_lps().origin)).max())
    display = map_node.GetDisplayNode()
    out["map_display"] = {"colors": display.GetColorNodeID() == p.logic.mapColorNode().GetID(),
                          "threshold": bool(display.GetApplyThreshold()), "lower": display.GetLowerThreshold(),
                          "window": round(display.GetWindow(), 6), "auto": bool(display.GetAutoWindowLevel())}
    # the opacity slider: the overlay's opacity follows, the map volume is not rebuilt (finding 9)
    image_events = []
    tag = map_node.AddObserver(slicer.vtkMRMLVolumeNode.ImageDataModifiedEvent, lambda *a: image_events.append(1))
    stamp = map_node.GetImageData().GetMTime()
    ui.mapOpacitySlider.drag_to([0.55, 0.45, 0.35])
    out["opacity_after_drag"] = round(_red().GetForegroundOpacity(), 6)
    out["opacity_parameter"] = round(w._parameterNode.mapOpacity, 6)
    out["map_rebuilt_by_slider"] = bool(image_events) or map_node.GetImageData().GetMTime() != stamp
    map_node.RemoveObserver(tag)
    ui.mapComboBox.choose(ui.mapComboBox.findData("votes:liver"))
    out["votes_reuse_node"] = p.results.nodes["map"] is map_node
    out["votes_max"] = float(slicer.util.arrayFromVolume(map_node).max())
    out["votes_opacity_kept"] = round(_red().GetForegroundOpacity(), 6)
    ui.showMapCheckBox.checked = False
    out["foreground_hidden"] = _red().GetForegroundVolumeID()
    ui.showMapCheckBox.checked = True
    out["foreground_shown"] = _red().GetForegroundVolumeID() == map_node.GetID()
    ui.openReportButton.click()
    out["opened"] = list(qt.QDesktopServices.opened)
    out["report"] = p.results.report_path

    # adjudication from a2's version; the Segment Editor opens on it
    out["starts"] = [k for k, _t in _combo_items(ui.startFromComboBox)]
    ui.startFromComboBox.setCurrentIndex(ui.startFromComboBox.findData("annotator:a2"))
    ui.startAdjudicationButton.click()
    node = p.logic.adjudication["node"]
    editor = slicer.util.getModuleWidget("SegmentEditor").editor
    out["editor_on_adjudication"] = editor.segmentationNode() is node
    out["editor_source_is_image"] = editor.sourceVolumeNode() is nodes["reference"]
    out["adjudication_status"] = ui.adjudicationStatusLabel.text
    out["module_after_start"] = app.app.mainWindow.moduleSelector().selected
    w = app.panel("ConsensusReview")
    start = node_to_segmentation(node, reference_geometry=result.inputs.geometry)
    liver = start.mask("liver").copy()
    out["removed"] = int(liver[:, :, :20].sum())
    liver[:, :, :20] = False
    segmentation_to_node(start.with_masks({"liver": liver}), reference_volume_node=nodes["reference"], node=node)
    ui.adjudicationNoteLineEdit.type_text("trimmed the liver")
    store = p.store
    out["publish_enabled"] = ui.publishButton.enabled
    asked_before = len(questions())
    qt.QMessageBox.answers.append(qt.QMessageBox.Cancel)  # the reviewer answers Cancel first
    ui.publishButton.click()
    wait(app, p)
    out["adjudicated_after_no"] = [v["id"] for v in store.list_versions("c1") if v["kind"] == "adjudicated"]
    ui.publishButton.click()  # then OK
    wait(app, p)
    out["asked"] = questions()[asked_before:]
    out["publish_status"] = ui.adjudicationStatusLabel.text
    published = [v for v in store.list_versions("c1") if v["kind"] == "adjudicated"]
    audit = published[-1]["meta"]["audit"] if published else {}
    out["published"] = {"count": len(published), "author": published[-1]["author"] if published else None,
                        "note": audit.get("note"), "liver_removed": audit.get("edits", {}).get("liver", {}).get("removed"),
                        "started_from": audit.get("started_from"),
                        "a2_version": next(v["id"] for v in run["versions"] if v["author"] == "a2")}
    out["case_state"] = store.states("c1")["state"]

    # the review queue: every case with two or more annotators, lowest agreement first, flagged ones marked
    ui.minPairwiseDiceSpinBox.value = 0.97
    ui.markInReviewCheckBox.checked = True
    ui.buildQueueButton.click()
    wait(app, p)
    out["queue_rows"] = ui.queueTableWidget.rows()
    out["queue_status"] = ui.queueStatusLabel.text
    out["queue_tooltip"] = ui.queueStatusLabel.toolTip
    out["states_after_queue"] = {c: store.states(c)["state"] for c in ("c1", "c2", "c3")}
    row = [r[0] for r in out["queue_rows"]].index("c2")
    ui.queueTableWidget.double_click(row)  # computes that case
    wait(app, p)
    out["after_double_click"] = {"case": p.results.run["case_id"], "status": ui.runStatusLabel.text,
                                 "combo": ui.caseComboBox.currentData}

    # Cancel mid-task: the dialog's Cancel; the last result stays
    before = p.results.run
    ui.runButton.click()
    qt.QProgressDialog.instances[-1].cancel()
    wait(app, p)
    out["after_cancel"] = {"status": ui.runStatusLabel.text, "result_kept": p.results.run is before,
                           "busy": p.tasks.busy}
    # a failing task: c3 has a single annotator
    errors_before = len(log.records)
    ui.caseComboBox.setCurrentIndex(ui.caseComboBox.findData("c3"))
    ui.runButton.click()
    wait(app, p)
    out["failed_case"] = {"status": ui.runStatusLabel.text, "errors": errors(log, errors_before),
                          "result_kept": p.results.run is before}
    out["status_messages"] = status_messages()
    out["dialogs"] = [{"visible": d.visible, "autoClose": d.autoClose, "canceled_slots": d.connected("canceled()")}
                      for d in qt.QProgressDialog.instances]
    out["segmentation_nodes"] = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    out["errors"] = errors(log)
    return out


def nodes_and_files(app, files, not_a_segmentation):
    """Segmentation nodes (one is not enough; three without an output folder: nothing installed), then files
    (added, one removed, added again), a file that is no segmentation (an error naming it), Cancel."""
    import numpy as np
    import qt
    import slicer.packaging  # the harness's stand-in records each ask and install

    from ConsensusReviewLib.simulate import simulate_reader_segmentations
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

    log = capture_log()
    _views()
    out = {}
    w = app.panel("ConsensusReview")
    ui, p = w.ui, w.panel
    phantom = make_phantom(seed=0, shape=(16, 48, 48), spacing=(1.5, 1.5, 3.0))
    reference = volume_to_node(phantom.volume, name="phantom")
    readers = [segmentation_to_node(s, reference_volume_node=reference, name=f"reader {k + 1}")
               for k, s in enumerate(simulate_reader_segmentations(phantom, 3, seed=0))]
    ui.sourceComboBox.setCurrentIndex(ui.sourceComboBox.findData("nodes"))
    out["visible"] = [ui.storeInputsWidget.visible, ui.nodesInputsWidget.visible, ui.filesInputsWidget.visible]
    ui.referenceVolumeSelector.setCurrentNode(reference)
    ui.segmentationsComboBox.setCheckState(readers[0], qt.Qt.Checked)
    out["run_enabled_one_node"] = ui.runButton.enabled
    for node in readers[1:]:
        ui.segmentationsComboBox.setCheckState(node, qt.Qt.Checked)
    out["run_enabled_three_nodes"] = ui.runButton.enabled
    ui.methodComboBox.setCurrentIndex(ui.methodComboBox.findData("majority"))
    out["tie_enabled_majority"] = ui.tieComboBox.enabled
    out["threshold_enabled_majority"] = ui.thresholdSpinBox.enabled
    ui.outputFolderLineEdit.currentPath = ""  # cleared: nothing written, so nothing to install
    installs_before = len(slicer.packaging.record)
    ui.runButton.click()
    wait(app, p)
    out["nodes_status"] = ui.runStatusLabel.text
    out["nodes_installs"] = slicer.packaging.record[installs_before:]
    out["nodes_annotators"] = p.results.run["inputs"].annotators
    out["nodes_report_enabled"] = ui.openReportButton.enabled
    out["nodes_reference_is_phantom"] = p.results.nodes["reference"] is reference
    node_masks = p.results.run["inputs"].masks  # reader k's masks: annotator index k

    # files: three added at once, the second removed, then added back
    ui.sourceComboBox.setCurrentIndex(ui.sourceComboBox.findData("files"))
    qt.QFileDialog.answers.append([str(f) for f in files])
    ui.addFilesButton.click()
    out["files_listed"] = [ui.filesListWidget.item(i).text() for i in range(ui.filesListWidget.count)]
    out["remove_enabled_without_selection"] = ui.removeFilesButton.enabled
    ui.filesListWidget.setCurrentRow(1)
    ui.removeFilesButton.click()
    out["files_after_remove"] = [ui.filesListWidget.item(i).text() for i in range(ui.filesListWidget.count)]
    qt.QFileDialog.answers.append([str(files[1])])
    ui.addFilesButton.click()
    ui.runButton.click()  # first use of segmentation files: pynrrd
    wait(app, p)
    out["files_status"] = ui.runStatusLabel.text
    out["files_annotators"] = p.results.run["inputs"].annotators
    # the same readers as nodes and as files (a1..a3 = reader 1..3): the same aligned masks
    order = [int(name[1]) - 1 for name in out["files_annotators"]]
    file_masks = p.results.run["inputs"].masks
    out["files_equal_nodes"] = sorted(file_masks) == sorted(node_masks) and all(
        np.array_equal(file_masks[label], node_masks[label][order]) for label in node_masks)

    # Cancel mid-task
    before = p.results.run
    ui.runButton.click()
    qt.QProgressDialog.instances[-1].cancel()
    wait(app, p)
    out["after_cancel"] = {"status": ui.runStatusLabel.text, "result_kept": p.results.run is before}
    # a file that is not a segmentation: the error names it
    qt.QFileDialog.answers.append([str(not_a_segmentation)])
    ui.addFilesButton.click()
    errors_before = len(log.records)
    ui.runButton.click()
    wait(app, p)
    out["bad_file"] = {"status": ui.runStatusLabel.text, "errors": errors(log, errors_before)}
    out["status_messages"] = status_messages()
    return out


def self_test(app):
    """The module's own XTest (what Slicer's 'Reload and Test' and ctest run), inside the harness."""
    import slicer

    _views()
    started = time.monotonic()
    slicer.selfTests["ConsensusReview"]()
    return {"passed": True, "seconds": round(time.monotonic() - started, 1)}


def older_slicer(app):
    """Slicer 5.10: the panel shows one message (which version, and why) instead of a UI that fails in a click."""
    import qt

    app.app.majorVersion, app.app.minorVersion = 5, 10
    w = app.panel("ConsensusReview")
    app.panel("DicomTeamAnnotate")  # leaving and coming back must not fail either
    w = app.panel("ConsensusReview")
    return {"panel": w.panel is not None, "ui": hasattr(w, "ui"),
            "labels": [c.text for c in w.parent.findChildren(qt.QLabel)]}
