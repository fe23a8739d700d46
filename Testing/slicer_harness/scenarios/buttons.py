"""Buttons no other scenario presses, pressed through their widgets as a user does (Testing/test_slicer_buttons.py).

DicomTeamAnnotate: Browse (store folder), Refresh (worklist), Edit in Segment Editor, Save version, Browse
(ZIP), DICOMweb Import (an address nothing listens on, then Orthanc), Forget token, Send now (a push queued
while the project server is down, sent once it is back); a second click during a first-use install and
pip busy with another install. SamPrompt: the panel's Cancel (precompute) and Clear cache; the SAM Prompt
effect's Propagate up/down/both, Stop and Cancel during a propagation, Cancel, Apply; its preview after a
segmentation change and in a saved scene; a view of a volume under a rotating parent transform.
ConsensusReview: the adjudication's 'Segment Editor'. TrainBridge: Evaluation > Load.
"""
from __future__ import annotations

import os
import subprocess
import time

from slicer_harness.scenarios.common import capture_log, errors, segment_editor_on, status_messages, wait

# Slicer's pip_install raises this when another (non-blocking) installation runs (Base/Python/slicer/packaging.py)
PIP_BUSY = "A non-blocking pip_install is already in progress. Wait for it to complete or use blocking=True."


def _boxes(since=0):
    """The message boxes shown so far (text, icon, answer)."""
    import qt

    return list(qt.QMessageBox.shown[since:])


def _selected_module(app):
    return app.app.mainWindow.moduleSelector().selected


def _segment_editor():
    import slicer

    return slicer.util.getModuleWidget("SegmentEditor").editor


def _install_calls(since=0):
    """The pip installs the session ran (the stand-in's record), as lists of requirements."""
    import slicer.packaging

    return [e["requirements"] for e in slicer.packaging.record[since:] if e["call"] == "pip_install"]


def _connect(app, w, location, user, work, token=None):
    ui, p = w.ui, w.panel
    ui.storeLocationLineEdit.type_text(str(location))
    ui.userLineEdit.type_text(user)
    if token:
        ui.tokenLineEdit.type_text(token)
    ui.workFolderLineEdit.currentPath = str(work)
    ui.connectButton.click()
    app.process_events(until=lambda: p.project.connected and not p.tasks.busy, timeout=120)
    app.process_events()


def _draw_liver(w, session, slices=(2, 5)):
    """What an effect would leave in the case's segmentation: a block of 'liver'; its voxel count."""
    import numpy as np

    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node

    seg = w.logic.currentSegmentation(session)
    mask = np.zeros(seg.geometry.shape, bool)
    mask[slices[0]:slices[1], 10:20, 10:25] = True
    segmentation_to_node(seg.with_masks({"liver": mask}), reference_volume_node=session.volume_node,
                         node=session.segmentation_node)
    return int(mask.sum())


# ----- DicomTeamAnnotate: a project folder ------------------------------------------------------------------


def hub_project_buttons(app, project, work, queue):
    """Browse for the project folder, connect, Refresh after the administrator assigns a case, Open while pip is
    busy, Open with a second click during the first-use install, Edit in Segment Editor, Save version."""
    import qt
    import slicer
    import slicer.packaging  # the harness's stand-in: the scenario plays pip being busy, and the user meanwhile

    from DicomTeamAnnotateLib.store import admin
    from DicomTeamAnnotateLib.worklist.offline import OfflineQueue

    log = capture_log()
    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    w.logic.queue = OfflineQueue(queue)  # not the user's own queue
    out = {"edit_enabled_without_case": ui.editSegmentationButton.enabled,
           "save_enabled_without_case": ui.saveVersionButton.enabled}

    # Browse (store folder): a cancelled dialog changes nothing; a chosen folder fills the location
    ui.browseStoreButton.click()
    out["location_after_cancel"] = ui.storeLocationLineEdit.text
    qt.QFileDialog.answers.append(str(project))
    ui.browseStoreButton.click()
    out["location_after_browse"] = ui.storeLocationLineEdit.text
    out["connect_enabled_without_user"] = ui.connectButton.enabled
    ui.userLineEdit.type_text("alice")
    out["connect_enabled"] = ui.connectButton.enabled
    ui.workFolderLineEdit.currentPath = str(work)
    ui.connectButton.click()
    app.process_events(until=lambda: p.project.connected and not p.tasks.busy, timeout=120)
    app.process_events()
    out["status"] = ui.connectionStatusLabel.text
    out["worklist"] = [r[0] for r in ui.worklistTableWidget.rows()]

    # Refresh (worklist): the administrator assigns c2 to alice meanwhile; only Refresh shows it
    admin.assign(project, "c2", "alice")
    app.process_events()
    out["worklist_before_refresh"] = [r[0] for r in ui.worklistTableWidget.rows()]
    out["refresh_enabled"] = ui.refreshWorklistButton.enabled
    ui.refreshWorklistButton.click()
    app.process_events(until=lambda: ui.worklistTableWidget.rowCount == 2 and not p.tasks.busy, timeout=60)
    app.process_events()
    out["worklist_after_refresh"] = [r[0] for r in ui.worklistTableWidget.rows()]
    out["worklist_status"] = ui.worklistStatusLabel.text

    # Open while pip is busy with another installation: said so, not "declined"; nothing opens
    ui.worklistTableWidget.selectRow([r[0] for r in ui.worklistTableWidget.rows()].index("c1"))
    real_install = slicer.packaging.pip_install

    def pip_busy(*args, **kwargs):
        raise RuntimeError(PIP_BUSY)

    boxes_before, status_before = len(_boxes()), len(status_messages())
    slicer.packaging.pip_install = pip_busy
    try:
        ui.openCaseButton.click()
        wait(app, p, 30)
    finally:
        slicer.packaging.pip_install = real_install
    out["pip_busy"] = {"status": status_messages()[status_before:], "boxes": _boxes(boxes_before),
                       "opened": p.case.session is not None,
                       "volumes": slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")}

    # Open again; while pip installs pynrrd, Slicer keeps processing events (its progress dialog) and the
    # user clicks Open once more
    installs_before, status_before = len(slicer.packaging.record), len(status_messages())
    second = {}

    def install_while_the_user_clicks_again(*args, **kwargs):
        if not second:
            second["clicking"] = True  # once: without the guard that click would install again, and click again
            second["accepted"] = ui.openCaseButton.click()
            second["status"] = status_messages()[status_before:]
            second["installs_meanwhile"] = _install_calls(installs_before)
        return real_install(*args, **kwargs)

    slicer.packaging.pip_install = install_while_the_user_clicks_again
    try:
        ui.openCaseButton.click()
        app.process_events(until=lambda: p.case.session is not None and not p.tasks.busy, timeout=300)
        wait(app, p, 60)
    finally:
        slicer.packaging.pip_install = real_install
    session = p.case.session
    out["second_click"] = {**second, "installs": _install_calls(installs_before),
                           "case": session.case_id if session else None,
                           "volumes": slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"),
                           "segmentations": slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")}
    if session is None:
        out["errors"] = errors(log)
        return out

    # Edit in Segment Editor: the user had the editor on a scratch segmentation and went elsewhere
    scratch = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "scratch")
    slicer.util.selectModule("SegmentEditor")
    _segment_editor().setSegmentationNode(scratch)
    w = app.panel("DicomTeamAnnotate")
    out["edit_enabled"] = ui.editSegmentationButton.enabled
    ui.editSegmentationButton.click()
    editor = _segment_editor()
    out["edit"] = {"module": _selected_module(app), "segmentation": editor.segmentationNode() is session.segmentation_node,
                   "source": editor.sourceVolumeNode() is session.volume_node}

    # Save version (not Submit): a version of alice's in the project; the case stays in progress
    w = app.panel("DicomTeamAnnotate")
    out["drawn_voxels"] = _draw_liver(w, session)
    ui.messageLineEdit.type_text("half done")
    out["save_enabled"] = ui.saveVersionButton.enabled
    ui.saveVersionButton.click()
    app.process_events(until=lambda: not p.tasks.busy and "Pushed version" in ui.currentCaseLabel.text, timeout=120)
    wait(app, p, 60)
    out["after_save"] = ui.currentCaseLabel.text
    out["message_after_save"] = ui.messageLineEdit.text
    out["parent_after_save"] = session.parent
    out["worklist_after_save"] = ui.worklistTableWidget.rows()
    out["versions_after_save"] = ui.versionsTableWidget.rows()
    out["draft_after_save"] = session.draft_path.is_file()
    out["errors"] = errors(log)
    return out


# ----- DicomTeamAnnotate: Load DICOM and DICOMweb ------------------------------------------------------------


def hub_dicom_buttons(app, zip_path, project, dead_url, orthanc_url, user, password, patient):
    """Browse (ZIP) and Load it; DICOMweb Import from an address nothing listens on, then from Orthanc (twice)."""
    import qt
    import slicer

    log = capture_log()
    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    out = {"load_enabled_before": ui.loadButton.enabled}
    ui.browseZipButton.click()  # cancelled
    out["path_after_cancel"] = ui.inputPathLineEdit.currentPath
    qt.QFileDialog.answers.append(str(zip_path))
    ui.browseZipButton.click()
    out["path_after_browse"] = ui.inputPathLineEdit.currentPath
    out["load_enabled"] = ui.loadButton.enabled
    ui.loadButton.click()  # first use: the DICOM decoders
    wait(app, p, 600)
    out["load_summary"] = ui.loadSummaryLabel.text
    out["volumes"] = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")

    # DICOMweb: an address nothing listens on
    out["import_enabled_empty"] = ui.dicomwebImportButton.enabled
    ui.dicomwebProjectPathLineEdit.currentPath = str(project)
    ui.dicomwebUrlLineEdit.type_text(dead_url)
    ui.dicomwebPatientLineEdit.type_text(patient)
    out["import_enabled"] = ui.dicomwebImportButton.enabled
    errors_before, boxes_before = len(log.records), len(_boxes())
    ui.dicomwebImportButton.click()
    wait(app, p, 120)
    out["dead"] = {"summary": ui.dicomwebSummaryLabel.text, "errors": errors(log, errors_before),
                   "boxes": _boxes(boxes_before), "rows": ui.dicomwebResultsTableWidget.rows()}
    if not orthanc_url:
        return out
    # ... then Orthanc (authentication on): the patient's series becomes a case; again: skipped
    ui.dicomwebUrlLineEdit.type_text(orthanc_url)
    ui.dicomwebUserLineEdit.type_text(user)
    ui.dicomwebPasswordLineEdit.type_text(password)
    errors_before = len(log.records)
    ui.dicomwebImportButton.click()
    wait(app, p, 300)
    out["import"] = {"summary": ui.dicomwebSummaryLabel.text, "rows": ui.dicomwebResultsTableWidget.rows(),
                     "visible": ui.dicomwebResultsTableWidget.visible}
    ui.dicomwebImportButton.click()
    wait(app, p, 300)
    out["again"] = {"summary": ui.dicomwebSummaryLabel.text, "rows": ui.dicomwebResultsTableWidget.rows()}
    out["import_errors"] = errors(log, errors_before)
    return out


# ----- DicomTeamAnnotate: a project server -----------------------------------------------------------------


def _start_server(command, url, pids_file):
    """The project server (the test environment's Python); its pid noted for the test to clean up."""
    import requests

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(pids_file, "a", encoding="utf-8") as fh:
        fh.write(f"{process.pid}\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/api/v1/health", timeout=1).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the project server did not start: {command}")


def _stop_server(process):
    process.terminate()
    process.wait(timeout=30)


def hub_server_buttons(app, url, token, server_command, pids_file, work, queue):
    """Connect to the project server (token remembered), Forget token; open c1, Save version while the server is
    down (queued), Send now while still down, then Send now once the server is back."""
    import qt

    from DicomTeamAnnotateLib.worklist.offline import OfflineQueue

    log = capture_log()
    server = _start_server(server_command, url, pids_file)
    try:
        w = app.panel("DicomTeamAnnotate")
        ui, p = w.ui, w.panel
        offline_queue = OfflineQueue(queue)
        w.logic.queue = offline_queue
        out = {"forget_enabled": ui.forgetTokenButton.enabled, "remember": ui.rememberTokenCheckBox.checked}
        _connect(app, w, url, "alice", work, token=token)
        out["status"] = ui.connectionStatusLabel.text
        settings = qt.QSettings()
        token_keys = [k for k in settings.allKeys() if k.startswith("DicomTeamAnnotate/Tokens/")]
        out["token_saved"] = {"keys": len(token_keys), "value": settings.value(token_keys[0]) == token if token_keys
                              else None, "loaded": p.project.tokens.load(url, "alice") == token}
        status_before = len(status_messages())
        ui.forgetTokenButton.click()
        out["forgotten"] = {"field": ui.tokenLineEdit.text,
                            "keys": [k for k in qt.QSettings().allKeys() if k.startswith("DicomTeamAnnotate/Tokens/")],
                            "loaded": p.project.tokens.load(url, "alice"), "status": status_messages()[status_before:],
                            "still_connected": p.project.connected}

        # open c1 (first use of segmentation files may install pynrrd), draw
        ui.worklistTableWidget.selectRow(0)
        ui.openCaseButton.click()
        app.process_events(until=lambda: p.case.session is not None and not p.tasks.busy, timeout=300)
        wait(app, p, 60)
        session = p.case.session
        if session is None:
            out["errors"] = errors(log)
            return out
        out["drawn_voxels"] = _draw_liver(w, session)
        out["sync_enabled_online"] = ui.syncNowButton.enabled
        out["banner_online"] = ui.offlineBannerFrame.visible

        # the server goes down; Save version: queued, the banner says so
        _stop_server(server)
        ui.messageLineEdit.type_text("while offline")
        ui.saveVersionButton.click()
        app.process_events(until=lambda: not p.tasks.busy and "queued" in ui.currentCaseLabel.text, timeout=180)
        wait(app, p, 120)
        out["queued"] = {"label": ui.currentCaseLabel.text, "banner": ui.offlineBannerFrame.visible,
                         "banner_text": ui.offlineBannerLabel.text, "pending": len(offline_queue.pending(url, "alice")),
                         "sync_enabled": ui.syncNowButton.enabled, "errors": errors(log)}
        queued_id = session.parent

        # Send now while the server is still down: kept, no error
        errors_before = len(log.records)
        ui.syncNowButton.click()
        wait(app, p, 120)
        out["still_down"] = {"banner": ui.offlineBannerFrame.visible, "banner_text": ui.offlineBannerLabel.text,
                             "pending": len(offline_queue.pending(url, "alice")), "errors": errors(log, errors_before)}

        # the server is back (no event loop meanwhile: the retry clock cannot send it first); Send now
        server = _start_server(server_command, url, pids_file)
        out["pending_before_send"] = len(offline_queue.pending(url, "alice"))
        status_before = len(status_messages())
        ui.syncNowButton.click()
        wait(app, p, 120)
        out["sent"] = {"status": status_messages()[status_before:], "banner": ui.offlineBannerFrame.visible,
                       "pending": len(offline_queue.pending(url, "alice")), "parent": session.parent,
                       "queued_id": queued_id, "versions": [(v["id"], v["author"], v["message"])
                                                            for v in w.logic.listVersions("c1")]}
        out["errors"] = errors(log)
        return out
    finally:
        if server.poll() is None:
            _stop_server(server)


# ----- ConsensusReview: the adjudication's 'Segment Editor'; TrainBridge: Evaluation > Load --------------------


def review_and_evaluation_buttons(app, evaluation_dir, not_an_evaluation):
    """ConsensusReview: consensus of three reader nodes, Start (the Segment Editor opens), the user edits something
    else, then 'Segment Editor' brings the adjudication back. TrainBridge: Load an evaluation, a folder without one,
    a cleared folder."""
    import qt
    import slicer

    from ConsensusReviewLib.simulate import simulate_reader_segmentations
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

    log = capture_log()
    slicer.app.layoutManager()
    out = {}
    w = app.panel("ConsensusReview")
    ui, p = w.ui, w.panel
    phantom = make_phantom(seed=0, shape=(12, 40, 40), spacing=(1.5, 1.5, 3.0))
    reference = volume_to_node(phantom.volume, name="phantom")
    readers = [segmentation_to_node(s, reference_volume_node=reference, name=f"reader {k + 1}")
               for k, s in enumerate(simulate_reader_segmentations(phantom, 3, seed=0))]
    out["edit_enabled_before"] = ui.editAdjudicationButton.enabled
    ui.sourceComboBox.setCurrentIndex(ui.sourceComboBox.findData("nodes"))
    ui.referenceVolumeSelector.setCurrentNode(reference)
    for node in readers:
        ui.segmentationsComboBox.setCheckState(node, qt.Qt.Checked)
    ui.methodComboBox.setCurrentIndex(ui.methodComboBox.findData("majority"))
    ui.outputFolderLineEdit.currentPath = ""  # nothing written: no package needed
    ui.runButton.click()
    wait(app, p)
    out["run_status"] = ui.runStatusLabel.text
    out["edit_enabled_after_run"] = ui.editAdjudicationButton.enabled
    ui.startFromComboBox.setCurrentIndex(ui.startFromComboBox.findData("consensus"))
    ui.startAdjudicationButton.click()
    adjudication = p.logic.adjudication["node"] if p.logic.adjudication else None
    out["module_after_start"] = _selected_module(app)
    # the user edits reader 2 in the Segment Editor on its own, then comes back to the review
    _segment_editor().setSegmentationNode(readers[1])
    _segment_editor().setSourceVolumeNode(None)
    w = app.panel("ConsensusReview")
    out["edit_enabled"] = ui.editAdjudicationButton.enabled
    ui.editAdjudicationButton.click()
    editor = _segment_editor()
    out["edit"] = {"module": _selected_module(app), "segmentation": adjudication is not None
                   and editor.segmentationNode() is adjudication, "source": editor.sourceVolumeNode() is reference,
                   "nodes": slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")}

    # TrainBridge: Evaluation > Load
    w = app.panel("TrainBridge")
    ui, p = w.ui, w.panel
    out["load_enabled_empty"] = ui.loadEvaluationButton.enabled
    ui.evaluationFolderLineEdit.currentPath = str(evaluation_dir)
    out["load_enabled"] = ui.loadEvaluationButton.enabled
    ui.loadEvaluationButton.click()
    app.process_events()
    combo = ui.comparisonCaseComboBox
    out["loaded"] = {"rows": ui.evaluationTableWidget.rows(), "worst": ui.worstSlicesTableWidget.rows(),
                     "summary": ui.evaluationSummaryLabel.text,
                     "cases": [combo.itemData(i) for i in range(combo.count)],
                     "labels": [ui.comparisonLabelComboBox.itemData(i) for i in range(ui.comparisonLabelComboBox.count)],
                     "show_enabled": ui.showCaseButton.enabled, "jump_enabled": ui.jumpToWorstSliceButton.enabled}
    errors_before, boxes_before = len(log.records), len(_boxes())
    ui.evaluationFolderLineEdit.currentPath = str(not_an_evaluation)
    ui.loadEvaluationButton.click()
    app.process_events()
    out["not_an_evaluation"] = {"errors": errors(log, errors_before), "boxes": _boxes(boxes_before)}
    ui.evaluationFolderLineEdit.currentPath = ""
    out["load_enabled_cleared"] = ui.loadEvaluationButton.enabled
    out["errors"] = errors(log)
    return out


# ----- SAM Prompt: the panel's buttons and the effect's ------------------------------------------------------


def _effect_on(seg, volume, segment_name):
    """The SAM Prompt effect of a Segment Editor on ``seg`` / ``volume``, ``segment_name`` selected."""
    editor, node = segment_editor_on(seg, volume, seg.GetSegmentation().GetSegmentIdBySegmentName(segment_name),
                                     "SAM Prompt")
    return editor, node, editor.activeEffect().self()


def _segment_array(seg, name, volume):
    import numpy as np
    import slicer

    segment_id = seg.GetSegmentation().GetSegmentIdBySegmentName(name)
    return np.array(slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume) > 0)


def _buttons(effect):
    return {"propagate": {d: b.enabled for d, b in effect.propagateButtons.items()}, "apply": effect.applyButton.enabled,
            "cancel": effect.cancelButton.enabled, "stop_visible": effect.stopButton.visible}


def _preview_nodes():
    import slicer

    return [n.GetName() for n in slicer.util.getNodesByClass("vtkMRMLSegmentationNode") if n.GetName() == "SAM preview"]


def _liver_box(truth, k):
    """(column0, row0, column1, row1) of the truth's liver on axial slice ``k``."""
    import numpy as np

    rows, columns = np.nonzero(truth[k])
    return int(columns.min()), int(rows.min()), int(columns.max()), int(rows.max())


def _panel_precompute_cancel(app, volume, out):
    """The SamPrompt panel: Precompute (the first use installs), then Cancel at once."""
    from SamPromptLib import shared

    w = app.panel("SamPrompt")
    ui, p = w.ui, w.panel
    ui.backendComboBox.setCurrentIndex(ui.backendComboBox.findData("litemedsam-fp32"))
    ui.volumeSelector.setCurrentNode(volume)
    ui.planeComboBox.setCurrentIndex(ui.planeComboBox.findData("coronal"))  # 64 slices: Cancel finds work to drop
    out["cancel_enabled_idle"] = ui.cancelPrecomputeButton.enabled
    out["precompute_enabled"] = ui.precomputeButton.enabled
    ui.precomputeButton.click()
    app.process_events(until=lambda: p.precomputing or (not p.tasks.busy and not p.precomputing), timeout=900)
    run = p._run
    out["precompute_started"] = run is not None
    if run is None:
        out["precompute_status"] = ui.precomputeStatusLabel.text
        return
    out["cancel_enabled_running"] = ui.cancelPrecomputeButton.enabled
    segmenter, total = run["segmenter"], run["total"]
    done_at_cancel = total - segmenter.precompute_pending()
    ui.cancelPrecomputeButton.click()
    deadline = time.monotonic() + 3  # the slice being embedded finishes; nothing after it
    while time.monotonic() < deadline:
        app.process_events()
        time.sleep(0.05)
    out["precompute_cancel"] = {"status": ui.precomputeStatusLabel.text, "total": total,
                                "done_at_cancel": done_at_cancel, "pending": segmenter.precompute_pending(),
                                "cached": sum(1 for i in range(total) if segmenter.key("coronal", i) in segmenter.cache),
                                "cancel_enabled": ui.cancelPrecomputeButton.enabled,
                                "precompute_enabled": ui.precomputeButton.enabled,
                                "entries": shared.shared_cache().stats()["entries"]}


def _clear_cache(app, out):
    from SamPromptLib import shared

    w = app.panel("SamPrompt")
    out["cache_before_clear"] = shared.shared_cache().stats()["entries"]
    w.ui.clearCacheButton.click()
    out["cache_after_clear"] = {"entries": shared.shared_cache().stats()["entries"], "label": w.ui.cacheStatusLabel.text}


def _effect_buttons(app, effect, seg, volume, truth, k, out):
    """Propagate up, down, both; Stop and Cancel while a propagation runs; Cancel a preview; Apply."""
    import numpy as np

    box = _liver_box(truth, k)
    empty = _segment_array(seg, "liver", volume)
    out["idle_buttons"] = _buttons(effect)
    effect.prompt_box("axial", k, box)
    effect.wait(600)
    out["prompted"] = {"status": effect.statusLabel.text, "buttons": _buttons(effect), "preview_nodes": _preview_nodes()}

    effect.propagateButtons["up"].click()
    out["running_buttons"] = _buttons(effect)
    effect.wait(600)
    up = sorted(effect.model.session.results) if effect.model.session else []
    effect.propagateButtons["down"].click()
    effect.wait(600)
    down = sorted(effect.model.session.results) if effect.model.session else []
    out["propagate_up_down"] = {"k": k, "up": up, "after_down": down, "status": effect.statusLabel.text}

    # Stop while "Propagate both" runs: the preview stays the prompted slice; Apply writes just that
    effect.cancelButton.click()
    effect.prompt_box("axial", k, box)
    effect.wait(600)
    prompted_mask = effect.model.session.mask_volume().array.copy()
    effect.propagateButtons["both"].click()
    busy = effect.model.busy
    stop_visible = effect.stopButton.visible
    effect.stopButton.click()
    effect.wait(600)
    app.process_events()
    session = effect.model.session
    out["stop"] = {"busy_when_pressed": busy, "stop_visible": stop_visible, "status": effect.statusLabel.text,
                   "slices": sorted(session.results) if session else None,
                   "preview_unchanged": bool(session is not None
                                             and np.array_equal(session.mask_volume().array, prompted_mask)),
                   "buttons": _buttons(effect)}
    undo_before = effect.scriptedEffect.undo_states
    effect.applyButton.click()
    after_stop_apply = _segment_array(seg, "liver", volume)
    out["apply_after_stop"] = {"equal_prompted": bool(np.array_equal(after_stop_apply, prompted_mask > 0)),
                               "slices": sorted(set(np.nonzero(after_stop_apply)[0].tolist())),
                               "undo_states": effect.scriptedEffect.undo_states - undo_before}
    _set_segment(seg, "liver", volume, empty)  # back to the empty segment (what the user's Undo does)

    # Cancel while a propagation runs: no preview, the segment unchanged
    effect.prompt_box("axial", k, box)
    effect.wait(600)
    before = _segment_array(seg, "liver", volume)
    effect.propagateButtons["both"].click()
    busy = effect.model.busy
    cancel_enabled = effect.cancelButton.enabled
    effect.cancelButton.click()
    effect.wait(600)
    app.process_events()
    out["cancel_running"] = {"busy_when_pressed": busy, "cancel_enabled": cancel_enabled,
                             "preview": effect.model.has_preview, "preview_nodes": _preview_nodes(),
                             "status": effect.statusLabel.text, "buttons": _buttons(effect),
                             "segment_unchanged": bool(np.array_equal(_segment_array(seg, "liver", volume), before))}

    # Cancel a finished preview
    effect.prompt_box("axial", k, box)
    effect.wait(600)
    effect.cancelButton.click()
    app.process_events()
    out["cancel_preview"] = {"preview": effect.model.has_preview, "preview_nodes": _preview_nodes(),
                             "buttons": _buttons(effect), "status": effect.statusLabel.text,
                             "segment_unchanged": bool(np.array_equal(_segment_array(seg, "liver", volume), before))}

    # Apply a propagated preview: the segment becomes it (one undo step), the preview goes
    effect.prompt_box("axial", k, box)
    effect.wait(600)
    effect.propagateButtons["both"].click()
    effect.wait(600)
    preview = effect.model.session.mask_volume().array > 0
    undo_before = effect.scriptedEffect.undo_states
    effect.applyButton.click()
    app.process_events()
    drawn = _segment_array(seg, "liver", volume)
    dice = 2 * np.count_nonzero(drawn & truth) / max(1, np.count_nonzero(drawn) + np.count_nonzero(truth))
    out["apply"] = {"equal_preview": bool(np.array_equal(drawn, preview)), "slices": len(set(np.nonzero(drawn)[0])),
                    "dice": round(float(dice), 3), "undo_states": effect.scriptedEffect.undo_states - undo_before,
                    "preview_nodes": _preview_nodes(), "buttons": _buttons(effect), "status": effect.statusLabel.text}


def _set_segment(seg, name, volume, mask):
    """Put ``mask`` (K, J, I on ``volume``'s grid) into the segment (the user's Undo, as a plain write)."""
    import slicer

    segment_id = seg.GetSegmentation().GetSegmentIdBySegmentName(name)
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype("uint8"), seg, segment_id, volume)


def _preview_and_segmentation_change(app, editor, editor_node, effect, seg, volume, truth, k, scene_file, out):
    """9b: the preview is not saved with the scene; it does not outlive the segmentation it previews."""
    import numpy as np
    import slicer

    from DicomTeamAnnotateLib.core.segmentation import Segmentation
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

    box = _liver_box(truth, k)
    effect.prompt_box("axial", k, box)
    effect.wait(600)
    slicer.mrmlScene.SetRootDirectory(os.path.dirname(scene_file))
    slicer.mrmlScene.SetURL(scene_file)
    slicer.mrmlScene.Commit()
    with open(scene_file, encoding="utf-8") as fh:
        text = fh.read()
    out["scene"] = {"preview_in_scene": _preview_nodes(), "preview_saved": 'name="SAM preview"' in text,
                    "segmentation_saved": 'name="segments"' in text}

    # another segmentation, on another grid (its reference geometry differs)
    other = make_phantom(seed=5, shape=(8, 32, 32), spacing=(2.0, 2.0, 4.0))
    other_volume = volume_to_node(other.volume, name="other volume")
    other_seg = segmentation_to_node(Segmentation.from_masks({"liver": np.zeros(other.labels.shape, bool)},
                                                             other.volume.geometry),
                                     reference_volume_node=other_volume, name="other segments")
    before = _segment_array(seg, "liver", volume)
    # the way the user does it: the Segment Editor's segmentation selector (Slicer deactivates the effect first)
    editor.setSegmentationNode(other_seg)
    out["editor_switch"] = {"preview_nodes": _preview_nodes(), "preview": effect.model.has_preview}
    editor.setSegmentationNode(seg)
    editor.setActiveEffectByName("SAM Prompt")
    effect = editor.activeEffect().self()
    effect.prompt_box("axial", k, box)
    effect.wait(600)
    had_preview = effect.model.has_preview
    # the editor's segmentation changed through its parameter node (a module, a script, a scene event): Slicer's
    # segment editor widget tells every effect that the reference geometry changed
    # (qMRMLSegmentEditorWidgetPrivate::notifyEffectsOfReferenceGeometryChange); the harness's editor does not,
    # so the scenario does what the widget does
    editor_node.SetAndObserveSegmentationNode(other_seg)
    effect.referenceGeometryChanged()
    app.process_events()
    out["segmentation_change"] = {"had_preview": had_preview, "preview": effect.model.has_preview,
                                  "preview_nodes": _preview_nodes(), "buttons": _buttons(effect),
                                  "other_empty": not _segment_array(other_seg, "liver", other_volume).any(),
                                  "segment_unchanged": bool(np.array_equal(_segment_array(seg, "liver", volume), before))}
    editor_node.SetAndObserveSegmentationNode(seg)
    return effect


def _rotation(transform, axis, degrees):
    """Set ``transform`` (a linear transform node) to a rotation about RAS axis ``axis`` (0, 1, 2)."""
    import vtk

    rotation = vtk.vtkTransform()
    rotation.RotateWXYZ(degrees, *[1.0 if a == axis else 0.0 for a in range(3)])
    transform.SetMatrixTransformToParent(rotation.GetMatrix())


def _world_of_ijk(volume, transform, ijk):
    """World RAS of a voxel of ``volume`` under ``transform``."""
    import numpy as np
    import vtk

    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    local = m.MultiplyPoint([float(ijk[0]), float(ijk[1]), float(ijk[2]), 1.0])
    to_world = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(to_world)
    return np.array(to_world.MultiplyPoint(local)[:3])


def _xy_of_world(slice_node, ras):
    import vtk

    m = vtk.vtkMatrix4x4()
    m.DeepCopy(slice_node.GetXYToRAS())
    m.Invert()
    xy = m.MultiplyPoint([float(ras[0]), float(ras[1]), float(ras[2]), 1.0])
    return xy[0], xy[1], xy[2]


def _drag(effect, view_widget, start, end):
    """A left-button drag from ``start`` to ``end`` (view pixels) in a slice view, as the interactor reports it."""
    import vtk

    interactor = vtk.vtkRenderWindowInteractor()  # only its event position and modifier keys are read

    def event(event_id, xy):
        interactor.SetEventPosition(int(round(xy[0])), int(round(xy[1])))
        return effect.processInteractionEvents(interactor, event_id, view_widget)

    event(vtk.vtkCommand.LeftButtonPressEvent, start)
    event(vtk.vtkCommand.MouseMoveEvent, ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2))
    event(vtk.vtkCommand.MouseMoveEvent, end)
    event(vtk.vtkCommand.LeftButtonReleaseEvent, end)


def _rotated_views(app, phantom, out):
    """9f: volume and segmentation under a parent transform that rotates 90 degrees about R: the axial (Red) view
    shows the volume's coronal plane; a box dragged there prompts that plane at the right slice and voxels. Then
    a 30 degree rotation: the Red view is oblique to the volume and the effect says so instead of prompting."""
    import numpy as np
    import slicer

    from DicomTeamAnnotateLib.core.segmentation import Segmentation
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

    volume = volume_to_node(phantom.volume, name="rotated phantom")
    volume.GetDisplayNode().SetWindowLevel(400, 40)
    seg = segmentation_to_node(Segmentation.from_masks({"liver": np.zeros(phantom.labels.shape, bool)},
                                                       phantom.volume.geometry),
                               reference_volume_node=volume, name="rotated segments")
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "patient rotation")
    _rotation(transform, 0, 90.0)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    seg.SetAndObserveTransformNodeID(transform.GetID())
    editor, _node, effect = _effect_on(seg, volume, "liver")

    red = slicer.app.layoutManager().sliceWidget("Red")
    slice_node = red.mrmlSliceNode()
    slice_node.SetOrientation("Axial")
    slice_node.SetDimensions(512, 512, 1)
    slice_node.SetFieldOfView(200.0, 200.0, 1.0)
    truth = phantom.labels == phantom.label_values["liver"]
    j = int(np.argmax(truth.sum(axis=(0, 2))))  # the coronal (J) slice with the most liver
    ks, is_ = np.nonzero(truth[:, j, :])
    corner0, corner1 = (int(is_.min()), j, int(ks.min())), (int(is_.max()), j, int(ks.max()))
    centre = _world_of_ijk(volume, transform, ((corner0[0] + corner1[0]) / 2, j, (corner0[2] + corner1[2]) / 2))
    slice_node.JumpSliceByCentering(*centre)
    start, end = (_xy_of_world(slice_node, _world_of_ijk(volume, transform, c)) for c in (corner0, corner1))
    _drag(effect, red, start, end)
    started = effect.model.busy
    effect.wait(600)
    session = effect.model.session
    anchor = session.anchors.get(j) if session else None
    mask = session.mask_volume().array if session else None
    out["rotated"] = {"status": effect.statusLabel.text, "started": started, "plane": session.plane if session else None,
                      "slice": session.last_prompted if session else None, "expected_slice": j,
                      "box": [round(v, 3) for v in anchor.box] if anchor is not None else None,
                      "expected_box": [corner0[0], corner0[2], corner1[0], corner1[2]],
                      "view_offsets": [round(start[2], 4), round(end[2], 4)],
                      "mask_slices": sorted(set(np.nonzero(mask)[1].tolist())) if mask is not None else None,
                      "preview_transform": effect.preview_node is not None
                      and effect.preview_node.GetTransformNodeID() == transform.GetID()}
    if mask is not None and mask.any():
        inside = mask[:, j, :][ks.min() - 2:ks.max() + 3, is_.min() - 2:is_.max() + 3].sum()
        out["rotated"]["inside_box"] = round(float(inside) / float(mask.sum()), 3)
        truth_slice = truth[:, j, :]
        both = np.count_nonzero(mask[:, j, :] & truth_slice)
        out["rotated"]["slice_dice"] = round(2 * both / (np.count_nonzero(mask[:, j, :]) + truth_slice.sum()), 3)

    # 30 degrees: the axial view cuts the volume obliquely; the effect says so and starts nothing
    _rotation(transform, 0, 30.0)
    app.process_events()
    shown = effect.model.preview_version
    slice_node.JumpSliceByCentering(*_world_of_ijk(volume, transform, (32, 32, 8)))
    centre_xy = _xy_of_world(slice_node, _world_of_ijk(volume, transform, (32, 32, 8)))
    _drag(effect, red, (centre_xy[0] - 40, centre_xy[1] - 40), (centre_xy[0] + 40, centre_xy[1] + 40))
    out["oblique"] = {"status": effect.statusLabel.text, "busy": effect.model.busy, "error": effect.model.error,
                      "prompted": effect.model.preview_version != shown}
    effect.wait(600)


def sam_buttons(app, scene_file):
    """The SamPrompt panel's Cancel and Clear cache, the effect's buttons, its preview (9b), rotated views (9f)."""
    import numpy as np

    from DicomTeamAnnotateLib.core.segmentation import Segmentation
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

    log = capture_log()
    out = {}
    phantom = make_phantom(seed=1, shape=(16, 64, 64), spacing=(1.5, 1.5, 3.0))
    volume = volume_to_node(phantom.volume, name="phantom")
    volume.GetDisplayNode().SetWindowLevel(400, 40)
    seg = segmentation_to_node(Segmentation.from_masks({name: np.zeros(phantom.labels.shape, bool)
                                                        for name in phantom.label_values}, phantom.volume.geometry),
                               reference_volume_node=volume, name="segments")
    _panel_precompute_cancel(app, volume, out)

    truth = phantom.labels == phantom.label_values["liver"]
    k = int(np.argmax(truth.sum(axis=(1, 2))))
    editor, editor_node, effect = _effect_on(seg, volume, "liver")
    _effect_buttons(app, effect, seg, volume, truth, k, out)
    effect = _preview_and_segmentation_change(app, editor, editor_node, effect, seg, volume, truth, k, scene_file, out)
    editor.setActiveEffectByName("")  # leave the effect (its preview goes)
    _rotated_views(app, phantom, out)
    _clear_cache(app, out)
    out["errors"] = errors(log)
    return out
