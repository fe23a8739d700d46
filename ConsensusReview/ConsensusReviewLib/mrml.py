"""The MRML adapter of ConsensusReview: segmentation nodes read as inputs, a run's nodes and layers.

Annotators' segmentation nodes read on a reference grid; the reference image and consensus
segmentation nodes of a run; the disagreement / vote-count / probability maps as coloured volume
nodes, their colour table, the foreground layer of the slice views (and its opacity alone), the
Segment Editor opened on the adjudication. ConsensusReviewLogic delegates here; every function that
reads, makes or shows nodes runs on the main thread. Slicer is imported inside the functions, so
this file imports in plain Python.
"""

from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.slicer.connection import CASE_ATTRIBUTE  # the hub sets it on an open case
from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, node_to_volume, segmentation_to_node, volume_to_node

MAP_COLOR_NODE_NAME = "DicomTeamAnnotate disagreement"


def alive(node):
    """``node`` if it is still in a scene, else None."""
    return node if node is not None and node.GetScene() is not None else None


def segmentations_from_nodes(nodes, reference_node=None) -> dict:
    """Main thread: segmentation nodes (and the reference volume) read as plain Segmentations and Volume."""
    nodes = [n for n in nodes if n is not None]
    if len(nodes) < 2:
        raise ValueError("choose at least two segmentation nodes")
    image = node_to_volume(reference_node) if reference_node is not None else None
    reference = image.geometry if image is not None else None
    segs = [node_to_segmentation(n, reference_geometry=reference) for n in nodes]
    names = [n.GetName() for n in nodes]
    return {"segmentations": segs, "annotators": names, "image": image, "reference": reference}


def show_result(run, scene=None, previous=None) -> dict:
    """Main thread: the reference volume and consensus segmentation nodes; {'reference', 'consensus', 'map'}.

    ``previous`` (the dict of an earlier call): its nodes are reused for the same case, so
    running again does not pile up nodes. A project case reuses the image the hub module opened.
    """
    import slicer


    previous = previous if previous and previous.get("case_id") == run["case_id"] else {}
    name = run["case_id"] or "consensus"
    reference = alive(run.get("reference_node")) or alive(previous.get("reference"))
    if reference is None and run.get("image") is not None:
        if run["case_id"]:
            for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode", scene):
                if node.GetAttribute(CASE_ATTRIBUTE) == run["case_id"]:
                    reference = node
        if reference is None:
            reference = volume_to_node(run["image"], scene, name=f"{name} image")
            reference.SetAttribute(CASE_ATTRIBUTE, run["case_id"])
    result = run["result"]
    consensus = segmentation_to_node(result.segmentation, scene, reference_volume_node=reference,
                                     name=f"{name} consensus ({result.method})",
                                     node=alive(previous.get("consensus")))
    consensus.SetName(f"{name} consensus ({result.method})")
    consensus.SetAttribute("ConsensusReview.Method", result.method)
    run["reference_node"] = reference
    return {"case_id": run["case_id"], "reference": reference, "consensus": consensus,
            "map": alive(previous.get("map"))}


def map_array(result, key) -> tuple:
    """(array (K, J, I), maximum of the display range) of a map key ('disagreement', 'votes:L', 'probability:L')."""
    if key == "disagreement":
        return result.disagreement, 1.0
    kind, _sep, label = key.partition(":")
    if kind == "votes":
        return result.vote_counts[label], float(len(result.inputs.annotators))
    if kind == "probability":
        return result.probabilities[label], 1.0
    raise ValueError(f"unknown map {key!r}")


def map_color_node(scene=None):
    """Main thread: the map's colour table (transparent-free 'hot' ramp), made once per scene."""
    import slicer

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


def map_volume_node(run, key, scene=None, node=None):
    """Main thread: a volume node of a map (on the inputs' grid), coloured, zero shown as transparent."""
    result = run["result"]
    array, top = map_array(result, key)
    name = f"{run['case_id'] or 'consensus'} {key.replace(':', ' ')}"
    node = volume_to_node(Volume(array.astype("float32"), result.inputs.geometry), scene, name=name,
                          node=alive(node))
    node.SetName(name)
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(map_color_node(scene or node.GetScene()).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, top)
    # Voxels with no disagreement (no vote) are not drawn, so the image shows through.
    display.AutoThresholdOff()
    display.SetLowerThreshold(top * 1e-3)
    display.SetUpperThreshold(top)
    display.ApplyThresholdOn()
    node.SetAttribute("ConsensusReview.Map", key)
    return node


def show_map(map_node, reference_node=None, opacity=0.6) -> None:
    """Application: the map as the foreground layer of every slice view, over the reference image."""
    import slicer

    kwargs = {"foreground": map_node, "foregroundOpacity": float(opacity)}
    if reference_node is not None:
        kwargs["background"] = reference_node
    slicer.util.setSliceViewerLayers(**kwargs)


def hide_map() -> None:
    """Application: no foreground layer."""
    import slicer

    slicer.util.setSliceViewerLayers(foreground=None)


def set_map_opacity(opacity) -> None:
    """Application: the foreground layer's opacity only (the map volume is left as it is)."""
    import slicer

    slicer.util.setSliceViewerLayers(foregroundOpacity=float(opacity))


def edit_in_segment_editor(segmentation_node, reference_node=None) -> None:
    """Application: open the Segment Editor on ``segmentation_node`` (source volume: ``reference_node``)."""
    import slicer

    slicer.util.selectModule("SegmentEditor")
    editor = slicer.util.getModuleWidget("SegmentEditor").editor
    editor.setSegmentationNode(segmentation_node)
    if reference_node is not None:
        editor.setSourceVolumeNode(reference_node)
