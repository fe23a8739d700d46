"""Segment Editor effect "SAM Prompt": a box or +/- clicks in a slice view -> a medical SAM mask.

Only this file (and SamPrompt.py) imports slicer/qt: the work is in SamPromptLib's Qt-free logic
(``PromptSession`` on a shared ``SamSegmenter``).  Interaction: drag a box in any slice view
aligned with the source volume's axes; a click adds a positive point, Ctrl/Shift+click a negative
one; the mask previews at once; propagate down/both/up; Apply writes the preview into the
selected segment as one undo step through ``modifySelectedSegmentByLabelmap`` (so the editable
area, editable intensity range and overwrite rules apply).  Model calls run on a worker thread
(``BackgroundTask``) polled by a ``qt.QTimer``: the GUI never blocks, and Cancel stops a
propagation at the next slice.  Missing packages are installed at first use, after confirmation.
"""
import logging
import os

import numpy as np
import qt
import slicer
import vtk
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect
from slicer.i18n import tr as _

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.tasks import BackgroundTask, TaskCancelled
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.slicer import packages as slicer_packages
from SamPromptLib import shared
from SamPromptLib.segmenter import PromptSession

PLANE_OF_AXIS = {2: "axial", 1: "coronal", 0: "sagittal"}  # the IJK axis normal to the view
DRAG_PIXELS = 4  # a press-release that moves less than this is a click, not a box
REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources",
                            "requirements.txt")


def _image_volume(image):
    """(Volume in LPS, extent start (i, j, k)) of a vtkOrientedImageData."""
    from vtk.util import numpy_support

    extent = image.GetExtent()
    dims = (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1)
    # A copy: the worker thread must not read memory that Slicer may reallocate meanwhile.
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]).copy()
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    start = np.array(extent[0::2], dtype=float)
    ijk_to_ras[:3, 3] = ijk_to_ras[:3, :3] @ start + ijk_to_ras[:3, 3]
    return Volume(array, Geometry.from_matrix(ijk_to_ras, dims, space="RAS").to_lps()), extent[0::2]


def _labelmap_like(image, mask_kji):
    """A vtkOrientedImageData with ``image``'s geometry and extent holding a uint8 (K, J, I) mask."""
    from vtk.util import numpy_support

    out = slicer.vtkOrientedImageData()
    out.SetExtent(image.GetExtent())
    out.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(out.GetPointData().GetScalars())[:] = np.ascontiguousarray(mask_kji, np.uint8).ravel()
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    out.SetImageToWorldMatrix(m)
    return out


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
        self.session = None          # PromptSession of the current plane and segment
        self.segmenter = None
        self.image = None            # the source vtkOrientedImageData the session works on
        self.volume = self.volume_id = self.source = self.settings = None
        self.extent_start = (0, 0, 0)
        self.task = None             # BackgroundTask in flight
        self.on_task_done = None
        self.rubber_band = None
        self.press = None            # (xy, view widget, ctrl/shift) of a left press in progress
        self.preview_node = None
        self.timer = qt.QTimer()
        self.timer.setInterval(100)
        self.timer.connect("timeout()", self.poll_task)
        self.dependencies_ok = False

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
        """Called before the effect object is deleted: disconnect the timer."""
        self.timer.disconnect("timeout()", self.poll_task)

    # ----- options panel ---------------------------------------------------------------------------
    def setupOptionsFrame(self):
        """Called once by the Segment Editor to build the effect's options."""
        self.statusLabel = qt.QLabel(_("Drag a box in a slice view."))
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

        row = qt.QHBoxLayout()
        self.propagateButtons = {}
        for direction, text in (("down", _("Propagate down")), ("both", _("Propagate both")), ("up", _("Propagate up"))):
            button = qt.QPushButton(text)
            button.toolTip = _("Carry the previewed mask slice by slice ({direction}) until the structure ends; "
                               "between two prompted slices both ends meet.").format(direction=direction)
            button.connect("clicked()", lambda d=direction: self.on_propagate(d))
            row.addWidget(button)
            self.propagateButtons[direction] = button
        self.scriptedEffect.addOptionsWidget(row)

        self.replaceCheckBox = qt.QCheckBox(_("Replace the segment (else add to it)"))
        self.scriptedEffect.addOptionsWidget(self.replaceCheckBox)

        self.progressBar = qt.QProgressBar()
        self.progressBar.visible = False
        self.cancelTaskButton = qt.QPushButton(_("Stop"))
        self.cancelTaskButton.visible = False
        self.cancelTaskButton.connect("clicked()", self.on_stop_task)
        progressRow = qt.QHBoxLayout()
        progressRow.addWidget(self.progressBar)
        progressRow.addWidget(self.cancelTaskButton)
        self.scriptedEffect.addOptionsWidget(progressRow)

        buttons = qt.QHBoxLayout()
        self.applyButton = qt.QPushButton(_("Apply"))
        self.applyButton.toolTip = _("Write the preview into the selected segment (one undo step).")
        self.applyButton.connect("clicked()", self.on_apply)
        self.cancelButton = qt.QPushButton(_("Cancel"))
        self.cancelButton.toolTip = _("Discard the preview and the prompts.")
        self.cancelButton.connect("clicked()", self.on_cancel)
        buttons.addWidget(self.cancelButton)
        buttons.addWidget(self.applyButton)
        self.scriptedEffect.addOptionsWidget(buttons)
        self.update_buttons()

    def update_buttons(self):
        has_preview = self.session is not None and bool(self.session.results)
        busy = self.task is not None
        for button in self.propagateButtons.values():
            button.enabled = has_preview and not busy
        self.applyButton.enabled = has_preview and not busy
        self.cancelButton.enabled = has_preview or busy
        self.progressBar.visible = self.cancelTaskButton.visible = busy

    def set_status(self, text, error=False):
        self.statusLabel.text = text
        self.statusLabel.setStyleSheet("color: #d04040" if error else "")

    # ----- life cycle ------------------------------------------------------------------------------
    def activate(self):
        """Called when the user selects the effect."""
        self.set_status(_("Drag a box around the structure in a slice view."))
        self.update_buttons()

    def deactivate(self):
        """Called when the user leaves the effect: stop work, drop the preview (not applied)."""
        if self.task is not None:
            self.task.cancel()
        self.timer.stop()
        self.task = None
        self.discard_preview()

    def sourceVolumeNodeChanged(self):
        """Called by the Segment Editor when the source volume changes: start over."""
        self.discard_preview()

    # ----- dependencies and model --------------------------------------------------------------------
    def ensure_dependencies(self):
        """torch (PyTorch extension), then the SAM packages; asks the user once; False if declined."""
        if self.dependencies_ok:
            return True
        if not slicer_packages.ensure_torch(_("SAM Prompt")):
            return False
        if not slicer_packages.ensure_requirements(REQUIREMENTS, _("SAM Prompt")):
            return False
        self.dependencies_ok = True
        return True

    def model_settings(self):
        """The settings the SamPrompt panel saved (``shared.read_settings``); ValueError names a bad one."""
        return shared.read_settings(qt.QSettings())

    def current_window(self):
        """The source volume's display window (level, width), as the panel reads it, or None."""
        node = self.scriptedEffect.parameterSetNode().GetSourceVolumeNode()
        return shared.display_window(node.GetDisplayNode() if node is not None else None)

    def source_volume(self):
        """(Volume, volume id, window) of the source volume on the main thread, or None with a message."""
        image = self.scriptedEffect.sourceVolumeImageData()
        node = self.scriptedEffect.parameterSetNode().GetSourceVolumeNode()
        if image is None or node is None:
            self.set_status(_("Select a source volume first."), error=True)
            return None
        if not self.ensure_dependencies():  # pip and dialogs: main thread only
            self.set_status(_("SAM Prompt needs its Python packages; nothing was installed."), error=True)
            return None
        volume_id = f"{node.GetID()}:{image.GetMTime()}"
        if self.image is not image or self.volume_id != volume_id:
            volume, self.extent_start = _image_volume(image)
            self.image, self.volume_id, self.volume = image, volume_id, volume
            self.session = None
        return self.volume, volume_id, self.current_window()

    def session_for(self, plane):
        """Worker side: the shared segmenter (loaded on first use: seconds) and this plane's session."""
        volume, _volume_id, window = self.source
        # Keyed by content, not node: the panel's "precompute the volume" fills the same cache.
        segmenter = shared.segmenter_for(volume, None, self.settings, window)
        session = self.session
        if session is None or session.plane != plane or session.segmenter is not segmenter:
            session = PromptSession(segmenter, plane)
        return segmenter, session

    # ----- view -> plane, slice, in-plane coordinates --------------------------------------------------
    def view_plane(self, view_widget):
        """(plane, normal axis) of a slice view, or None with a message if it is oblique to the volume."""
        slice_to_ras = view_widget.mrmlSliceNode().GetSliceToRAS()
        normal_ras = np.array([slice_to_ras.GetElement(r, 2) for r in range(3)])
        m = vtk.vtkMatrix4x4()
        self.image.GetImageToWorldMatrix(m)
        ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(3)] for r in range(3)])
        normal_ijk = np.linalg.solve(ijk_to_ras, normal_ras) * np.linalg.norm(ijk_to_ras, axis=0)
        normal_ijk /= np.linalg.norm(normal_ijk)
        axis = int(np.argmax(np.abs(normal_ijk)))
        if abs(normal_ijk[axis]) < 0.999:
            self.set_status(_("This view is oblique to the volume's axes. Align it first (slice view menu: "
                              "'Rotate to volume plane'), then prompt again."), error=True)
            return None
        return PLANE_OF_AXIS[axis], axis

    def to_plane(self, xy, view_widget, axis):
        """(slice index, A, B) of a view position: the volume's IJK, in the plane's in-plane axes."""
        # The aligned source image is in the segmentation's frame: pass its transform, as Slicer's effects do.
        segmentation_node = self.scriptedEffect.parameterSetNode().GetSegmentationNode()
        parent = segmentation_node.GetParentTransformNode() if segmentation_node is not None else None
        ijk = np.array(self.xyToIjk(xy, view_widget, self.image, parent)) - np.array(self.extent_start)
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
            self.on_prompt(viewWidget, start, xy if moved and not negative else None, negative)
            return True
        return False

    def on_prompt(self, view_widget, start, end, negative):
        """A box (start..end) or a click (end None) in a view: predict the slice in the background."""
        if self.task is not None:
            self.set_status(_("Still working; wait or press Stop."))
            return
        self.source = self.source_volume()
        if self.source is None:
            return
        try:
            self.settings = self.model_settings()
        except ValueError as exc:
            self.set_status(str(exc), error=True)
            return
        found = self.view_plane(view_widget)
        if found is None:
            return
        plane, axis = found
        k, a0, b0 = self.to_plane(start, view_widget, axis)
        n = self.source[0].array.shape[2 - axis]
        if not 0 <= k < n:
            self.set_status(_("That position is outside the source volume."), error=True)
            return
        box = None
        if end is not None:
            _k, a1, b1 = self.to_plane(end, view_widget, axis)
            box = (a0, b0, a1, b1)

        def work(task):
            segmenter, session = self.session_for(plane)
            if box is not None:
                old = session.anchors.get(k)
                result = session.prompt(k, box=box, points=old.points if old else None,
                                        labels=old.labels if old else None)
            else:
                result = session.add_point(k, (a0, b0), positive=not negative)
            return segmenter, session, result

        self.set_status(_("Segmenting {plane} slice {k} (the first time loads the model)...").format(plane=plane, k=k))
        self.start_task(work, lambda out: self.after_prompt(plane, k, *out))

    def after_prompt(self, plane, k, segmenter, session, result):
        self.segmenter, self.session = segmenter, session
        self.show_preview()
        self.set_status(_("{plane} slice {k}: quality {score:.2f}. Add clicks, propagate, or Apply.").format(
            plane=plane, k=k, score=result.score))

    def on_propagate(self, direction):
        """Propagate from the prompted slices; from the last prompted slice if it was a correction."""
        if self.session is None or self.task is not None:
            return
        session = self.session
        # One prompt: propagate from it. More: the newest is a correction; re-propagate around it only.
        last = session.last_prompted if len(session.anchors) > 1 else None

        def work(task):
            return session.propagate(direction, start=last,
                                     progress=lambda done, total: task.report(done / total,
                                                                              f"{done}/{total} slices"))

        self.set_status(_("Propagating {direction}...").format(direction=direction))
        self.start_task(work, self.after_propagate)

    def after_propagate(self, results):
        self.show_preview()
        stops = "; ".join(f"{k}: {why}" for k, why in self.segmenter.last_stops) or _("reached the volume's end")
        self.set_status(_("{n} slices. Stopped at {stops}. Fix a slice with a box and propagate again, "
                          "or Apply.").format(n=len(self.session.results), stops=stops))

    # ----- background work ---------------------------------------------------------------------------
    def start_task(self, work, on_done):
        self.task = BackgroundTask(work, name="SAM Prompt").start()
        self.on_task_done = on_done
        self.progressBar.setRange(0, 0)
        self.timer.start()
        self.update_buttons()

    def poll_task(self):
        """Called by the timer on the main thread: progress, then results or errors."""
        task = self.task
        if task is None:
            self.timer.stop()
            return
        fraction, message = task.progress
        if fraction is not None:
            self.progressBar.setRange(0, 100)
            self.progressBar.value = int(100 * fraction)
            self.progressBar.setFormat(message)
        if not task.done:
            return
        self.timer.stop()
        self.task = None
        try:
            result = task.result()
        except TaskCancelled:
            self.set_status(_("Stopped."))
        except Exception as exc:  # shown to the user; details in the log
            logging.exception("SAM Prompt failed")
            self.set_status(str(exc), error=True)
        else:
            self.on_task_done(result)
        self.update_buttons()

    def on_stop_task(self):
        if self.task is not None:
            self.task.cancel()

    # ----- preview, apply, cancel ----------------------------------------------------------------------
    def show_preview(self):
        """Show the session's mask in a preview segmentation in the selected segment's colour."""
        segmentation_node = self.scriptedEffect.parameterSetNode().GetSegmentationNode()
        segment_id = self.scriptedEffect.parameterSetNode().GetSelectedSegmentID()
        if self.preview_node is None or self.preview_node.GetScene() is None:
            self.preview_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "SAM preview")
            self.preview_node.SetHideFromEditors(True)
            self.preview_node.CreateDefaultDisplayNodes()
            self.preview_node.GetSegmentation().AddEmptySegment("preview")
        color = segmentation_node.GetSegmentation().GetSegment(segment_id).GetColor() if segment_id else (1, 1, 0)
        self.preview_node.GetSegmentation().GetSegment("preview").SetColor(*color)
        display = self.preview_node.GetDisplayNode()
        display.SetOpacity2DFill(0.5)
        display.SetOpacity2DOutline(1.0)
        labelmap = _labelmap_like(self.image, self.session.mask_volume().array)
        slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
            labelmap, self.preview_node, "preview", slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
        self.update_buttons()

    def discard_preview(self):
        if self.preview_node is not None and self.preview_node.GetScene() is not None:
            slicer.mrmlScene.RemoveNode(self.preview_node)
        self.preview_node = None
        if self.session is not None:
            self.session.clear()
        self.session = None
        if hasattr(self, "applyButton"):
            self.update_buttons()

    def on_apply(self):
        """Write the preview into the selected segment: one undo step, the editor's masking applies."""
        if self.session is None or not self.session.results or self.task is not None:
            return
        if not self.scriptedEffect.confirmCurrentSegmentVisible():
            return
        labelmap = _labelmap_like(self.image, self.session.mask_volume().array)
        mode = (slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeSet if self.replaceCheckBox.checked
                else slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeAdd)
        self.scriptedEffect.saveStateForUndo()
        self.scriptedEffect.modifySelectedSegmentByLabelmap(labelmap, mode)
        self.discard_preview()
        self.set_status(_("Applied. Drag a box for the next structure."))

    def on_cancel(self):
        """Stop work and drop the preview and prompts."""
        self.on_stop_task()
        self.discard_preview()
        self.set_status(_("Cancelled. Drag a box in a slice view."))
