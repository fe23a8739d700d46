"""The MRML adapter of the TrainBridge comparison view: a test case's prediction beside its ground truth.

Nodes of the image, the ground truth and the prediction (reused from one case to the next), one
label visible, side by side or overlaid, and a jump to a worst slice. Side by side, the ground truth
is in the Red view and the prediction in the Yellow one, and Yellow is turned to Red's plane (the
SideBySide layout keeps an existing Yellow view sagittal: vtkMRMLLayoutLogic applies orientations
only to views it creates). What the comparison changes in the application's views (layout, Yellow's
plane, linked views, where each segmentation is drawn) is saved first and given back when the user
leaves it (``leave_comparison_view``). Main thread only; Slicer is imported inside the functions.
"""

from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

COMPARISON_MODES = ("side by side", "overlaid")


def alive(node):
    """``node`` if it is still in a scene, else None."""
    return node if node is not None and node.GetScene() is not None else None


def show_comparison(read, previous=None, scene=None) -> dict:
    """Nodes of the image, the ground truth and the prediction of ``read`` (reused from ``previous``)."""
    previous = previous or {}
    case = read["case"]
    image = volume_to_node(read["image"], scene, name=f"{case} image", node=alive(previous.get("image")))
    image.SetName(f"{case} image")
    nodes = {"case": case, "image": image}
    for key, text in (("gt", "ground truth"), ("pred", "prediction")):
        node = segmentation_to_node(read[key], scene, reference_volume_node=image, name=f"{case} {text}",
                                    node=alive(previous.get(key)))
        node.SetName(f"{case} {text}")
        nodes[key] = node
    return nodes


def _slice_nodes() -> dict:
    """{layout name: slice node} of the scene."""
    import slicer

    return {n.GetLayoutName(): n for n in slicer.util.getNodesByClass("vtkMRMLSliceNode")}


def save_views() -> dict:
    """What a side-by-side comparison changes: the layout, Yellow's plane and field of view, each view's linking."""
    import slicer
    import vtk

    saved = {"layout": None, "yellow": None, "linked": {}}
    layout_manager = slicer.app.layoutManager()
    if layout_manager is not None:
        saved["layout"] = layout_manager.layout
    yellow = _slice_nodes().get("Yellow")
    if yellow is not None:
        matrix = vtk.vtkMatrix4x4()
        matrix.DeepCopy(yellow.GetSliceToRAS())
        saved["yellow"] = (matrix, tuple(yellow.GetFieldOfView()))
    for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
        saved["linked"][composite.GetID()] = composite.GetLinkedControl()
    return saved


def restore_views(saved) -> None:
    """Give back what ``save_views`` saved (nodes that went away meanwhile are skipped)."""
    import slicer

    if not saved:
        return
    layout_manager = slicer.app.layoutManager()
    if layout_manager is not None and saved["layout"] is not None:
        layout_manager.setLayout(saved["layout"])
    yellow = _slice_nodes().get("Yellow")
    if yellow is not None and saved["yellow"] is not None:
        matrix, fov = saved["yellow"]
        yellow.GetSliceToRAS().DeepCopy(matrix)
        yellow.SetFieldOfView(*fov)
        yellow.UpdateMatrices()
    for node_id, linked in saved["linked"].items():
        composite = slicer.mrmlScene.GetNodeByID(node_id)
        if composite is not None:
            composite.SetLinkedControl(linked)


def match_yellow_to_red() -> None:
    """Turn the Yellow view to the Red view's plane (and field of view): both sides show the same cut.

    Red's slice-to-RAS matrix is copied rather than its preset name, so a view rotated to an oblique
    volume's plane ("Reformat") is matched too.
    """
    views = _slice_nodes()
    red, yellow = views.get("Red"), views.get("Yellow")
    if red is None or yellow is None:
        return
    yellow.GetSliceToRAS().DeepCopy(red.GetSliceToRAS())
    yellow.SetFieldOfView(*red.GetFieldOfView())
    yellow.UpdateMatrices()


def set_comparison_view(nodes, mode="side by side", label=None, saved=None):
    """Only ``label`` visible (None: all); side by side or overlaid. Returns what side by side changed in the
    views (``saved`` from an earlier call is kept: pass it back, and to ``leave_comparison_view``), None when
    overlaid (the views are given back first)."""
    import slicer

    if mode not in COMPARISON_MODES:
        raise ValueError(f"comparison mode must be one of {COMPARISON_MODES}, got {mode!r}")
    for key in ("gt", "pred"):
        segmentation = nodes[key].GetSegmentation()
        display = nodes[key].GetDisplayNode()
        for i in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(i)
            display.SetSegmentVisibility(segmentation.GetNthSegmentID(i), label is None or segment.GetName() == label)
    gt_display, pred_display = nodes["gt"].GetDisplayNode(), nodes["pred"].GetDisplayNode()
    pred_display.SetVisibility2DFill(mode != "overlaid")
    pred_display.SetVisibility2DOutline(True)
    layout_manager = slicer.app.layoutManager() if getattr(slicer, "app", None) is not None else None
    if mode == "side by side":
        saved = saved or save_views()
        if layout_manager is not None:
            layout_manager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        gt_display.SetDisplayableOnlyInView("vtkMRMLSliceNodeRed")
        pred_display.SetDisplayableOnlyInView("vtkMRMLSliceNodeYellow")
        if layout_manager is not None:
            slicer.util.setSliceViewerLayers(background=nodes["image"], fit=True)
        match_yellow_to_red()
        link_slice_views()
        return saved
    restore_views(saved)
    gt_display.RemoveAllViewNodeIDs()
    pred_display.RemoveAllViewNodeIDs()
    if layout_manager is not None:
        slicer.util.setSliceViewerLayers(background=nodes["image"], fit=True)
    return None


def leave_comparison_view(nodes, saved) -> None:
    """The user leaves the comparison: the views as they were, both segmentations drawn in every view again."""
    restore_views(saved)
    for key in ("gt", "pred"):
        node = alive((nodes or {}).get(key))
        if node is not None and node.GetDisplayNode() is not None:
            node.GetDisplayNode().RemoveAllViewNodeIDs()


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
