"""The Python packages each TrainBridge feature needs in Slicer, installed at its first use.

Slicer 5.12 bundles none of them. torch comes only through the PyTorch extension (the core's
``Installer`` asks PyTorchUtils, which installs the build that matches the GPU); the rest through
``slicer.packaging.pip_ensure`` with Slicer's packages (and torch, once installed) held. A training
job runs in Slicer's own Python (PythonSlicer), so what it imports must be installed there first:
the trainer (torch, MONAI or nnU-Net), its loss curves (matplotlib) and the test-set evaluation,
which reads the NIfTI predictions (nibabel checks a NIfTI's length before ITK reads it).
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import REPORTS, SEGMENTATION_FILES, Feature
from TrainBridgeLib.loop.model_folder import describe_model_folder

TORCH = ">=2.2"
MONAI = "monai>=1.3"
NIBABEL = "nibabel>=5.0"
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")  # .seg.nrrd included

MONAI_TRAINING = Feature(_("training with MONAI (with its loss curves and the test-set evaluation)"),
                         (MONAI, *REPORTS.requirements, NIBABEL), needs_torch=True, torch_requirement=TORCH)
NNUNET_TRAINING = Feature(_("training with nnU-Net (with its loss curves and the test-set evaluation)"),
                          ("nnunetv2>=2.4", *REPORTS.requirements, NIBABEL), needs_torch=True, torch_requirement=TORCH)
TORCHSCRIPT_EXPORT = Feature(_("exporting the trained model to TorchScript"), (MONAI,), needs_torch=True,
                             torch_requirement=TORCH)
ONNX_EXPORT = Feature(_("exporting the trained model to ONNX (checked with ONNX Runtime)"),
                      (MONAI, "onnx>=1.15", "onnxruntime>=1.17"), needs_torch=True, torch_requirement=TORCH)

# Pre-annotation reads the case images and writes the predictions as NRRD (pynrrd) and runs the model in
# Slicer's Python: MONAI's sliding window (an ONNX export also needs ONNX Runtime) or nnU-Net's predictor.
MONAI_PREANNOTATION = Feature(_("pre-annotating the project's cases with a MONAI model"),
                              (MONAI, *SEGMENTATION_FILES.requirements), needs_torch=True, torch_requirement=TORCH)
ONNX_PREANNOTATION = Feature(_("pre-annotating the project's cases with an ONNX model"),
                             (MONAI, "onnxruntime>=1.17", *SEGMENTATION_FILES.requirements), needs_torch=True,
                             torch_requirement=TORCH)
NNUNET_PREANNOTATION = Feature(_("pre-annotating the project's cases with an nnU-Net model"),
                               ("nnunetv2>=2.4", *SEGMENTATION_FILES.requirements), needs_torch=True,
                               torch_requirement=TORCH)
EFFORT_REPORT = Feature(_("the effort table's picture"), REPORTS.requirements)

TRAINING = {"monai": MONAI_TRAINING, "nnunet": NNUNET_TRAINING}
MODEL_EXPORT = {"torchscript": TORCHSCRIPT_EXPORT, "onnx": ONNX_EXPORT}


def export_feature(source: str, paths=()) -> Feature:
    """What 'Export dataset' needs: a project's versions and images are NRRD (pynrrd); files need pynrrd
    and/or nibabel by their suffixes (other formats: SimpleITK alone); scene nodes need nothing."""
    names = [str(p).lower() for p in paths] if source == "files" else []
    requirements = []
    if source == "store" or any(n.endswith(NRRD_SUFFIXES) for n in names):
        requirements += SEGMENTATION_FILES.requirements
    if any(n.endswith(NIFTI_SUFFIXES) for n in names):
        requirements.append(NIBABEL)
    return Feature(_("exporting the dataset"), tuple(requirements))


def preannotate_feature(model_folder) -> Feature:
    """What 'Pre-annotate' needs for the model in ``model_folder`` (loop.model_folder): nnU-Net's for an nnU-Net
    job, loop or model folder, ONNX Runtime besides MONAI for an ONNX export, else MONAI's."""
    backend = describe_model_folder(model_folder)["backend"]
    return {"nnunet": NNUNET_PREANNOTATION, "onnx": ONNX_PREANNOTATION}.get(backend, MONAI_PREANNOTATION)
