"""Geometry, Volume and Segmentation core: physical alignment, frames, round trips."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from DicomTeamAnnotateLib.core.geometry import Geometry, resample_like, to_sitk
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, terminology_code
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.volumes import read_volume, write_volume


def rotation(axis, degrees):
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    m = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
    return np.array(m)


OBLIQUE = Geometry(size=(7, 6, 5), spacing=(0.7, 0.9, 2.5), origin=(-10.5, 20.25, 3.0),
                   direction=(rotation("z", 20) @ rotation("x", 15)).ravel())


def test_ras_lps_round_trip_and_matrix():
    ras = OBLIQUE.to_ras()
    assert ras.space == "RAS"
    assert ras.origin[0] == pytest.approx(10.5) and ras.origin[1] == pytest.approx(-20.25)
    back = ras.to_lps()
    assert back.same_grid(OBLIQUE)
    # the same voxel lands on the same physical point in both frames
    p_lps = OBLIQUE.index_to_world([2, 3, 4])
    p_ras = ras.index_to_world([2, 3, 4])
    assert np.allclose(p_ras, p_lps * [-1, -1, 1])
    assert np.allclose(OBLIQUE.world_to_index(p_lps), [2, 3, 4])
    rebuilt = Geometry.from_matrix(OBLIQUE.matrix(), OBLIQUE.size)
    assert rebuilt.same_grid(OBLIQUE)


def test_invalid_geometry_names_the_field():
    with pytest.raises(ValueError, match="spacing"):
        Geometry(size=(2, 2, 2), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="direction"):
        Geometry(size=(2, 2, 2), direction=(1, 0, 0, 0, 1, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="size"):
        Geometry(size=(2, 0, 2))


def test_differences_lists_each_field():
    other = Geometry(size=(7, 6, 4), spacing=OBLIQUE.spacing, origin=(0, 0, 0), direction=OBLIQUE.direction)
    diffs = OBLIQUE.differences(other)
    assert any(d.startswith("size") for d in diffs) and any(d.startswith("origin") for d in diffs)
    assert not any(d.startswith("spacing") for d in diffs)


def test_resample_aligns_a_flipped_grid_by_physical_space():
    rng = np.random.default_rng(0)
    geo = Geometry(size=(8, 7, 6), spacing=(1.0, 1.5, 2.0), origin=(5.0, -3.0, 10.0))
    labels = rng.integers(0, 4, size=geo.shape).astype(np.uint8)
    # the same data stored with the i axis reversed (as NIfTI writers often do)
    flipped = labels[:, :, ::-1].copy()
    d = geo.direction_matrix.copy()
    d[:, 0] *= -1
    flipped_geo = Geometry(size=geo.size, spacing=geo.spacing,
                           origin=geo.index_to_world([geo.size[0] - 1, 0, 0]), direction=d.ravel())
    assert not np.array_equal(flipped, labels)
    back = resample_like(flipped, flipped_geo, geo, label=True)
    assert np.array_equal(back, labels)


def test_plane_axis_for_a_sagittal_acquisition():
    # sagittal slices: i along A/P (L/P/S: 0,1,0), j along S/I, k along L/R
    d = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float)
    g = Geometry(size=(4, 4, 4), direction=d.ravel())
    assert g.plane_axis("sagittal") == 2 and g.plane_axis("axial") == 1 and g.plane_axis("coronal") == 0


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_volume_round_trip_oblique(tmp_path, suffix):
    arr = (np.arange(np.prod(OBLIQUE.shape)).reshape(OBLIQUE.shape) - 100).astype(np.int16)
    path = write_volume(Volume(arr, OBLIQUE), tmp_path / f"v{suffix}")
    back = read_volume(path)
    assert back.array.dtype == np.int16 and np.array_equal(back.array, arr)
    assert back.geometry.same_grid(OBLIQUE, tol_mm=1e-4, tol_dir=1e-5), back.geometry.differences(OBLIQUE)
    # and SimpleITK agrees with our geometry object
    img = sitk.ReadImage(str(path))
    assert np.allclose(img.GetOrigin(), OBLIQUE.origin, atol=1e-4)


def test_read_volume_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.nrrd"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.nrrd"):
        read_volume(bad)
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        read_volume(tmp_path / "missing.nii.gz")


def test_segmentation_overlaps_go_to_layers_and_back():
    geo = Geometry(size=(6, 5, 4))
    a = np.zeros(geo.shape, bool)
    a[1:3, 1:4, 1:5] = True
    b = np.zeros(geo.shape, bool)
    b[2:4, 2:5, 2:6] = True  # overlaps a
    c = np.zeros(geo.shape, bool)
    c[0, 0, 0] = True
    seg = Segmentation.from_masks({"liver": a, "tumor": b, "dot": c}, geo)
    assert seg.layers.shape[0] == 2
    for name, m in {"liver": a, "tumor": b, "dot": c}.items():
        assert np.array_equal(seg.mask(name), m)
    lm = seg.to_labelmap({"liver": 1, "tumor": 2})
    assert (lm == 2).sum() == b.sum() and (lm == 1).sum() == (a & ~b).sum()


def test_from_labelmap_large_values_are_remapped_not_lost():
    geo = Geometry(size=(3, 3, 3))
    lm = np.zeros(geo.shape, np.int32)
    lm[0] = 1000
    lm[1] = 7
    seg = Segmentation.from_labelmap(lm, geo, names={1000: "aorta", 7: "liver"})
    assert seg.mask("aorta").sum() == 9 and seg.mask("liver").sum() == 9


def test_segments_match_by_terminology_before_name():
    term = ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
            "~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^")
    assert terminology_code(term) == "sct:10200004"
    s1 = Segment("Liver", 1, terminology=term)
    s2 = Segment("hepar", 3, terminology="SCT^10200004^Liver")
    assert s1.key() == s2.key()
    assert Segment("Spleen", 2).key() == Segment(" spleen", 5).key()


def test_to_sitk_carries_geometry():
    arr = np.zeros(OBLIQUE.shape, np.uint8)
    img = to_sitk(arr, OBLIQUE.to_ras())  # RAS geometry is written as LPS
    assert np.allclose(img.GetOrigin(), OBLIQUE.origin)
    assert Geometry.from_sitk(img).same_grid(OBLIQUE)


def test_find_matches_by_name_when_only_one_side_has_a_code():
    geo = Geometry(size=(2, 2, 2))
    seg = Segmentation.from_masks({"Liver": np.ones(geo.shape, bool)}, geo, terminology={"Liver": "SCT^10200004^Liver"})
    assert seg.find(Segment("liver", 4)) is not None
    assert seg.find(Segment("Liver", 4, terminology="SCT^78961009^Spleen")) is None


def test_atomic_write_leaves_a_normally_readable_file(tmp_path):
    import os
    import stat

    from DicomTeamAnnotateLib.core.atomic import write_json_atomic

    path = write_json_atomic(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
