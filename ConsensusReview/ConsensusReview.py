"""ConsensusReview: agreement between annotators, STAPLE consensus, annotator bias, adjudication.

Pick a project case (every annotator's latest version), segmentation nodes or files; run majority
vote or STAPLE in the background; see the per-label agreement and each annotator against the
consensus; overlay a disagreement map; build a review queue sorted by lowest agreement; adjudicate
in the Segment Editor and publish the ground truth to the project with its audit record.
The work is done by ConsensusReviewLib (Qt-free, shared with `dicomteam consensus`).
"""
import math
import os
from typing import Annotated

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode

SOURCES = ("store", "nodes", "files")
MAP_COLOR_NODE_NAME = "DicomTeamAnnotate disagreement"
ANNOTATOR_COLUMNS = ("label", "annotator", "dice", "hd95", "nsd", "sensitivity", "specificity", "volume_diff_ml",
                     "tendency")
QUEUE_COLUMNS = ("case_id", "worst_label", "mean_pairwise_dice", "max_pairwise_hd95", "min_annotator_dice",
                 "disputed_fraction", "needs_review", "reasons")


def formatValue(value, digits=3) -> str:
    """A table cell: numbers rounded, inf and undefined spelled out."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "-"
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


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


class ConsensusReviewWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, method, results, disagreement map, review queue, adjudication."""

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
        from DicomTeamAnnotate import TaskRunner  # the hub module's shared panel helper

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
        for key, text in (("store", _("Project case")), ("nodes", _("Segmentation nodes")), ("files", _("Files"))):
            self.ui.sourceComboBox.addItem(text, key)
        self.ui.sourceComboBox.connect("currentIndexChanged(int)", self._onSourceChanged)
        self.ui.openHubButton.connect("clicked(bool)", lambda: slicer.util.selectModule("DicomTeamAnnotate"))
        self.ui.refreshCasesButton.connect("clicked(bool)", self.onRefreshCases)
        self.ui.caseComboBox.connect("currentIndexChanged(int)", self._updateButtonStates)
        self.ui.segmentationsComboBox.connect("checkedNodesChanged()", self._updateButtonStates)
        self.ui.addFilesButton.connect("clicked(bool)", self.onAddFiles)
        self.ui.removeFilesButton.connect("clicked(bool)", self.onRemoveFiles)
        # Method
        for key, text in self.logic.methodChoices().items():
            self.ui.methodComboBox.addItem(key, key)
            self.ui.methodComboBox.setItemData(self.ui.methodComboBox.count - 1, text, qt.Qt.ToolTipRole)
        self.ui.methodComboBox.setCurrentIndex(self.ui.methodComboBox.findData("staple"))
        for key, text in (("background", _("half the votes: background")), ("foreground", _("half the votes: foreground"))):
            self.ui.tieComboBox.addItem(text, key)
        for key, text in (("max", _("max of the directed 95th percentiles")), ("mean", _("mean of the directed 95th percentiles (SlicerRT)"))):
            self.ui.hdModeComboBox.addItem(text, key)
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

    # ----- inputs -------------------------------------------------------------------------------------

    def _source(self) -> str:
        """'store', 'nodes' or 'files'."""
        return self.ui.sourceComboBox.currentData or "store"

    def _onSourceChanged(self, *args) -> None:
        """Called when the input source changes: show its controls."""
        source = self._source()
        self.ui.storeInputsWidget.setVisible(source == "store")
        self.ui.nodesInputsWidget.setVisible(source == "nodes")
        self.ui.filesInputsWidget.setVisible(source == "files")
        self._showStoreStatus()
        self._updateButtonStates()

    def _showStoreStatus(self) -> None:
        """Say which project the reviewer is connected to (the connection is made in DICOM Team Annotate)."""
        store = self.logic.projectStore(required=False)
        if store is None:
            self.ui.storeStatusLabel.text = _("Not connected: connect to the project in DICOM Team Annotate.")
        else:
            self.ui.storeStatusLabel.text = _("Project {location} as {user}.").format(location=store.location,
                                                                                     user=store.user)
        self._updateButtonStates()

    def onRefreshCases(self) -> None:
        """Called by 'Refresh': list the project's cases with their annotators."""
        self._tasks.start(lambda task: self.logic.reviewCases(), self._onCases, name="cases")

    def _onCases(self, task) -> None:
        """Called when the case list arrives."""
        from DicomTeamAnnotate import TaskRunner

        ok, rows = TaskRunner.result(task, _("Could not list the cases."))
        if not ok:
            return
        combo, current = self.ui.caseComboBox, self.ui.caseComboBox.currentData
        combo.clear()
        for row in rows:
            annotators = ", ".join(row["annotators"]) or _("no annotator yet")
            combo.addItem(f"{row['case_id']} ({row['state'].replace('_', ' ')}; {annotators})", row["case_id"])
        index = combo.findData(current) if current else -1
        combo.setCurrentIndex(max(index, 0))

    def onAddFiles(self) -> None:
        """Called by 'Add...': choose annotators' .seg.nrrd or label-map files."""
        paths = qt.QFileDialog.getOpenFileNames(slicer.util.mainWindow(), _("Annotators' segmentations"), "",
                                                _("Segmentations (*.seg.nrrd *.nrrd *.nii *.nii.gz *.nhdr)"))
        for path in paths:
            self.ui.filesListWidget.addItem(path)
        self._updateButtonStates()

    def onRemoveFiles(self) -> None:
        """Called by 'Remove': drop the selected files from the list."""
        for item in self.ui.filesListWidget.selectedItems():
            self.ui.filesListWidget.takeItem(self.ui.filesListWidget.row(item))
        self._updateButtonStates()

    # ----- consensus ----------------------------------------------------------------------------------

    def _options(self) -> dict:
        """The method options of the panel, as run_consensus takes them."""
        return {"threshold": self.ui.thresholdSpinBox.value, "tie": self.ui.tieComboBox.currentData,
                "tolerance_mm": self.ui.toleranceSpinBox.value, "hd_mode": self.ui.hdModeComboBox.currentData}

    def _thresholds(self) -> dict:
        """The review thresholds of the panel."""
        return {"min_mean_pairwise_dice": self.ui.minPairwiseDiceSpinBox.value,
                "max_pairwise_hd95_mm": self.ui.maxHd95SpinBox.value,
                "max_disputed_fraction": self.ui.maxDisputedSpinBox.value,
                "min_annotator_dice": self.ui.minAnnotatorDiceSpinBox.value}

    def onRun(self) -> None:
        """Called by 'Compute consensus': gather the inputs, then compute on a worker thread."""
        source, method = self._source(), self.ui.methodComboBox.currentData
        options, thresholds = self._options(), self._thresholds()
        outDir = self.ui.outputFolderLineEdit.currentPath or None
        reference = self._parameterNode.referenceVolume if self._parameterNode else None
        # Everything the worker needs is read here, on the main thread (widgets, MRML, translations).
        if source == "nodes":
            with slicer.util.tryWithErrorDisplay(_("Could not read the segmentation nodes."), waitCursor=True):
                prepared = self.logic.segmentationsFromNodes(list(self.ui.segmentationsComboBox.checkedNodes()),
                                                             reference)
            downloading = ""

            def gather():
                return self.logic.inputsFromSegmentations(prepared)
        elif source == "files":
            from DicomTeamAnnotateLib.mrml import node_to_volume

            paths = [self.ui.filesListWidget.item(i).text() for i in range(self.ui.filesListWidget.count)]
            referenceVolume = node_to_volume(reference) if reference is not None else None
            downloading = ""

            def gather():
                return self.logic.inputsFromFiles(paths, referenceVolume)
        else:
            caseId, submittedOnly = self.ui.caseComboBox.currentData, self.ui.submittedOnlyCheckBox.checked
            workDir = os.path.join(self.logic.defaultOutputFolder(), "inputs", str(caseId))
            downloading = _("Downloading the annotations of {case}...").format(case=caseId)
            reference = None  # the case image comes with the inputs

            def gather():
                return self.logic.inputsFromStore(caseId, workDir, submittedOnly)

        computing = _("Computing the {method} consensus...").format(method=method)

        def work(task):
            task.report(None, downloading or computing)
            prepared = gather()
            prepared["reference_node"] = reference  # passed through untouched: MRML stays on the main thread
            task.report(None, computing)
            folder = os.path.join(outDir, prepared["case_id"] or "consensus") if outDir else None
            return self.logic.runConsensus(prepared, method, options, thresholds, folder)

        self.ui.runStatusLabel.text = computing
        self._tasks.start(work, self._onRun, name="consensus", dialogTitle=_("Consensus"), dialogText=computing)

    def _onRun(self, task) -> None:
        """Called when the consensus is computed: tables, nodes, the map, adjudication choices."""
        from DicomTeamAnnotate import TaskRunner

        ok, run = TaskRunner.result(task, _("The consensus could not be computed."))
        if not ok:
            self.ui.runStatusLabel.text = _("Consensus not computed.")
            return
        self._run = run
        with slicer.util.tryWithErrorDisplay(_("Could not show the consensus."), waitCursor=True):
            self._nodes = self.logic.showResult(run, previous=self._nodes)
        result = run["result"]
        self.ui.runStatusLabel.text = _("{method} of {n} annotators ({names}) in {seconds:.1f} s.").format(
            method=result.method, n=len(result.inputs.annotators), names=", ".join(result.inputs.annotators),
            seconds=task.elapsed)
        self._showStatus(run)
        self._fillTable(self.ui.labelTableWidget, self.logic.labelRows(result),
                        ("label", "mean_pairwise_dice", "max_pairwise_hd95", "consensus_volume_ml", "notes"))
        self._fillTable(self.ui.annotatorTableWidget, self.logic.annotatorRows(result), ANNOTATOR_COLUMNS)
        self.ui.mapComboBox.clear()
        for key, text in self.logic.mapChoices(result):
            self.ui.mapComboBox.addItem(text, key)
        self.ui.startFromComboBox.clear()
        for key, text in self.logic.adjudicationStarts(run):
            self.ui.startFromComboBox.addItem(text, key)
        self.onShowMap()

    def _showStatus(self, run) -> None:
        """The review verdict of the case, with the reasons."""
        status = run["status"]
        if status is None:
            self.ui.reviewStatusLabel.text = ""
        elif status["needs_review"]:
            self.ui.reviewStatusLabel.text = _("<b>Needs review</b>: {reasons}").format(
                reasons="; ".join(status["reasons"]))
        else:
            self.ui.reviewStatusLabel.text = _("Within the review thresholds.")

    @staticmethod
    def _fillTable(table, rows, columns) -> None:
        """Fill a QTableWidget with ``rows`` (dicts) in ``columns`` order."""
        table.clear()
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels([c.replace("_", " ") for c in columns])
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                text = formatValue(row.get(key))
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()

    def onShowMap(self, *args) -> None:
        """Called when the map, its visibility or opacity changes: update the overlay."""
        if self._run is None:
            return
        key = self.ui.mapComboBox.currentData
        with slicer.util.tryWithErrorDisplay(_("Could not show the disagreement map.")):
            if not self.ui.showMapCheckBox.checked or not key:
                self.logic.hideMap()
                return
            self._nodes["map"] = self.logic.mapVolumeNode(self._run, key, node=self._nodes.get("map"))
            self.logic.showMap(self._nodes["map"], self._nodes.get("reference"), self.ui.mapOpacitySlider.value)

    def onOpenReport(self) -> None:
        """Called by 'Open report': the case's HTML report in the web browser."""
        report = (self._run or {}).get("paths", {}).get("report")
        if report and os.path.isfile(report):
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(report)))

    # ----- review queue -------------------------------------------------------------------------------

    def onBuildQueue(self) -> None:
        """Called by 'Build queue': consensus of every case with two or more annotators, lowest agreement first."""
        method, options, thresholds = self.ui.methodComboBox.currentData, self._options(), self._thresholds()
        mark = self.ui.markInReviewCheckBox.checked
        outDir = self.ui.outputFolderLineEdit.currentPath or self.logic.defaultOutputFolder()
        workDir = os.path.join(self.logic.defaultOutputFolder(), "inputs")
        label = _("Computing the agreement of every case...")
        from DicomTeamAnnotate import TaskRunner

        def work(task):
            return self.logic.buildReviewQueue(method, workDir, thresholds, options=options, markInReview=mark,
                                               outDir=outDir, progress=TaskRunner.progressReporter(task, label))

        self._tasks.start(work, self._onQueue, name="review queue", dialogTitle=_("Review queue"), dialogText=label)

    def _onQueue(self, task) -> None:
        """Called when the queue is built."""
        from DicomTeamAnnotate import TaskRunner

        ok, built = TaskRunner.result(task, _("The review queue could not be built."))
        if not ok:
            return
        self._queue = built["queue"]
        self._fillTable(self.ui.queueTableWidget, self._queue, QUEUE_COLUMNS)
        text = _("{n} case(s), {flagged} need review; {skipped} skipped.").format(
            n=len(self._queue), flagged=sum(1 for q in self._queue if q["needs_review"]), skipped=len(built["skipped"]))
        if built["marked"]:
            text += " " + _("Marked 'in review': {cases}.").format(cases=", ".join(built["marked"]))
        self.ui.queueStatusLabel.text = text
        self.ui.queueStatusLabel.toolTip = "\n".join(built["skipped"])
        self._queueReport = built.get("report")

    def onQueueCaseActivated(self, row, column) -> None:
        """Called on a double-click in the queue: compute that case's consensus."""
        caseId = self._queue[row]["case_id"]
        self.ui.sourceComboBox.setCurrentIndex(self.ui.sourceComboBox.findData("store"))
        index = self.ui.caseComboBox.findData(caseId)
        if index < 0:
            self.ui.caseComboBox.addItem(caseId, caseId)
            index = self.ui.caseComboBox.count - 1
        self.ui.caseComboBox.setCurrentIndex(index)
        self.onRun()

    # ----- adjudication -------------------------------------------------------------------------------

    def onStartAdjudication(self) -> None:
        """Called by 'Start': a segmentation node to edit, from the consensus or one annotator."""
        if self._run is None:
            return
        start = self.ui.startFromComboBox.currentData
        with slicer.util.tryWithErrorDisplay(_("Could not start the adjudication."), waitCursor=True):
            node = self.logic.startAdjudication(self._run, start, self._nodes.get("reference"))
            self.ui.adjudicationStatusLabel.text = _("Editing '{node}' (from {start}). Publish when done.").format(
                node=node.GetName(), start=self.ui.startFromComboBox.currentText)
            self.onEditAdjudication()

    def onEditAdjudication(self) -> None:
        """Called by 'Segment Editor': edit the adjudication there."""
        adjudication = self.logic.adjudication
        if adjudication is None:
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor
        editor.setSegmentationNode(adjudication["node"])
        reference = self._nodes.get("reference")
        if reference is not None:
            setSource = getattr(editor, "setSourceVolumeNode", None) or editor.setMasterVolumeNode  # before Slicer 5.2
            setSource(reference)

    def onPublish(self) -> None:
        """Called by 'Publish ground truth': push the edited segmentation as the adjudicated version."""
        adjudication = self.logic.adjudication
        if adjudication is None:
            return
        if not slicer.util.confirmOkCancelDisplay(
                _("Publish '{node}' as the ground truth of case {case}? Every member will see it as the adjudicated "
                  "version.").format(node=adjudication["node"].GetName(), case=self._run["case_id"])):
            return
        note = self.ui.adjudicationNoteLineEdit.text.strip()
        with slicer.util.tryWithErrorDisplay(_("Could not read the adjudicated segmentation."), waitCursor=True):
            seg = self.logic.adjudicatedSegmentation()  # MRML: main thread
        self._tasks.start(lambda task: self.logic.publish(seg, note=note), self._onPublished, name="publish",
                          dialogTitle=_("Publishing"), dialogText=_("Sending the ground truth to the project..."))

    def _onPublished(self, task) -> None:
        """Called when the ground truth is in the project."""
        from DicomTeamAnnotate import TaskRunner

        ok, version = TaskRunner.result(task, _("The ground truth was not published."))
        if ok:
            self.ui.adjudicationStatusLabel.text = _("Published as adjudicated version {id} of case {case}.").format(
                id=version["id"], case=version["case_id"])

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
        from ConsensusReviewLib.consensus import METHODS

        return dict(METHODS)

    def reviewCases(self) -> list:
        """Any thread: [{'case_id', 'state', 'annotators': [...]}] of the project (a reviewer sees all)."""
        rows = []
        for row in self.projectStore().worklist():
            rows.append({"case_id": row["case_id"], "state": row.get("case_state") or row["state"],
                         "annotators": sorted((row.get("annotators") or {}).keys())})
        return rows

    # ----- inputs (each returns a dict: case_id, source, inputs, image, versions) ------------------------

    def inputsFromStore(self, caseId, workDir, submittedOnly=False) -> dict:
        """Any thread: every annotator's latest version of a project case, on the case image's grid."""
        from ConsensusReviewLib.store_case import load_store_case

        inputs, image, versions = load_store_case(self.projectStore(), caseId, workDir, submittedOnly)
        return {"case_id": caseId, "source": "store", "inputs": inputs, "image": image, "versions": versions}

    @staticmethod
    def inputsFromFiles(paths, reference=None) -> dict:
        """Any thread: annotators' files (.seg.nrrd or label maps); ``reference``: a Volume, Geometry or path."""
        from ConsensusReviewLib.inputs import load_annotations

        from DicomTeamAnnotateLib.volume import Volume

        image = reference if isinstance(reference, Volume) else None
        inputs = load_annotations(paths, reference=reference.geometry if image is not None else reference)
        return {"case_id": "", "source": "files", "inputs": inputs, "image": image, "versions": []}

    @staticmethod
    def segmentationsFromNodes(nodes, referenceNode=None) -> dict:
        """Main thread: read segmentation nodes (and the reference volume) for inputsFromSegmentations()."""
        from DicomTeamAnnotateLib.mrml import node_to_segmentation, node_to_volume

        nodes = [n for n in nodes if n is not None]
        if len(nodes) < 2:
            raise ValueError("choose at least two segmentation nodes")
        image = node_to_volume(referenceNode) if referenceNode is not None else None
        reference = image.geometry if image is not None else None
        segs = [node_to_segmentation(n, reference_geometry=reference) for n in nodes]
        names = [n.GetName() for n in nodes]
        return {"segmentations": segs, "annotators": names, "image": image, "reference": reference}

    @staticmethod
    def inputsFromSegmentations(prepared) -> dict:
        """Any thread: align what segmentationsFromNodes() read."""
        from ConsensusReviewLib.inputs import align_segmentations, unique_names

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
        from ConsensusReviewLib.consensus import run_consensus
        from ConsensusReviewLib.outputs import review_status, write_consensus_outputs
        from ConsensusReviewLib.review_queue import ReviewThresholds

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

    # ----- nodes and the disagreement layer ------------------------------------------------------------

    @staticmethod
    def _alive(node):
        """``node`` if it is still in a scene, else None."""
        return node if node is not None and node.GetScene() is not None else None

    def showResult(self, run, scene=None, previous=None) -> dict:
        """Main thread: the reference volume and consensus segmentation nodes; {'reference', 'consensus', 'map'}.

        ``previous`` (the dict of an earlier call): its nodes are reused for the same case, so
        running again does not pile up nodes. A project case reuses the image the hub module opened.
        """
        from DicomTeamAnnotateLib.mrml import segmentation_to_node, volume_to_node

        previous = previous if previous and previous.get("case_id") == run["case_id"] else {}
        name = run["case_id"] or "consensus"
        reference = self._alive(run.get("reference_node")) or self._alive(previous.get("reference"))
        if reference is None and run.get("image") is not None:
            if run["case_id"]:
                for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode", scene):
                    if node.GetAttribute("DicomTeamAnnotate.CaseId") == run["case_id"]:
                        reference = node
            if reference is None:
                reference = volume_to_node(run["image"], scene, name=f"{name} image")
                reference.SetAttribute("DicomTeamAnnotate.CaseId", run["case_id"])
        result = run["result"]
        consensus = segmentation_to_node(result.segmentation, scene, reference_volume_node=reference,
                                         name=f"{name} consensus ({result.method})",
                                         node=self._alive(previous.get("consensus")))
        consensus.SetName(f"{name} consensus ({result.method})")
        consensus.SetAttribute("ConsensusReview.Method", result.method)
        run["reference_node"] = reference
        return {"case_id": run["case_id"], "reference": reference, "consensus": consensus,
                "map": self._alive(previous.get("map"))}

    @staticmethod
    def mapChoices(result) -> list:
        """[(key, text)] of the maps that can be overlaid: disagreement, then vote counts and probabilities."""
        from ConsensusReviewLib.consensus import DISAGREEMENT_MAPS

        choices = [("disagreement", _("Disagreement: {what}").format(what=DISAGREEMENT_MAPS[result.method]))]
        for label in result.vote_counts:
            choices.append((f"votes:{label}", _("Vote count: {label}").format(label=label)))
        for label in result.probabilities:
            choices.append((f"probability:{label}", _("STAPLE probability: {label}").format(label=label)))
        return choices

    @staticmethod
    def mapArray(result, key) -> tuple:
        """(array (K, J, I), maximum of the display range) of a map key from mapChoices()."""
        if key == "disagreement":
            return result.disagreement, 1.0
        kind, _sep, label = key.partition(":")
        if kind == "votes":
            return result.vote_counts[label], float(len(result.inputs.annotators))
        if kind == "probability":
            return result.probabilities[label], 1.0
        raise ValueError(f"unknown map {key!r}")

    def mapColorNode(self, scene=None):
        """Main thread: the map's colour table (transparent-free 'hot' ramp), made once per scene."""
        scene = scene or slicer.mrmlScene
        node = scene.GetFirstNodeByName(MAP_COLOR_NODE_NAME)
        if node is not None:
            return node
        node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", MAP_COLOR_NODE_NAME)
        node.SetTypeToUser()
        node.SetNumberOfColors(256)
        for i in range(256):
            t = i / 255.0
            # black-red-yellow-white: more disagreement, hotter
            node.SetColor(i, f"{t:.3f}", min(1.0, 3 * t), min(1.0, max(0.0, 3 * t - 1)), min(1.0, max(0.0, 3 * t - 2)), 1.0)
        return node

    def mapVolumeNode(self, run, key, scene=None, node=None):
        """Main thread: a volume node of a map (on the inputs' grid), coloured, zero shown as transparent."""
        from DicomTeamAnnotateLib.mrml import volume_to_node
        from DicomTeamAnnotateLib.volume import Volume

        result = run["result"]
        array, top = self.mapArray(result, key)
        name = f"{run['case_id'] or 'consensus'} {key.replace(':', ' ')}"
        node = volume_to_node(Volume(array.astype("float32"), result.inputs.geometry), scene, name=name,
                              node=self._alive(node))
        node.SetName(name)
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(self.mapColorNode(scene or node.GetScene()).GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, top)
        # Voxels with no disagreement (no vote) are not drawn, so the image shows through.
        display.AutoThresholdOff()
        display.SetLowerThreshold(top * 1e-3)
        display.SetUpperThreshold(top)
        display.ApplyThresholdOn()
        node.SetAttribute("ConsensusReview.Map", key)
        return node

    @staticmethod
    def showMap(mapNode, referenceNode=None, opacity=0.6) -> None:
        """Application: the map as the foreground layer of every slice view, over the reference image."""
        kwargs = {"foreground": mapNode, "foregroundOpacity": float(opacity)}
        if referenceNode is not None:
            kwargs["background"] = referenceNode
        slicer.util.setSliceViewerLayers(**kwargs)

    @staticmethod
    def hideMap() -> None:
        """Application: no foreground layer."""
        slicer.util.setSliceViewerLayers(foreground=None)

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
        from DicomTeamAnnotateLib.segmentation import Segmentation

        result, inputs = run["result"], run["inputs"]
        if start == "consensus":
            return result.segmentation, "consensus"
        kind, _sep, name = start.partition(":")
        if kind != "annotator" or name not in inputs.annotators:
            raise ValueError(f"unknown starting point {start!r}")
        k = inputs.annotators.index(name)
        seg = Segmentation.from_masks({s.name: inputs.masks[s.name][k] for s in inputs.labels}, inputs.geometry,
                                      colors={s.name: s.color for s in inputs.labels},
                                      terminology={s.name: s.terminology for s in inputs.labels})
        version = next((v for v in run.get("versions") or [] if v["author"] == name), None)
        return seg, (f"version {version['id']}" if version else f"annotator {name}")

    def startAdjudication(self, run, start="consensus", referenceNode=None, scene=None):
        """Main thread: a segmentation node to edit, from the consensus or one annotator's segmentation."""
        from DicomTeamAnnotateLib.mrml import segmentation_to_node

        seg, startedFrom = self.startSegmentation(run, start)
        name = f"{run['case_id'] or 'case'} adjudication"
        node = segmentation_to_node(seg, scene, reference_volume_node=referenceNode, name=name)
        node.SetAttribute("ConsensusReview.StartedFrom", startedFrom)
        self.adjudication = {"run": run, "node": node, "start": seg, "started_from": startedFrom}
        return node

    def adjudicatedSegmentation(self):
        """Main thread: the edited node as a Segmentation on the inputs' reference grid."""
        from DicomTeamAnnotateLib.mrml import node_to_segmentation

        if self.adjudication is None:
            raise RuntimeError("start an adjudication first")
        node, run = self.adjudication["node"], self.adjudication["run"]
        return node_to_segmentation(node, reference_geometry=run["inputs"].geometry)

    def publish(self, seg, note="", message="") -> dict:
        """Any thread: push ``seg`` as the case's adjudicated version with the audit record; its record."""
        from ConsensusReviewLib.adjudication import publish_adjudication

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
        import tempfile

        from ConsensusReviewLib.bias import systematic_bias
        from ConsensusReviewLib.report import agreement_rows, write_project_report
        from ConsensusReviewLib.review_queue import ReviewThresholds, build_queue

        store = self.projectStore()
        limits = ReviewThresholds(**(thresholds or {}))
        caseIds = list(caseIds) if caseIds is not None else [c["case_id"] for c in store.list_cases()]
        summaries, rows, skipped = [], [], []
        for n, caseId in enumerate(caseIds):
            if progress is not None:
                progress(n, len(caseIds))
            try:
                with tempfile.TemporaryDirectory(prefix="dicomteam-queue-", dir=workDir) as tmp:
                    run = self.runConsensus(self.inputsFromStore(caseId, tmp), method, options, thresholds)
            except ValueError as exc:  # fewer than two annotators, an annotation that does not fit
                skipped.append(f"{caseId}: {exc}")
                continue
            summaries.append({k: v for k, v in run["status"].items() if k not in ("needs_review", "reasons")})
            rows.extend(agreement_rows(run["result"].agreement, caseId))
        queue = build_queue(summaries, limits)
        marked = []
        if markInReview:
            for entry in queue:
                if entry["needs_review"] and store.states(entry["case_id"])["state"] not in ("in_review", "adjudicated"):
                    store.set_state(entry["case_id"], "in_review")
                    marked.append(entry["case_id"])
        report = None
        if outDir:
            report = str(write_project_report(queue, systematic_bias(rows), outDir))
        if progress is not None:
            progress(len(caseIds), len(caseIds))
        return {"queue": queue, "skipped": skipped, "marked": marked, "report": report}


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

        from ConsensusReviewLib.simulate import simulate_reader_segmentations
        from DicomTeamAnnotateLib.mrml import segmentation_to_node, volume_to_node
        from DicomTeamAnnotateLib.phantom import make_phantom

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
