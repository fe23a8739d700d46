"""What Slicer reports about the work on the open case, told to its EffortTracker (worklist.effort).

Observations on the main thread (VTK events are delivered there), checked against Slicer 5.12's source:

* ``vtkSegmentation.SourceRepresentationModified`` on the case's segmentation node (which re-invokes its
  segmentation's events): the voxels of a segment changed. vtkSlicerSegmentEditorLogic::ModifySegmentByLabelmap,
  which every Segment Editor effect's apply goes through, sends it once per apply (twice in "set" mode);
  undo, redo, renaming and "Show 3D" do not. (``SegmentModified`` is the wrong event: a stroke changes the
  voxels in place, so it fires only on a segment's first edit, and fires for renames and undo.) Each
  apply is an operation named by the active effect of the Segment Editor node that edits this
  segmentation (``vtkMRMLSegmentEditorNode.GetActiveEffectName``: qMRMLSegmentEditorWidget::setActiveEffect
  writes it there); the events of one apply arrive together, so events of the same effect within
  ``COALESCE_S`` of the counted one are that apply's. The SAM effect counts its own prompts and
  propagations (``connection.current_effort``), so its applies are activity only;
* ``SegmentModified`` (rename, colour, status, undo): activity;
* the slice nodes' ModifiedEvent (scrolling, panning, zooming): activity. Time between actions counts as
  work unless the gap exceeds the tracker's idle threshold.
"""
from __future__ import annotations

import time

SAM_EFFECT = "SAM Prompt"  # SegmentEditorSamPromptLib's scriptedEffect.name
SEGMENT_EDITOR_TAG = "SegmentEditor"  # the singleton tag of the Segment Editor module's own editor node
COALESCE_S = 0.3  # one apply's events arrive together; a user's next stroke takes longer than this


class EffortObserver:
    """Observes one case's segmentation node and the scene's slice nodes until ``stop()``."""

    def __init__(self, tracker, segmentation_node, scene, clock=time.monotonic):
        import slicer
        import vtk

        self.tracker = tracker
        self.node = segmentation_node
        self.scene = scene
        self.clock = clock
        self._counted = (None, float("-inf"))  # (effect, time) of the last operation counted
        self._observed = [
            (segmentation_node, segmentation_node.AddObserver(slicer.vtkSegmentation.SourceRepresentationModified,
                                                              self._voxels_modified)),
            (segmentation_node, segmentation_node.AddObserver(slicer.vtkSegmentation.SegmentModified,
                                                              self._activity))]
        for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            node = scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
            self._observed.append((node, node.AddObserver(vtk.vtkCommand.ModifiedEvent, self._activity)))

    def active_effect(self) -> str | None:
        """The active effect of a Segment Editor that edits this segmentation, or None.

        Several editor nodes may point at it (the Segment Editor module's, one embedded in another
        module); one with an active effect wins, the module's own first (leaving the module clears its name).
        """
        named = []
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSegmentEditorNode")):
            editor = self.scene.GetNthNodeByClass(i, "vtkMRMLSegmentEditorNode")
            if editor.GetSegmentationNode() is self.node and editor.GetActiveEffectName():
                named.append((editor.GetSingletonTag() != SEGMENT_EDITOR_TAG, editor.GetActiveEffectName()))
        return min(named)[1] if named else None

    def _voxels_modified(self, caller, event) -> None:
        name = self.active_effect()
        if name == SAM_EFFECT:
            self.tracker.activity()
            return
        now = self.clock()
        last_name, last_time = self._counted
        if name == last_name and now - last_time < COALESCE_S:
            self.tracker.activity()  # the same apply's next event
            return
        self._counted = (name, now)
        self.tracker.editor_operation(name or "edit")

    def _activity(self, caller, event) -> None:
        self.tracker.activity()

    def stop(self) -> None:
        for node, tag in self._observed:
            node.RemoveObserver(tag)
        self._observed = []
