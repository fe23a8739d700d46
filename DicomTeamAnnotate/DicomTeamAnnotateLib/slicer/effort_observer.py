"""What Slicer reports about the work on the open case, told to its EffortTracker (worklist.effort).

Two MRML observations, both on the main thread (VTK events are delivered there):

* the case's segmentation node emitting ``vtkSegmentation.SegmentModified``: a Segment Editor
  operation, named by the active effect of the Segment Editor node that edits this segmentation
  (``vtkMRMLSegmentEditorNode.GetActiveEffectName``: qMRMLSegmentEditorWidget::setActiveEffect
  writes it there). One effect's apply can modify several segments, so events of one effect within
  ``COALESCE_S`` count as one operation (Slicer's one undo step). The SAM effect counts its own prompts
  and propagations (``connection.current_effort``), so its edits are activity only;
* the slice nodes' ModifiedEvent (scrolling, panning, zooming): activity. Time between actions
  counts as work unless the gap exceeds the tracker's idle threshold.
"""
from __future__ import annotations

import time

SAM_EFFECT = "SAM Prompt"  # SegmentEditorSamPromptLib's scriptedEffect.name
COALESCE_S = 1.0


class EffortObserver:
    """Observes one case's segmentation node and the scene's slice nodes until ``stop()``."""

    def __init__(self, tracker, segmentation_node, scene, clock=time.monotonic):
        import slicer
        import vtk

        self.tracker = tracker
        self.node = segmentation_node
        self.scene = scene
        self.clock = clock
        self._last_operation = (None, float("-inf"))
        self._observed = [(segmentation_node, segmentation_node.AddObserver(
            slicer.vtkSegmentation.SegmentModified, self._segment_modified))]
        for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            node = scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
            self._observed.append((node, node.AddObserver(vtk.vtkCommand.ModifiedEvent, self._view_changed)))

    def active_effect(self) -> str | None:
        """The active effect of the Segment Editor that edits this segmentation, or None."""
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSegmentEditorNode")):
            editor = self.scene.GetNthNodeByClass(i, "vtkMRMLSegmentEditorNode")
            if editor.GetSegmentationNode() is self.node:
                return editor.GetActiveEffectName() or None
        return None

    def _segment_modified(self, caller, event) -> None:
        name = self.active_effect()
        if name == SAM_EFFECT:
            self.tracker.activity()
            return
        now = self.clock()
        last_name, last_time = self._last_operation
        self._last_operation = (name, now)
        if name == last_name and now - last_time < COALESCE_S:
            self.tracker.activity()  # the same operation's next segment
        else:
            self.tracker.editor_operation(name or "edit")

    def _view_changed(self, caller, event) -> None:
        self.tracker.activity()

    def stop(self) -> None:
        for node, tag in self._observed:
            node.RemoveObserver(tag)
        self._observed = []
