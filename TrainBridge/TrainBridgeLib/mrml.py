"""The MRML adapter of the TrainBridge comparison view: a test case's prediction beside its ground truth.

Nodes of the image, the ground truth and the prediction (reused from one case to the next), one
label visible, side by side (ground truth in the red view, prediction in the yellow one) or
overlaid (the prediction as an outline over the filled ground truth), and a jump to a worst slice.
Main thread only. Slicer is imported inside the functions, so this file imports in plain Python;
TrainBridgeLogic's showComparison, setComparisonView, linkSliceViews and jumpToSlice call these.
"""

from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

COMPARISON_MODES = ("side by side", "overlaid")


def show_comparison(read, previous=None, scene=None) -> dict:
    """Nodes of the image, the ground truth and the prediction of ``read`` (reused from ``previous``)."""
    def alive(key):
        node = (previous or {}).get(key)
        return node if node is not None and node.GetScene() is not None else None

    case = read["case"]
    image = volume_to_node(read["image"], scene, name=f"{case} image", node=alive("image"))
    image.SetName(f"{case} image")
    nodes = {"case": case, "image": image}
    for key, text in (("gt", "ground truth"), ("pred", "prediction")):
        node = segmentation_to_node(read[key], scene, reference_volume_node=image, name=f"{case} {text}",
                                    node=alive(key))
        node.SetName(f"{case} {text}")
        nodes[key] = node
    return nodes


def set_comparison_view(nodes, mode="side by side", label=None) -> None:
    """Only ``label`` visible (None: all); side by side or overlaid (see the module docstring)."""
    import slicer

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
        link_slice_views()


def link_slice_views() -> None:
    """Link the slice views, so both sides of the comparison show the same slice."""
    import slicer

    for compositeNode in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
        compositeNode.SetLinkedControl(True)


def jump_to_slice(worst) -> None:
    """Centre every slice view on a worst slice's error (RAS position from the evaluation)."""
    import slicer

    r, a, s = worst["center_ras"]
    for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
        sliceNode.JumpSliceByCentering(r, a, s)
