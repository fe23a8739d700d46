"""ConsensusReview: agreement between annotators, STAPLE consensus, annotator bias, adjudication.

Pick a project case (every annotator's latest version), segmentation nodes or files; run majority
vote or STAPLE in the background; see the per-label agreement and each annotator against the
consensus; overlay a disagreement map; build a review queue sorted by lowest agreement; adjudicate
in the Segment Editor and publish the ground truth to the project with its audit record.
The work is done by ConsensusReviewLib (Qt-free, shared with `dicomteam consensus`); this file only
wires it to Slicer. The panel's sections are mixins in ConsensusReviewLib/panel_*.py; the logic's
nodes are read and made in ConsensusReviewLib/mrml_nodes.py, the project's review queue is built in
ConsensusReviewLib/project_queue.py.
"""
import os
from typing import Annotated

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

# The panel's sections and the logic's MRML adapter. The names these files define (formatValue, the
# table columns, MAP_COLOR_NODE_NAME) stay importable from this file, where they were first defined.
from ConsensusReviewLib import mrml as mrml_nodes
from ConsensusReviewLib.adjudication import publish_adjudication, start_segmentation
from ConsensusReviewLib.consensus import DISAGREEMENT_MAPS, METHODS, run_consensus
from ConsensusReviewLib.inputs import align_segmentations, load_annotations, unique_names
from ConsensusReviewLib.outputs import review_status, write_consensus_outputs
from ConsensusReviewLib.panel_adjudication import AdjudicationSection
from ConsensusReviewLib.panel_queue import QueueSection
from ConsensusReviewLib.panel_results import ResultsSection
from ConsensusReviewLib.panel_run import RunSection
from ConsensusReviewLib.project_queue import build_project_queue
from ConsensusReviewLib.review_queue import ReviewThresholds
from ConsensusReviewLib.simulate import simulate_reader_segmentations
from ConsensusReviewLib.store_case import load_store_case
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, segmentation_to_node, volume_to_node
from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner

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
        self.parent.dependencies = ["DicomTeamAnnotate"]  # the project connection and shared panel helpers
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Compare several annotators' segmentations of a case: agreement per label (Dice, HD95, average
surface distance, surface Dice, volumes), majority vote or STAPLE consensus, each annotator's
sensitivity, specificity and volume bias, a disagreement map overlaid on the image, a review queue
sorted by lowest agreement, and adjudication: start from the consensus or one annotator, edit in
the Segment Editor and publish the final ground truth to the project (connect in DICOM Team
Annotate) with its audit record. Headless twin: <code>dicomteam consensus</code>.
""")
        self.parent.acknowledgementText = _("""
STAPLE: Warfield, Zou and Wells, IEEE TMI 2004; multi-label STAPLE: Rohlfing et al. 2004. Agreement
figures are checked against SimpleITK and MONAI.
""")


#
# ConsensusReviewParameterNode
#


@parameterNodeWrapper
class ConsensusReviewParameterNode:
    """
    The parameters of the panel, saved with the scene.

    referenceVolume - The image the annotations are compared on (nodes and files; optional).
    threshold - STAPLE: a voxel is in the consensus when its probability exceeds this.
    toleranceMm - Tolerance of the normalised surface Dice, in mm.
    minMeanPairwiseDice, maxPairwiseHd95Mm, maxDisputedFraction, minAnnotatorDice - The thresholds
        that send a case to review.
    mapOpacity - Opacity of the disagreement map over the image.
    """

    referenceVolume: vtkMRMLScalarVolumeNode
    threshold: Annotated[float, WithinRange(0.0, 0.99)] = 0.5
    toleranceMm: Annotated[float, WithinRange(0.0, 100.0)] = 1.0
    minMeanPairwiseDice: Annotated[float, WithinRange(0.0, 1.0)] = 0.8
    maxPairwiseHd95Mm: Annotated[float, WithinRange(0.0, 1000.0)] = 10.0
    maxDisputedFraction: Annotated[float, WithinRange(0.0, 1.0)] = 0.3
    minAnnotatorDice: Annotated[float, WithinRange(0.0, 1.0)] = 0.7
    mapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.6


#
# ConsensusReviewWidget
#


class ConsensusReviewWidget(ScriptedLoadableModuleWidget, VTKObservationMixin, RunSection, ResultsSection,
                            QueueSection, AdjudicationSection):
    """The module panel: inputs, method, results, disagreement map, review queue, adjudication.

    Each section of the panel is a mixin in ConsensusReviewLib/panel_*.py, without __init__ (the
    state its methods use, self.ui, self.logic, the last run and its nodes, is made here) and
    importing Qt and Slicer inside its methods (Lib files import in plain Python). This class owns
    the panel's state, its life cycle, the parameter node, the background tasks and the buttons' states.
    """

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._tasks = None
        self._run = None  # the last consensus run (see ConsensusReviewLogic.runConsensus)
        self._nodes = {}
        self._queue = []

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ConsensusReview.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ConsensusReviewLogic()
        self._tasks = TaskRunner(self._updateButtonStates)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Inputs
        self._fillChoices()  # sources, methods, tie rules, HD95 modes
        self.ui.sourceComboBox.connect("currentIndexChanged(int)", self._onSourceChanged)
        self.ui.openHubButton.connect("clicked(bool)", lambda: slicer.util.selectModule("DicomTeamAnnotate"))
        self.ui.refreshCasesButton.connect("clicked(bool)", self.onRefreshCases)
        self.ui.caseComboBox.connect("currentIndexChanged(int)", self._updateButtonStates)
        self.ui.segmentationsComboBox.connect("checkedNodesChanged()", self._updateButtonStates)
        self.ui.addFilesButton.connect("clicked(bool)", self.onAddFiles)
        self.ui.removeFilesButton.connect("clicked(bool)", self.onRemoveFiles)
        # Method
        self.ui.outputFolderLineEdit.currentPath = self.logic.defaultOutputFolder()
        self.ui.methodComboBox.connect("currentIndexChanged(int)", self._updateButtonStates)
        self.ui.runButton.connect("clicked(bool)", self.onRun)
        # Results
        self.ui.mapComboBox.connect("activated(int)", self.onShowMap)
        self.ui.showMapCheckBox.connect("toggled(bool)", self.onShowMap)
        self.ui.mapOpacitySlider.connect("valueChanged(double)", self.onShowMap)
        self.ui.openReportButton.connect("clicked(bool)", self.onOpenReport)
        # Review queue
        self.ui.buildQueueButton.connect("clicked(bool)", self.onBuildQueue)
        self.ui.queueTableWidget.connect("cellDoubleClicked(int,int)", self.onQueueCaseActivated)
        # Adjudication
        self.ui.startAdjudicationButton.connect("clicked(bool)", self.onStartAdjudication)
        self.ui.editAdjudicationButton.connect("clicked(bool)", self.onEditAdjudication)
        self.ui.publishButton.connect("clicked(bool)", self.onPublish)

        self.initializeParameterNode()
        self._onSourceChanged()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._tasks is not None:
            self._tasks.stop()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module: the project connection may have changed."""
        self.initializeParameterNode()
        self._showStoreStatus()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)
        self._nodes = {}
        self.logic.adjudication = None

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._updateButtonStates()

    # ----- state of the panel ---------------------------------------------------------------------------

    def _updateButtonStates(self, *args) -> None:
        """Called when inputs, tasks or results change: enable what can be used now."""
        busy = self._tasks is not None and self._tasks.busy
        source = self._source()
        connected = self.logic is not None and self.logic.projectStore(required=False) is not None
        if source == "store":
            ready = connected and self.ui.caseComboBox.currentData is not None
        elif source == "nodes":
            ready = len(self.ui.segmentationsComboBox.checkedNodes()) >= 2
        else:
            ready = self.ui.filesListWidget.count >= 2
        self.ui.refreshCasesButton.enabled = connected and not busy
        self.ui.runButton.enabled = ready and not busy
        self.ui.thresholdSpinBox.enabled = self.ui.methodComboBox.currentData == "staple"
        self.ui.tieComboBox.enabled = self.ui.methodComboBox.currentData == "majority"
        hasRun = self._run is not None
        self.ui.openReportButton.enabled = hasRun and bool(self._run.get("paths", {}).get("report"))
        self.ui.buildQueueButton.enabled = connected and not busy
        self.ui.startAdjudicationButton.enabled = hasRun and not busy
        hasAdjudication = self.logic is not None and self.logic.adjudication is not None
        self.ui.editAdjudicationButton.enabled = hasAdjudication
        self.ui.publishButton.enabled = (hasAdjudication and not busy and hasRun and self._run["source"] == "store"
                                         and connected)
        self.ui.publishButton.toolTip = (_("Push the edited segmentation to the project as the case's adjudicated "
                                           "version, with the audit record.") if hasRun and self._run["source"] == "store"
                                         else _("Publishing needs a project case as input."))


#
# ConsensusReviewLogic
#


class ConsensusReviewLogic(ScriptedLoadableModuleLogic):
    """Consensus, agreement, maps, review queue and adjudication; usable without the panel.

    Methods marked "any thread" do no MRML/Qt work. Example (Slicer's Python console, connected
    to the project in DICOM Team Annotate as a reviewer)::

        logic = slicer.util.getModuleLogic("ConsensusReview")
        run = logic.runConsensus(logic.inputsFromStore("c1", "/tmp/c1"), "staple", outDir="/tmp/c1/out")
        nodes = logic.showResult(run)
        logic.showMap(logic.mapVolumeNode(run, "disagreement"), nodes["reference"])
        node = logic.startAdjudication(run, "consensus", nodes["reference"])
        # ... edit in the Segment Editor ...
        logic.publish(logic.adjudicatedSegmentation(), note="checked")
    """

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        self.store = None  # None: use the connection of the DicomTeamAnnotate module
        self.adjudication = None  # {'run', 'node', 'start', 'started_from'} while a reviewer edits

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return ConsensusReviewParameterNode(super().getParameterNode())

    # ----- the project ---------------------------------------------------------------------------------

    def projectStore(self, required=True):
        """The store: set on this logic, else the one connected in the DicomTeamAnnotate module."""
        if self.store is not None:
            return self.store
        store = None
        if getattr(slicer, "app", None) is not None:
            try:
                store = slicer.util.getModuleLogic("DicomTeamAnnotate").store
            except (RuntimeError, AttributeError):  # the hub module is not loaded
                store = None
        if store is None and required:
            raise RuntimeError("not connected to a project: connect in the DICOM Team Annotate module")
        return store

    @staticmethod
    def defaultOutputFolder() -> str:
        """Where consensus outputs and downloaded inputs go by default."""
        app = getattr(slicer, "app", None)
        base = app.cachePath if app is not None else os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "DicomTeamAnnotate", "consensus")

    @staticmethod
    def methodChoices() -> dict:
        """{method: description} (ConsensusReviewLib.consensus.METHODS)."""
        return dict(METHODS)

    def reviewCases(self) -> list:
        """Any thread: [{'case_id', 'state', 'annotators': [...]}] of the project (a reviewer sees all)."""
        rows = []
        for row in self.projectStore().worklist():
            rows.append({"case_id": row["case_id"], "state": row.get("case_state") or row["state"],
                         "annotators": sorted((row.get("annotators") or {}).keys())})
        return rows

    # ----- inputs (each returns a dict: case_id, source, inputs, image, versions) ------------------------

    def inputsFromStore(self, caseId, workDir, submittedOnly=True) -> dict:
        """Any thread: every annotator's latest version of a project case, on the case image's grid."""
        inputs, image, versions = load_store_case(self.projectStore(), caseId, workDir, submittedOnly)
        return {"case_id": caseId, "source": "store", "inputs": inputs, "image": image, "versions": versions}

    @staticmethod
    def inputsFromFiles(paths, reference=None) -> dict:
        """Any thread: annotators' files (.seg.nrrd or label maps); ``reference``: a Volume, Geometry or path."""

        image = reference if isinstance(reference, Volume) else None
        inputs = load_annotations(paths, reference=reference.geometry if image is not None else reference)
        return {"case_id": "", "source": "files", "inputs": inputs, "image": image, "versions": []}

    @staticmethod
    def segmentationsFromNodes(nodes, referenceNode=None) -> dict:
        """Main thread: read segmentation nodes (and the reference volume) for inputsFromSegmentations()."""
        return mrml_nodes.segmentations_from_nodes(nodes, referenceNode)

    @staticmethod
    def inputsFromSegmentations(prepared) -> dict:
        """Any thread: align what segmentationsFromNodes() read."""
        names = unique_names(prepared["annotators"])
        inputs = align_segmentations(prepared["segmentations"], names, prepared["reference"],
                                     [f"segmentation node '{n}'" for n in prepared["annotators"]])
        return {"case_id": "", "source": "nodes", "inputs": inputs, "image": prepared["image"], "versions": []}

    # ----- consensus -------------------------------------------------------------------------------------

    @staticmethod
    def runConsensus(prepared, method="staple", options=None, thresholds=None, outDir=None) -> dict:
        """Any thread: the consensus, the review verdict and (with ``outDir``) the files and HTML report.

        Returns ``prepared`` plus 'result' (ConsensusResult), 'status' (queue entry with needs_review
        and reasons) and 'paths' ({what: path}).
        """
        thresholds = ReviewThresholds(**(thresholds or {}))
        result = run_consensus(prepared["inputs"], method, **(options or {}))
        status = review_status(result, prepared["case_id"], thresholds)
        paths = {}
        if outDir:
            paths = write_consensus_outputs(result, outDir, case_id=prepared["case_id"], image=prepared["image"],
                                            thresholds=thresholds)
        return {**prepared, "result": result, "status": status, "paths": {k: str(v) for k, v in paths.items()}}

    @staticmethod
    def labelRows(result) -> list:
        """One row per label: mean pairwise Dice, max pairwise HD95, consensus volume, notes."""
        rows = []
        for label, a in result.agreement.items():
            notes = [n for n in result.inputs.notes if f"'{label}'" in n]
            rows.append({"label": label, "mean_pairwise_dice": a["mean_pairwise_dice"],
                         "max_pairwise_hd95": a["max_pairwise_hd95"], "consensus_volume_ml": a["consensus_volume_ml"],
                         "notes": "; ".join(notes)})
        return rows

    @staticmethod
    def annotatorRows(result) -> list:
        """One row per label and annotator: figures against the consensus and the bias."""
        rows = []
        for label, a in result.agreement.items():
            for r in a["per_annotator"]:
                rows.append({"label": label, **r})
        return rows

    # ----- nodes and the disagreement layer (made in ConsensusReviewLib/mrml_nodes.py) ---------------------

    def showResult(self, run, scene=None, previous=None) -> dict:
        """Main thread: the reference volume and consensus segmentation nodes; {'reference', 'consensus', 'map'}.

        ``previous`` (the dict of an earlier call): its nodes are reused for the same case, so
        running again does not pile up nodes. A project case reuses the image the hub module opened.
        """
        return mrml_nodes.show_result(run, scene, previous)

    @staticmethod
    def mapChoices(result) -> list:
        """[(key, text)] of the maps that can be overlaid: disagreement, then vote counts and probabilities."""
        choices = [("disagreement", _("Disagreement: {what}").format(what=DISAGREEMENT_MAPS[result.method]))]
        for label in result.vote_counts:
            choices.append((f"votes:{label}", _("Vote count: {label}").format(label=label)))
        for label in result.probabilities:
            choices.append((f"probability:{label}", _("STAPLE probability: {label}").format(label=label)))
        return choices

    @staticmethod
    def mapArray(result, key) -> tuple:
        """(array (K, J, I), maximum of the display range) of a map key from mapChoices()."""
        return mrml_nodes.map_array(result, key)

    def mapColorNode(self, scene=None):
        """Main thread: the map's colour table (transparent-free 'hot' ramp), made once per scene."""
        return mrml_nodes.map_color_node(scene)

    def mapVolumeNode(self, run, key, scene=None, node=None):
        """Main thread: a volume node of a map (on the inputs' grid), coloured, zero shown as transparent."""
        return mrml_nodes.map_volume_node(run, key, scene, node)

    @staticmethod
    def showMap(mapNode, referenceNode=None, opacity=0.6) -> None:
        """Application: the map as the foreground layer of every slice view, over the reference image."""
        mrml_nodes.show_map(mapNode, referenceNode, opacity)

    @staticmethod
    def hideMap() -> None:
        """Application: no foreground layer."""
        mrml_nodes.hide_map()

    # ----- adjudication ------------------------------------------------------------------------------------

    @staticmethod
    def adjudicationStarts(run) -> list:
        """[(key, text)]: the consensus, then each annotator (with the version id when from the project)."""
        starts = [("consensus", _("the consensus ({method})").format(method=run["result"].method))]
        versions = {v["author"]: v for v in run.get("versions") or []}
        for name in run["inputs"].annotators:
            version = versions.get(name)
            text = name if version is None else _("{name} (version {id})").format(name=name, id=version["id"])
            starts.append((f"annotator:{name}", text))
        return starts

    @staticmethod
    def startSegmentation(run, start):
        """Any thread: (Segmentation, started_from text) of a start key from adjudicationStarts()."""
        return start_segmentation(run["result"], run["inputs"], run.get("versions"), start)

    def startAdjudication(self, run, start="consensus", referenceNode=None, scene=None):
        """Main thread: a segmentation node to edit, from the consensus or one annotator's segmentation."""
        seg, startedFrom = self.startSegmentation(run, start)
        name = f"{run['case_id'] or 'case'} adjudication"
        node = segmentation_to_node(seg, scene, reference_volume_node=referenceNode, name=name)
        node.SetAttribute("ConsensusReview.StartedFrom", startedFrom)
        self.adjudication = {"run": run, "node": node, "start": seg, "started_from": startedFrom}
        return node

    def adjudicatedSegmentation(self):
        """Main thread: the edited node as a Segmentation on the inputs' reference grid."""
        if self.adjudication is None:
            raise RuntimeError("start an adjudication first")
        node, run = self.adjudication["node"], self.adjudication["run"]
        return node_to_segmentation(node, reference_geometry=run["inputs"].geometry)

    def publish(self, seg, note="", message="") -> dict:
        """Any thread: push ``seg`` as the case's adjudicated version with the audit record; its record."""
        adjudication = self.adjudication
        if adjudication is None:
            raise RuntimeError("start an adjudication first")
        run = adjudication["run"]
        if run["source"] != "store" or not run["case_id"]:
            raise ValueError("publishing needs a consensus of a project case (source: project case)")
        return publish_adjudication(self.projectStore(), run["case_id"], seg, consensus_record=run["result"].record,
                                    versions=run["versions"], started_from=adjudication["started_from"],
                                    start=adjudication["start"], message=message, note=note)

    # ----- review queue ------------------------------------------------------------------------------------

    def buildReviewQueue(self, method="majority", workDir=None, thresholds=None, *, options=None, caseIds=None,
                         markInReview=False, outDir=None, progress=None) -> dict:
        """Any thread: the agreement of every case with two or more annotators, lowest first.

        Returns {'queue', 'skipped': [reason...], 'marked': [case ids set to 'in review'],
        'report': project_report.html or None}. ``markInReview`` moves the cases that cross a
        threshold to 'in review' in the project (a reviewer's right).
        """
        def caseRun(caseId, tmp):
            return self.runConsensus(self.inputsFromStore(caseId, tmp), method, options, thresholds)

        return build_project_queue(self.projectStore(), caseRun, thresholds, case_ids=caseIds, work_dir=workDir,
                                   mark_in_review=markInReview, out_dir=outDir, progress=progress)


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
        self.test_ConsensusOfSimulatedReaders()

    def test_ConsensusOfSimulatedReaders(self):
        """Three simulated readers of a phantom as nodes: STAPLE, agreement table, map layer, adjudication node."""
        import numpy as np


        phantom = make_phantom(seed=0, shape=(16, 48, 48), spacing=(1.5, 1.5, 3.0))
        reference = volume_to_node(phantom.volume, name="phantom")
        nodes = [segmentation_to_node(s, reference_volume_node=reference, name=f"reader{k + 1}")
                 for k, s in enumerate(simulate_reader_segmentations(phantom, 3, seed=0))]
        logic = ConsensusReviewLogic()
        run = logic.runConsensus(logic.inputsFromSegmentations(logic.segmentationsFromNodes(nodes, reference)), "staple")
        run["reference_node"] = reference
        shown = logic.showResult(run)
        self.assertEqual(shown["reference"], reference)
        self.assertTrue(logic.labelRows(run["result"]))
        mapNode = logic.mapVolumeNode(run, "disagreement")
        np.testing.assert_allclose(slicer.util.arrayFromVolume(mapNode), run["result"].disagreement)
        logic.showMap(mapNode, reference, 0.5)
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(red.GetForegroundVolumeID(), mapNode.GetID())
        node = logic.startAdjudication(run, "annotator:reader2", reference)
        self.assertEqual(node.GetSegmentation().GetNumberOfSegments(), len(run["inputs"].labels))
        self.delayDisplay("Test passed")
