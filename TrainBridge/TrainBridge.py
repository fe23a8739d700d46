"""TrainBridge: from adjudicated annotations to an nnU-Net or MONAI training run and its evaluation.

The panel says what is coming; the logic will live in TrainBridgeLib (Qt-free) and be shared with the
`dicomteam` command line.
"""
import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper


#
# TrainBridge
#


class TrainBridge(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Train Bridge")
        self.parent.categories = [translate("DicomTeamAnnotate", "DICOM Team Annotate")]
        self.parent.dependencies = []
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Export adjudicated cases as an nnU-Net v2 (or MONAI) dataset with patient-level splits,
train in the background with live curves, evaluate on the held-out test set, and export the model.
""")
        self.parent.acknowledgementText = _("""
nnU-Net v2 (Isensee et al., Nature Methods 2021); MONAI (Project MONAI).
""")


#
# TrainBridgeParameterNode
#


@parameterNodeWrapper
class TrainBridgeParameterNode:
    """
    The parameters of the panel, saved with the scene.

    None yet: they arrive with the panel's controls.
    """


#
# TrainBridgeWidget
#


class TrainBridgeWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: for now, what this module will do."""

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
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TrainBridge.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TrainBridgeLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.statusLabel.text = _("""
<p><b>Coming in this module</b> (not working yet):</p>
<ul>
<li>export to the nnU-Net v2 raw layout (and MONAI dataset JSON) with splits by patient and a
held-out test set, checked like nnU-Net checks it;</li>
<li>background training (nnU-Net or a MONAI network) that survives closing Slicer, with live loss
and validation curves here;</li>
<li>evaluation on the test set (Dice, HD95, surface Dice) and a jump to the worst cases;</li>
<li>model export to TorchScript and ONNX with a manifest.</li>
</ul>
<p>torch, MONAI and nnU-Net will be installed at first use, after you confirm.</p>
""")
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

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


#
# TrainBridgeLogic
#


class TrainBridgeLogic(ScriptedLoadableModuleLogic):
    """Logic of the TrainBridge module (the computations will be in TrainBridgeLib, Qt-free)."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return TrainBridgeParameterNode(super().getParameterNode())


#
# TrainBridgeTest
#


class TrainBridgeTest(ScriptedLoadableModuleTest):
    """In-Slicer test (run by Slicer's self-test and by ctest in an extension build)."""

    def setUp(self):
        """Called before each test: start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Called by Slicer's 'Reload and Test' and ctest: run every test of this module."""
        self.setUp()
        self.test_TrainBridgeParameterNode()

    def test_TrainBridgeParameterNode(self):
        """The logic creates the module's parameter node in the scene."""
        node = TrainBridgeLogic().getParameterNode()
        self.assertIsNotNone(node)
        self.assertIsNotNone(node.parameterNode)
        self.delayDisplay("Test passed")
