"""ConsensusReview: agreement between annotators, STAPLE consensus, annotator bias, adjudication.

Pick a project case (every annotator's latest version), segmentation nodes or files; run majority
vote or STAPLE in the background; see the per-label agreement and each annotator against the
consensus; overlay a disagreement map; build a review queue sorted by lowest agreement; adjudicate
in the Segment Editor and publish the ground truth to the project with its audit record.
The work is done by ConsensusReviewLib (Qt-free, shared with `dicomteam consensus`). What the panel
does lives in Qt-free panel models (ConsensusReviewLib/consensus_panel.py and its sections); this
file's widget only binds the .ui widgets to them. The logic's nodes are made in ConsensusReviewLib/mrml.py.
"""
import os
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from ConsensusReviewLib import mrml as mrml_nodes
from ConsensusReviewLib.adjudication import publish_adjudication, start_segmentation
from ConsensusReviewLib.consensus import DISAGREEMENT_MAPS, METHODS, run_consensus
from ConsensusReviewLib.consensus_panel import ConsensusPanel
from ConsensusReviewLib.inputs import align_segmentations, load_annotations, unique_names
from ConsensusReviewLib.outputs import review_status, write_consensus_outputs
from ConsensusReviewLib.project_queue import build_project_queue
from ConsensusReviewLib.queue_panel import QUEUE_COLUMNS
from ConsensusReviewLib.requirements import PUBLISH, REVIEW_QUEUE, consensus_feature
from ConsensusReviewLib.results_panel import ANNOTATOR_COLUMNS, LABEL_COLUMNS, headers
from ConsensusReviewLib.review_queue import ReviewThresholds
from ConsensusReviewLib.simulate import simulate_reader_segmentations
from ConsensusReviewLib.store_case import load_store_case
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.slicer.connection import current_store
from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, node_to_volume, segmentation_to_node, volume_to_node
from DicomTeamAnnotateLib.slicer.packages import SEGMENTATION_FILES, Installer, require, slicer_version_problem
from DicomTeamAnnotateLib.slicer.qt_binding import bind_path, fill_combo, fill_table
from DicomTeamAnnotateLib.slicer.ui import SlicerUi

#
# ConsensusReview
#


class ConsensusReview(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Consensus Review")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "DICOM Team Annotate")]
        self.parent.dependencies = ["DicomTeamAnnotate"]  # the project connection and shared panel helpers
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Compare several annotators' segmentations of a case (needs 3D Slicer 5.12 or newer): agreement per label
(Dice, HD95, average surface distance, surface Dice, volumes), majority vote or STAPLE consensus, each
annotator's sensitivity, specificity and volume bias, a disagreement map overlaid on the image, a review
queue sorted by lowest agreement, and adjudication: start from the consensus or one annotator, edit in
the Segment Editor and publish the final ground truth to the project (connect in DICOM Team Annotate)
with its audit record. Python packages a feature needs (pynrrd for segmentation files, matplotlib for
the report) are installed at its first use, after you confirm. Headless twin: <code>dicomteam consensus</code>.
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


class ConsensusReviewWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: binds the .ui widgets to the Qt-free ConsensusPanel (ConsensusReviewLib/consensus_panel.py)."""

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
        if problem:  # one clear message instead of a failure inside a click
            self.layout.addWidget(qt.QLabel(problem))
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ConsensusReview.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ConsensusReviewLogic()
        ui = SlicerUi()
        self.panel = ConsensusPanel(self.logic, ui, Installer(_("Consensus Review"), ui))
        p = self.panel
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Inputs
        fill_combo(self.ui.sourceComboBox, p.inputs.source_choices(), p.inputs.source)
        self._bindCombo(self.ui.sourceComboBox, p.inputs.set_source)
        self.ui.openHubButton.connect("clicked(bool)", lambda: p.inputs.open_hub())
        self.ui.refreshCasesButton.connect("clicked(bool)", lambda: p.inputs.refresh_cases())
        self._bindCombo(self.ui.caseComboBox, p.inputs.set_case)
        self.ui.submittedOnlyCheckBox.checked = p.inputs.submitted_only
        self.ui.submittedOnlyCheckBox.connect("toggled(bool)", p.inputs.set_submitted_only)
        self.ui.segmentationsComboBox.connect(
            "checkedNodesChanged()", lambda: p.inputs.set_nodes(list(self.ui.segmentationsComboBox.checkedNodes())))
        self.ui.filesListWidget.connect("currentRowChanged(int)", p.inputs.select_file)
        self.ui.addFilesButton.connect("clicked(bool)", lambda: p.inputs.add_files())
        self.ui.removeFilesButton.connect("clicked(bool)", lambda: p.inputs.remove_file())
        # Method
        combo = self.ui.methodComboBox
        was = combo.blockSignals(True)
        for key, description in p.inputs.method_choices():
            combo.addItem(key, key)
            combo.setItemData(combo.count - 1, description, qt.Qt.ToolTipRole)
        combo.setCurrentIndex(combo.findData(p.inputs.method))
        combo.blockSignals(was)
        self._bindCombo(combo, p.inputs.set_method)
        fill_combo(self.ui.tieComboBox, p.inputs.tie_choices(), p.inputs.tie)
        self._bindCombo(self.ui.tieComboBox, p.inputs.set_tie)
        fill_combo(self.ui.hdModeComboBox, p.inputs.hd_mode_choices(), p.inputs.hd_mode)
        self._bindCombo(self.ui.hdModeComboBox, p.inputs.set_hd_mode)
        self.ui.outputFolderLineEdit.currentPath = p.inputs.output_folder
        bind_path(self.ui.outputFolderLineEdit, p.inputs.set_output_folder)
        self.ui.runButton.connect("clicked(bool)", lambda: p.inputs.compute())
        # Results
        for table, columns in ((self.ui.labelTableWidget, LABEL_COLUMNS), (self.ui.annotatorTableWidget, ANNOTATOR_COLUMNS),
                               (self.ui.queueTableWidget, QUEUE_COLUMNS)):
            table.setColumnCount(len(columns))
            table.setHorizontalHeaderLabels(headers(columns))
        self.ui.mapComboBox.connect("activated(int)", lambda i: p.results.choose_map(self.ui.mapComboBox.itemData(i)))
        self.ui.showMapCheckBox.checked = p.results.show_map
        self.ui.showMapCheckBox.connect("toggled(bool)", p.results.set_show_map)
        # the parameter node keeps the value (connectGui); the overlay's opacity alone follows the slider
        self.ui.mapOpacitySlider.connect("valueChanged(double)", p.results.set_opacity)
        self.ui.openReportButton.connect("clicked(bool)", lambda: p.results.open_report())
        # Review queue
        self.ui.markInReviewCheckBox.connect("toggled(bool)", p.queue.set_mark_in_review)
        self.ui.buildQueueButton.connect("clicked(bool)", lambda: p.queue.build())
        self.ui.queueTableWidget.connect("cellDoubleClicked(int,int)", lambda row, column: p.queue.activate(row))
        # Adjudication
        self._bindCombo(self.ui.startFromComboBox, p.adjudication.set_start)
        self.ui.startAdjudicationButton.connect("clicked(bool)", lambda: p.adjudication.start())
        self.ui.editAdjudicationButton.connect("clicked(bool)", lambda: p.adjudication.edit())
        self.ui.adjudicationNoteLineEdit.connect("textChanged(QString)", p.adjudication.set_note)
        self.ui.publishButton.connect("clicked(bool)", lambda: p.adjudication.publish())

        p.on_change(self.refresh)
        self.initializeParameterNode()
        self.refresh()

    @staticmethod
    def _bindCombo(combo, setter) -> None:
        """Forward the item data of the combo box's current item to ``setter`` (None when there is none)."""
        combo.connect("currentIndexChanged(int)", lambda i: setter(combo.itemData(i) if i >= 0 else None))

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self.panel is not None:
            self.panel.stop()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module: the project connection may have changed."""
        if self.panel is not None:
            self.initializeParameterNode()
            self.refresh()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)
        self.panel.scene_closing()

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" property in the .ui file are connected here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)
        self.panel.set_parameters(inputParameterNode)

    def refresh(self, caller=None, event=None) -> None:
        """Called when the panel model or the parameter node changes: copy its outputs to the widgets."""
        p = self.panel
        if p is None:
            return
        inputs, results, queue, adjudication = p.inputs, p.results, p.queue, p.adjudication
        self.ui.storeInputsWidget.setVisible(inputs.source == "store")
        self.ui.nodesInputsWidget.setVisible(inputs.source == "nodes")
        self.ui.filesInputsWidget.setVisible(inputs.source == "files")
        self.ui.storeStatusLabel.text = inputs.store_text
        fill_combo(self.ui.caseComboBox, inputs.case_choices(), inputs.case_id)
        self.ui.refreshCasesButton.enabled = inputs.can_refresh
        listed = [self.ui.filesListWidget.item(i).text() for i in range(self.ui.filesListWidget.count)]
        if listed != inputs.files:
            was = self.ui.filesListWidget.blockSignals(True)  # rebuilding the list is not the user's selection
            self.ui.filesListWidget.clear()
            self.ui.filesListWidget.addItems(inputs.files)
            self.ui.filesListWidget.blockSignals(was)
        self.ui.removeFilesButton.enabled = 0 <= inputs.selected_file < len(inputs.files)
        self.ui.runButton.enabled = inputs.can_compute
        self.ui.thresholdSpinBox.enabled = inputs.threshold_enabled
        self.ui.tieComboBox.enabled = inputs.tie_enabled
        self.ui.runStatusLabel.text = inputs.status_text

        self.ui.reviewStatusLabel.text = results.review_text
        fill_table(self.ui.labelTableWidget, results.label_cells)
        fill_table(self.ui.annotatorTableWidget, results.annotator_cells)
        fill_combo(self.ui.mapComboBox, results.map_choices, results.map_key)
        if self.ui.showMapCheckBox.checked != results.show_map:
            self.ui.showMapCheckBox.checked = results.show_map
        self.ui.openReportButton.enabled = results.can_open_report

        self.ui.buildQueueButton.enabled = queue.can_build
        fill_table(self.ui.queueTableWidget, queue.queue_cells)
        self.ui.queueStatusLabel.text = queue.status_text
        self.ui.queueStatusLabel.toolTip = queue.status_tooltip

        fill_combo(self.ui.startFromComboBox, adjudication.start_choices, adjudication.start_key)
        self.ui.startAdjudicationButton.enabled = adjudication.can_start
        self.ui.editAdjudicationButton.enabled = adjudication.can_edit
        self.ui.publishButton.enabled = adjudication.can_publish
        self.ui.publishButton.toolTip = adjudication.publish_tooltip
        self.ui.adjudicationStatusLabel.text = adjudication.status_text


#
# ConsensusReviewLogic
#


class ConsensusReviewLogic(ScriptedLoadableModuleLogic):
    """Consensus, agreement, maps, review queue and adjudication; usable without the panel.

    Methods marked "any thread" do no MRML/Qt work; those that use the project take the store as
    an argument (the panel reads it on the main thread and hands it to its worker). Example
    (Slicer's Python console, connected to the project in DICOM Team Annotate as a reviewer)::

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
        self.store = None  # None: the project the DicomTeamAnnotate module is connected to
        self.adjudication = None  # {'run', 'node', 'start', 'started_from'} while a reviewer edits

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return ConsensusReviewParameterNode(super().getParameterNode())

    # ----- the project ---------------------------------------------------------------------------------

    def projectStore(self, required=True):
        """The store: set on this logic, else the one the DicomTeamAnnotate module is connected to.

        A plain value kept by the hub (DicomTeamAnnotateLib.slicer.connection), never looked up through
        the hub's module widget; still, read it on the main thread and hand it to workers.
        """
        store = self.store if self.store is not None else current_store()
        if store is None and required:
            raise RuntimeError("not connected to a project: connect in the DICOM Team Annotate module")
        return store

    @staticmethod
    def defaultOutputFolder() -> str:
        """Main thread: where consensus outputs and downloaded inputs go by default (Slicer's cache)."""
        app = getattr(slicer, "app", None)
        base = app.cachePath if app is not None else os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "DicomTeamAnnotate", "consensus")

    @staticmethod
    def methodChoices() -> dict:
        """{method: description} (ConsensusReviewLib.consensus.METHODS)."""
        return dict(METHODS)

    def reviewCases(self, store=None) -> list:
        """Any thread (with ``store``): [{'case_id', 'state', 'annotators': [...]}] of the project (a reviewer sees all)."""
        rows = []
        for row in (store or self.projectStore()).worklist():
            rows.append({"case_id": row["case_id"], "state": row.get("case_state") or row["state"],
                         "annotators": sorted((row.get("annotators") or {}).keys())})
        return rows

    # ----- inputs (each returns a dict: case_id, source, inputs, image, versions) ------------------------

    def inputsFromStore(self, caseId, workDir, submittedOnly=True, store=None) -> dict:
        """Any thread (with ``store``): every annotator's latest version of a project case, on its image's grid."""
        require(SEGMENTATION_FILES, _("Consensus Review"))
        inputs, image, versions = load_store_case(store or self.projectStore(), caseId, workDir, submittedOnly)
        return {"case_id": caseId, "source": "store", "inputs": inputs, "image": image, "versions": versions}

    @staticmethod
    def inputsFromFiles(paths, reference=None) -> dict:
        """Any thread: annotators' files (.seg.nrrd or label maps); ``reference``: a Volume, Geometry or path."""
        require(consensus_feature("files", False, paths), _("Consensus Review"))
        image = reference if isinstance(reference, Volume) else None
        inputs = load_annotations(paths, reference=reference.geometry if image is not None else reference)
        return {"case_id": "", "source": "files", "inputs": inputs, "image": image, "versions": []}

    @staticmethod
    def referenceImage(referenceNode):
        """Main thread: the reference volume node as a Volume (None without a node)."""
        return node_to_volume(referenceNode) if referenceNode is not None else None

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
        limits = ReviewThresholds(**(thresholds or {}))
        result = run_consensus(prepared["inputs"], method, **(options or {}))
        run = {**prepared, "result": result, "status": review_status(result, prepared["case_id"], limits), "paths": {}}
        if outDir:
            run["paths"] = ConsensusReviewLogic.writeConsensusOutputs(run, outDir, thresholds)
        return run

    @staticmethod
    def writeConsensusOutputs(run, outDir, thresholds=None) -> dict:
        """Any thread: a run's files (consensus .seg.nrrd and label map, maps, agreement JSON/CSV, HTML report)
        in ``outDir``; {what: path}."""
        require(consensus_feature("nodes", True), _("Consensus Review"))
        paths = write_consensus_outputs(run["result"], outDir, case_id=run["case_id"], image=run["image"],
                                        thresholds=ReviewThresholds(**(thresholds or {})))
        return {k: str(v) for k, v in paths.items()}

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

    # ----- nodes and the disagreement layer (made in ConsensusReviewLib/mrml.py) ---------------------------

    def showResult(self, run, scene=None, previous=None) -> dict:
        """Main thread: the reference volume and consensus segmentation nodes; {'reference', 'consensus', 'map'}.

        ``previous`` (the dict of an earlier call): its nodes are reused for the same case, so
        running again does not pile up nodes. A project case reuses the image the hub module opened.
        """
        return mrml_nodes.show_result(run, scene, previous)

    @staticmethod
    def aliveNode(node):
        """``node`` if it is still in a scene, else None."""
        return mrml_nodes.alive(node)

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
    def setMapOpacity(opacity) -> None:
        """Application: the overlay's opacity only (no map volume is rebuilt)."""
        mrml_nodes.set_map_opacity(opacity)

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

    @staticmethod
    def editInSegmentEditor(segmentationNode, referenceNode=None) -> None:
        """Application: the Segment Editor opened on the adjudication node (source volume: the run's image)."""
        mrml_nodes.edit_in_segment_editor(segmentationNode, referenceNode)

    def adjudicatedSegmentation(self):
        """Main thread: the edited node as a Segmentation on the inputs' reference grid."""
        if self.adjudication is None:
            raise RuntimeError("start an adjudication first")
        node, run = self.adjudication["node"], self.adjudication["run"]
        return node_to_segmentation(node, reference_geometry=run["inputs"].geometry)

    def publish(self, seg, note="", message="", store=None, adjudication=None) -> dict:
        """Any thread (with ``store`` and ``adjudication`` read on the main thread): push ``seg`` as the
        case's adjudicated version with the audit record; its record."""
        require(PUBLISH, _("Consensus Review"))
        adjudication = adjudication if adjudication is not None else self.adjudication
        if adjudication is None:
            raise RuntimeError("start an adjudication first")
        run = adjudication["run"]
        if run["source"] != "store" or not run["case_id"]:
            raise ValueError("publishing needs a consensus of a project case (source: project case)")
        return publish_adjudication(store or self.projectStore(), run["case_id"], seg,
                                    consensus_record=run["result"].record, versions=run["versions"],
                                    started_from=adjudication["started_from"], start=adjudication["start"],
                                    message=message, note=note)

    # ----- review queue ------------------------------------------------------------------------------------

    def buildReviewQueue(self, method="majority", workDir=None, thresholds=None, *, options=None, caseIds=None,
                         markInReview=False, outDir=None, progress=None, store=None) -> dict:
        """Any thread (with ``store``): the agreement of every case with two or more annotators, lowest first.

        Returns {'queue', 'skipped': [reason...], 'marked': [case ids set to 'in review'],
        'report': project_report.html or None}. ``markInReview`` moves the cases that cross a
        threshold to 'in review' in the project (a reviewer's right).
        """
        require(REVIEW_QUEUE, _("Consensus Review"))
        store = store or self.projectStore()

        def caseRun(caseId, tmp):
            """One case's consensus, its inputs downloaded to ``tmp``."""
            return self.runConsensus(self.inputsFromStore(caseId, tmp, store=store), method, options, thresholds)

        return build_project_queue(store, caseRun, thresholds, case_ids=caseIds, work_dir=workDir,
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
        self.setUp()
        self.test_PanelComputesConsensus()

    @staticmethod
    def _readerNodes(count=3):
        """A phantom image node and ``count`` simulated readers' segmentation nodes of it."""
        phantom = make_phantom(seed=0, shape=(16, 48, 48), spacing=(1.5, 1.5, 3.0))
        reference = volume_to_node(phantom.volume, name="phantom")
        nodes = [segmentation_to_node(s, reference_volume_node=reference, name=f"reader{k + 1}")
                 for k, s in enumerate(simulate_reader_segmentations(phantom, count, seed=0))]
        return reference, nodes

    def test_ConsensusOfSimulatedReaders(self):
        """Three simulated readers of a phantom as nodes: STAPLE, agreement table, map layer, adjudication node."""
        import numpy as np

        reference, nodes = self._readerNodes()
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

    def test_PanelComputesConsensus(self):
        """The panel's main action as a user takes it (as ExtraEffects' test_SplitVolume1 drives its effect):
        three readers' nodes checked, 'Compute consensus' clicked, the tables, report, overlay and adjudication
        choices filled; the opacity slider changes the overlay only."""
        import tempfile
        import time

        reference, nodes = self._readerNodes()
        slicer.util.selectModule("ConsensusReview")
        widget = slicer.util.getModuleWidget("ConsensusReview")
        ui, panel = widget.ui, widget.panel
        ui.sourceComboBox.setCurrentIndex(ui.sourceComboBox.findData("nodes"))
        for node in nodes:
            ui.segmentationsComboBox.setCheckState(node, qt.Qt.Checked)
        ui.referenceVolumeSelector.setCurrentNode(reference)
        with tempfile.TemporaryDirectory() as folder:
            ui.outputFolderLineEdit.currentPath = folder
            self.assertTrue(ui.runButton.enabled)
            ui.runButton.click()  # first use: pynrrd and matplotlib installed (asked, outside testing mode)
            deadline = time.monotonic() + 600
            while panel.tasks.busy and time.monotonic() < deadline:
                slicer.app.processEvents()
                time.sleep(0.02)
            self.assertFalse(panel.tasks.busy, "the consensus did not finish in 10 minutes")
            self.assertIn("staple of 3 annotators", ui.runStatusLabel.text)
            self.assertEqual(ui.labelTableWidget.rowCount, len(panel.results.run["inputs"].labels))
            self.assertEqual(ui.annotatorTableWidget.rowCount, 3 * ui.labelTableWidget.rowCount)
            self.assertTrue(ui.openReportButton.enabled)
            self.assertTrue(os.path.isfile(os.path.join(folder, "consensus", "consensus.seg.nrrd")))
        mapNode = panel.results.nodes["map"]
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(red.GetForegroundVolumeID(), mapNode.GetID())
        stamp = mapNode.GetImageData().GetMTime()
        ui.mapOpacitySlider.value = 0.25
        self.assertAlmostEqual(red.GetForegroundOpacity(), 0.25)
        self.assertEqual(mapNode.GetImageData().GetMTime(), stamp, "the opacity slider rebuilt the map volume")
        self.assertEqual(ui.startFromComboBox.count, 4)  # the consensus, then each reader
        self.delayDisplay("Test passed")
