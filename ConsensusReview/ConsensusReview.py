"""ConsensusReview: agreement between annotators, STAPLE consensus, annotator bias, adjudication.

The panel says what is coming; the logic will live in ConsensusReviewLib (Qt-free) and be shared with the
`dicomteam` command line.
"""
import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper


#
# ConsensusReview
#


class ConsensusReview(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Consensus Review")
        self.parent.categories = [translate("DicomTeamAnnotate", "DICOM Team Annotate")]
        self.parent.dependencies = []
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Compare several annotators' segmentations of a case: agreement per label (Dice, HD95,
average surface distance, surface Dice), majority vote and STAPLE consensus, each annotator's
bias, a disagreement map, and adjudication of the final ground truth by a reviewer.
""")
        self.parent.acknowledgementText = _("""
STAPLE: Warfield, Zou and Wells, IEEE TMI 2004. Agreement figures are checked against
SimpleITK and MONAI.
""")


#
# ConsensusReviewParameterNode
#


@parameterNodeWrapper
class ConsensusReviewParameterNode:
    """
    The parameters of the panel, saved with the scene.

    None yet: they arrive with the panel's controls.
    """


#
# ConsensusReviewWidget
#


class ConsensusReviewWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
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
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ConsensusReview.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ConsensusReviewLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.statusLabel.text = _("""
<p><b>Coming in this module</b> (not working yet):</p>
<ul>
<li>agreement per label between annotators: Dice, HD95, average symmetric surface distance,
normalised surface Dice, volumes;</li>
<li>majority vote and STAPLE consensus, with each annotator's sensitivity and specificity;</li>
<li>a disagreement map as a layer in the slice views, and a queue of cases sorted by agreement;</li>
<li>adjudication: start from the consensus or one annotator, edit in the Segment Editor, publish
the ground truth to the project store with its audit record;</li>
<li>HTML/CSV/JSON reports.</li>
</ul>
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
# ConsensusReviewLogic
#


class ConsensusReviewLogic(ScriptedLoadableModuleLogic):
    """Logic of the ConsensusReview module (the computations will be in ConsensusReviewLib, Qt-free)."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return ConsensusReviewParameterNode(super().getParameterNode())


#
# ConsensusReviewTest
#


class ConsensusReviewTest(ScriptedLoadableModuleTest):
    """In-Slicer test (run by Slicer's self-test and by ctest in an extension build)."""

    def setUp(self):
        """Called before each test: start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Called by Slicer's 'Reload and Test' and ctest: run every test of this module."""
        self.setUp()
        self.test_ConsensusReviewParameterNode()

    def test_ConsensusReviewParameterNode(self):
        """The logic creates the module's parameter node in the scene."""
        node = ConsensusReviewLogic().getParameterNode()
        self.assertIsNotNone(node)
        self.assertIsNotNone(node.parameterNode)
        self.delayDisplay("Test passed")
