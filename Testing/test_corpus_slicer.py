"""Corpus: Slicer's own .seg.nrrd files (slicer-core's storage node) read by the project exactly as
Slicer reads them, and through the CLI paths a user takes (issue 11, classes 1, 3 and 4).

Each file is written by Slicer's code at test time; the independent reader is the same storage
node reading it back.  Compared: voxel centres in RAS (grids within 1e-4 mm), segment names,
label values, colours and terminology entries.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from corpus import need_module
from corpus import slicer_files as sf
from corpus.dicom_series import write_pydicom_series

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.core.segmentation import (
    AmbiguousSegmentMatch,
    Segment,
    TerminologyEntry,
    match_segments,
    segment_identity,
)
from DicomTeamAnnotateLib.io.seg_nrrd import read_seg_nrrd, write_seg_nrrd
from DicomTeamAnnotateLib.io.segmentations import read_segmentation

SHAPE = (6, 9, 11)  # K, J, I
SPACING = (0.8, 0.9, 2.5)
# IJK -> RAS of an oblique acquisition (what Slicer keeps); its LPS twin is below for DICOM
_ANGLE = np.radians(20.0)
_ROT = np.array([[np.cos(_ANGLE), -np.sin(_ANGLE), 0], [np.sin(_ANGLE), np.cos(_ANGLE), 0], [0, 0, 1]])
IJK_TO_RAS = np.eye(4)
IJK_TO_RAS[:3, :3] = _ROT @ np.diag(SPACING)
IJK_TO_RAS[:3, 3] = (12.5, -40.25, 61.0)
TOL = 1e-4


def full_grid():
    """The whole grid the masks below are drawn on (Slicer writes only the segments' common extent)."""
    from DicomTeamAnnotateLib.core.geometry import Geometry

    return Geometry.from_matrix(IJK_TO_RAS, SHAPE[::-1], space="RAS").to_lps()


@pytest.fixture(scope="module", autouse=True)
def _slicer_core():
    need_module("slicer")


def _box(k, j, i):
    m = np.zeros(SHAPE, bool)
    m[k[0]:k[1], j[0]:j[1], i[0]:i[1]] = True
    return m


RIGHT, LEFT, MASS = _box((1, 5), (1, 8), (1, 5)), _box((1, 5), (1, 8), (6, 10)), _box((2, 4), (3, 6), (2, 4))


def lungs_file(path, names=("right lung", "left lung", "mass"), *, crop=False, terms=None):
    """Slicer's file: both lungs in one shared layer (values 1, 2), a liver mass overlapping the right lung."""
    terms = terms or (sf.RIGHT_LUNG, sf.LEFT_LUNG, sf.LIVER_MASS)
    layer0 = (RIGHT * 1 + LEFT * 2).astype(np.uint8)
    return sf.write_slicer_seg(path, IJK_TO_RAS, [
        (layer0, [{"id": "lung_r", "name": names[0], "value": 1, "color": (0.9, 0.3, 0.2), "terminology": terms[0]},
                  {"id": "lung_l", "name": names[1], "value": 2, "color": (0.2, 0.3, 0.9), "terminology": terms[1]}]),
        (MASS.astype(np.uint8), [{"id": "mass", "name": names[2], "value": 1, "color": (0.1, 0.8, 0.1),
                                  "terminology": terms[2]}])], crop=crop)


def assert_reads_as_slicer(ours, theirs: dict):
    """Our Segmentation equals Slicer's reading: names, values, colours, terminology, RAS voxel centres."""
    assert sorted(s.name for s in ours.segments) == sorted(theirs)
    for s in ours.segments:
        t = theirs[s.name]
        assert s.label_value == t["value"], s.name
        assert np.allclose(s.color, t["color"], atol=1e-6), s.name
        assert (s.terminology or None) == t["terminology"], s.name
        ijk = np.argwhere(ours.mask(s.name))[:, ::-1]  # (i, j, k)
        ras = np.array([ours.geometry.to_ras().index_to_world(v) for v in ijk]).reshape(-1, 3)
        mine = sf.sorted_points(ras)
        assert mine.shape == t["ras"].shape, s.name
        assert np.max(np.abs(mine - t["ras"]), initial=0) < TOL, s.name


@pytest.mark.parametrize("crop", [False, True])
def test_slicer_file_with_layers_and_left_right_terminology(tmp_path, crop):
    path = lungs_file(tmp_path / "lungs.seg.nrrd", crop=crop)
    ours = read_seg_nrrd(path)
    assert_reads_as_slicer(ours, sf.read_with_slicer(path))
    assert ours.layers.shape[0] == 2
    lungs = [segment_identity(ours.segment(n)) for n in ("right lung", "left lung")]
    assert not lungs[0].same_as(lungs[1])  # one type code, two structures
    # the grid itself, within 1e-4 mm: the writer's axes, its first voxel where the extent offset says
    g = ours.geometry.to_ras().matrix()
    offset = np.array([*ours.metadata["reference_extent_offset"], 1.0])
    assert np.allclose(g[:3, :3], IJK_TO_RAS[:3, :3], atol=TOL)
    assert np.allclose(g[:3, 3], (IJK_TO_RAS @ offset)[:3], atol=TOL)


def test_our_file_with_label_values_above_255_is_read_by_slicer(tmp_path):
    """Class 4: a shared layer holding 300 and 2035 written back by us keeps its values, and Slicer agrees."""
    layer = (RIGHT * 300 + LEFT * 2035).astype(np.uint16)
    path = sf.write_slicer_seg(tmp_path / "wide.seg.nrrd", IJK_TO_RAS, [
        (layer, [{"id": "a", "name": "ctx-lh-x", "value": 300, "color": (1, 0, 0)},
                 {"id": "b", "name": "ctx-rh-y", "value": 2035, "color": (0, 1, 0)}])])
    ours = read_seg_nrrd(path)
    assert {s.name: s.label_value for s in ours.segments} == {"ctx-lh-x": 300, "ctx-rh-y": 2035}
    assert_reads_as_slicer(ours, sf.read_with_slicer(path))
    again = write_seg_nrrd(ours, tmp_path / "again.seg.nrrd")
    assert_reads_as_slicer(read_seg_nrrd(again), sf.read_with_slicer(again))
    assert main(["info", str(again), "--json"]) == 0


def test_info_reports_the_file_values_and_terminology(tmp_path, capsys):
    layer = (RIGHT * 300 + LEFT * 2035).astype(np.uint16)
    path = sf.write_slicer_seg(tmp_path / "wide.seg.nrrd", IJK_TO_RAS, [
        (layer, [{"id": "a", "name": "right lung", "value": 300, "color": (1, 0, 0), "terminology": sf.RIGHT_LUNG},
                 {"id": "b", "name": "left lung", "value": 2035, "color": (0, 1, 0), "terminology": sf.LEFT_LUNG}])])
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    by_name = {s["name"]: s for s in info["segments"]}
    assert by_name["right lung"]["value"] == 300 and by_name["left lung"]["value"] == 2035
    assert by_name["right lung"]["voxels"] == RIGHT.sum() and by_name["left lung"]["voxels"] == LEFT.sum()
    assert by_name["left lung"]["terminology"] == sf.LEFT_LUNG


def test_consensus_keeps_left_and_right_apart(tmp_path, capsys):
    """Class 1: two annotators, other names, same terminology; matching by code alone merged the lungs."""
    a = lungs_file(tmp_path / "alice.seg.nrrd")
    b = lungs_file(tmp_path / "bob.seg.nrrd", names=("Lung R", "Lung L", "tumour"))
    out = tmp_path / "consensus"
    assert main(["consensus", "--method", "majority", "--out", str(out), "--no-report", str(a), str(b)]) == 0
    capsys.readouterr()
    result = read_segmentation(next(out.glob("*.seg.nrrd")), reference=full_grid())
    assert sorted(result.names) == ["left lung", "mass", "right lung"]
    for name, truth in (("right lung", RIGHT), ("left lung", LEFT), ("mass", MASS)):
        assert np.array_equal(result.mask(name), truth), name


def test_consensus_stops_when_segments_cannot_be_matched(tmp_path, capsys):
    a = lungs_file(tmp_path / "alice.seg.nrrd")
    lung = sf.terminology("SCT^39607008^Lung")  # no modifier: either lung, or both
    b = lungs_file(tmp_path / "bob.seg.nrrd", names=("lung 1", "lung 2", "mass"), terms=(lung, lung, sf.LIVER_MASS))
    c = lungs_file(tmp_path / "carol.seg.nrrd", names=("lung a", "lung b", "mass"), terms=(lung, lung, sf.LIVER_MASS))
    code = main(["consensus", "--method", "majority", "--out", str(tmp_path / "o"), "--no-report", str(b), str(c)])
    err = capsys.readouterr().err
    assert code != 0 and "carol.seg.nrrd" in err and "'lung 1'" in err and "'lung a', 'lung b'" in err
    assert main(["consensus", "--method", "majority", "--out", str(tmp_path / "o2"), "--no-report",
                 str(a), str(b)]) == 0  # 'right lung' is not 'lung': no match, no merge
    capsys.readouterr()


def test_terminology_is_read_field_by_field():
    """Slicer 5.10+: a colour table's name as context and a trailing '~'; SRT codes of old files; the
    region modifier only with a region."""
    standard, from_table = TerminologyEntry.parse(sf.LIVER), TerminologyEntry.parse(sf.LIVER_FROM_COLOR_TABLE)
    assert from_table.context == "GenericAnatomyColors" and from_table.type == standard.type
    liver = Segment("Liver", 1, terminology=sf.LIVER)
    assert segment_identity(Segment("x", 1, terminology=sf.LIVER_FROM_COLOR_TABLE)).same_as(segment_identity(liver))
    old = sf.terminology("SRT^T-62000^Liver", category="SRT^T-D000A^Anatomical Structure")
    assert segment_identity(Segment("hepar", 1, terminology=old)).same_as(segment_identity(liver))
    assert TerminologyEntry.parse(sf.terminology("SCT^4147007^Mass", region_modifier="SCT^24028007^Right")
                                  ).region_modifier is None
    mass_in_liver = Segment("mass", 1, terminology=sf.LIVER_MASS)
    mass_in_kidney = Segment("mass", 2, terminology=sf.terminology("SCT^4147007^Mass", region="SCT^64033007^Kidney"))
    assert match_segments([mass_in_liver], [mass_in_kidney]) == [None]
    with pytest.raises(AmbiguousSegmentMatch, match="'a', 'b'"):
        lung = sf.terminology("SCT^39607008^Lung")
        match_segments([Segment("lung", 1, terminology=lung)],
                       [Segment("a", 1, terminology=lung), Segment("b", 2, terminology=lung)])


def test_export_nnunet_maps_both_lungs(tmp_path, capsys):
    """Class 1 in the training export: the ontology from two cases whose lungs have other names."""
    from DicomTeamAnnotateLib.core.volume import Volume
    from DicomTeamAnnotateLib.io.volumes import write_volume

    geometry = full_grid()
    images, labels = [], []
    for n, names in enumerate((("right lung", "left lung", "mass"), ("Lung R", "Lung L", "tumour"))):
        images.append(write_volume(Volume(np.full(SHAPE, n, np.int16), geometry), tmp_path / f"img{n}.nrrd"))
        labels.append(lungs_file(tmp_path / f"lab{n}.seg.nrrd", names=names))
    out = tmp_path / "raw"
    argv = ["export-nnunet", "--images", *map(str, images), "--labels", *map(str, labels), "--patients", "p0", "p1",
            "--out", str(out), "--name", "Lungs", "--test-fraction", "0", "--folds", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    dataset = next(out.glob("Dataset*"))
    doc = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    assert doc["labels"] == {"background": 0, "right lung": 1, "left lung": 2, "mass": 3}
    import nibabel as nib

    for case in sorted((dataset / "labelsTr").glob("*.nii.gz")):
        lab = np.asarray(nib.load(case).dataobj)  # (i, j, k): nibabel's order
        lab = np.transpose(lab, (2, 1, 0))
        assert np.array_equal(lab == 1, RIGHT & ~MASS) and np.array_equal(lab == 2, LEFT), case


def test_export_seg_and_import_seg_keep_modifiers_and_regions(tmp_path, capsys):
    """The DICOM SEG of Slicer's file carries Right/Left and the mass's region; importing it gives them back."""
    hd = need_module("highdicom")
    lps = np.diag([-1.0, -1.0, 1.0]) @ IJK_TO_RAS[:3, :3]
    origin = np.diag([-1.0, -1.0, 1.0]) @ IJK_TO_RAS[:3, 3]
    write_pydicom_series(tmp_path / "ct", np.zeros(SHAPE, np.int16), spacing=SPACING, origin=origin,
                         direction=lps / np.array(SPACING))
    seg_file = lungs_file(tmp_path / "lungs.seg.nrrd")
    out = tmp_path / "seg.dcm"
    assert main(["export-seg", "--segmentation", str(seg_file), "--source", str(tmp_path / "ct"),
                 "--out", str(out)]) == 0, capsys.readouterr().err
    seg = hd.seg.segread(out)
    by_label = {seg.get_segment_description(n).segment_label: seg.get_segment_description(n)
                for n in seg.segment_numbers}
    right = by_label["right lung"].SegmentedPropertyTypeCodeSequence[0]
    assert right.CodeValue == "39607008" and right.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"
    assert by_label["mass"].AnatomicRegionSequence[0].CodeValue == "10200004"
    back_path = tmp_path / "back.seg.nrrd"
    assert main(["import-seg", str(out), "--source", str(tmp_path / "ct"), "--out", str(back_path)]) == 0
    back = read_seg_nrrd(back_path)
    original = read_seg_nrrd(seg_file).resampled(back.geometry)
    for s in original.segments:
        match = back.find(s)
        assert match is not None and match.name == s.name, s.name
        assert np.array_equal(back.mask(match.name), original.mask(s.name)), s.name


# ----- legacy layouts -----------------------------------------------------------------------------------
def test_legacy_4d_spatial_file_reads_as_slicer_reads_it(tmp_path):
    """Class 3: SlicerRT's layout of Slicer 4.5 (RAS numbers, Segmentation_Extent offset, no named space)."""
    path = sf.write_legacy_4d(tmp_path / "legacy.seg.nrrd", {"lung": RIGHT, "tumor": MASS},
                              colors={"lung": (1.0, 0.0, 0.0), "tumor": (0.0, 1.0, 0.0)})
    ours = read_seg_nrrd(path)
    theirs = sf.read_with_slicer(path)
    for s in ours.segments:  # Slicer parses DefaultColor but never sets it (grey): we keep the file's colour
        theirs[s.name]["color"] = s.color
    assert_reads_as_slicer(ours, theirs)
    assert ours.segment("lung").color == (1.0, 0.0, 0.0)
    # RAS (10, 20, 30) + spacing x (file index + extent start (2, 3, 1)), never LPS (10, 20, 30)
    assert np.allclose(ours.geometry.to_ras().origin, (12.0, 23.0, 32.0))


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_slicer_46_files_with_one_component_per_segment(tmp_path, count):
    masks = {f"seg{n}": _box((n % 6, n % 6 + 1), (1, 3), (1, 3)) | _box((0, 1), (0, 1), (0, 1)) for n in range(count)}
    path = sf.write_legacy_46(tmp_path / f"s{count}.seg.nrrd", masks)
    assert_reads_as_slicer(read_seg_nrrd(path), sf.read_with_slicer(path))


def test_slicer_2016_nightly_layout_is_refused_not_guessed(tmp_path):
    import nrrd

    path = sf.write_legacy_46(tmp_path / "n.seg.nrrd", {f"s{n}": RIGHT for n in range(5)})
    data, header = nrrd.read(str(path), index_order="C")
    header["Segmentation_Extent"] = "0 10 0 8 0 5"
    nrrd.write(str(path), data, header, index_order="C")
    with pytest.raises(ValueError, match="Segmentation_Extent"):
        read_seg_nrrd(path)


def test_bzip2_seg_nrrd_is_read_where_slicer_aborts(tmp_path):
    """Class 5 for segmentations: pynrrd is the independent reader (slicer-core's NrrdIO lacks bzip2 and
    aborts the process, shown in a child process)."""
    import nrrd

    from DicomTeamAnnotateLib.io.seg_nrrd import seg_nrrd_header

    seg = read_seg_nrrd(lungs_file(tmp_path / "lungs.seg.nrrd"))
    header = seg_nrrd_header(seg)
    header["encoding"] = "bzip2"
    path = tmp_path / "bz.seg.nrrd"
    nrrd.write(str(path), np.ascontiguousarray(np.moveaxis(seg.layers, 0, -1)), header, index_order="C")
    back = read_seg_nrrd(path)
    data, _ = nrrd.read(str(path), index_order="C")
    assert np.array_equal(back.layers, np.moveaxis(data, -1, 0)) and back.names == seg.names
    assert sf.slicer_read_in_subprocess(path).returncode != 0
