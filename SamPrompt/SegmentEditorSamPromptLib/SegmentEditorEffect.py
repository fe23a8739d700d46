"""Segment Editor effect "SAM Prompt": a box or +/- clicks in a slice view -> a medical SAM mask.

This file is ALONE in its folder: Slicer's qSlicerSegmentEditorScriptedEffect::setPythonSource loads it
as a module named after the folder (SegmentEditorSamPromptLib) and puts it in sys.modules under that
name, so no package of that name may exist. It is the Qt/VTK side only: mouse events become prompts
of SamPromptLib.effect_model.EffectModel (prompts, propagation, Stop/Cancel on a worker, Qt-free), and
the model's state is copied to the options panel and to a preview segment. Apply writes the preview
into the selected segment as one undo step through ``modifySelectedSegmentByLabelmap`` (so the editable
area, intensity range and overwrite rules apply). Missing packages are installed at first use.
"""
import os

import numpy as np
import qt
import slicer
import vtk
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect
from slicer.i18n import tr as _

from DicomTeamAnnotateLib.slicer.connection import CASE_ATTRIBUTE, current_effort, current_store
from DicomTeamAnnotateLib.slicer.packages import Installer
from DicomTeamAnnotateLib.slicer.ui import SlicerUi
from SamPromptLib import shared
from SamPromptLib.effect_model import EffectModel
from SamPromptLib.mrml import image_volume, labelmap_like, view_normal_axis

PLANE_OF_AXIS = {2: "axial", 1: "coronal", 0: "sagittal"}  # the IJK axis normal to the view
AXIS_OF_PLANE = {plane: axis for axis, plane in PLANE_OF_AXIS.items()}
DRAG_PIXELS = 4  # a press-release that moves less than this is a click, not a box
ALIGNED = 0.999  # |cos| between the view's normal and a volume axis for the view to count as aligned


class BoxRubberBand:
    """The box being dragged, drawn as a 2D outline in one slice view."""

    def __init__(self, effect, view_widget, xy):
        self.effect, self.view_widget, self.start = effect, view_widget, xy
        self.points = vtk.vtkPoints()
        self.points.SetNumberOfPoints(4)
        lines = vtk.vtkCellArray()
        lines.InsertNextCell(5, [0, 1, 2, 3, 0])
        poly = vtk.vtkPolyData()
        poly.SetPoints(self.points)
        poly.SetLines(lines)
        mapper = vtk.vtkPolyDataMapper2D()
        mapper.SetInputData(poly)
        self.actor = vtk.vtkActor2D()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(1.0, 0.85, 0.1)
        self.actor.GetProperty().SetLineWidth(2)
        self.poly = poly
        effect.scriptedEffect.addActor2D(view_widget, self.actor)
        self.update(xy)

    def update(self, xy):
        (x0, y0), (x1, y1) = self.start, xy
        for n, (x, y) in enumerate(((x0, y0), (x1, y0), (x1, y1), (x0, y1))):
            self.points.SetPoint(n, x, y, 0)
        self.poly.Modified()
        self.view_widget.sliceView().scheduleRender()

    def remove(self):
        self.effect.scriptedEffect.removeActor2D(self.view_widget, self.actor)
        self.view_widget.sliceView().scheduleRender()


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """SAM Prompt: box/point prompts in slice views, preview, 3D propagation, Apply/Cancel."""

    def __init__(self, scriptedEffect):
        """Called by the effect factory when the effect is registered and when it is cloned."""
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        scriptedEffect.name = "SAM Prompt"  # no tr: modules find effects by name
        scriptedEffect.title = _("SAM Prompt")
        scriptedEffect.perSegment = True
        scriptedEffect.requireSegments = True
        ui = SlicerUi()
        self.model = EffectModel(ui, Installer(_("SAM Prompt"), ui))
        self.model.on_change(self.update_gui)
        self.model.effort = self._case_effort
        self.image = None            # the source vtkOrientedImageData the model works on
        self.extent_start = (0, 0, 0)
        self.rubber_band = None
        self.press = None            # (xy, view widget, ctrl/shift) of a left press in progress
        self.preview_node = None
        self._shown_preview = -1

    def _case_effort(self):
        """The EffortTracker of the project case whose segmentation this effect edits, or None."""
        parameters = self.scriptedEffect.parameterSetNode()
        return current_effort(parameters.GetSegmentationNode()) if parameters is not None else None

    def clone(self):
        """Called by the Segment Editor to make one instance per editor widget."""
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        cloned = effects.qSlicerSegmentEditorScriptedEffect(None)
        cloned.setPythonSource(__file__.replace("\\", "/"))
        return cloned

    def icon(self):
        """Called by the Segment Editor for the effect's button."""
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Icons",
                            "SamPrompt.png")
        return qt.QIcon(path) if os.path.exists(path) else qt.QIcon()

    def helpText(self):
        """Called by the Segment Editor for the effect's help box."""
        return "<html>" + _(
            "Segment with a medical Segment Anything model (LiteMedSAM by default, chosen in the SAM Prompt "
            "module).<p><b>Drag</b> a box around the structure in a slice view; <b>click</b> to add a positive "
            "point, <b>Ctrl+click</b> for a negative one (SAM backends; LiteMedSAM takes boxes only and grows "
            "the box to include positive clicks). The preview appears at once. <b>Propagate</b> carries it "
            "through the volume; a bad slice is fixed with one more box there and Propagate again. "
            "<b>Apply</b> writes the preview into the selected segment (one undo step), respecting the masking "
            "settings.") + "</html>"

    def cleanup(self):
        """Called before the effect object is deleted."""
        self.model.deactivate()
        self.remove_preview()

    # ----- options panel ---------------------------------------------------------------------------
    def setupOptionsFrame(self):
        """Called once by the Segment Editor to build the effect's options."""
        self.statusLabel = qt.QLabel(self.model.status)
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

        row = qt.QHBoxLayout()
        self.propagateButtons = {}
        for direction, text in (("down", _("Propagate down")), ("both", _("Propagate both")), ("up", _("Propagate up"))):
            button = qt.QPushButton(text)
            button.toolTip = _("Carry the previewed mask slice by slice ({direction}) until the structure ends; "
                               "between two prompted slices both ends meet.").format(direction=direction)
            button.connect("clicked()", lambda d=direction: self.model.propagate(d))
            row.addWidget(button)
            self.propagateButtons[direction] = button
        self.scriptedEffect.addOptionsWidget(row)

        self.replaceCheckBox = qt.QCheckBox(_("Replace the segment (else add to it)"))
        self.scriptedEffect.addOptionsWidget(self.replaceCheckBox)

        self.progressBar = qt.QProgressBar()
        self.progressBar.visible = False
        self.stopButton = qt.QPushButton(_("Stop"))
        self.stopButton.visible = False
        self.stopButton.connect("clicked()", self.model.stop)
        progressRow = qt.QHBoxLayout()
        progressRow.addWidget(self.progressBar)
        progressRow.addWidget(self.stopButton)
        self.scriptedEffect.addOptionsWidget(progressRow)

        self.answeredByLabel = qt.QLabel("")
        self.answeredByLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.answeredByLabel)
        self.useLocalButton = qt.QPushButton(_("Use this computer"))
        self.useLocalButton.toolTip = _("The project server did not answer: segment with the model in Slicer instead.")
        self.useLocalButton.visible = False
        self.useLocalButton.connect("clicked()", self.model.use_local)
        self.scriptedEffect.addOptionsWidget(self.useLocalButton)

        buttons = qt.QHBoxLayout()
        self.applyButton = qt.QPushButton(_("Apply"))
        self.applyButton.toolTip = _("Write the preview into the selected segment (one undo step).")
        self.applyButton.connect("clicked()", self.on_apply)
        self.cancelButton = qt.QPushButton(_("Cancel"))
        self.cancelButton.toolTip = _("Stop the work and discard the preview and the prompts.")
        self.cancelButton.connect("clicked()", self.model.cancel)
        buttons.addWidget(self.cancelButton)
        buttons.addWidget(self.applyButton)
        self.scriptedEffect.addOptionsWidget(buttons)
        self.update_gui()

    def update_gui(self):
        """Called when the model changes: buttons, status, progress, the preview segment."""
        m = self.model
        if hasattr(self, "applyButton"):
            for button in self.propagateButtons.values():
                button.enabled = m.can_propagate
            self.applyButton.enabled = m.can_apply
            self.cancelButton.enabled = m.can_cancel
            self.progressBar.visible = self.stopButton.visible = m.busy
            fraction = m.progress[0] if m.progress else None
            if fraction is None:
                self.progressBar.setRange(0, 0)
            else:
                self.progressBar.setRange(0, 100)
                self.progressBar.value = int(100 * fraction)
            self.statusLabel.text = m.status
            self.statusLabel.setStyleSheet("color: #d04040" if m.error else "")
            self.answeredByLabel.text = _("Answered by {who}.").format(who=m.answered_by) if m.answered_by else ""
            self.useLocalButton.visible = m.fallback_offered
        if self._shown_preview != m.preview_version:
            self._shown_preview = m.preview_version
            if m.has_preview:
                self.show_preview()
            else:
                self.remove_preview()

    # ----- life cycle ------------------------------------------------------------------------------
    def activate(self):
        """Called when the user selects the effect."""
        self.model.say(_("Drag a box around the structure in a slice view."))

    def deactivate(self):
        """Called when the user leaves the effect: stop work, drop the preview (not applied)."""
        self.model.deactivate()

    def sourceVolumeNodeChanged(self):
        """Called by the Segment Editor when the source volume changes: start over."""
        self.model.discard()

    def referenceGeometryChanged(self):
        """Called when the segmentation's geometry (or the segmentation node) changes: start over."""
        self.model.discard()

    # ----- the source volume and the views ----------------------------------------------------------
    def _segmentation_node(self):
        return self.scriptedEffect.parameterSetNode().GetSegmentationNode()

    def _parent_transform(self):
        node = self._segmentation_node()
        return node.GetParentTransformNode() if node is not None else None

    def prepare_source(self) -> bool:
        """Main thread: the settings, first-use packages and the source volume handed to the model."""
        image = self.scriptedEffect.sourceVolumeImageData()
        node = self.scriptedEffect.parameterSetNode().GetSourceVolumeNode()
        if image is None or node is None:
            self.model.say(_("Select a source volume first."), error=True)
            return False
        if not self.model.read_settings():  # pip and dialogs: main thread only
            return False
        if self.model.settings["run_on"] == "server" and not self.model.set_remote(
                current_store(), node.GetAttribute(CASE_ATTRIBUTE)):
            return False
        # Slicer re-resamples its aligned source image only when the node or a transform changes; voxels
        # edited in place (arrayFromVolumeModified) show in the node's image data instead: both name the volume
        volume_id = f"{node.GetID()}:{image.GetMTime()}:{node.GetImageData().GetMTime()}"
        window = shared.display_window(node.GetDisplayNode())
        if self.model.source is None or self.model.source[1] != volume_id or self.model.source[2] != window:
            volume, self.extent_start = image_volume(image)
            self.image = image
            self.model.set_source(volume, volume_id, window)
        return True

    def view_plane(self, view_widget):
        """The plane a slice view shows, or None with a message when it is oblique to the volume."""
        axis, alignment = view_normal_axis(view_widget.mrmlSliceNode(), self.image, self._parent_transform())
        if alignment < ALIGNED:
            self.model.say(_("This view is oblique to the volume's axes. Align it first (slice view menu: "
                             "'Rotate to volume plane'), then prompt again."), error=True)
            return None
        return PLANE_OF_AXIS[axis]

    def to_plane(self, xy, view_widget, axis):
        """(slice index, A, B) of a view position: the volume's IJK, in the plane's in-plane axes."""
        ijk = np.array(self.xyToIjk(xy, view_widget, self.image, self._parent_transform())) - np.array(self.extent_start)
        in_plane = [a for a in (0, 1, 2) if a != axis]
        return int(ijk[axis]), float(ijk[in_plane[0]]), float(ijk[in_plane[1]])

    # ----- interaction -------------------------------------------------------------------------------
    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        """Called for mouse events in views: press/drag/release draws a box, a click adds a point."""
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            negative = bool(callerInteractor.GetControlKey() or callerInteractor.GetShiftKey())
            self.press = (callerInteractor.GetEventPosition(), viewWidget, negative)
            return True
        if self.press is None or self.press[1] is not viewWidget:
            return False
        xy = callerInteractor.GetEventPosition()
        start, _view, negative = self.press
        moved = max(abs(xy[0] - start[0]), abs(xy[1] - start[1])) >= DRAG_PIXELS
        if eventId == vtk.vtkCommand.MouseMoveEvent:
            if moved and not negative:
                if self.rubber_band is None:
                    self.rubber_band = BoxRubberBand(self, viewWidget, start)
                self.rubber_band.update(xy)
            return True
        if eventId == vtk.vtkCommand.LeftButtonReleaseEvent:
            self.press = None
            if self.rubber_band is not None:
                self.rubber_band.remove()
                self.rubber_band = None
            self.on_view_prompt(viewWidget, start, xy if moved and not negative else None, negative)
            return True
        return False

    def on_view_prompt(self, view_widget, start, end, negative):
        """A box (start..end) or a click (end None) in a slice view."""
        if self.model.busy:
            self.model.say(_("Still working; wait or press Stop."))
            return
        if not self.prepare_source():
            return
        plane = self.view_plane(view_widget)
        if plane is None:
            return
        axis = AXIS_OF_PLANE[plane]
        k, a0, b0 = self.to_plane(start, view_widget, axis)
        if not 0 <= k < self.model.source[0].array.shape[2 - axis]:
            self.model.say(_("That position is outside the source volume."), error=True)
            return
        if end is None:
            self.model.prompt(plane, k, point=(a0, b0), negative=negative)
        else:
            _k, a1, b1 = self.to_plane(end, view_widget, axis)
            self.model.prompt(plane, k, box=(a0, b0, a1, b1))

    def prompt_box(self, plane, k, box) -> bool:
        """A box (A0, B0, A1, B1, voxel indices in the plane) on slice ``k``: what a drag does (scripts, tests)."""
        return self.prepare_source() and self.model.prompt(plane, int(k), box=tuple(float(v) for v in box))

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Run Slicer's event loop until the model's task has ended (scripts, tests); False on timeout."""
        import time

        deadline = time.monotonic() + timeout_s
        while self.model.busy and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.02)
        return not self.model.busy

    # ----- preview, apply ----------------------------------------------------------------------------
    def show_preview(self):
        """The model's mask in a preview segmentation in the selected segment's colour (not saved with the scene)."""
        segmentation_node = self._segmentation_node()
        segment_id = self.scriptedEffect.parameterSetNode().GetSelectedSegmentID()
        if self.preview_node is None or self.preview_node.GetScene() is None:
            self.preview_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "SAM preview")
            self.preview_node.SetHideFromEditors(True)
            self.preview_node.SetSaveWithScene(False)  # a preview is not part of the user's scene
            self.preview_node.CreateDefaultDisplayNodes()
            self.preview_node.GetSegmentation().AddEmptySegment("preview")
        # drawn where the segmentation is: under the same parent transform
        self.preview_node.SetAndObserveTransformNodeID(segmentation_node.GetTransformNodeID()
                                                       if segmentation_node is not None else None)
        segment = segmentation_node.GetSegmentation().GetSegment(segment_id) if segment_id else None
        self.preview_node.GetSegmentation().GetSegment("preview").SetColor(*(segment.GetColor() if segment
                                                                              else (1, 1, 0)))
        display = self.preview_node.GetDisplayNode()
        display.SetOpacity2DFill(0.5)
        display.SetOpacity2DOutline(1.0)
        labelmap = labelmap_like(self.image, self.model.session.mask_volume().array)
        slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
            labelmap, self.preview_node, "preview", slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)

    def remove_preview(self):
        if self.preview_node is not None and self.preview_node.GetScene() is not None:
            slicer.mrmlScene.RemoveNode(self.preview_node)
        self.preview_node = None

    def on_apply(self):
        """Write the preview into the selected segment: one undo step, the editor's masking applies."""
        if not self.model.can_apply or not self.scriptedEffect.confirmCurrentSegmentVisible():
            return
        labelmap = labelmap_like(self.image, self.model.session.mask_volume().array)
        mode = (slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeSet if self.replaceCheckBox.checked
                else slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeAdd)
        self.scriptedEffect.saveStateForUndo()
        self.scriptedEffect.modifySelectedSegmentByLabelmap(labelmap, mode)
        self.model.applied()
