"""TrainBridge: from adjudicated annotations to an nnU-Net or MONAI training run and its evaluation.

Export cases (the project's adjudicated versions, segmentation nodes or files) as an nnU-Net v2
dataset with patient-level splits; train in a background job that survives Slicer (live epochs,
losses, validation Dice and curves; reattach, cancel, resume); read the test-set evaluation, load a
case's prediction beside its ground truth one label at a time, jump to the worst slices; export
the model. The work is done by TrainBridgeLib (Qt-free, shared with the `dicomteam` CLI); this file
only wires it to Slicer. The panel's sections are mixins in TrainBridgeLib/panel_*.py; the comparison
view's MRML work is in TrainBridgeLib/comparison_mrml.py.
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
from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, node_to_volume, segmentation_to_node, volume_to_node
from DicomTeamAnnotateLib.slicer.packages import ensure_requirements, ensure_torch
from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner
from TrainBridgeLib.backends.monai.models import ARCHITECTURES
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.from_store import cases_from_store
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.export.other_formats import write_monai_datalist
from TrainBridgeLib.jobs.runner import FINAL_STATES, JOB_FILE, Job
from TrainBridgeLib.jobs.training import start_training
from TrainBridgeLib.models.export import export_model

# The panel's sections; the constants and formatNumber stay importable from this file as before.
from TrainBridgeLib.mrml import jump_to_slice, link_slice_views, set_comparison_view, show_comparison
from TrainBridgeLib.panel_evaluation import EvaluationSection
from TrainBridgeLib.panel_export import ExportSection
from TrainBridgeLib.panel_model import ModelExportSection
from TrainBridgeLib.panel_training import TrainingJobSection

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS_PATH = os.path.join(MODULE_DIR, "Resources", "requirements.txt")
JOB_POLL_MS = 2000  # the job's files are re-read this often while it runs


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


class TrainBridgeWidget(ScriptedLoadableModuleWidget, VTKObservationMixin, ExportSection, TrainingJobSection,
                        EvaluationSection, ModelExportSection):
    """The module panel: export, training job, evaluation, comparison, model export.

    Each section of the panel is a mixin in TrainBridgeLib/panel_*.py, without __init__ (the state its
    methods use, self.ui, self.logic, the job timer, is made here) and importing Qt and Slicer inside
    its methods (Lib files import in plain Python). This class owns the panel's state, its life cycle,
    the parameter node, the background tasks and the buttons' states.
    """

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
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TrainBridge.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TrainBridgeLogic()
        self._tasks = TaskRunner(self._updateButtonStates)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Each section of the panel (TrainBridgeLib/panel_*.py) fills and connects its own controls.
        self._setupExportSection()
        self._setupTrainingSection()
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(JOB_POLL_MS)
        self._jobTimer.connect("timeout()", self._pollJob)
        self._setupEvaluationSection()
        self._setupModelExportSection()

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
        return (ensure_torch(requester=_("Train Bridge"))
                and ensure_requirements(REQUIREMENTS_PATH, requester=_("Train Bridge")))

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
        self.ui.attachJobButton.enabled = bool(jobDir) and os.path.isfile(os.path.join(jobDir, JOB_FILE))
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
        self.job = None  # the training job followed (TrainBridgeLib.jobs.runner.Job)

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
        return ARCHITECTURES

    @staticmethod
    def finalStates() -> tuple:
        """Job states after which nothing changes any more."""
        return FINAL_STATES

    # ----- export --------------------------------------------------------------------------------------

    def casesFromStore(self, workDir, kind="adjudicated", caseIds=None) -> tuple:
        """Any thread: (CaseInput list, project labels) of each case's latest ``kind`` version."""
        store = self.projectStore()
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

    def setComparisonView(self, nodes, mode="side by side", label=None) -> None:
        """Main thread: only ``label`` visible; side by side (ground truth left, prediction right) or overlaid.

        Overlaid: both in every view, the prediction as an outline over the filled ground truth.
        """
        set_comparison_view(nodes, mode, label)

    @staticmethod
    def linkSliceViews() -> None:
        """Link the slice views, so both sides of the comparison show the same slice."""
        link_slice_views()

    @staticmethod
    def jumpToSlice(worst) -> None:
        """Main thread: centre every slice view on a worst slice's error (RAS position from the evaluation)."""
        jump_to_slice(worst)

    # ----- model export ------------------------------------------------------------------------------------

    @staticmethod
    def exportModel(jobDir, fmt, outDir) -> str:
        """Any thread: the trained MONAI model as ONNX or TorchScript + manifest (checked against PyTorch)."""
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
