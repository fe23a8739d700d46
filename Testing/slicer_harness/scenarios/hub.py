"""The DicomTeamAnnotate panel, clicked as a user does: connect, open, draw, autosave, submit, reopen,
load DICOM (and cancel it), a failing connection, the offline banner."""
from __future__ import annotations

import time

import numpy as np

from slicer_harness.scenarios.common import capture_log, status_messages


def _dialogs():
    import qt

    return list(qt.QProgressDialog.instances)


def project_round_trip(app, project, work, queue):
    """Connect to a folder project as alice, open c1, draw liver, autosave, submit, reopen; rev sees it."""
    import slicer

    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node
    from DicomTeamAnnotateLib.worklist.offline import OfflineQueue

    log = capture_log()
    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    w.logic.queue = OfflineQueue(queue)  # not the user's own queue
    out = {"connect_enabled_before": ui.connectButton.enabled}
    ui.storeLocationLineEdit.type_text(project)
    ui.userLineEdit.type_text("alice")
    ui.workFolderLineEdit.currentPath = work
    out["connect_enabled"] = ui.connectButton.enabled
    out["token_enabled_for_folder"] = ui.tokenLineEdit.enabled
    ui.connectButton.click()
    app.process_events(until=lambda: ui.worklistTableWidget.rowCount == 1 and not p.tasks.busy, timeout=60)
    out["status"] = ui.connectionStatusLabel.text
    out["worklist"] = ui.worklistTableWidget.rows()
    out["open_enabled_without_selection"] = ui.openCaseButton.enabled
    ui.worklistTableWidget.selectRow(0)
    out["open_enabled"] = ui.openCaseButton.enabled
    ui.openCaseButton.click()
    app.process_events(until=lambda: p.case.session is not None and not p.tasks.busy, timeout=300)
    session = p.case.session
    out["case_label"] = ui.currentCaseLabel.text
    out["segments"] = [session.segmentation_node.GetSegmentation().GetNthSegment(i).GetName()
                       for i in range(session.segmentation_node.GetSegmentation().GetNumberOfSegments())]
    out["submit_enabled"] = ui.submitButton.enabled
    layout = slicer.app.layoutManager()
    out["layout"] = layout.layout
    out["red_background"] = layout.sliceWidget("Red").mrmlSliceCompositeNode().GetBackgroundVolumeID() == \
        session.volume_node.GetID()
    # draw: the liver of the phantom's truth (a plain numpy mask put into the node, as an effect would)
    seg = w.logic.currentSegmentation(session)
    truth = np.zeros(seg.geometry.shape, bool)
    truth[2:5, 10:20, 10:25] = True
    segmentation_to_node(seg.with_masks({"liver": truth}), reference_volume_node=session.volume_node,
                         node=session.segmentation_node)
    p.case.autosave_tick()
    app.process_events(until=lambda: p.case._draft_task is not None and p.case._draft_task.done, timeout=60)
    p.case.autosave_tick()  # reports the finished draft
    out["draft_written"] = session.draft_path.is_file()
    ui.messageLineEdit.type_text("liver done")
    ui.submitButton.click()
    app.process_events(until=lambda: not p.tasks.busy and "Submitted" in ui.currentCaseLabel.text, timeout=120)
    app.process_events(until=lambda: not p.tasks.busy, timeout=30)
    out["after_submit"] = ui.currentCaseLabel.text
    out["message_cleared"] = ui.messageLineEdit.text
    out["worklist_after_submit"] = ui.worklistTableWidget.rows()
    out["versions"] = ui.versionsTableWidget.rows()
    ui.reopenButton.click()
    app.process_events(until=lambda: not p.tasks.busy, timeout=60)
    app.process_events(until=lambda: not p.tasks.busy, timeout=60)
    out["worklist_after_reopen"] = ui.worklistTableWidget.rows()
    out["status_messages"] = status_messages()
    dialogs = _dialogs()
    out["dialogs"] = [{"visible": d.visible, "closed": d.closed_count, "autoClose": d.autoClose,
                       "canceled_slots": d.connected("canceled()")} for d in dialogs]
    out["errors"] = [m for level, m in log.records if level == "ERROR"]
    return out


def prediction_start_and_effort(app, project, work, queue):
    """Issue 13 in the panel: the worklist ordered by the model's uncertainty shows model and score; the case
    opens from the model's prediction and says so; edits in the Segment Editor and view moves are counted;
    the pushed version descends from the prediction and carries the effort record."""
    import slicer

    from DicomTeamAnnotateLib.slicer.connection import current_effort, open_case_effort
    from DicomTeamAnnotateLib.worklist.offline import OfflineQueue

    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    w.logic.queue = OfflineQueue(queue)
    ui.storeLocationLineEdit.type_text(project)
    ui.userLineEdit.type_text("alice")
    ui.workFolderLineEdit.currentPath = work
    ui.connectButton.click()
    app.process_events(until=lambda: ui.worklistTableWidget.rowCount == 3 and not p.tasks.busy, timeout=60)
    out = {"order_choices": [ui.orderComboBox.itemData(i) for i in range(ui.orderComboBox.count)],
           "worklist_first": ui.worklistTableWidget.rows()}
    ui.orderComboBox.setCurrentIndex(ui.orderComboBox.findData("uncertainty"))
    app.process_events(until=lambda: not p.tasks.busy, timeout=60)
    out["worklist_uncertainty"] = ui.worklistTableWidget.rows()
    out["headers"] = [ui.worklistTableWidget.horizontalHeaderItem(c).text()
                      for c in range(ui.worklistTableWidget.columnCount)]
    ids = [row[0] for row in out["worklist_uncertainty"]]
    ui.worklistTableWidget.selectRow(ids.index("c1"))
    ui.openCaseButton.click()
    app.process_events(until=lambda: p.case.session is not None and not p.tasks.busy, timeout=300)
    session = p.case.session
    out["case_label"] = ui.currentCaseLabel.text
    out["versions"] = ui.versionsTableWidget.rows()
    tracker = current_effort(session.segmentation_node)
    out["tracker_start"] = (tracker.start, tracker.start_version) if tracker else None
    # the Segment Editor on the case, its strokes applied as every effect applies them: through Slicer's own
    # vtkSlicerSegmentEditorLogic (SaveStateForUndo + ModifySegmentByLabelmap), under the active effect's name
    # (qMRMLSegmentEditorWidget::setActiveEffect writes it into the editor node)
    editor_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor_node.SetAndObserveSegmentationNode(session.segmentation_node)
    editor_node.SetAndObserveSourceVolumeNode(session.volume_node)
    liver = session.segmentation_node.GetSegmentation().GetSegmentIdBySegmentName("liver")
    editor_node.SetSelectedSegmentID(liver)
    editor = slicer.vtkSlicerSegmentEditorLogic()
    editor.SetMRMLScene(slicer.mrmlScene)
    editor.SetSegmentEditorNode(editor_node)
    modes = slicer.vtkSlicerSegmentEditorLogic
    add, remove = modes.ModificationModeAdd, modes.ModificationModeRemove
    editor_node.SetActiveEffectName("Paint")
    # three strokes beyond the model's liver (slices 3-6), a user's pace apart; the third is undone
    for region in (np.s_[8:10, 12:20, 12:16], np.s_[8:10, 12:20, 16:20], np.s_[10, 12:20, 12:20]):
        _stroke(editor, session, liver, region, add)
        time.sleep(0.4)
    editor.Undo()  # not an operation of its own
    editor_node.SetActiveEffectName("Erase")
    _stroke(editor, session, liver, np.s_[8, 12:14, 12:14], remove)  # 4 of the 128 voxels painted
    red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode()
    red.SetSliceOffset(red.GetSliceOffset() + 3.0)  # scrolling is activity
    out["counts"] = tracker.counts() if tracker else None
    ui.messageLineEdit.type_text("corrected the model")
    ui.saveVersionButton.click()
    app.process_events(until=lambda: not p.tasks.busy and "Pushed" in ui.currentCaseLabel.text, timeout=120)
    out["after_push"] = ui.currentCaseLabel.text
    mine = [v for v in session.store.list_versions("c1") if v["kind"] != "prediction"]
    out["pushed"] = {"parent": mine[-1]["parent"], "effort": (mine[-1].get("meta") or {}).get("effort")} if mine else None
    # another case opened: the first case's effort no longer counts what happens in the scene
    p.case.scene_closing()
    out["effort_after_close"] = open_case_effort() is None
    return out


def _stroke(editor, session, segment_id, region, mode):
    """One effect's apply: ``region`` of the case's grid as the modifier labelmap, through Slicer's editor logic."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    shape = slicer.util.arrayFromVolume(session.volume_node).shape
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(shape[2], shape[1], shape[0])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(shape)
    voxels[:] = 0
    voxels[region] = 1
    matrix = vtk.vtkMatrix4x4()
    session.volume_node.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    image.Modified()
    editor.SaveStateForUndo()
    editor.ModifySegmentByLabelmap(session.segmentation_node, segment_id, image, mode, False, False)


def reviewer_loads_version(app, project, work):
    """A reviewer connects, selects the case, lists and loads alice's version."""
    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    ui.storeLocationLineEdit.type_text(project)
    ui.userLineEdit.type_text("rev")
    ui.workFolderLineEdit.currentPath = work
    ui.connectButton.click()
    app.process_events(until=lambda: ui.worklistTableWidget.rowCount == 1 and not p.tasks.busy, timeout=60)
    ui.worklistTableWidget.selectRow(0)
    ui.refreshVersionsButton.click()
    app.process_events(until=lambda: ui.versionsTableWidget.rowCount >= 1 and not p.tasks.busy, timeout=60)
    versions = ui.versionsTableWidget.rows()
    ui.versionsTableWidget.selectRow(0)
    load_enabled = ui.loadVersionButton.enabled
    import slicer

    before = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    ui.loadVersionButton.click()
    app.process_events(until=lambda: not p.tasks.busy and
                       slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") > before, timeout=120)
    node = slicer.mrmlScene.GetNthNodeByClass(before, "vtkMRMLSegmentationNode")
    return {"versions": versions, "load_enabled": load_enabled,
            "loaded": node.GetName() if node is not None else None}


def connect_fails(app, location):
    """Connecting to a folder that is not a project: an error naming it, still not connected."""
    log = capture_log()
    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    ui.storeLocationLineEdit.type_text(location)
    ui.userLineEdit.type_text("alice")
    ui.connectButton.click()
    app.process_events(until=lambda: not p.tasks.busy, timeout=30)
    app.process_events()
    return {"status": ui.connectionStatusLabel.text, "connected": p.project.connected,
            "errors": [m for level, m in log.records if level == "ERROR"], "status_messages": status_messages()}


def load_dicom_and_cancel(app, folder):
    """Load a DICOM folder to the end; then again, cancelled from the progress dialog."""
    import slicer

    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    out = {"load_enabled_empty": ui.loadButton.enabled}
    ui.inputPathLineEdit.currentPath = folder
    out["load_enabled"] = ui.loadButton.enabled
    ui.loadButton.click()
    app.process_events(until=lambda: not p.tasks.busy, timeout=600)
    out["summary"] = ui.loadSummaryLabel.text
    out["volumes"] = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    out["preset_enabled"] = ui.windowPresetComboBox.enabled
    ui.windowPresetComboBox.choose(ui.windowPresetComboBox.findText("lung"))
    volume = w._parameterNode.volume
    display = volume.GetDisplayNode()
    out["window"] = [display.GetWindow(), display.GetLevel()]
    ui.threePlaneLayoutButton.click()
    out["layout"] = slicer.app.layoutManager().layout
    out["status_before_cancel"] = status_messages()
    ui.loadButton.click()
    dialog = _dialogs()[-1]
    dialog.cancel()  # the user's Cancel, while the files are read
    app.process_events(until=lambda: not p.tasks.busy, timeout=600)
    out["summary_cancelled"] = ui.loadSummaryLabel.text
    out["volumes_after_cancel"] = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    out["status_messages"] = status_messages()
    # clearing the path (ctkPathLineEdit emits no currentPathChanged for ''): the button follows
    ui.inputPathLineEdit.currentPath = ""
    out["load_enabled_cleared"] = ui.loadButton.enabled
    return out


def load_dicom_needing_decoders(app, folder):
    """A folder of JPEG Lossless (process 14) files, which Slicer's own packages cannot decode: Load asks for
    the decoders once the headers say so, installs them when the user agrees, and reads the files again."""
    import slicer

    w = app.panel("DicomTeamAnnotate")
    ui, p = w.ui, w.panel
    ui.inputPathLineEdit.currentPath = folder
    ui.loadButton.click()
    app.process_events(until=lambda: not p.tasks.busy and ui.loadSummaryLabel.text.startswith("Loaded"),
                       timeout=900)
    return {"summary": ui.loadSummaryLabel.text, "report": [list(r) for r in p.dicom.report_rows],
            "volumes": slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")}


def custom_window_range(app):
    """The custom window spin boxes keep the .ui file's range after the parameter node connects."""
    w = app.panel("DicomTeamAnnotate")
    app.panel("ConsensusReview")
    w = app.panel("DicomTeamAnnotate")  # enter() again: connectGui runs again
    return {"width_min": w.ui.customWidthSpinBox.minimum, "width_max": w.ui.customWidthSpinBox.maximum,
            "level_min": w.ui.customLevelSpinBox.minimum, "autosave_min": w.ui.autosaveSecondsSpinBox.minimum}
