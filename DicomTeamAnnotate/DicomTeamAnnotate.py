"""DicomTeamAnnotate: the hub module.

Load a DICOM folder or ZIP through the project's own ingestion (every file's header read,
slices grouped into series and sorted by position, bad files reported with a reason), show
each series as a scalar volume, apply a CT window preset, switch to a three-plane layout.
The work is done by DicomTeamAnnotateLib (Qt-free); this file only wires it to Slicer.
"""
import logging
import os
import traceback

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS_PATH = os.path.join(MODULE_DIR, "Resources", "requirements.txt")
CUSTOM_PRESET = "custom"  # the windowing module's name for a user-given level/width
POLL_INTERVAL_MS = 100


#
# DicomTeamAnnotate
#


class DicomTeamAnnotate(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DICOM Team Annotate")
        self.parent.categories = [translate("DicomTeamAnnotate", "DICOM Team Annotate")]
        self.parent.dependencies = []
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Load a DICOM folder or ZIP archive: every file's header is read, slices are grouped into series
(also when the UIDs are blank), sorted by their position along the slice normal, and each series
becomes a volume with its exact geometry. Files that cannot be used are listed with the reason.
Pick a CT window preset and switch to a three-plane layout for annotation.
The same code runs headless: <code>dicomteam ingest PATH --out DIR</code>.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer's scripted module template (Jean-Christophe Fillion-Robin, Kitware Inc.; Andras Lasso,
PerkLab; Steve Pieper, Isomics, Inc.; NIH grant 3P41RR013218-12S1), pydicom, pylibjpeg and SimpleITK.
""")


#
# DicomTeamAnnotateParameterNode
#


@parameterNodeWrapper
class DicomTeamAnnotateParameterNode:
    """
    The parameters of the panel, saved with the scene.

    volume - The volume the window preset and the three-plane layout apply to.
    windowPreset - Name of the last applied window preset ('custom' uses customLevel/customWidth).
    customLevel - Window centre (HU) of the custom preset.
    customWidth - Window width (HU) of the custom preset.
    """

    volume: vtkMRMLScalarVolumeNode
    windowPreset: str = "soft tissue"
    customLevel: float = 40.0
    customWidth: float = 400.0


#
# DicomTeamAnnotateWidget
#


class DicomTeamAnnotateWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: load, report, window preset, layout."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._task = None
        self._progressDialog = None
        self._pollTimer = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DicomTeamAnnotate.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DicomTeamAnnotateLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.issuesTableWidget.hide()
        self.ui.inputPathLineEdit.connect("currentPathChanged(QString)", self._updateButtonStates)
        self.ui.browseZipButton.connect("clicked(bool)", self.onBrowseZip)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)
        self.ui.windowPresetComboBox.connect("activated(int)", self.onWindowPresetActivated)
        self.ui.customLevelSpinBox.connect("valueChanged(double)", self.onCustomWindowChanged)
        self.ui.customWidthSpinBox.connect("valueChanged(double)", self.onCustomWindowChanged)
        self.ui.threePlaneLayoutButton.connect("clicked(bool)", self.onThreePlaneLayout)
        self._fillPresetComboBox()

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self._stopPolling()
        if self._task is not None:
            self._task.cancel()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Called from setup() and enter(): make sure the parameter node exists and is observed."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.volume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.volume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        """Called by initializeParameterNode() and on scene close: connect the GUI to a parameter node."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" property in the .ui file are connected here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
            index = self.ui.windowPresetComboBox.findText(self._parameterNode.windowPreset)
            if index >= 0:
                self.ui.windowPresetComboBox.setCurrentIndex(index)
        self._updateButtonStates()

    # ----- state of the panel ----------------------------------------------------------------

    def _fillPresetComboBox(self) -> None:
        """Called from setup(): the presets of DicomTeamAnnotateLib.windowing, then 'custom'."""
        combo = self.ui.windowPresetComboBox
        combo.clear()
        try:
            presets = self.logic.windowPresets()
        except (ImportError, ValueError) as exc:
            combo.enabled = False
            combo.toolTip = _("Window presets are not available: {error}").format(error=exc)
            logging.error(f"DicomTeamAnnotate: window presets not available: {exc}")
            return
        for name, (level, width) in presets.items():
            combo.addItem(name)
            combo.setItemData(combo.count - 1, _("level {level:g} / width {width:g} HU").format(level=level, width=width),
                              qt.Qt.ToolTipRole)
        combo.addItem(CUSTOM_PRESET)

    def _updateButtonStates(self, caller=None, event=None) -> None:
        """Called when the input path or the parameter node changes: enable what can be used now."""
        busy = self._task is not None
        path = self.ui.inputPathLineEdit.currentPath
        canLoad = bool(path) and (os.path.isdir(path) or (os.path.isfile(path) and path.lower().endswith(".zip")))
        self.ui.loadButton.enabled = canLoad and not busy
        self.ui.loadButton.toolTip = (_("Read the DICOM files and load each series as a volume.") if canLoad
                                      else _("Choose an existing folder or .zip file first."))
        hasVolume = bool(self._parameterNode and self._parameterNode.volume)
        self.ui.windowPresetComboBox.enabled = hasVolume and self.ui.windowPresetComboBox.count > 0
        custom = self.ui.windowPresetComboBox.currentText == CUSTOM_PRESET
        self.ui.customLevelSpinBox.enabled = hasVolume and custom
        self.ui.customWidthSpinBox.enabled = hasVolume and custom
        self.ui.threePlaneLayoutButton.enabled = hasVolume

    # ----- loading ------------------------------------------------------------------------------

    def onBrowseZip(self) -> None:
        """Called when the user clicks 'ZIP...': choose an archive."""
        start = self.ui.inputPathLineEdit.currentPath or ""
        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Choose a ZIP archive of DICOM files"),
                                              start, _("ZIP archives (*.zip)"))
        if path:
            self.ui.inputPathLineEdit.currentPath = path
            self.ui.inputPathLineEdit.addCurrentPathToHistory()

    def onLoadButton(self) -> None:
        """Called when the user clicks 'Load': ingest on a worker thread with a progress dialog."""
        from DicomTeamAnnotateLib.slicer_packages import ensure_requirements

        path = self.ui.inputPathLineEdit.currentPath
        self.ui.inputPathLineEdit.addCurrentPathToHistory()
        if not ensure_requirements(REQUIREMENTS_PATH, requester=_("DICOM Team Annotate")):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start loading {path}.").format(path=path)):
            self._task = self.logic.startIngest([path])
        if self._task is None:
            return
        self._updateButtonStates()
        self._progressDialog = slicer.util.createProgressDialog(
            windowTitle=_("Loading DICOM"), labelText=_("Reading DICOM files..."), maximum=0)
        self._progressDialog.connect("canceled()", self.onCancelLoading)
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self._pollIngest)
        self._pollTimer.start()

    def onCancelLoading(self) -> None:
        """Called when the user clicks Cancel in the progress dialog."""
        if self._task is not None:
            self._task.cancel()
            self.ui.loadSummaryLabel.text = _("Cancelling: waiting for the files being read to finish...")
        if self._progressDialog is not None:  # the poll timer keeps running until the worker is done
            self._progressDialog.close()
            self._progressDialog = None

    def _stopPolling(self) -> None:
        """Called when loading ends or the widget is destroyed."""
        if self._pollTimer is not None:
            self._pollTimer.stop()
            self._pollTimer = None
        if self._progressDialog is not None:
            self._progressDialog.close()
            self._progressDialog = None

    def _pollIngest(self) -> None:
        """Called by the poll timer on the main thread: show progress, then create the volume nodes."""
        task = self._task
        if task is None:
            return
        fraction, message = task.progress
        if self._progressDialog is not None:
            if fraction is not None:
                self._progressDialog.maximum = 100
                self._progressDialog.value = int(round(100 * fraction))
            if message:
                self._progressDialog.labelText = message
        if not task.done:
            return
        self._stopPolling()
        self._task = None
        self._updateButtonStates()
        self._finishIngest(task)

    def _finishIngest(self, task) -> None:
        """Called when the worker is done: create the volume nodes (main thread) and show the report."""
        from DicomTeamAnnotateLib.background import TaskCancelled

        try:
            result = task.result()
        except TaskCancelled:
            self.ui.loadSummaryLabel.text = _("Loading cancelled.")
            return
        except Exception as exc:  # raised on the worker thread by ingest(); shown here on the main thread
            self.ui.loadSummaryLabel.text = _("Loading failed.")
            slicer.util.errorDisplay(_("Failed to load the DICOM files: {error}").format(error=exc),
                                     detailedText="".join(traceback.format_exception(exc)))
            return
        failures = []
        with slicer.util.WaitCursor():
            nodes = self.logic.createVolumeNodes(result, failures)
        self._showIngestReport(result, nodes, failures, task.elapsed)
        if nodes and self._parameterNode:
            self._parameterNode.volume = nodes[0]
        if nodes:
            self.logic.showVolume(nodes[0])

    def _showIngestReport(self, result, nodes, failures, seconds) -> None:
        """Called after loading: one summary line, and a table of rejected files and warnings."""
        rows = [("failed", seriesId, error) for seriesId, error in failures] + self.logic.reportRows(result)
        self.ui.loadSummaryLabel.text = _(
            "Loaded {volumes} volume(s) from {series} series in {seconds:.1f} s; {rejected} file(s) not used, "
            "{warnings} warning(s).").format(volumes=len(nodes), series=len(result.series), seconds=seconds,
                                            rejected=len(result.rejected),
                                            warnings=sum(1 for kind, _item, _reason in rows if kind == "warning"))
        table = self.ui.issuesTableWidget
        table.setRowCount(len(rows))
        kindText = {"failed": _("not loaded"), "rejected": _("not used"), "warning": _("warning")}
        for row, (kind, item, reason) in enumerate(rows):
            for column, text in enumerate((kindText.get(kind, kind), item, reason)):
                cell = qt.QTableWidgetItem(text)
                cell.setToolTip(text)
                table.setItem(row, column, cell)
        table.resizeColumnsToContents()
        table.setVisible(bool(rows))

    # ----- viewing ------------------------------------------------------------------------------

    def onWindowPresetActivated(self, index) -> None:
        """Called when the user picks a window preset."""
        name = self.ui.windowPresetComboBox.itemText(index)
        self._parameterNode.windowPreset = name
        self._applyWindow()

    def onCustomWindowChanged(self, value) -> None:
        """Called when the user edits the custom level or width."""
        if self.ui.windowPresetComboBox.currentText == CUSTOM_PRESET:
            self._applyWindow()

    def _applyWindow(self) -> None:
        """Called when a preset or the custom window changes: apply it to the selected volume."""
        p = self._parameterNode
        if not p or not p.volume:
            return
        # The spin boxes, not the parameter node: this slot can run before the node is updated.
        level, width = self.ui.customLevelSpinBox.value, self.ui.customWidthSpinBox.value
        with slicer.util.tryWithErrorDisplay(_("Could not apply the window preset.")):
            self.logic.applyWindowPreset(p.volume, p.windowPreset, level, width)
        self._updateButtonStates()

    def onThreePlaneLayout(self) -> None:
        """Called when the user clicks 'Three-plane layout'."""
        with slicer.util.tryWithErrorDisplay(_("Could not set the three-plane layout.")):
            self.logic.setThreePlaneLayout(self._parameterNode.volume)


#
# DicomTeamAnnotateLogic
#


class DicomTeamAnnotateLogic(ScriptedLoadableModuleLogic):
    """Loading, windowing and layout, usable from the Python console without the panel.

    Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("DicomTeamAnnotate")
        nodes, result = logic.loadDicom(["/data/ct_folder"])
        logic.applyWindowPreset(nodes[0], "lung")
        logic.setThreePlaneLayout(nodes[0])
    """

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return DicomTeamAnnotateParameterNode(super().getParameterNode())

    @staticmethod
    def ingest(paths):
        """Read DICOM files/folders/ZIPs with DicomTeamAnnotateLib.dicom_ingest (no MRML; any thread)."""
        from DicomTeamAnnotateLib.dicom_ingest import ingest

        return ingest([os.fspath(p) for p in paths])

    def startIngest(self, paths):
        """Start ingest() on a worker thread; the caller polls the returned BackgroundTask.

        ingest() reports no progress and cannot be interrupted, so the dialog is a busy
        indicator and Cancel discards the result once the files being read are done.
        """
        from DicomTeamAnnotateLib.background import BackgroundTask

        reading, done = _("Reading DICOM files..."), _("Creating volumes...")  # translated on the main thread

        def work(task):
            task.report(None, reading)
            result = self.ingest(paths)
            task.report(1.0, done)  # raises TaskCancelled if the user cancelled meanwhile
            return result

        return BackgroundTask(work, name="DICOM ingest").start()

    @staticmethod
    def seriesNodeName(series) -> str:
        """A readable node name: series description (or modality and number), then the series id's tail."""
        meta = series.metadata or {}
        number = meta.get("series_number")
        label = meta.get("description") or " ".join(
            t for t in (meta.get("modality"), f"series {number}" if number else "") if t) or "DICOM"
        sid = str(series.series_id)
        return f"{label} [{sid[-8:]}]" if sid else label

    def createVolumeNodes(self, result, failures=None):
        """Main thread: one scalar volume node per ingested series (geometry from the adapter).

        With a ``failures`` list, a series that cannot become a node is recorded there as
        (series id, message) and the others still load; without it the error is raised.
        """
        from DicomTeamAnnotateLib.mrml import volume_to_node

        nodes = []
        for series in result.series:
            try:
                node = volume_to_node(series.volume, slicer.mrmlScene, name=self.seriesNodeName(series))
            except Exception as exc:
                if failures is None:
                    raise
                logging.exception(f"DicomTeamAnnotate: series {series.series_id} could not be loaded")
                failures.append((str(series.series_id), str(exc)))
                continue
            node.SetAttribute("DicomTeamAnnotate.SeriesId", str(series.series_id))
            nodes.append(node)
        return nodes

    def loadDicom(self, paths):
        """Ingest and create the nodes on the calling (main) thread; return (nodes, ingest result)."""
        result = self.ingest(paths)
        return self.createVolumeNodes(result), result

    @staticmethod
    def reportRows(result):
        """[(kind, file or series, reason)]: rejected files first, then each series' warnings."""
        rows = [("rejected", os.fspath(path), str(reason)) for path, reason in result.rejected]
        for series in result.series:
            rows += [("warning", str(series.series_id), str(w)) for w in series.warnings]
        return rows

    @staticmethod
    def windowPresets():
        """{name: (level, width)} from DicomTeamAnnotateLib.windowing (Resources/window_presets.json)."""
        from DicomTeamAnnotateLib.windowing import load_presets

        return load_presets()

    def applyWindowPreset(self, volumeNode, preset, customLevel=None, customWidth=None):
        """Apply a preset name (or 'custom' with level/width) to the volume's display; return (level, width)."""
        from DicomTeamAnnotateLib.mrml import apply_window_to_display_node

        if volumeNode is None:
            raise ValueError("no volume selected")
        if preset == CUSTOM_PRESET:
            return apply_window_to_display_node(volumeNode, CUSTOM_PRESET, customLevel, customWidth)
        return apply_window_to_display_node(volumeNode, preset)

    @staticmethod
    def showVolume(volumeNode) -> None:
        """Show the volume as background of every slice view and fit the views to it."""
        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)

    def setThreePlaneLayout(self, volumeNode=None) -> None:
        """Four-up layout (axial, sagittal, coronal, 3D) with linked slice views, aligned to the volume."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        orientations = {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}
        for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
            orientation = orientations.get(sliceNode.GetLayoutName())
            if orientation is None:
                continue
            sliceNode.SetOrientation(orientation)
            if volumeNode is not None:
                # Annotation happens on the voxel grid: align each view with the volume's closest axis,
                # so an oblique acquisition is not cut obliquely (Slicer's "Rotate to volume plane").
                sliceNode.RotateToVolumePlane(volumeNode)
        for compositeNode in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            if compositeNode.GetLayoutName() in orientations:
                compositeNode.SetLinkedControl(True)
        if volumeNode is not None:
            self.showVolume(volumeNode)


#
# DicomTeamAnnotateTest
#


class DicomTeamAnnotateTest(ScriptedLoadableModuleTest):
    """In-Slicer test (run by Slicer's self-test and by ctest in an extension build)."""

    def setUp(self):
        """Called before each test: start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Called by Slicer's 'Reload and Test' and ctest: run every test of this module."""
        self.setUp()
        self.test_LoadPhantomSeries()
        self.setUp()
        self.test_RejectedFilesAreReported()

    def _writePhantomSeries(self, folder):
        """A synthetic CT series (known geometry) written by DicomTeamAnnotateLib.phantom."""
        from DicomTeamAnnotateLib.phantom import make_phantom, write_phantom_dicom

        phantom = make_phantom(seed=0, shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0))
        write_phantom_dicom(phantom, folder)
        return phantom

    def test_LoadPhantomSeries(self):
        """Ingest a DICOM folder, check voxels and geometry of the node, apply a preset and the layout."""
        import tempfile

        import numpy as np

        from DicomTeamAnnotateLib.mrml import node_to_volume

        self.delayDisplay("Starting the test")
        logic = DicomTeamAnnotateLogic()
        with tempfile.TemporaryDirectory() as folder:
            phantom = self._writePhantomSeries(folder)
            nodes, result = logic.loadDicom([folder])
        self.assertEqual(len(nodes), 1)
        self.assertEqual(result.rejected, [])
        volume = node_to_volume(nodes[0])
        expected = phantom.volume
        np.testing.assert_array_equal(volume.array, expected.array)
        np.testing.assert_allclose(volume.geometry.origin, expected.geometry.to_lps().origin, atol=1e-4)
        np.testing.assert_allclose(volume.geometry.spacing, expected.geometry.spacing, atol=1e-4)

        level, width = logic.applyWindowPreset(nodes[0], "lung")
        display = nodes[0].GetDisplayNode()
        self.assertAlmostEqual(display.GetWindow(), width)
        self.assertAlmostEqual(display.GetLevel(), level)

        logic.setThreePlaneLayout(nodes[0])
        layoutNode = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
        self.assertEqual(layoutNode.GetViewArrangement(), slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(red.GetBackgroundVolumeID(), nodes[0].GetID())
        self.assertTrue(red.GetLinkedControl())
        self.delayDisplay("Test passed")

    def test_RejectedFilesAreReported(self):
        """A non-DICOM file beside the series is reported with a reason and does not stop the load."""
        import tempfile

        logic = DicomTeamAnnotateLogic()
        with tempfile.TemporaryDirectory() as folder:
            self._writePhantomSeries(folder)
            junk = os.path.join(folder, "notes.txt")
            with open(junk, "w") as f:
                f.write("not a DICOM file")
            nodes, result = logic.loadDicom([folder])
        self.assertEqual(len(nodes), 1)
        rows = logic.reportRows(result)
        self.assertTrue(any(kind == "rejected" and item.endswith("notes.txt") and reason for kind, item, reason in rows))
        self.delayDisplay("Test passed")
