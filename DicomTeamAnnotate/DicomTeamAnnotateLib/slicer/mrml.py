"""The MRML adapter: the only code in the project that touches Slicer nodes.

Converts between our ``Volume``/``Segmentation`` (arrays ``[k, j, i]`` with an LPS
``Geometry``) and Slicer's ``vtkMRMLScalarVolumeNode``/``vtkMRMLSegmentationNode`` (RAS,
``IJKToRAS`` matrices, ``vtkOrientedImageData`` labelmap layers).  Works inside Slicer and,
for tests and headless use, with the ``slicer-core`` wheel (no application, no
``slicer.mrmlScene``: a fresh ``vtkMRMLScene`` is made when none is given).

``import slicer`` happens inside the functions, so the module imports in plain Python.
"""
from __future__ import annotations

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry, resample_like
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, layer_dtype
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.core.windowing import resolve_window
from DicomTeamAnnotateLib.io.seg_nrrd import BINARY_LABELMAP, meaningful_terminology, slicer_terminology_entry

_CONVERTER_RULES = ("vtkBinaryLabelmapToClosedSurfaceConversionRule", "vtkClosedSurfaceToBinaryLabelmapConversionRule",
                    "vtkClosedSurfaceToFractionalLabelmapConversionRule",
                    "vtkFractionalLabelmapToClosedSurfaceConversionRule")


def _slicer():
    import slicer

    return slicer


def ensure_segmentation_converters() -> int:
    """Register Slicer's labelmap/surface converter rules once (the app does it; slicer-core does not)."""
    slicer = _slicer()
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    have = {rule.GetClassName() for rule in factory.GetConverterRules()}
    added = 0
    for name in _CONVERTER_RULES:
        if name not in have and hasattr(slicer, name):
            factory.RegisterConverterRule(getattr(slicer, name)())
            added += 1
    return added


_HEADLESS_SCENE = []  # the one scene used without the application (slicer-core), made on first need


def default_scene(scene=None):
    """``scene``, else the application's ``slicer.mrmlScene``, else one shared headless ``vtkMRMLScene``."""
    if scene is not None:
        return scene
    slicer = _slicer()
    app_scene = getattr(slicer, "mrmlScene", None)
    if app_scene is not None:
        return app_scene
    if not _HEADLESS_SCENE:  # kept alive here: nodes hold only a weak pointer to their scene
        _HEADLESS_SCENE.append(slicer.vtkMRMLScene())
    return _HEADLESS_SCENE[0]


# ----- matrices ----------------------------------------------------------------------------------
def _vtk_matrix(m: np.ndarray):
    import vtk

    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out


def _numpy_matrix(vm) -> np.ndarray:
    return np.array([[vm.GetElement(r, c) for c in range(4)] for r in range(4)])


def _world_transform(node) -> np.ndarray:
    """4x4 RAS matrix of the node's parent transforms (identity when none); non-linear ones are refused."""
    import vtk

    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise ValueError(f"node '{node.GetName()}' is under a non-linear transform; harden it first")
    m = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(m)
    return _numpy_matrix(m)


# ----- volumes -----------------------------------------------------------------------------------
def volume_to_node(volume: Volume, scene=None, name: str = "Volume", *, node=None, label: bool = False):
    """A scalar (or label-map) volume node holding ``volume`` with its geometry (LPS -> RAS)."""
    import slicer.util

    scene = default_scene(scene)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if label else "vtkMRMLScalarVolumeNode", name)
    array = np.ascontiguousarray(volume.array)
    if array.dtype == np.int64 or array.dtype == np.uint64:  # Slicer refuses 64-bit integer voxels
        if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
            raise ValueError(f"volume '{name}': 64-bit voxel values out of the int32 range cannot go to Slicer")
        array = array.astype(np.int32)
    slicer.util.updateVolumeFromArray(node, array)
    node.SetIJKToRASMatrix(_vtk_matrix(volume.geometry.to_ras().matrix()))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    window = _header_window(volume.metadata)
    if window and not label:  # the DICOM header's window, as Slicer's DICOM loader does
        apply_window_to_display_node(node, window)
    return node


def _header_window(metadata) -> tuple | None:
    """(level, width) from metadata 'window' (centre, width) or 'window_center'/'window_width', if valid."""
    if not isinstance(metadata, dict):
        return None
    window = metadata.get("window") or (metadata.get("window_center"), metadata.get("window_width"))
    try:
        level, width = (float(v) for v in window)
    except (TypeError, ValueError):
        return None
    return (level, width) if np.isfinite([level, width]).all() and width > 0 else None


def node_to_volume(node) -> Volume:
    """A Volume (LPS) from a scalar volume node; parent linear transforms are applied to the geometry."""
    import slicer.util
    import vtk

    if node is None or node.GetImageData() is None:
        raise ValueError("volume node has no image data")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = _world_transform(node) @ _numpy_matrix(ijk_to_ras)
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    size = node.GetImageData().GetDimensions()
    geometry = Geometry.from_matrix(matrix, size, space="RAS").to_lps()
    return Volume(array, geometry, {"name": node.GetName(), "source": "mrml"})


def apply_window_to_display_node(display_node, preset, level=None, width=None):
    """Set a fixed window on a scalar volume display node (or a volume node's); preset as in resolve_window."""
    if display_node is not None and display_node.IsA("vtkMRMLVolumeNode"):
        volume_node = display_node
        if volume_node.GetDisplayNode() is None:
            volume_node.CreateDefaultDisplayNodes()
        display_node = volume_node.GetDisplayNode()
    if display_node is None or not display_node.IsA("vtkMRMLScalarVolumeDisplayNode"):
        raise ValueError("apply_window_to_display_node needs a scalar volume display node or volume node")
    lev, wid = resolve_window(preset, level, width)
    was = display_node.StartModify()
    display_node.AutoWindowLevelOff()
    display_node.SetWindowLevel(wid, lev)
    display_node.EndModify(was)
    return lev, wid


# ----- segmentations -----------------------------------------------------------------------------
def _oriented_image(layer: np.ndarray, geometry: Geometry):
    """vtkOrientedImageData of one (K, J, I) layer on ``geometry``, in the layer's own unsigned type
    (label values above 255, FreeSurfer's 2035 for one, stay what the file says)."""
    slicer = _slicer()
    from vtk.util import numpy_support

    dtype = layer_dtype(int(layer.max(initial=0)))
    image = slicer.vtkOrientedImageData()
    image.SetExtent(0, geometry.size[0] - 1, 0, geometry.size[1] - 1, 0, geometry.size[2] - 1)
    image.AllocateScalars(numpy_support.get_vtk_array_type(np.dtype(dtype)), 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.ascontiguousarray(layer, dtype).ravel()
    image.SetImageToWorldMatrix(_vtk_matrix(geometry.to_ras().matrix()))
    return image


def _serialize_geometry(geometry: Geometry) -> str:
    slicer = _slicer()
    g = geometry.to_ras()
    extent = [0, g.size[0] - 1, 0, g.size[1] - 1, 0, g.size[2] - 1]
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(_vtk_matrix(g.matrix()), extent)


def _set_source_binary_labelmap(segmentation) -> None:
    setter = getattr(segmentation, "SetSourceRepresentationName", None) or segmentation.SetMasterRepresentationName
    setter(BINARY_LABELMAP)


def segmentation_to_node(seg: Segmentation, scene=None, reference_volume_node=None, name: str = "Segmentation",
                         *, node=None):
    """A segmentation node with one shared binary labelmap per layer, segment names/colours/terminology."""
    slicer = _slicer()
    ensure_segmentation_converters()
    scene = default_scene(scene)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    segmentation.RemoveAllSegments()
    _set_source_binary_labelmap(segmentation)
    if reference_volume_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    else:
        segmentation.SetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                                            _serialize_geometry(seg.geometry))
    images = {li: _oriented_image(layer, seg.geometry) for li, layer in enumerate(seg.layers)}
    for s in seg.segments:
        segment = slicer.vtkSegment()
        segment.SetName(s.name)
        segment.SetColor(*s.color)
        segment.SetLabelValue(s.label_value)
        segment.SetNameAutoGenerated(False)
        segment.SetColorAutoGenerated(False)
        for key, value in s.extra.get("tags", {}).items():
            segment.SetTag(key, value)
        if s.terminology:
            segment.SetTag("TerminologyEntry", slicer_terminology_entry(s.terminology))
        # The same image object for every segment of a layer is what makes it a shared labelmap.
        segment.AddRepresentation(BINARY_LABELMAP, images[s.layer])
        segmentation.AddSegment(segment, s.id or s.name)
    return node


def _layer_images(segmentation) -> list:
    """[(vtkOrientedImageData, [(segment id, vtkSegment)])] per shared labelmap layer."""
    layers, by_object = [], {}
    for index in range(segmentation.GetNumberOfSegments()):
        seg_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(seg_id)
        image = segment.GetRepresentation(BINARY_LABELMAP)
        key = image.GetAddressAsString("vtkDataObject") if image is not None else None
        if key not in by_object:
            by_object[key] = len(layers)
            layers.append((image, []))
        layers[by_object[key]][1].append((seg_id, segment))
    return layers


def _image_array(image) -> tuple:
    """((K, J, I) array, extent start (i, j, k), 4x4 image-to-world RAS) of a vtkOrientedImageData."""
    import vtk
    from vtk.util import numpy_support

    extent = image.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    if min(dims) < 1 or image.GetPointData().GetScalars() is None:
        return None, (extent[0], extent[2], extent[4]), _numpy_matrix(m)
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(tuple(reversed(dims)))
    return array, (extent[0], extent[2], extent[4]), _numpy_matrix(m)


def _reference_geometry_of(node) -> Geometry | None:
    """The segmentation's 'Reference image geometry' conversion parameter as a Geometry (LPS)."""
    slicer = _slicer()
    text = node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    if not text:
        return None
    image = slicer.vtkOrientedImageData()
    if not slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, image, False):
        return None
    _, start, matrix = _image_array(image)
    extent = image.GetExtent()
    size = (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1)
    if min(size) < 1:
        return None
    matrix[:3, 3] = matrix[:3, :3] @ np.array(start, dtype=float) + matrix[:3, 3]
    return Geometry.from_matrix(matrix, size, space="RAS").to_lps()


def node_to_segmentation(node, reference_geometry: Geometry | None = None) -> Segmentation:
    """A Segmentation from a segmentation node, on ``reference_geometry`` or the node's reference grid.

    Without a reference the grid is the node's reference image geometry, grown to hold every
    layer's extent; layers on another lattice are resampled by physical position.
    """
    ensure_segmentation_converters()
    segmentation = node.GetSegmentation()
    source = (segmentation.GetSourceRepresentationName() if hasattr(segmentation, "GetSourceRepresentationName")
              else segmentation.GetMasterRepresentationName())
    if source != BINARY_LABELMAP and not segmentation.CreateRepresentation(BINARY_LABELMAP):
        raise ValueError(f"segmentation '{node.GetName()}': cannot convert {source} to a binary labelmap")
    world = _world_transform(node)
    layers, values = [], {}
    for image, members in _layer_images(segmentation):
        array, start, matrix = _image_array(image)
        values.update({seg_id: segment.GetLabelValue() for seg_id, segment in members})
        if array is not None:
            array = array.astype(layer_dtype(int(array.max(initial=0))), copy=False)
            matrix = world @ matrix
            matrix[:3, 3] = matrix[:3, :3] @ np.array(start, dtype=float) + matrix[:3, 3]
            layers.append((array, Geometry.from_matrix(matrix, tuple(reversed(array.shape)), space="RAS").to_lps(),
                           members))
        else:
            layers.append((None, None, members))
    if reference_geometry is not None:
        target = reference_geometry.to_lps()
    else:
        target = _union_geometry(node, world, [g for _, g, _ in layers if g is not None])
    dtype = layer_dtype(max([int(v) for v in values.values()] + [1]))
    out_layers, found = [], {}
    for li, (array, geometry, members) in enumerate(layers):
        out_layers.append(np.zeros(target.shape, dtype=dtype) if array is None
                          else _place(array, geometry, target).astype(dtype, copy=False))
        found.update({seg_id: (li, segment) for seg_id, segment in members})
    segments, seen = [], set()
    for index in range(segmentation.GetNumberOfSegments()):  # keep the node's segment order
        seg_id = segmentation.GetNthSegmentID(index)
        li, segment = found[seg_id]
        name = segment.GetName() or seg_id
        name = f"{name} ({seg_id})" if name in seen else name  # Slicer allows repeated names; we match by name
        seen.add(name)
        segments.append(Segment(name=name, label_value=values[seg_id], color=tuple(segment.GetColor()),
                                layer=li, id=seg_id, terminology=_terminology(segment)))
    if not out_layers:
        out_layers.append(np.zeros(target.shape, dtype=dtype))
    return Segmentation(np.stack(out_layers), target, segments, {"name": node.GetName(), "source": "mrml"})


def _terminology(segment) -> str | None:
    """The segment's TerminologyEntry tag (VTK's Python wrapping cannot list all tags)."""
    import vtk

    value = vtk.reference("")
    if segment.GetTag("TerminologyEntry", value):
        return meaningful_terminology(str(value))
    return None


def _union_geometry(node, world: np.ndarray, geometries: list) -> Geometry:
    """The reference grid grown (on its lattice) to hold every layer; or the first layer's lattice."""
    base = _reference_geometry_of(node)
    if base is not None:
        base = Geometry.from_matrix(world @ base.to_ras().matrix(), base.size, space="RAS").to_lps()
    elif geometries:
        base = geometries[0]
    else:
        raise ValueError(f"segmentation '{node.GetName()}' has no voxels and no reference geometry; "
                         "pass reference_geometry")
    lo, hi = np.zeros(3), np.array(base.size, dtype=float) - 1
    for g in geometries:
        start = base.world_to_index(g.origin)
        if not _same_lattice(base, g, start):
            continue  # resampled later; it does not move the grid
        lo, hi = np.minimum(lo, np.rint(start)), np.maximum(hi, np.rint(start) + np.array(g.size) - 1)
    if np.all(lo == 0) and np.all(hi == np.array(base.size) - 1):
        return base
    origin = base.index_to_world(lo)
    return Geometry(size=tuple(int(v) for v in hi - lo + 1), spacing=base.spacing, origin=origin,
                    direction=base.direction, space="LPS")


def _same_lattice(a: Geometry, b: Geometry, start_in_a: np.ndarray) -> bool:
    return (np.allclose(a.spacing, b.spacing, atol=1e-6) and np.allclose(a.direction, b.direction, atol=1e-6)
            and np.allclose(start_in_a, np.rint(start_in_a), atol=1e-3))


def _place(array: np.ndarray, geometry: Geometry, target: Geometry) -> np.ndarray:
    """Copy a layer into the target grid: by index offset on the same lattice, else by resampling."""
    start = target.world_to_index(geometry.origin)
    if not _same_lattice(target, geometry, start):
        return resample_like(array, geometry, target, label=True).astype(array.dtype, copy=False)
    out = np.zeros(target.shape, dtype=array.dtype)
    i0, j0, k0 = (int(v) for v in np.rint(start))
    src = [slice(max(0, -o), min(n, t - o)) for o, n, t in zip((k0, j0, i0), array.shape, target.shape)]
    dst = [slice(s.start + o, s.stop + o) for s, o in zip(src, (k0, j0, i0))]
    if all(s.start < s.stop for s in src):
        out[tuple(dst)] = array[tuple(src)]
    return out
