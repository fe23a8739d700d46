"""Bringing annotations onto the reference grid: resampled by physical position, matched by name
or terminology, refused (naming the file and the mismatch) when they cannot be placed."""
from __future__ import annotations

import numpy as np
import pytest

from ConsensusReviewLib.inputs import load_annotations
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
from DicomTeamAnnotateLib.io.segmentations import write_labelmap, write_seg_nrrd

REF = Geometry(size=(40, 36, 12), spacing=(0.8, 0.7, 2.5), origin=(-10.0, -5.0, 30.0))


def _masks():
    liver = np.zeros(REF.shape, dtype=bool)
    liver[3:9, 8:20, 10:30] = True
    spleen = np.zeros(REF.shape, dtype=bool)
    spleen[4:8, 24:30, 5:12] = True
    return liver, spleen


def _subgrid(geometry, k0, j0, i0, shape):
    """A grid of the same space starting at voxel (i0, j0, k0) of ``geometry``."""
    origin = geometry.index_to_world([i0, j0, k0])
    return Geometry(size=shape[::-1], spacing=geometry.spacing, origin=origin, direction=geometry.direction)


def test_different_grids_of_the_same_space_are_resampled_not_indexed(tmp_path):
    liver, spleen = _masks()
    a = write_seg_nrrd(Segmentation.from_masks({"liver": liver, "spleen": spleen}, REF), tmp_path / "a.seg.nrrd")
    # b: a cropped grid with another origin and size: index (0,0,0) of b is voxel (k2, j5, i4) of REF
    sub = _subgrid(REF, 2, 5, 4, (9, 28, 33))
    crop = (slice(2, 11), slice(5, 33), slice(4, 37))
    b = write_seg_nrrd(Segmentation.from_masks({"liver": liver[crop], "spleen": spleen[crop]}, sub),
                       tmp_path / "b.seg.nrrd")
    # c: a label map with both in-plane axes flipped (as NIfTI writers often store it), values swapped
    flipped = Geometry(size=REF.size, spacing=REF.spacing, origin=REF.index_to_world([39, 35, 0]),
                       direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    lm = np.zeros(REF.shape, dtype=np.uint8)
    lm[spleen] = 1
    lm[liver] = 2
    c_seg = Segmentation.from_labelmap(lm[:, ::-1, ::-1].copy(), flipped,
                                       segments=[Segment("spleen", 1), Segment("liver", 2)])
    c = write_labelmap(c_seg, tmp_path / "c.nii.gz")
    inputs = load_annotations([a, b, c])
    assert inputs.annotators == ["a", "b", "c"]
    assert inputs.geometry.same_grid(REF)
    for name, truth in (("liver", liver), ("spleen", spleen)):
        for n in range(3):
            assert np.array_equal(inputs.masks[name][n], truth), (name, n)
    assert any("b.seg.nrrd: resampled" in note for note in inputs.notes)
    # the naive index comparison would have been wrong: b's array is not a's array
    assert liver[crop].shape != liver.shape


def test_segments_matched_by_terminology_then_name(tmp_path):
    liver, spleen = _masks()
    a = write_seg_nrrd(Segmentation.from_masks({"liver": liver, "spleen": spleen}, REF,
                                               terminology={"liver": "SCT^10200004^Liver"}), tmp_path / "a.seg.nrrd")
    b = write_seg_nrrd(Segmentation.from_masks({"Hepar": liver, "Spleen": spleen}, REF,
                                               terminology={"Hepar": "SCT^10200004^Liver"}), tmp_path / "b.seg.nrrd")
    c = write_seg_nrrd(Segmentation.from_masks({"liver": liver}, REF), tmp_path / "c.seg.nrrd")  # no spleen
    inputs = load_annotations([a, b, c])
    assert [s.name for s in inputs.labels] == ["liver", "spleen"]
    assert inputs.masks["liver"].all(axis=0).sum() == liver.sum()          # Hepar matched liver by code
    assert np.array_equal(inputs.masks["spleen"][1], spleen)                 # "Spleen" matched "spleen"
    assert not inputs.masks["spleen"][2].any()
    assert any("c.seg.nrrd: has no segment 'spleen'" in note for note in inputs.notes)


def test_annotation_that_cannot_be_placed_is_refused_naming_file_and_mismatch(tmp_path):
    liver, _ = _masks()
    a = write_seg_nrrd(Segmentation.from_masks({"liver": liver}, REF), tmp_path / "alice.seg.nrrd")
    elsewhere = Geometry(size=REF.size, spacing=REF.spacing, origin=(300.0, -5.0, 30.0))
    b = write_seg_nrrd(Segmentation.from_masks({"liver": liver}, elsewhere), tmp_path / "bob.seg.nrrd")
    with pytest.raises(ValueError, match=r"bob\.seg\.nrrd: cannot be placed.*origin"):
        load_annotations([a, b])
    coarse = Geometry(size=(20, 18, 6), spacing=(1.6, 1.4, 5.0), origin=(-10.0, -5.0, 30.0))
    big = np.ones(coarse.shape, dtype=bool)  # drawn everywhere on a grid reaching past the reference
    shifted = Geometry(size=coarse.size, spacing=coarse.spacing, origin=(-40.0, -5.0, 30.0))
    c = write_seg_nrrd(Segmentation.from_masks({"liver": big}, shifted), tmp_path / "carol.seg.nrrd")
    with pytest.raises(ValueError, match=r"carol\.seg\.nrrd: .*spacing"):
        load_annotations([a, c])


def test_reference_image_sets_the_grid(tmp_path):
    from DicomTeamAnnotateLib.core.volume import Volume
    from DicomTeamAnnotateLib.io.volumes import write_volume

    liver, _ = _masks()
    image = write_volume(Volume(np.zeros(REF.shape, np.int16), REF), tmp_path / "image.nrrd")
    sub = _subgrid(REF, 2, 5, 7, (9, 28, 30))
    crop = (slice(2, 11), slice(5, 33), slice(7, 37))
    paths = [write_seg_nrrd(Segmentation.from_masks({"liver": liver[crop]}, sub), tmp_path / f"{n}.seg.nrrd")
             for n in ("x", "y")]
    inputs = load_annotations(paths, reference=image)
    assert inputs.geometry.same_grid(REF)
    assert np.array_equal(inputs.masks["liver"][0], liver)
    with pytest.raises(ValueError, match="at least two"):
        load_annotations(paths[:1])
