"""The MRML adapter and file compatibility with Slicer, checked with slicer-core's real nodes and storage nodes."""
from __future__ import annotations

import iocases
import nrrd
import numpy as np
import pytest

from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.io import seg_nrrd
from DicomTeamAnnotateLib.io import segmentations as segio
from DicomTeamAnnotateLib.io.volumes import read_volume, write_volume
from DicomTeamAnnotateLib.slicer import mrml

slicer = pytest.importorskip("slicer", reason="slicer-core (test extra) provides MRML")
vtk = pytest.importorskip("vtk")
from vtk.util import numpy_support  # noqa: E402

EXACT = dict(tol_mm=1e-9, tol_dir=1e-12)
FLOAT32 = dict(tol_mm=1e-4, tol_dir=1e-6)


@pytest.fixture()
def scene():
    return slicer.vtkMRMLScene()


def _read_segmentation_node(scene, path):
    mrml.ensure_segmentation_converters()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1, f"Slicer could not read {path}"
    return node


def _world_points_of_segment(node, name):
    """LPS world positions of a segment's voxels, straight from VTK (independent of our adapter)."""
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
    image = segment.GetRepresentation("Binary labelmap")
    extent = image.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(tuple(reversed(dims)))
    k, j, i = np.nonzero(array == segment.GetLabelValue())
    ijk = np.column_stack([i + extent[0], j + extent[2], k + extent[4], np.ones(len(i))])
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ras = ijk @ np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)]).T
    return ras[:, :3] * [-1, -1, 1]


def _sorted_rows(points):
    return points[np.lexsort(np.round(points, 6).T[::-1])]


@pytest.mark.parametrize("orientation", iocases.ORIENTATIONS)
def test_slicer_reads_our_seg_nrrd(tmp_path, scene, orientation):
    seg = iocases.segmentation(orientation)
    node = _read_segmentation_node(scene, segio.write_seg_nrrd(seg, tmp_path / "ours.seg.nrrd"))
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())] == seg.names
    assert segmentation.GetNumberOfLayers() == 2
    for s in seg.segments:
        vs = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(s.name))
        assert np.allclose(vs.GetColor(), s.color)
        expected = seg.geometry.index_to_world(np.argwhere(seg.mask(s.name))[:, ::-1])
        got = _world_points_of_segment(node, s.name)
        assert got.shape == expected.shape, s.name
        assert np.allclose(_sorted_rows(got), _sorted_rows(expected), atol=1e-6), s.name
    term = vtk.reference("")
    liver = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("liver"))
    assert liver.GetTag("TerminologyEntry", term) and "SCT^10200004^Liver" in str(term)
    back = mrml.node_to_segmentation(node)  # Slicer's reader crops layers; the reference grid restores them
    assert back.geometry.differences(seg.geometry, **EXACT) == []
    for name in seg.names:
        assert np.array_equal(back.mask(name), seg.mask(name)), name


@pytest.mark.parametrize("orientation", iocases.ORIENTATIONS)
def test_we_read_what_slicer_writes(tmp_path, scene, orientation):
    seg = iocases.segmentation(orientation)
    volume_node = mrml.volume_to_node(iocases.volume(orientation), scene)
    node = mrml.segmentation_to_node(seg, scene, volume_node)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    path = tmp_path / "slicer.seg.nrrd"
    storage.SetFileName(str(path))
    storage.SetCropToMinimumExtent(True)  # the harder case: a cropped file with an extent offset
    assert storage.WriteData(node) == 1
    offset = nrrd.read_header(str(path))["Segmentation_ReferenceImageExtentOffset"]
    assert offset != "0 0 0"
    back = segio.read_segmentation(path, reference=seg.geometry)
    for name in seg.names:
        assert np.array_equal(back.mask(name), seg.mask(name)), name
    assert segio.read_segmentation(path).metadata["reference_geometry"] is not None
    assert back.segment("liver").key() == seg.segment("liver").key()


def test_slicer_and_we_agree_on_voxels_outside_a_segment_extent(tmp_path, scene):
    """Slicer crops a layer to the bounding box of its segments' Extent fields; so do we."""
    seg = iocases.segmentation("axial")
    header = seg_nrrd.seg_nrrd_header(seg)
    index = {header[f"Segment{n}_Name"]: n for n in range(4)}
    header[f"Segment{index['liver']}_Extent"] = "4 10 3 9 2 3"  # liver voxels are at i 4..14, k 2..5
    assert header[f"Segment{index['vessel']}_Extent"] == "0 1 0 2 9 10"  # same layer: the box grows to k 10
    path = tmp_path / "narrow.seg.nrrd"
    nrrd.write(str(path), np.ascontiguousarray(np.moveaxis(seg.layers, 0, -1)), header, index_order="C")
    ours = segio.read_segmentation(path)
    theirs = mrml.node_to_segmentation(_read_segmentation_node(scene, path), reference_geometry=seg.geometry)
    for name in seg.names:
        assert np.array_equal(ours.mask(name), theirs.mask(name)), name
    expected = seg.mask("liver").copy()
    expected[:, :, 11:] = False  # outside the box; k 4..5 stay (inside the box, outside liver's own extent)
    assert np.array_equal(ours.mask("liver"), expected)


@pytest.mark.parametrize("orientation", iocases.ORIENTATIONS)
@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_volume_files_between_slicer_and_us(tmp_path, scene, orientation, suffix):
    vol = iocases.volume(orientation)
    tol = FLOAT32 if suffix == ".nii.gz" else EXACT
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(write_volume(vol, tmp_path / f"ours{suffix}")))
    assert storage.ReadData(node) == 1
    got = mrml.node_to_volume(node)
    assert got.geometry.differences(vol.geometry, **tol) == [] and np.array_equal(got.array, vol.array)
    writer = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(writer)
    writer.SetFileName(str(tmp_path / f"slicer{suffix}"))
    assert writer.WriteData(mrml.volume_to_node(vol, scene)) == 1
    back = read_volume(tmp_path / f"slicer{suffix}")
    assert back.geometry.differences(vol.geometry, **tol) == [] and np.array_equal(back.array, vol.array)


@pytest.mark.parametrize("orientation", iocases.ORIENTATIONS)
def test_volume_node_round_trip(scene, orientation):
    vol = iocases.volume(orientation)
    node = mrml.volume_to_node(vol, scene, "ct")
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ras_origin = [m.GetElement(r, 3) for r in range(3)]
    assert np.allclose(ras_origin, np.array(vol.geometry.origin) * [-1, -1, 1])  # LPS -> RAS
    assert np.allclose(node.GetSpacing(), vol.geometry.spacing)
    back = mrml.node_to_volume(node)
    assert back.geometry.differences(vol.geometry, **EXACT) == []
    assert back.array.dtype == np.int16 and np.array_equal(back.array, vol.array)


@pytest.mark.parametrize("orientation", iocases.ORIENTATIONS)
def test_segmentation_node_round_trip(scene, orientation):
    seg = iocases.segmentation(orientation)
    node = mrml.segmentation_to_node(seg, scene)
    assert node.GetSegmentation().GetNumberOfLayers() == 2
    back = mrml.node_to_segmentation(node)
    assert back.geometry.differences(seg.geometry, **EXACT) == []
    assert [(s.name, s.layer, s.label_value) for s in back.segments] == [
        (s.name, s.layer, s.label_value) for s in seg.segments]
    for s in seg.segments:
        assert np.array_equal(back.mask(s.name), seg.mask(s.name)) and np.allclose(back.segment(s.name).color, s.color)
    assert back.segment("liver").key() == "sct:10200004"
    assert back.segment("vessel").terminology is None


def test_parent_transform_moves_geometry(scene):
    vol = iocases.volume("axial")
    node = mrml.volume_to_node(vol, scene)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 10.0)  # 10 mm to the right (RAS +x) = LPS -x
    transform.SetMatrixTransformToParent(shift)
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = mrml.node_to_volume(node)
    assert np.allclose(np.array(moved.geometry.origin) - vol.geometry.origin, [-10, 0, 0])


def test_window_preset_on_display_node(scene):
    vol = iocases.volume("axial")
    vol.metadata["window"] = (35.0, 350.0)  # a DICOM header window is applied on load
    node = mrml.volume_to_node(vol, scene)
    display = node.GetDisplayNode()
    assert (display.GetLevel(), display.GetWindow()) == (35.0, 350.0)
    assert mrml.apply_window_to_display_node(display, "lung") == (-600.0, 1500.0)
    assert (display.GetLevel(), display.GetWindow(), display.GetAutoWindowLevel()) == (-600.0, 1500.0, 0)
    mrml.apply_window_to_display_node(node, "custom", level=10, width=20)
    assert (display.GetLevel(), display.GetWindow()) == (10.0, 20.0)
    with pytest.raises(ValueError, match="lung"):
        mrml.apply_window_to_display_node(display, "no such preset")


def test_converter_rules_registered_once():
    mrml.ensure_segmentation_converters()
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    count = len(factory.GetConverterRules())
    assert count >= 4
    assert mrml.ensure_segmentation_converters() == 0 and len(factory.GetConverterRules()) == count


def test_closed_surface_segmentation_converts_to_labelmap(scene):
    """A model-based segmentation (closed surface source) becomes voxels via the registered rules."""
    seg = iocases.segmentation("axial")
    node = mrml.segmentation_to_node(Segmentation.from_masks({"liver": seg.mask("liver")}, seg.geometry), scene)
    segmentation = node.GetSegmentation()
    assert segmentation.CreateRepresentation("Closed surface")
    segmentation.SetSourceRepresentationName("Closed surface")
    segmentation.GetSegment(segmentation.GetNthSegmentID(0)).RemoveRepresentation("Binary labelmap")
    back = mrml.node_to_segmentation(node, reference_geometry=seg.geometry)
    dice = 2 * (back.mask("liver") & seg.mask("liver")).sum() / (back.mask("liver").sum() + seg.mask("liver").sum())
    assert dice > 0.8


def test_ingested_ct_becomes_a_volume_node_with_the_same_geometry(scene, ct_dicom_dir):
    """Section 2: the ingested series, as a scalar volume node, sits where SimpleITK puts the series."""
    import SimpleITK as sitk

    from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume

    vol = load_dicom_volume(ct_dicom_dir)
    node = mrml.volume_to_node(vol, scene, "CT")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_dicom_dir)))
    image = reader.Execute()
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    lps = np.diag([-1.0, -1.0, 1.0])
    assert np.allclose(ijk_to_ras[:3, 3], lps @ np.array(image.GetOrigin()), atol=1e-4)
    expected_axes = lps @ np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    assert np.allclose(ijk_to_ras[:3, :3], expected_axes, atol=1e-6)
    back = mrml.node_to_volume(node)
    assert np.array_equal(back.array, sitk.GetArrayFromImage(image))
    assert back.geometry.differences(vol.geometry, tol_mm=1e-9, tol_dir=1e-12) == []
    if vol.metadata.get("window_center") is not None:  # the header's window is the display window
        display = node.GetDisplayNode()
        assert (display.GetLevel(), display.GetWindow()) == (float(vol.metadata["window_center"]),
                                                             float(vol.metadata["window_width"]))


def test_label_values_above_255_survive_a_round_trip_through_mrml(scene):
    """FreeSurfer-style values (2035) stay what they are through a segmentation node (no renumbering)."""
    g = iocases.geometry("axial")
    a = np.zeros(g.shape, bool)
    a[2:5, 3:9, 4:10] = True
    b = np.zeros(g.shape, bool)
    b[6:9, 3:9, 4:10] = True
    seg = Segmentation.from_masks({"ctx-lh-insula": a, "Left-Cerebellum": b}, g,
                                  values={"ctx-lh-insula": 1035, "Left-Cerebellum": 2035})
    node = mrml.segmentation_to_node(seg, scene, name="aparc")
    back = mrml.node_to_segmentation(node, reference_geometry=g)
    assert {s.name: s.label_value for s in back.segments} == {"ctx-lh-insula": 1035, "Left-Cerebellum": 2035}
    assert np.array_equal(back.mask("Left-Cerebellum"), b) and np.array_equal(back.mask("ctx-lh-insula"), a)
