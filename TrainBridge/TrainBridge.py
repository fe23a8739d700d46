"""TrainBridge: from adjudicated annotations to an nnU-Net or MONAI training run and its evaluation.

Export cases (the project's adjudicated versions, segmentation nodes or files) as an nnU-Net v2
dataset with patient-level splits; train in a background job that survives Slicer (live epochs,
losses, validation Dice and curves; reattach, cancel, resume); read the test-set evaluation, load a
case's prediction beside its ground truth one label at a time, jump to the worst slices; export
the model. The work is done by TrainBridgeLib (Qt-free, shared with the `dicomteam` CLI). What the
panel does lives in Qt-free panel models (TrainBridgeLib/trainbridge_panel.py and its sections);
this file's widget only binds the .ui widgets to them. The comparison view's MRML work is in
TrainBridgeLib/mrml.py.
"""
import json
import math
import os
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.segmentations import read_segmentation
from DicomTeamAnnotateLib.io.volumes import read_volume
from DicomTeamAnnotateLib.slicer.connection import current_store
from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, node_to_volume, segmentation_to_node, volume_to_node
from DicomTeamAnnotateLib.slicer.packages import NIFTI_FILES, Installer, require, slicer_version_problem
from DicomTeamAnnotateLib.slicer.qt_binding import bind_path, fill_combo, fill_table, set_text
from DicomTeamAnnotateLib.slicer.ui import SlicerUi
from DicomTeamAnnotateLib.worklist.effort_report import effort_rows, effort_table, plot_effort
from TrainBridgeLib.backends.monai.models import ARCHITECTURES
from TrainBridgeLib.backends.registry import start_training
from TrainBridgeLib.evaluation_panel import EVALUATION_COLUMNS, WORST_SLICE_COLUMNS, headers
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.from_store import cases_from_store
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.export.other_formats import write_monai_datalist
from TrainBridgeLib.jobs.runner import FINAL_STATES, JOB_FILE, Job
from TrainBridgeLib.loop.backends import open_model
from TrainBridgeLib.loop.preannotate import preannotate
from TrainBridgeLib.loop_panel import EFFORT_COLUMNS
from TrainBridgeLib.models.export import export_model
from TrainBridgeLib.mrml import (
    jump_to_slice,
    leave_comparison_view,
    link_slice_views,
    set_comparison_view,
    show_comparison,
)
from TrainBridgeLib.requirements import EFFORT_REPORT, MODEL_EXPORT, TRAINING, export_feature, preannotate_feature
from TrainBridgeLib.trainbridge_panel import TrainBridgePanel

CURVES_SIZE = (480, 216)  # the curves picture in the panel (width, height; aspect ratio kept)
EFFORT_PICTURE_SIZE = (480, 192)  # the effort picture (width, height; aspect ratio kept)

#
# TrainBridge
#


class TrainBridge(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Train Bridge")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "DICOM Team Annotate")]
        self.parent.dependencies = ["DicomTeamAnnotate"]  # the project connection and shared panel helpers
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Export adjudicated cases (needs 3D Slicer 5.12 or newer; training also needs the PyTorch extension, which
installs torch) from the project connected in DICOM Team Annotate, segmentation nodes or files as an
nnU-Net v2 dataset with patient-level splits and a held-out test set; train with nnU-Net or MONAI in a
background job that keeps running when Slicer closes (reattach from its folder), with live epochs,
losses, validation Dice and curves; read the test-set evaluation, compare a case's prediction with its
ground truth one label at a time (side by side on the same plane, or overlaid), jump to the worst
slices; export the model to ONNX or TorchScript; close the annotation loop: the model pre-annotates the
project's cases not yet annotated (annotators start from its prediction; least certain cases first), and
the effort table shows what each round of the loop took per annotator. The Python packages a feature needs
(MONAI, nnU-Net, pynrrd, nibabel, matplotlib, ONNX) are installed at its first use, after you confirm.
Headless twin: <code>dicomteam export-nnunet | train | jobs | evaluate | export-model | preannotate | effort</code>.
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
    """The module panel: binds the .ui widgets to the Qt-free TrainBridgePanel (TrainBridgeLib/trainbridge_panel.py)."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.panel = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._curvesStamp = None
        self._effortStamp = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        problem = slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion)
        if problem:  # one clear message instead of a failure inside a click
            self.layout.addWidget(qt.QLabel(problem))
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TrainBridge.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TrainBridgeLogic()
        ui = SlicerUi()
        self.panel = TrainBridgePanel(self.logic, ui, Installer(_("Train Bridge"), ui))
        p = self.panel
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Export
        export = p.export
        fill_combo(self.ui.exportSourceComboBox, export.source_choices(), export.source)
        self._bindCombo(self.ui.exportSourceComboBox, export.set_source)
        fill_combo(self.ui.versionKindComboBox, export.kind_choices(), export.kind)
        self._bindCombo(self.ui.versionKindComboBox, export.set_kind)
        self.ui.addNodeCaseButton.connect("clicked(bool)", lambda: export.add_node_case())
        self.ui.addFileCaseButton.connect("clicked(bool)", lambda: export.add_file_case())
        self.ui.patientLineEdit.connect("textChanged(QString)", export.set_patient)
        self.ui.exportCasesTableWidget.connect(
            "itemSelectionChanged()", lambda: export.select_case(self.ui.exportCasesTableWidget.currentRow()))
        self.ui.removeCaseButton.connect("clicked(bool)", lambda: export.remove_case())
        self.ui.rawFolderLineEdit.currentPath = export.raw_folder
        bind_path(self.ui.rawFolderLineEdit, export.set_raw_folder)
        self.ui.monaiJsonCheckBox.connect("toggled(bool)", export.set_monai_json)
        self.ui.stratifyLineEdit.connect("textChanged(QString)", export.set_stratify)
        self.ui.exportButton.connect("clicked(bool)", lambda: export.export())
        # Training
        training = p.training
        bind_path(self.ui.datasetPathLineEdit, training.set_dataset)
        fill_combo(self.ui.backendComboBox, training.backend_choices(), training.backend)
        self._bindCombo(self.ui.backendComboBox, training.set_backend)
        fill_combo(self.ui.archComboBox, training.arch_choices(), training.arch)
        self._bindCombo(self.ui.archComboBox, training.set_arch)
        fill_combo(self.ui.deviceComboBox, training.device_choices(), training.device)
        self._bindCombo(self.ui.deviceComboBox, training.set_device)
        self.ui.jobFolderLineEdit.currentPath = training.job_folder
        bind_path(self.ui.jobFolderLineEdit, training.set_job_folder)
        self.ui.startTrainingButton.connect("clicked(bool)", lambda: training.start())
        self.ui.attachJobButton.connect("clicked(bool)", lambda: training.attach())
        self.ui.cancelJobButton.connect("clicked(bool)", lambda: training.cancel_job())
        self.ui.resumeJobButton.connect("clicked(bool)", lambda: training.resume_job())
        # Evaluation
        evaluation = p.evaluation
        for table, columns in ((self.ui.evaluationTableWidget, EVALUATION_COLUMNS),
                               (self.ui.worstSlicesTableWidget, WORST_SLICE_COLUMNS)):
            table.setColumnCount(len(columns))
            table.setHorizontalHeaderLabels(headers(columns))
        bind_path(self.ui.evaluationFolderLineEdit, evaluation.set_folder)
        self.ui.loadEvaluationButton.connect("clicked(bool)", lambda: evaluation.load())
        self.ui.evaluationTableWidget.connect("cellDoubleClicked(int,int)", lambda row, column: evaluation.activate_row(row))
        self.ui.worstSlicesTableWidget.connect(
            "itemSelectionChanged()", lambda: evaluation.select_worst_slice(self.ui.worstSlicesTableWidget.currentRow()))
        self.ui.worstSlicesTableWidget.connect("cellDoubleClicked(int,int)", lambda row, column: evaluation.jump())
        self._bindCombo(self.ui.comparisonCaseComboBox, evaluation.select_case)
        fill_combo(self.ui.comparisonModeComboBox, evaluation.mode_choices(), evaluation.mode)
        self.ui.comparisonModeComboBox.connect(
            "activated(int)", lambda i: evaluation.set_mode(self.ui.comparisonModeComboBox.itemData(i)))
        self.ui.comparisonLabelComboBox.connect(
            "activated(int)", lambda i: evaluation.set_label(self.ui.comparisonLabelComboBox.itemData(i)))
        self.ui.showCaseButton.connect("clicked(bool)", lambda: evaluation.show_case())
        self.ui.jumpToWorstSliceButton.connect("clicked(bool)", lambda: evaluation.jump())
        # Model export
        model = p.model
        fill_combo(self.ui.modelFormatComboBox, model.format_choices(), model.format)
        self._bindCombo(self.ui.modelFormatComboBox, model.set_format)
        self.ui.modelOutputLineEdit.currentPath = model.output_folder
        bind_path(self.ui.modelOutputLineEdit, model.set_output_folder)
        self.ui.exportModelButton.connect("clicked(bool)", lambda: model.export())
        # Annotation loop
        loop = p.loop
        bind_path(self.ui.loopModelLineEdit, loop.set_model_folder)
        fill_combo(self.ui.strategyComboBox, loop.strategy_choices(), loop.strategy)
        self._bindCombo(self.ui.strategyComboBox, loop.set_strategy)
        self.ui.limitSpinBox.connect("valueChanged(int)", loop.set_limit)
        self.ui.preannotateButton.connect("clicked(bool)", lambda: loop.preannotate())
        self.ui.effortTableWidget.setColumnCount(len(EFFORT_COLUMNS))
        self.ui.effortTableWidget.setHorizontalHeaderLabels(headers(EFFORT_COLUMNS))
        self.ui.effortButton.connect("clicked(bool)", lambda: loop.report_effort())

        p.on_change(self.refresh)
        self.initializeParameterNode()
        self.refresh()

    @staticmethod
    def _bindCombo(combo, setter) -> None:
        """Forward the item data of the combo box's current item to ``setter`` (None when there is none)."""
        combo.connect("currentIndexChanged(int)", lambda i: setter(combo.itemData(i) if i >= 0 else None))

    def cleanup(self) -> None:
        """Called when the application closes: polling stops; a running job keeps running (reattach later)."""
        if self.panel is not None:
            self.panel.stop()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module: the project connection may have changed."""
        if self.panel is not None:
            self.initializeParameterNode()
            self.refresh()

    def exit(self) -> None:
        """Called each time the user opens a different module: the comparison gives the views back (the job
        keeps being polled)."""
        if self.panel is not None:
            self.panel.leave()
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

    @staticmethod
    def _setPath(pathEdit, path) -> None:
        """Show ``path`` in a ctkPathLineEdit when it differs (no echo while the user types)."""
        if path and pathEdit.currentPath != path:
            pathEdit.currentPath = path

    def refresh(self, caller=None, event=None) -> None:
        """Called when the panel model or the parameter node changes: copy its outputs to the widgets."""
        p = self.panel
        if p is None:
            return
        export, training, evaluation, model = p.export, p.training, p.evaluation, p.model
        source = export.source
        self.ui.exportStoreWidget.setVisible(source == "store")
        self.ui.exportNodesWidget.setVisible(source == "nodes")
        self.ui.exportFilesWidget.setVisible(source == "files")
        self.ui.exportCasesTableWidget.setVisible(source != "store")
        self.ui.removeCaseButton.setVisible(source != "store")
        self.ui.exportStoreStatusLabel.text = export.store_text
        self.ui.addNodeCaseButton.enabled = export.can_add_node_case
        set_text(self.ui.patientLineEdit, export.patient)
        fill_table(self.ui.exportCasesTableWidget, export.case_cells)
        self.ui.removeCaseButton.enabled = export.can_remove
        self.ui.exportButton.enabled = export.can_export
        self.ui.exportStatusLabel.text = export.status_text
        self.ui.exportStatusLabel.toolTip = export.status_tooltip

        self._setPath(self.ui.datasetPathLineEdit, training.dataset_path)
        self.ui.archComboBox.enabled = training.arch_enabled
        self.ui.startTrainingButton.enabled = training.can_start
        self.ui.attachJobButton.enabled = training.can_attach
        self.ui.cancelJobButton.enabled = training.can_cancel
        self.ui.resumeJobButton.enabled = training.can_resume
        self.ui.epochProgressBar.maximum = training.num_epochs or 1
        self.ui.epochProgressBar.value = training.epoch
        self.ui.jobStatusLabel.text = training.status_text
        if training.curves_stamp is not None and training.curves_stamp != self._curvesStamp:
            pixmap = qt.QPixmap(training.curves_path)
            if not pixmap.isNull():  # else being rewritten right now: next poll
                self._curvesStamp = training.curves_stamp
                self.ui.curvesLabel.setPixmap(pixmap.scaled(*CURVES_SIZE, qt.Qt.KeepAspectRatio, qt.Qt.SmoothTransformation))
        if self.ui.logPlainTextEdit.toPlainText() != training.log_text:
            self.ui.logPlainTextEdit.setPlainText(training.log_text)

        self._setPath(self.ui.evaluationFolderLineEdit, evaluation.folder)
        self.ui.loadEvaluationButton.enabled = bool(evaluation.folder) and not p.tasks.busy
        self.ui.evaluationSummaryLabel.text = evaluation.summary_text
        fill_table(self.ui.evaluationTableWidget, evaluation.evaluation_cells)
        fill_table(self.ui.worstSlicesTableWidget, evaluation.worst_slice_cells)
        fill_combo(self.ui.comparisonCaseComboBox, evaluation.case_choices(), evaluation.case)
        fill_combo(self.ui.comparisonLabelComboBox, evaluation.label_choices(), evaluation.label)
        fill_combo(self.ui.comparisonModeComboBox, evaluation.mode_choices(), evaluation.mode)
        self.ui.showCaseButton.enabled = evaluation.can_show
        self.ui.jumpToWorstSliceButton.enabled = evaluation.can_jump

        self.ui.exportModelButton.enabled = model.can_export
        self.ui.modelStatusLabel.text = model.status_text

        loop = p.loop
        self._setPath(self.ui.loopModelLineEdit, loop.model_folder)  # the chosen folder (a fallback job is said below)
        self.ui.preannotateButton.enabled = loop.can_preannotate
        self.ui.preannotateStatusLabel.text = loop.status_line
        self.ui.preannotateStatusLabel.toolTip = loop.skipped_text
        self.ui.effortButton.enabled = loop.can_report_effort
        self.ui.effortStatusLabel.text = loop.effort_text
        fill_table(self.ui.effortTableWidget, loop.effort_cells)
        picture = loop.effort_picture
        stamp = (picture, os.stat(picture).st_mtime_ns) if picture and os.path.isfile(picture) else None
        if stamp != self._effortStamp:
            pixmap = qt.QPixmap(picture) if stamp else qt.QPixmap()
            self._effortStamp = stamp
            self.ui.effortPictureLabel.setPixmap(pixmap if pixmap.isNull() else pixmap.scaled(
                *EFFORT_PICTURE_SIZE, qt.Qt.KeepAspectRatio, qt.Qt.SmoothTransformation))


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
        self.store = None  # None: the project the DicomTeamAnnotate module is connected to
        self.job = None  # the training job followed (TrainBridgeLib.jobs.runner.Job)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return TrainBridgeParameterNode(super().getParameterNode())

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
    def defaultFolder(*parts) -> str:
        """A folder under Slicer's cache (or ~/.cache) for datasets, jobs and models."""
        app = getattr(slicer, "app", None)
        base = app.cachePath if app is not None else os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "DicomTeamAnnotate", "TrainBridge", *parts)

    @staticmethod
    def isJobFolder(folder) -> bool:
        """True when ``folder`` holds a training job (its job.json)."""
        return bool(folder) and os.path.isfile(os.path.join(folder, JOB_FILE))

    @staticmethod
    def architectures() -> tuple:
        """The MONAI networks offered."""
        return ARCHITECTURES

    @staticmethod
    def finalStates() -> tuple:
        """Job states after which nothing changes any more."""
        return FINAL_STATES

    # ----- export --------------------------------------------------------------------------------------

    def casesFromStore(self, workDir, kind="adjudicated", caseIds=None, store=None) -> tuple:
        """Any thread (with ``store``): (CaseInput list, project labels) of each case's latest ``kind`` version."""
        require(export_feature("store"), _("Train Bridge"))
        store = store or self.projectStore()
        return cases_from_store(store.location, store.user, getattr(store, "token", None), kind=kind,
                                work_dir=workDir, case_ids=caseIds)

    @staticmethod
    def caseFromNodes(caseId, patientId, volumeNode, segmentationNode):
        """Main thread: a CaseInput of a volume node and a segmentation node (read on the volume's grid)."""
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
        require(export_feature("files", [*imagePaths, labelPath]), _("Train Bridge"))
        for path in list(imagePaths) + [labelPath]:
            if not os.path.exists(path):
                raise FileNotFoundError(f"case {caseId}: {path}: no such file or folder")
        return CaseInput(caseId, str(patientId), [str(p) for p in imagePaths], str(labelPath))

    @staticmethod
    def exportDataset(cases, rawDir, name, *, labels=None, dataset_id=None, folds=5, test_fraction=0.2,
                      monai_json=False, stratify_by=None, progress=None) -> dict:
        """Any thread: write the nnU-Net dataset (+ MONAI datalist); a summary dict of what was written.

        ``stratify_by``: a case attribute (site, scanner) the test set and folds keep balanced.
        """
        callback = None if progress is None else (lambda done, total, case: progress(done, total))
        result = export_nnunet(cases, rawDir, name, labels=labels, dataset_id=dataset_id, folds=folds,
                               test_fraction=test_fraction, stratify_by=stratify_by, progress=callback)
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
        if not datasetDir or not jobDir:
            raise ValueError("choose the dataset folder and a job folder")
        if backend in TRAINING:  # the job runs in Slicer's Python: what it imports is installed first
            require(TRAINING[backend], _("Train Bridge"))
        self.job = start_training(datasetDir, jobDir, backend=backend, arch=arch, epochs=epochs, device=device,
                                  **kwargs)
        return self.job

    def attachJob(self, jobDir):
        """Follow the job in ``jobDir`` (running or not); returns the Job."""
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
        require(NIFTI_FILES, _("Train Bridge"))
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
        return show_comparison(read, previous=previous, scene=scene)

    @staticmethod
    def setComparisonView(nodes, mode="side by side", label=None, saved=None):
        """Main thread: only ``label`` visible; side by side (ground truth left, prediction right, both views on
        Red's plane) or overlaid (the prediction as an outline over the filled ground truth, in every view).

        Returns what side by side changed in the views (give it back with ``saved`` next time, and to
        leaveComparisonView); None when overlaid (the views are given back first).
        """
        return set_comparison_view(nodes, mode, label, saved)

    @staticmethod
    def leaveComparisonView(nodes, saved) -> None:
        """Main thread: the layout, Yellow's plane and the linking as before; both segmentations in every view."""
        leave_comparison_view(nodes, saved)

    @staticmethod
    def linkSliceViews() -> None:
        """Link the slice views, so both sides of the comparison show the same slice."""
        link_slice_views()

    @staticmethod
    def jumpToSlice(worst) -> None:
        """Main thread: centre every slice view on a worst slice's error (RAS position from the evaluation)."""
        jump_to_slice(worst)

    # ----- the annotation loop -----------------------------------------------------------------------------

    def preannotate(self, modelFolder, strategy="first", limit=None, cases=None, store=None, progress=None,
                    device="cpu") -> dict:
        """Any thread (with ``store``): the model's predictions of the project's cases not yet annotated (or
        ``cases``) pushed as versions of kind 'prediction'; resumable (see TrainBridgeLib.loop.preannotate)."""
        require(preannotate_feature(modelFolder), _("Train Bridge"))
        store = store or self.projectStore()
        return preannotate(store, open_model(modelFolder, device=device), cases=cases, strategy=strategy, limit=limit,
                           progress=progress)

    def effortReport(self, picture, store=None, progress=None) -> dict:
        """Any thread (with ``store``): {'cases': one row per case and annotator, 'table': per round and annotator,
        'picture': the PNG of time and edit size per case (None without records)} from the versions' effort."""
        require(EFFORT_REPORT, _("Train Bridge"))
        store = store or self.projectStore()
        if progress is not None:
            progress(None, "Reading the effort records...")  # the panel shows its own (translated) text
        rows = effort_rows(store)
        return {"cases": rows, "table": effort_table(rows), "picture": plot_effort(rows, picture) if rows else None}

    # ----- model export ------------------------------------------------------------------------------------

    @staticmethod
    def exportModel(jobDir, fmt, outDir) -> str:
        """Any thread: the trained MONAI model as ONNX or TorchScript + manifest (checked against PyTorch)."""
        if fmt in MODEL_EXPORT:
            require(MODEL_EXPORT[fmt], _("Train Bridge"))
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
        self.setUp()
        self.test_PanelExportsDataset()

    @staticmethod
    def _phantomNodes(n):
        """A phantom case as a volume node and a segmentation node."""
        phantom = make_phantom(seed=n, shape=(12, 32, 32), spacing=(1.5, 1.5, 3.0))
        volume = volume_to_node(phantom.volume, name=f"phantom{n}")
        seg = segmentation_to_node(phantom.segmentation(), reference_volume_node=volume, name=f"labels{n}")
        return volume, seg

    def test_ExportFromNodes(self):
        """Phantom cases as nodes become an nnU-Net dataset with patient-level splits."""
        import tempfile

        logic = TrainBridgeLogic()
        cases = []
        for n in range(4):
            volume, seg = self._phantomNodes(n)
            cases.append(logic.caseFromNodes(f"case{n}", f"P{n // 2}", volume, seg))
        with tempfile.TemporaryDirectory() as tmp:
            summary = logic.exportDataset(cases, tmp, "Phantoms", folds=2, test_fraction=0.0)
            self.assertTrue(os.path.isfile(os.path.join(summary["dataset_dir"], "dataset.json")))
            self.assertEqual(summary["n_train"], 4)
        self.delayDisplay("Test passed")

    def test_PanelExportsDataset(self):
        """The panel's main action as a user takes it (as ExtraEffects' test_SplitVolume1 drives its effect):
        four phantom cases of two patients added from the scene, 'Export dataset' clicked; the dataset is
        written and becomes the training dataset."""
        import tempfile
        import time

        slicer.util.selectModule("TrainBridge")
        widget = slicer.util.getModuleWidget("TrainBridge")
        ui, panel = widget.ui, widget.panel
        ui.exportSourceComboBox.setCurrentIndex(ui.exportSourceComboBox.findData("nodes"))
        for n in range(4):
            volume, seg = self._phantomNodes(n)
            ui.caseVolumeSelector.setCurrentNode(volume)
            ui.caseSegmentationSelector.setCurrentNode(seg)
            ui.patientLineEdit.setText(f"P{n // 2}")  # what the user types
            ui.addNodeCaseButton.click()
        self.assertEqual(ui.exportCasesTableWidget.rowCount, 4)
        ui.datasetNameLineEdit.setText("PanelPhantoms")
        ui.foldsSpinBox.value = 2
        ui.testFractionSpinBox.value = 0.0
        with tempfile.TemporaryDirectory() as tmp:
            ui.rawFolderLineEdit.currentPath = tmp
            self.assertTrue(ui.exportButton.enabled)
            ui.exportButton.click()
            deadline = time.monotonic() + 300
            while panel.tasks.busy and time.monotonic() < deadline:
                slicer.app.processEvents()
                time.sleep(0.02)
            self.assertFalse(panel.tasks.busy, "the export did not finish in 5 minutes")
            dataset = ui.datasetPathLineEdit.currentPath
            self.assertTrue(dataset.startswith(tmp) and dataset.endswith("_PanelPhantoms"), dataset)
            self.assertTrue(os.path.isfile(os.path.join(dataset, "dataset.json")))
            self.assertIn("4 training case(s) in 2 fold(s), 0 test case(s)", ui.exportStatusLabel.text)
            with open(os.path.join(dataset, "splits_final.json"), encoding="utf-8") as f:
                folds = [set(fold["val"]) for fold in json.load(f)]
            for pair in ({"case_000", "case_001"}, {"case_002", "case_003"}):  # one patient's cases
                self.assertTrue(any(pair <= fold for fold in folds), f"patient cases {pair} split across folds")
            self.assertTrue(ui.startTrainingButton.enabled)
        self.delayDisplay("Test passed")
