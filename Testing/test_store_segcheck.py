"""The push check reads headers only: ``read_segmentation_geometry`` equals the full reader's
geometry (Slicer .seg.nrrd, 3D and 4D, cropped; the real NIfTI label map), and a file whose
voxel data is cut short is refused (raw and gzip) although its header is intact.
"""
from __future__ import annotations

import numpy as np
import pytest
from store_support import GEOMETRY, make_team_project, write_seg

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.io.seg_nrrd import nrrd_payload_problem
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, read_segmentation_geometry, write_seg_nrrd
from DicomTeamAnnotateLib.store import InvalidInput, open_store
from DicomTeamAnnotateLib.store.service import check_segmentation_fits

OBLIQUE = Geometry(size=(20, 16, 7), spacing=(0.7, 0.9, 2.5), origin=(10.0, -20.0, 5.0),
                   direction=(0.8, 0.6, 0.0, -0.6, 0.8, 0.0, 0.0, 0.0, 1.0))


def _seg(geometry: Geometry, overlapping: bool) -> Segmentation:
    a = np.zeros(geometry.shape, bool)
    a[1:4, 2:9, 3:11] = True
    b = a.copy() if overlapping else np.zeros(geometry.shape, bool)  # overlap: a second layer (4D file)
    b[4:6, 10:14, 12:18] = True
    return Segmentation.from_masks({"a": a, "b": b}, geometry)


@pytest.mark.parametrize("overlapping", [False, True], ids=["3d-one-layer", "4d-two-layers"])
def test_header_geometry_equals_the_full_read(tmp_path, overlapping):
    path = write_seg_nrrd(_seg(OBLIQUE, overlapping), tmp_path / "s.seg.nrrd")
    full = read_segmentation(path)
    assert full.layers.shape[0] == (2 if overlapping else 1)
    geometry = read_segmentation_geometry(path)
    assert geometry == full.geometry and geometry.same_grid(OBLIQUE)


def test_header_geometry_of_the_real_label_map(ct_organs_path):
    assert read_segmentation_geometry(ct_organs_path) == read_segmentation(ct_organs_path).geometry


def test_header_geometry_needs_no_voxels(tmp_path):
    path = write_seg(tmp_path / "s.seg.nrrd")
    data = path.read_bytes()
    cut = tmp_path / "cut.seg.nrrd"
    cut.write_bytes(data[: data.index(b"\n\n") + 2 + 10])  # the header and 10 bytes of the gzip stream
    assert read_segmentation_geometry(cut) == read_segmentation_geometry(path) == GEOMETRY
    with pytest.raises(ValueError):
        read_segmentation(cut)
    assert nrrd_payload_problem(path) is None
    assert "cut short" in nrrd_payload_problem(cut)


def test_cut_files_are_refused_by_the_push_check(tmp_path):
    """Raw and gzip data cut short: InvalidInput naming the file, and nothing stored."""
    import nrrd

    from DicomTeamAnnotateLib.io.seg_nrrd import seg_nrrd_header

    seg = _seg(GEOMETRY, overlapping=True)
    header = seg_nrrd_header(seg)
    header["encoding"] = "raw"
    raw = tmp_path / "raw.seg.nrrd"
    nrrd.write(str(raw), np.ascontiguousarray(np.moveaxis(seg.layers, 0, -1)), header, index_order="C")
    case = {"case_id": "c1", "geometry": GEOMETRY.to_dict()}
    check_segmentation_fits(raw, case, "raw.seg.nrrd")  # whole: accepted
    raw_cut = tmp_path / "raw-cut.seg.nrrd"
    raw_cut.write_bytes(raw.read_bytes()[:-7])
    with pytest.raises(InvalidInput, match=r"raw-cut.seg.nrrd: .*raw data holds \d+ bytes"):
        check_segmentation_fits(raw_cut, case, "raw-cut.seg.nrrd")

    project = tmp_path / "project"
    make_team_project(project)
    alice = open_store(project, "alice")
    blobs = sorted((project / "blobs").rglob("*"))
    gz_cut = tmp_path / "gz-cut.seg.nrrd"
    gz_cut.write_bytes(write_seg(tmp_path / "gz.seg.nrrd").read_bytes()[:-5])
    for bad in (raw_cut, gz_cut):
        with pytest.raises(InvalidInput, match=bad.name):
            alice.push_version("c1", bad)
    assert alice.list_versions("c1") == []
    assert sorted((project / "blobs").rglob("*")) == blobs
