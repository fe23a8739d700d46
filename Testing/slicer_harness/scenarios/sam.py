"""SAM Prompt inside Slicer: the effect's registration and module name, the panel's settings, the effect's
main action through the module's own self-test, Stop that really stops."""
from __future__ import annotations

import sys

from slicer_harness.scenarios.common import segment_editor_on


def registration_and_panel(app):
    """The effect is registered at startup; SamPromptLib stays the package; the panel saves settings."""
    import qt
    import slicer

    out = {"effects": [e.name for e in slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects()],
           "SamPromptLib": getattr(sys.modules.get("SamPromptLib"), "__path__", None) is not None,
           "effect_module": getattr(sys.modules.get("SegmentEditorSamPromptLib"), "__file__", "")}
    w = app.panel("SamPrompt")
    ui = w.ui
    out["effect_status"] = ui.effectStatusLabel.text
    out["backends"] = [ui.backendComboBox.itemText(i) for i in range(ui.backendComboBox.count)]
    ui.cacheSizeSpinBox.value = 256
    out["cache_setting"] = qt.QSettings().value("SamPrompt/cache_mb")
    ui.checkpointPathLineEdit.currentPath = "/no/such/checkpoint.pth"
    out["bad_checkpoint_status"] = ui.settingsStatusLabel.text
    ui.checkpointPathLineEdit.currentPath = ""  # back to the shipped weights: must be saved too
    out["checkpoint_after_clear"] = qt.QSettings().value("SamPrompt/checkpoint")
    out["precompute_enabled_without_volume"] = ui.precomputeButton.enabled
    return out


def self_test(app):
    """The module's own test, as ctest runs it (first use installs torch and the SAM packages)."""
    import slicer

    slicer.selfTests["SamPrompt"]()
    return {"ok": True}


def stop_drops_a_running_prompt(app):
    """Stop while a prompt runs: its result never shows; the effect is free again."""
    import numpy as np

    from DicomTeamAnnotateLib.core.segmentation import Segmentation
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

    phantom = make_phantom(seed=1, shape=(16, 64, 64), spacing=(1.5, 1.5, 3.0))
    volume = volume_to_node(phantom.volume, name="phantom")
    empty = Segmentation.from_masks({"liver": np.zeros(phantom.labels.shape, bool)}, phantom.volume.geometry)
    seg = segmentation_to_node(empty, reference_volume_node=volume)
    editor, node = segment_editor_on(seg, volume, seg.GetSegmentation().GetNthSegmentID(0), "SAM Prompt")
    effect = editor.activeEffect().self()
    started = effect.prompt_box("axial", 8, (10, 10, 40, 40))
    busy_after_start = effect.model.busy
    effect.stopButton.click()
    finished = effect.wait(300)
    out = {"started": started, "busy_after_start": busy_after_start, "finished": finished,
           "preview": effect.model.has_preview, "preview_node": effect.preview_node is not None,
           "status": effect.model.status}
    # a prompt after that works, and its preview is not saved with the scene
    effect.prompt_box("axial", 8, (10, 10, 40, 40))
    effect.wait(300)
    out["second_preview"] = effect.model.has_preview
    out["preview_saved_with_scene"] = bool(effect.preview_node.GetSaveWithScene()) if effect.preview_node else None
    # Stop during a correction on another slice: the preview, and what Apply would write, stay as they were
    shown = effect.model.session.mask_volume().array.copy()
    effect.prompt_box("axial", 11, (12, 12, 42, 42))
    effect.stopButton.click()
    effect.wait(300)
    out["anchors_after_stopped_correction"] = sorted(effect.model.session.anchors)
    out["results_after_stopped_correction"] = sorted(effect.model.session.results)
    out["apply_would_write_what_is_shown"] = bool(np.array_equal(effect.model.session.mask_volume().array, shown))
    return out


def precompute_feeds_the_effect(app):
    """The panel's precomputation fills the cache the effect reads, also under a parent transform."""
    import numpy as np
    import slicer

    from DicomTeamAnnotateLib.core.segmentation import Segmentation
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node
    from SamPromptLib import shared
    from SamPromptLib.mrml import image_volume, volume_from_node

    phantom = make_phantom(seed=2, shape=(10, 64, 64), spacing=(1.5, 1.5, 3.0))
    volume = volume_to_node(phantom.volume, name="phantom")
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = transform.GetMatrixTransformToParent()
    matrix.SetElement(0, 3, 25.0)  # a shifted volume: the effect works in the segmentation's frame
    transform.SetMatrixTransformToParent(matrix)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    empty = Segmentation.from_masks({"liver": np.zeros(phantom.labels.shape, bool)}, phantom.volume.geometry)
    seg = segmentation_to_node(empty, reference_volume_node=volume)
    seg.SetAndObserveTransformNodeID(transform.GetID())
    w = app.panel("SamPrompt")
    w._parameterNode.volume = volume
    w.ui.planeComboBox.setCurrentIndex(w.ui.planeComboBox.findData("axial"))
    w.ui.precomputeButton.click()
    app.process_events(until=lambda: not w.panel.tasks.busy and not w.panel.precomputing, timeout=900)
    cached = shared.shared_cache().stats()["entries"]
    editor, node = segment_editor_on(seg, volume, seg.GetSegmentation().GetNthSegmentID(0), "SAM Prompt")
    effect = editor.activeEffect().self()
    effect_volume = image_volume(effect.scriptedEffect.sourceVolumeImageData())[0]
    same_key = shared.volume_fingerprint(effect_volume) == shared.volume_fingerprint(volume_from_node(volume))
    effect.prompt_box("axial", 5, (10, 10, 50, 50))
    effect.wait(300)
    return {"precompute_status": w.ui.precomputeStatusLabel.text, "cached_after_precompute": cached,
            "cached_after_prompt": shared.shared_cache().stats()["entries"], "same_key": same_key,
            "preview": effect.model.has_preview,
            "preview_transform": effect.preview_node.GetTransformNodeID() == transform.GetID()}


def remote_prompt(app, url, token, case, server_pid):
    """An annotator's Slicer segments on the project server: the case opened from the server in the hub,
    'Run on: the project server' in SAM Prompt, a box in the effect; then the server dies: a clear message,
    and 'Use this computer' offered."""
    import os
    import signal

    import numpy as np
    import slicer

    hub = app.panel("DicomTeamAnnotate")
    ui, p = hub.ui, hub.panel
    ui.storeLocationLineEdit.type_text(url)
    ui.userLineEdit.type_text("alice")
    ui.tokenLineEdit.type_text(token)
    ui.connectButton.click()
    app.process_events(until=lambda: ui.worklistTableWidget.rowCount >= 1 and not p.tasks.busy, timeout=60)
    ids = [ui.worklistTableWidget.item(r, 0).text() for r in range(ui.worklistTableWidget.rowCount)]
    ui.worklistTableWidget.selectRow(ids.index(case))
    ui.openCaseButton.click()
    app.process_events(until=lambda: p.case.session is not None and not p.tasks.busy, timeout=300)
    session = p.case.session
    installs_before = len(slicer.packaging.record)  # the hub's own first use (pynrrd, to open the case)
    sam = app.panel("SamPrompt")
    sam.ui.backendComboBox.setCurrentIndex(sam.ui.backendComboBox.findData("litemedsam-fp32"))
    sam.ui.runOnComboBox.setCurrentIndex(sam.ui.runOnComboBox.findData("server"))
    out = {"precompute_enabled": sam.ui.precomputeButton.enabled}
    seg = session.segmentation_node
    editor, node = segment_editor_on(seg, session.volume_node, seg.GetSegmentation().GetNthSegmentID(0), "SAM Prompt")
    effect = editor.activeEffect().self()
    out["started"] = effect.prompt_box("axial", 8, (14, 14, 44, 44))
    out["finished"] = effect.wait(300)
    out["preview"] = effect.model.has_preview
    out["answered_by"] = effect.model.answered_by
    out["status"] = effect.model.status
    out["preview_voxels"] = int(np.count_nonzero(effect.model.session.mask_volume().array)) if out["preview"] else 0
    out["installs"] = [i["missing"] for i in slicer.packaging.record[installs_before:] if i["call"] == "pip_ensure"]
    from DicomTeamAnnotateLib.slicer.connection import current_effort

    tracker = current_effort(session.segmentation_node)  # the hub's effort of the open case (issue 13)
    out["sam_prompts_counted"] = tracker.sam_prompts if tracker is not None else None
    os.kill(server_pid, signal.SIGKILL)
    effect.prompt_box("axial", 9, (14, 14, 44, 44))
    effect.wait(300)
    out["sam_prompts_after_failure"] = tracker.sam_prompts if tracker is not None else None
    out["after_kill_status"] = effect.model.status
    out["fallback_offered"] = effect.useLocalButton.visible
    out["preview_kept"] = effect.model.has_preview
    effect.useLocalButton.click()
    import qt

    out["run_on_after_fallback"] = qt.QSettings().value("SamPrompt/run_on")
    return out
