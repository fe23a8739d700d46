"""TrainBridge: from adjudicated annotations to an nnU-Net or MONAI training run and its evaluation.

Export cases (the project's adjudicated versions, segmentation nodes or files) as an nnU-Net v2
dataset with patient-level splits; train in a background job that survives Slicer (live epochs,
losses, validation Dice and curves; reattach, cancel, resume); read the test-set evaluation, load a
case's prediction beside its ground truth one label at a time, jump to the worst slices; export
the model. The work is done by TrainBridgeLib (Qt-free, shared with the `dicomteam` CLI).
"""
import json
import math
import os
from pathlib import Path
from typing import Annotated

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS_PATH = os.path.join(MODULE_DIR, "Resources", "requirements.txt")
JOB_POLL_MS = 2000  # the job's files are re-read this often while it runs
EVALUATION_COLUMNS = ("case", "label", "dice", "hd95", "nsd", "volume_diff_ml")
WORST_SLICE_COLUMNS = ("case", "label", "axis", "slice", "dice", "error_voxels")
COMPARISON_MODES = ("side by side", "overlaid")


def formatNumber(value, digits=3) -> str:
    """A table cell: numbers rounded, inf and undefined spelled out."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


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
        self.parent.dependencies = ["DicomTeamAnnotate"]  # the project connection and shared panel helpers
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Export adjudicated cases (from the project connected in DICOM Team Annotate), segmentation nodes or
files as an nnU-Net v2 dataset with patient-level splits and a held-out test set; train with nnU-Net
or MONAI in a background job that keeps running when Slicer closes (reattach from its folder), with
live epochs, losses, validation Dice and curves; read the test-set evaluation, compare a case's
prediction with its ground truth one label at a time, jump to the worst slices; export the model to
ONNX or TorchScript. Headless twin: <code>dicomteam export-nnunet | train | jobs | evaluate |
export-model</code>.
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

    caseVolume, caseSegmentation - The nodes of the next case added from the scene.
    datasetName - Name of the exported dataset (DatasetXXX_<name>).
    datasetId - nnU-Net dataset id (0: the first free id from 500).
    folds - Cross-validation folds.
    testFraction - Share of the patients held out as the test set.
    epochs - Training epochs (nnU-Net: one of its fixed-length trainers).
    """

    caseVolume: vtkMRMLScalarVolumeNode
    caseSegmentation: vtkMRMLSegmentationNode
    datasetName: str = "TeamData"
    datasetId: Annotated[int, WithinRange(0, 999)] = 0
    folds: Annotated[int, WithinRange(1, 10)] = 5
    testFraction: Annotated[float, WithinRange(0.0, 0.9)] = 0.2
    epochs: Annotated[int, WithinRange(1, 10000)] = 50


#
# TrainBridgeWidget
#


class TrainBridgeWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: export, training job, evaluation, comparison, model export."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._tasks = None
        self._jobTimer = None
        self._exportCases = []  # [{'case_id', 'patient_id', 'kind': 'nodes'|'files', ...}]
        self._evaluation = None
        self._curvesStamp = None
        self._comparison = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        from DicomTeamAnnotate import TaskRunner  # the hub module's shared panel helper

        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TrainBridge.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TrainBridgeLogic()
        self._tasks = TaskRunner(self._updateButtonStates)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Export
        for key, text in (("store", _("Project: adjudicated versions")), ("nodes", _("Segmentation nodes")),
                          ("files", _("Files"))):
            self.ui.exportSourceComboBox.addItem(text, key)
        self.ui.exportSourceComboBox.connect("currentIndexChanged(int)", self._onExportSourceChanged)
        for kind in ("adjudicated", "annotation"):
            self.ui.versionKindComboBox.addItem(kind)
        self.ui.addNodeCaseButton.connect("clicked(bool)", self.onAddNodeCase)
        self.ui.addFileCaseButton.connect("clicked(bool)", self.onAddFileCase)
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCase)
        self.ui.rawFolderLineEdit.currentPath = self.logic.defaultFolder("nnUNet_raw")
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        # Training
        for backend in ("monai", "nnunet"):
            self.ui.backendComboBox.addItem(backend, backend)
        for arch in self.logic.architectures():
            self.ui.archComboBox.addItem(arch, arch)
        for device in ("cpu", "cuda", "mps"):
            self.ui.deviceComboBox.addItem(device, device)
        self.ui.backendComboBox.connect("currentIndexChanged(int)", self._updateButtonStates)
        self.ui.datasetPathLineEdit.connect("currentPathChanged(QString)", self._updateButtonStates)
        self.ui.jobFolderLineEdit.connect("currentPathChanged(QString)", self._updateButtonStates)
        self.ui.jobFolderLineEdit.currentPath = self.logic.defaultFolder("jobs", "job1")
        self.ui.startTrainingButton.connect("clicked(bool)", self.onStartTraining)
        self.ui.attachJobButton.connect("clicked(bool)", self.onAttachJob)
        self.ui.cancelJobButton.connect("clicked(bool)", self.onCancelJob)
        self.ui.resumeJobButton.connect("clicked(bool)", self.onResumeJob)
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(JOB_POLL_MS)
        self._jobTimer.connect("timeout()", self._pollJob)
        # Evaluation
        self.ui.loadEvaluationButton.connect("clicked(bool)", self.onLoadEvaluation)
        self.ui.evaluationTableWidget.connect("cellDoubleClicked(int,int)", self.onEvaluationRowActivated)
        self.ui.worstSlicesTableWidget.connect("cellDoubleClicked(int,int)", self.onWorstSliceActivated)
        for mode in COMPARISON_MODES:
            self.ui.comparisonModeComboBox.addItem(mode, mode)
        self.ui.comparisonModeComboBox.connect("activated(int)", self._onComparisonViewChanged)
        self.ui.comparisonLabelComboBox.connect("activated(int)", self._onComparisonViewChanged)
        self.ui.showCaseButton.connect("clicked(bool)", self.onShowCase)
        self.ui.jumpToWorstSliceButton.connect("clicked(bool)", self.onJumpToWorstSlice)
        # Model export
        for fmt in ("onnx", "torchscript"):
            self.ui.modelFormatComboBox.addItem(fmt, fmt)
        self.ui.modelOutputLineEdit.currentPath = self.logic.defaultFolder("models")
        self.ui.exportModelButton.connect("clicked(bool)", self.onExportModel)

        self.initializeParameterNode()
        self._onExportSourceChanged()

    def cleanup(self) -> None:
        """Called when the application closes: polling stops; a running job keeps running (reattach later)."""
        if self._jobTimer is not None:
            self._jobTimer.stop()
        if self._tasks is not None:
            self._tasks.stop()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        self._showStoreStatus()

    def exit(self) -> None:
        """Called each time the user opens a different module (the job keeps being polled)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)
        self._comparison = None
        self._exportCases = [c for c in self._exportCases if c["kind"] != "nodes"]  # their nodes go away
        self._showExportCases()

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

    def _ensureRequirements(self) -> bool:
        """torch (PyTorch extension) and the training packages, installed after the user confirms."""
        from DicomTeamAnnotateLib.slicer_packages import ensure_requirements, ensure_torch

        return (ensure_torch(requester=_("Train Bridge"))
                and ensure_requirements(REQUIREMENTS_PATH, requester=_("Train Bridge")))

    # ----- export ------------------------------------------------------------------------------------

    def _exportSource(self) -> str:
        """'store', 'nodes' or 'files'."""
        return self.ui.exportSourceComboBox.currentData or "store"

    def _onExportSourceChanged(self, *args) -> None:
        """Called when the export source changes: show its controls."""
        source = self._exportSource()
        self.ui.exportStoreWidget.setVisible(source == "store")
        self.ui.exportNodesWidget.setVisible(source == "nodes")
        self.ui.exportFilesWidget.setVisible(source == "files")
        self.ui.exportCasesTableWidget.setVisible(source != "store")
        self.ui.removeCaseButton.setVisible(source != "store")
        self._showStoreStatus()

    def _showStoreStatus(self) -> None:
        """Which project the export reads (the connection is made in DICOM Team Annotate)."""
        store = self.logic.projectStore(required=False)
        self.ui.exportStoreStatusLabel.text = (
            _("Not connected: connect to the project in DICOM Team Annotate.") if store is None
            else _("Project {location} as {user}: each case's latest adjudicated version.").format(
                location=store.location, user=store.user))
        self._updateButtonStates()

    def _nextCaseId(self) -> str:
        """case_000, case_001, ... (not used yet in the list)."""
        used = {c["case_id"] for c in self._exportCases}
        n = 0
        while f"case_{n:03d}" in used:
            n += 1
        return f"case_{n:03d}"

    def onAddNodeCase(self) -> None:
        """Called by 'Add case' (nodes): the selected volume and segmentation, with the patient id."""
        p = self._parameterNode
        if not p or not p.caseVolume or not p.caseSegmentation:
            slicer.util.errorDisplay(_("Choose a volume and a segmentation first."))
            return
        patient = self.ui.patientLineEdit.text.strip() or p.caseVolume.GetName()
        self._exportCases.append({"case_id": self._nextCaseId(), "patient_id": patient, "kind": "nodes",
                                  "volume": p.caseVolume, "segmentation": p.caseSegmentation,
                                  "image_text": p.caseVolume.GetName(), "label_text": p.caseSegmentation.GetName()})
        self.ui.patientLineEdit.text = ""
        self._showExportCases()

    def onAddFileCase(self) -> None:
        """Called by 'Add case files...': an image (or DICOM folder) and its label file, with the patient id."""
        image = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Image of the case"), "",
                                               _("Images (*.nrrd *.nii *.nii.gz *.mha *.dcm);;All files (*)"))
        if not image:
            return
        label = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Label of the case"), os.path.dirname(image),
                                               _("Segmentations (*.seg.nrrd *.nrrd *.nii *.nii.gz)"))
        if not label:
            return
        patient = self.ui.patientLineEdit.text.strip() or Path(image).name.split(".")[0]
        self._exportCases.append({"case_id": self._nextCaseId(), "patient_id": patient, "kind": "files",
                                  "images": [image], "label": label, "image_text": image, "label_text": label})
        self.ui.patientLineEdit.text = ""
        self._showExportCases()

    def onRemoveCase(self) -> None:
        """Called by 'Remove': drop the selected case from the export list."""
        row = self.ui.exportCasesTableWidget.currentRow()
        if 0 <= row < len(self._exportCases):
            del self._exportCases[row]
        self._showExportCases()

    def _showExportCases(self) -> None:
        """Fill the export case table."""
        table = self.ui.exportCasesTableWidget
        table.setRowCount(len(self._exportCases))
        for r, case in enumerate(self._exportCases):
            for c, text in enumerate((case["case_id"], case["patient_id"], case["image_text"], case["label_text"])):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()
        self._updateButtonStates()

    def onExport(self) -> None:
        """Called by 'Export dataset': read the cases (nodes on the main thread), write on a worker."""
        from DicomTeamAnnotate import TaskRunner

        p = self._parameterNode
        source, rawDir = self._exportSource(), self.ui.rawFolderLineEdit.currentPath
        options = {"name": p.datasetName.strip(), "dataset_id": p.datasetId or None, "folds": p.folds,
                   "test_fraction": p.testFraction, "monai_json": self.ui.monaiJsonCheckBox.checked}
        label = _("Exporting the dataset...")
        if source == "store":
            kind = self.ui.versionKindComboBox.currentText
            downloading = _("Downloading the cases...")

            def work(task):
                import tempfile

                task.report(None, downloading)
                os.makedirs(rawDir, exist_ok=True)
                # the downloads are needed only until written as NIfTI; same disk as the dataset
                with tempfile.TemporaryDirectory(prefix=".store-download-", dir=rawDir) as tmp:
                    cases, labels = self.logic.casesFromStore(tmp, kind=kind)
                    return self.logic.exportDataset(cases, rawDir, labels=labels,
                                                    progress=TaskRunner.progressReporter(task, label), **options)
        else:
            with slicer.util.tryWithErrorDisplay(_("Could not read the cases."), waitCursor=True):
                cases = [self.logic.caseFromNodes(c["case_id"], c["patient_id"], c["volume"], c["segmentation"])
                         if c["kind"] == "nodes" else
                         self.logic.caseFromFiles(c["case_id"], c["patient_id"], c["images"], c["label"])
                         for c in self._exportCases]

            def work(task):
                return self.logic.exportDataset(cases, rawDir, progress=TaskRunner.progressReporter(task, label),
                                                **options)

        self._tasks.start(work, self._onExported, name="export", dialogTitle=_("Export"), dialogText=label)

    def _onExported(self, task) -> None:
        """Called when the dataset is written: say where, and use it for training."""
        from DicomTeamAnnotate import TaskRunner

        ok, summary = TaskRunner.result(task, _("The dataset was not exported."))
        if not ok:
            return
        self.ui.exportStatusLabel.text = _(
            "{dataset}: {train} training case(s) in {folds} fold(s), {test} test case(s).").format(
            dataset=summary["dataset_dir"], train=summary["n_train"], folds=summary["folds"], test=summary["n_test"])
        self.ui.exportStatusLabel.toolTip = "\n".join(summary["notes"])
        self.ui.datasetPathLineEdit.currentPath = summary["dataset_dir"]

    # ----- training ----------------------------------------------------------------------------------

    def onStartTraining(self) -> None:
        """Called by 'Start training': a background job (a process that outlives Slicer), then poll it."""
        if not self._ensureRequirements():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start the training."), waitCursor=True):
            self.logic.startTraining(self.ui.datasetPathLineEdit.currentPath, self.ui.jobFolderLineEdit.currentPath,
                                     backend=self.ui.backendComboBox.currentData, arch=self.ui.archComboBox.currentData,
                                     epochs=self._parameterNode.epochs, device=self.ui.deviceComboBox.currentData)
            self.ui.jobFolderLineEdit.addCurrentPathToHistory()
            self._startPolling()

    def onAttachJob(self) -> None:
        """Called by 'Attach': follow the job in the chosen folder (e.g. after restarting Slicer)."""
        with slicer.util.tryWithErrorDisplay(_("No training job there."), waitCursor=True):
            self.logic.attachJob(self.ui.jobFolderLineEdit.currentPath)
            self._startPolling()

    def _startPolling(self) -> None:
        """Show the job's state now and every JOB_POLL_MS."""
        self._curvesStamp = None
        self._pollJob()
        self._jobTimer.start()

    def onCancelJob(self) -> None:
        """Called by 'Cancel': kill the job's process tree (on a worker: it waits for the processes)."""
        if self.logic.job is None or not slicer.util.confirmOkCancelDisplay(_("Stop the training job?")):
            return
        from DicomTeamAnnotate import TaskRunner

        job = self.logic.job

        def onDone(task):
            TaskRunner.result(task, _("The job could not be cancelled."))
            self._pollJob()

        self._tasks.start(lambda task: job.cancel(), onDone, name="cancel job")

    def onResumeJob(self) -> None:
        """Called by 'Resume': restart an interrupted job where it stopped."""
        with slicer.util.tryWithErrorDisplay(_("Could not resume the job."), waitCursor=True):
            self.logic.job.resume()
            self._startPolling()

    def _pollJob(self) -> None:
        """Called by the job timer: state, epoch, losses, Dice, the curves, the log tail."""
        job = self.logic.job
        if job is None:
            self._jobTimer.stop()
            return
        try:
            status = self.logic.jobStatus()
        except (OSError, ValueError) as exc:  # job.json being replaced at this instant, or removed
            self.ui.jobStatusLabel.text = _("Job status not readable: {error}").format(error=exc)
            return
        self.ui.jobStatusLabel.text = self.logic.statusText(status)
        epoch, total = status.get("epoch"), status.get("num_epochs")
        self.ui.epochProgressBar.maximum = int(total or 0) or 1
        self.ui.epochProgressBar.value = int(epoch + 1) if epoch is not None else 0
        self._showCurves(status.get("curves_png"))
        self.ui.logPlainTextEdit.setPlainText(job.log_tail(15))
        if status["state"] in self.logic.finalStates():
            self._jobTimer.stop()
            evaluation = status["outputs"].get("evaluation")
            if status["state"] == "finished" and evaluation and os.path.isfile(os.path.join(evaluation, "metrics.json")):
                self.ui.evaluationFolderLineEdit.currentPath = evaluation
                self.onLoadEvaluation()
        self._updateButtonStates()

    def _showCurves(self, path) -> None:
        """Show the curves PNG when it changed since the last poll."""
        if not path or not os.path.isfile(path):
            return
        stamp = os.stat(path).st_mtime_ns
        if stamp == self._curvesStamp:
            return
        pixmap = qt.QPixmap(path)
        if pixmap.isNull():
            return  # being rewritten right now: next poll
        self._curvesStamp = stamp
        width = max(200, self.ui.curvesLabel.width)
        self.ui.curvesLabel.setPixmap(pixmap.scaledToWidth(width, qt.Qt.SmoothTransformation))

    # ----- evaluation and comparison ------------------------------------------------------------------

    def onLoadEvaluation(self) -> None:
        """Called by 'Load': read metrics.json of the evaluation folder into the tables."""
        with slicer.util.tryWithErrorDisplay(_("Could not read the evaluation."), waitCursor=True):
            self._evaluation = self.logic.loadEvaluation(self.ui.evaluationFolderLineEdit.currentPath)
        self._fillTable(self.ui.evaluationTableWidget, self.logic.evaluationRows(self._evaluation), EVALUATION_COLUMNS)
        self._fillTable(self.ui.worstSlicesTableWidget, self._evaluation.get("worst_slices", []), WORST_SLICE_COLUMNS)
        self.ui.comparisonLabelComboBox.clear()
        for name in self._evaluation["labels"]:
            self.ui.comparisonLabelComboBox.addItem(name, name)
        self.ui.comparisonCaseComboBox.clear()
        for worst in self._evaluation.get("worst_cases", []):
            self.ui.comparisonCaseComboBox.addItem(
                _("{case} (mean Dice {dice})").format(case=worst["case"], dice=formatNumber(worst["mean_dice"])),
                worst["case"])
        self.ui.evaluationSummaryLabel.text = self.logic.summaryText(self._evaluation)
        self._updateButtonStates()

    @staticmethod
    def _fillTable(table, rows, columns) -> None:
        """Fill a QTableWidget with ``rows`` (dicts) in ``columns`` order."""
        table.clear()
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels([c.replace("_", " ") for c in columns])
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                text = formatNumber(row.get(key))
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()

    def onEvaluationRowActivated(self, row, column) -> None:
        """Called on a double-click in the evaluation table: show that case and label."""
        rows = self.logic.evaluationRows(self._evaluation)
        self._selectComparison(rows[row]["case"], rows[row]["label"])
        self.onShowCase()

    def _selectComparison(self, case, label) -> None:
        """Select a case and a label in the comparison controls."""
        index = self.ui.comparisonCaseComboBox.findData(case)
        if index < 0:
            self.ui.comparisonCaseComboBox.addItem(case, case)
            index = self.ui.comparisonCaseComboBox.count - 1
        self.ui.comparisonCaseComboBox.setCurrentIndex(index)
        self.ui.comparisonLabelComboBox.setCurrentIndex(max(0, self.ui.comparisonLabelComboBox.findData(label)))

    def onShowCase(self) -> None:
        """Called by 'Show': read the case's image, ground truth and prediction on a worker, then show them."""
        from DicomTeamAnnotate import TaskRunner

        case, evaluation = self.ui.comparisonCaseComboBox.currentData, self._evaluation
        if not case or evaluation is None:
            return

        def onDone(task):
            ok, read = TaskRunner.result(task, _("Could not read the case."))
            if ok:
                with slicer.util.tryWithErrorDisplay(_("Could not show the case."), waitCursor=True):
                    self._comparison = self.logic.showComparison(read, previous=self._comparison)
                    self._onComparisonViewChanged()

        self._tasks.start(lambda task: self.logic.readComparison(evaluation, case), onDone, name="read case")

    def _onComparisonViewChanged(self, *args) -> None:
        """Called when the mode or the label changes: one label, side by side or overlaid."""
        if self._comparison is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not change the view.")):
            self.logic.setComparisonView(self._comparison, self.ui.comparisonModeComboBox.currentData,
                                         self.ui.comparisonLabelComboBox.currentData)

    def onWorstSliceActivated(self, row, column) -> None:
        """Called on a double-click in the worst slices table: show that case and jump to the slice."""
        self.ui.worstSlicesTableWidget.selectRow(row)
        self.onJumpToWorstSlice()

    def onJumpToWorstSlice(self) -> None:
        """Called by 'Jump to worst slice': the selected (or worst) slice of the shown case, else load it."""
        worst = self._evaluation.get("worst_slices", []) if self._evaluation else []
        if not worst:
            return
        row = max(0, self.ui.worstSlicesTableWidget.currentRow())
        target = worst[min(row, len(worst) - 1)]
        if self._comparison is None or self._comparison["case"] != target["case"]:
            self._selectComparison(target["case"], target["label"])
            self.onShowCase()
            return  # the jump happens when the user asks again once the case is shown
        self._selectComparison(target["case"], target["label"])
        self._onComparisonViewChanged()
        with slicer.util.tryWithErrorDisplay(_("Could not jump to the slice.")):
            self.logic.jumpToSlice(target)

    # ----- model export ---------------------------------------------------------------------------------

    def onExportModel(self) -> None:
        """Called by 'Export model': ONNX or TorchScript with a manifest, on a worker."""
        from DicomTeamAnnotate import TaskRunner

        if not self._ensureRequirements():
            return
        jobDir, fmt = self.ui.jobFolderLineEdit.currentPath, self.ui.modelFormatComboBox.currentData
        outDir = self.ui.modelOutputLineEdit.currentPath

        def onDone(task):
            ok, manifest = TaskRunner.result(task, _("The model was not exported."))
            if ok:
                self.ui.modelStatusLabel.text = _("Exported: {manifest}").format(manifest=manifest)

        self._tasks.start(lambda task: self.logic.exportModel(jobDir, fmt, outDir), onDone, name="export model",
                          dialogTitle=_("Model export"), dialogText=_("Exporting and checking the model..."))

    # ----- state of the panel ---------------------------------------------------------------------------

    def _updateButtonStates(self, *args) -> None:
        """Called when inputs, tasks or the job change: enable what can be used now."""
        busy = self._tasks is not None and self._tasks.busy
        source = self._exportSource()
        connected = self.logic is not None and self.logic.projectStore(required=False) is not None
        named = bool(self._parameterNode and self._parameterNode.datasetName.strip())
        hasCases = connected if source == "store" else len(self._exportCases) >= 1
        self.ui.exportButton.enabled = hasCases and named and not busy
        self.ui.archComboBox.enabled = self.ui.backendComboBox.currentData == "monai"
        dataset = self.ui.datasetPathLineEdit.currentPath
        self.ui.startTrainingButton.enabled = bool(dataset) and os.path.isfile(os.path.join(dataset, "dataset.json"))
        jobDir = self.ui.jobFolderLineEdit.currentPath
        self.ui.attachJobButton.enabled = bool(jobDir) and os.path.isfile(os.path.join(jobDir, "job.json"))
        job = self.logic.job if self.logic else None
        running = job is not None and job.is_running()
        self.ui.cancelJobButton.enabled = running and not busy
        self.ui.resumeJobButton.enabled = job is not None and not running and not busy
        self.ui.showCaseButton.enabled = self._evaluation is not None and not busy
        self.ui.jumpToWorstSliceButton.enabled = bool(self._evaluation and self._evaluation.get("worst_slices"))
        self.ui.exportModelButton.enabled = bool(jobDir) and not busy


#
# TrainBridgeLogic
#


class TrainBridgeLogic(ScriptedLoadableModuleLogic):
    """Export, training jobs, evaluation and comparison; usable without the panel.

    Methods marked "any thread" do no MRML/Qt work. Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("TrainBridge")  # project connected in DICOM Team Annotate
        cases, labels = logic.casesFromStore("/tmp/download")
        dataset = logic.exportDataset(cases, "/data/nnUNet_raw", "Team", labels=labels)["dataset_dir"]
        job = logic.startTraining(dataset, "/data/jobs/team", backend="monai", epochs=2)
        print(logic.statusText(logic.jobStatus()))
    """

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        self.store = None  # None: use the connection of the DicomTeamAnnotate module
        self.job = None  # the training job followed (TrainBridgeLib.runner.Job)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return TrainBridgeParameterNode(super().getParameterNode())

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
    def defaultFolder(*parts) -> str:
        """A folder under Slicer's cache (or ~/.cache) for datasets, jobs and models."""
        app = getattr(slicer, "app", None)
        base = app.cachePath if app is not None else os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "DicomTeamAnnotate", "TrainBridge", *parts)

    @staticmethod
    def architectures() -> tuple:
        """The MONAI networks offered."""
        from TrainBridgeLib.monai_models import ARCHITECTURES

        return ARCHITECTURES

    @staticmethod
    def finalStates() -> tuple:
        """Job states after which nothing changes any more."""
        from TrainBridgeLib.runner import FINAL_STATES

        return FINAL_STATES

    # ----- export --------------------------------------------------------------------------------------

    def casesFromStore(self, workDir, kind="adjudicated", caseIds=None) -> tuple:
        """Any thread: (CaseInput list, project labels) of each case's latest ``kind`` version."""
        from TrainBridgeLib.store_export import cases_from_store

        store = self.projectStore()
        return cases_from_store(store.location, store.user, getattr(store, "token", None), kind=kind,
                                work_dir=workDir, case_ids=caseIds)

    @staticmethod
    def caseFromNodes(caseId, patientId, volumeNode, segmentationNode):
        """Main thread: a CaseInput of a volume node and a segmentation node (read on the volume's grid)."""
        from DicomTeamAnnotateLib.mrml import node_to_segmentation, node_to_volume
        from TrainBridgeLib.case_io import CaseInput

        if volumeNode is None or segmentationNode is None:
            raise ValueError(f"case {caseId}: a volume node and a segmentation node are needed")
        volume = node_to_volume(volumeNode)
        seg = node_to_segmentation(segmentationNode, reference_geometry=volume.geometry)
        return CaseInput(caseId, str(patientId), [volume], seg,
                         source={"images": [f"volume node '{volumeNode.GetName()}'"],
                                 "label": f"segmentation node '{segmentationNode.GetName()}'"})

    @staticmethod
    def caseFromFiles(caseId, patientId, imagePaths, labelPath):
        """Any thread: a CaseInput of image file(s) (one per channel) and a label file."""
        from TrainBridgeLib.case_io import CaseInput

        for path in list(imagePaths) + [labelPath]:
            if not os.path.exists(path):
                raise FileNotFoundError(f"case {caseId}: {path}: no such file or folder")
        return CaseInput(caseId, str(patientId), [str(p) for p in imagePaths], str(labelPath))

    @staticmethod
    def exportDataset(cases, rawDir, name, *, labels=None, dataset_id=None, folds=5, test_fraction=0.2,
                      monai_json=False, progress=None) -> dict:
        """Any thread: write the nnU-Net dataset (+ MONAI datalist); a summary dict of what was written."""
        from TrainBridgeLib.nnunet_export import export_nnunet
        from TrainBridgeLib.other_exports import write_monai_datalist

        callback = None if progress is None else (lambda done, total, case: progress(done, total))
        result = export_nnunet(cases, rawDir, name, labels=labels, dataset_id=dataset_id, folds=folds,
                               test_fraction=test_fraction, progress=callback)
        summary = {"dataset_dir": str(result.dataset_dir), "dataset_id": result.dataset_id,
                   "labels": result.labels, "n_test": len(result.splits.test),
                   "n_train": len(result.cases) - len(result.splits.test), "folds": len(result.splits.folds),
                   "splits_final": str(result.splits_final_path), "notes": list(result.notes)}
        if monai_json:
            summary["monai_json"] = str(write_monai_datalist(result.dataset_dir))
        return summary

    # ----- training jobs ----------------------------------------------------------------------------------

    def startTraining(self, datasetDir, jobDir, backend="monai", arch="segresnet", epochs=None, device="cpu",
                      **kwargs):
        """Start a training job (a detached process) and follow it; returns the Job."""
        from TrainBridgeLib.training import start_training

        if not datasetDir or not jobDir:
            raise ValueError("choose the dataset folder and a job folder")
        self.job = start_training(datasetDir, jobDir, backend=backend, arch=arch, epochs=epochs, device=device,
                                  **kwargs)
        return self.job

    def attachJob(self, jobDir):
        """Follow the job in ``jobDir`` (running or not); returns the Job."""
        from TrainBridgeLib.runner import Job

        self.job = Job(jobDir)
        return self.job

    def jobStatus(self) -> dict:
        """The followed job's status (see runner.Job.status)."""
        if self.job is None:
            raise RuntimeError("no training job: start one or attach to a job folder")
        return self.job.status()

    @staticmethod
    def statusText(status) -> str:
        """One line for the panel: state, step, epoch, losses, validation Dice."""
        parts = [f"{status['state']}"]
        if status.get("step"):
            parts.append(f"step {status['step']}")
        if status.get("epoch") is not None:
            parts.append(f"epoch {status['epoch'] + 1}/{status.get('num_epochs') or '?'}")
        latest = status.get("latest") or {}
        for key, text in (("loss", "loss"), ("loss_dice", "Dice loss"), ("loss_ce", "CE loss"),
                          ("val_loss", "val loss"), ("val_dice", "val Dice")):
            if latest.get(key) is not None:
                parts.append(f"{text} {latest[key]:.4f}")
        return ", ".join(parts)

    # ----- evaluation -------------------------------------------------------------------------------------

    @staticmethod
    def loadEvaluation(folder) -> dict:
        """metrics.json of an evaluation folder (inf spelled "inf" there is read back as a float)."""
        path = Path(folder) / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no evaluation here (the job's 'evaluation' folder has it)")
        return json.loads(path.read_text(encoding="utf-8"),
                          object_hook=lambda d: {k: (math.inf if v == "inf" else v) for k, v in d.items()})

    @staticmethod
    def evaluationRows(evaluation) -> list:
        """One row per case and label, worst Dice first."""
        rows = [{"case": case, "label": label, **metrics}
                for case, per_label in evaluation["cases"].items() for label, metrics in per_label.items()
                if label in evaluation["labels"]]
        return sorted(rows, key=lambda r: (r["dice"] if r["dice"] is not None else -1.0, r["case"], r["label"]))

    @staticmethod
    def summaryText(evaluation) -> str:
        """Mean Dice (and spread) per label, one line."""
        parts = []
        for label, stats in evaluation["summary"].items():
            dice = stats.get("dice", {})
            if dice.get("n"):
                parts.append(f"{label}: Dice {dice['mean']:.3f} ± {dice.get('std', 0.0):.3f}")
        return "; ".join(parts)

    @staticmethod
    def readComparison(evaluation, case) -> dict:
        """Any thread: the case's image, ground truth and prediction (label names from the evaluation)."""
        from DicomTeamAnnotateLib.segio import read_segmentation
        from DicomTeamAnnotateLib.volume import read_volume

        gtDir, predDir = Path(evaluation["gt_dir"]), Path(evaluation["pred_dir"])
        names = {int(v): name for name, v in evaluation["labels"].items()}
        image = gtDir.parent / "imagesTs" / f"{case}_0000.nii.gz"
        if not image.is_file():
            image = gtDir.parent / "imagesTr" / f"{case}_0000.nii.gz"
        volume = read_volume(image)
        gt = read_segmentation(gtDir / f"{case}.nii.gz", names=names)
        pred = read_segmentation(predDir / f"{case}.nii.gz", names=names, reference=gt.geometry)
        return {"case": case, "image": volume, "gt": gt, "pred": pred}

    def showComparison(self, read, previous=None, scene=None) -> dict:
        """Main thread: nodes of the image, the ground truth and the prediction (reused for a next case)."""
        from DicomTeamAnnotateLib.mrml import segmentation_to_node, volume_to_node

        def alive(key):
            node = (previous or {}).get(key)
            return node if node is not None and node.GetScene() is not None else None

        case = read["case"]
        image = volume_to_node(read["image"], scene, name=f"{case} image", node=alive("image"))
        image.SetName(f"{case} image")
        nodes = {"case": case, "image": image}
        for key, text, color in (("gt", "ground truth", None), ("pred", "prediction", None)):
            node = segmentation_to_node(read[key], scene, reference_volume_node=image, name=f"{case} {text}",
                                        node=alive(key))
            node.SetName(f"{case} {text}")
            nodes[key] = node
        return nodes

    def setComparisonView(self, nodes, mode="side by side", label=None) -> None:
        """Main thread: only ``label`` visible; side by side (ground truth left, prediction right) or overlaid.

        Overlaid: both in every view, the prediction as an outline over the filled ground truth.
        """
        if mode not in COMPARISON_MODES:
            raise ValueError(f"comparison mode must be one of {COMPARISON_MODES}, got {mode!r}")
        for key in ("gt", "pred"):
            segmentation = nodes[key].GetSegmentation()
            display = nodes[key].GetDisplayNode()
            for i in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(i)
                display.SetSegmentVisibility(segmentation.GetNthSegmentID(i), label is None or segment.GetName() == label)
        gtDisplay, predDisplay = nodes["gt"].GetDisplayNode(), nodes["pred"].GetDisplayNode()
        predDisplay.SetVisibility2DFill(mode != "overlaid")
        predDisplay.SetVisibility2DOutline(True)
        layoutManager = slicer.app.layoutManager() if getattr(slicer, "app", None) is not None else None
        if mode == "side by side":
            if layoutManager is not None:
                layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
            gtDisplay.SetDisplayableOnlyInView("vtkMRMLSliceNodeRed")
            predDisplay.SetDisplayableOnlyInView("vtkMRMLSliceNodeYellow")
        else:
            gtDisplay.RemoveAllViewNodeIDs()
            predDisplay.RemoveAllViewNodeIDs()
        if layoutManager is not None:
            slicer.util.setSliceViewerLayers(background=nodes["image"], fit=True)
            self.linkSliceViews()

    @staticmethod
    def linkSliceViews() -> None:
        """Link the slice views, so both sides of the comparison show the same slice."""
        for compositeNode in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            compositeNode.SetLinkedControl(True)

    @staticmethod
    def jumpToSlice(worst) -> None:
        """Main thread: centre every slice view on a worst slice's error (RAS position from the evaluation)."""
        r, a, s = worst["center_ras"]
        for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
            sliceNode.JumpSliceByCentering(r, a, s)

    # ----- model export ------------------------------------------------------------------------------------

    @staticmethod
    def exportModel(jobDir, fmt, outDir) -> str:
        """Any thread: the trained MONAI model as ONNX or TorchScript + manifest (checked against PyTorch)."""
        from TrainBridgeLib.model_export import export_model

        return str(export_model(jobDir, fmt, outDir))


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
        self.test_ExportFromNodes()

    def test_ExportFromNodes(self):
        """Phantom cases as nodes become an nnU-Net dataset with patient-level splits."""
        import tempfile

        from DicomTeamAnnotateLib.mrml import segmentation_to_node, volume_to_node
        from DicomTeamAnnotateLib.phantom import make_phantom

        logic = TrainBridgeLogic()
        cases = []
        for n in range(4):
            phantom = make_phantom(seed=n, shape=(12, 32, 32), spacing=(1.5, 1.5, 3.0))
            volume = volume_to_node(phantom.volume, name=f"phantom{n}")
            seg = segmentation_to_node(phantom.segmentation(), reference_volume_node=volume, name=f"labels{n}")
            cases.append(logic.caseFromNodes(f"case{n}", f"P{n // 2}", volume, seg))
        with tempfile.TemporaryDirectory() as tmp:
            summary = logic.exportDataset(cases, tmp, "Phantoms", folds=2, test_fraction=0.0)
            self.assertTrue(os.path.isfile(os.path.join(summary["dataset_dir"], "dataset.json")))
            self.assertEqual(summary["n_train"], 4)
        self.delayDisplay("Test passed")
