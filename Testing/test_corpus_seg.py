"""Corpus: DICOM SEG of each flavour written by dcmqi and highdicom, read by the project (both of its
readers) and compared with the writer's own reader; the project's SEG read by dcmqi (issue 11,
classes 1, 4 and 6: binary, fractional, overlapping, 1-bit frames not byte aligned, label map)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from corpus import need_module, need_tool
from corpus import seg_files as sfx
from corpus.dicom_series import write_pydicom_series

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.core.segmentation import Segmentation, TerminologyEntry
from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume
from DicomTeamAnnotateLib.pacs.seg_export import export_seg
from DicomTeamAnnotateLib.pacs.seg_import import read_seg

SHAPE = (5, 7, 9)  # 63-pixel frames: 1-bit frames do not end on a byte boundary
LABELS = np.zeros(SHAPE, np.uint16)
LABELS[1:3, 1:4, 1:5] = 1
LABELS[2:4, 4:6, 5:8] = 2
LABELS[3, 1:3, 1:3] = 3
READERS = ("highdicom", "pydicom")


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    paths = write_pydicom_series(folder, np.zeros(SHAPE, np.int16), spacing=(0.7, 0.9, 2.5),
                                 origin=(-31.5, 12.25, -80.0))
    return folder, paths, load_dicom_volume(folder).geometry


def _onto_ct(nrrd_path, ct_folder) -> np.ndarray:
    """A dcmqi output file put on the CT grid by physical position (SimpleITK's resampler, nearest)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_folder)))
    reference = reader.Execute()
    moved = sitk.Resample(sitk.ReadImage(str(nrrd_path)), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(moved)


def _check_codes(seg: Segmentation):
    kidney = TerminologyEntry.parse(seg.segment("Kidney right").terminology)
    mass = TerminologyEntry.parse(seg.segment("Mass").terminology)
    assert kidney.type.value == "64033007" and kidney.type_modifier.value == "24028007"
    assert mass.type.value == "4147007" and mass.region.value == "10200004"


def test_dcmqi_overlapping_segments(tmp_path, ct):
    """Two input images: the mass (second image) lies inside the liver (first): SegmentsOverlap."""
    folder, _, grid = ct
    first = np.where(LABELS == 3, 1, LABELS)  # liver covers the mass's voxels too
    second = np.where(LABELS == 3, 1, 0).astype(np.uint16)
    seg_path = sfx.dcmqi_seg(tmp_path / "ov.dcm", folder, [np.where(first == 2, 2, first), second])
    files, meta = sfx.dcmqi_read(seg_path, tmp_path / "dcmqi")
    theirs = {}
    for path, attributes in zip(files, meta["segmentAttributes"]):
        values = _onto_ct(path, folder)
        for a in attributes:
            theirs[a["SegmentLabel"]] = values == a["labelID"]
    assert np.array_equal(theirs["Liver"], first == 1) and np.array_equal(theirs["Mass"], LABELS == 3)
    for reader in READERS:
        ours = read_seg(seg_path, grid, reader=reader)
        assert ours.layers.shape[0] == 2, reader  # the mass overlaps the liver: two layers
        for name, mask in theirs.items():
            assert np.array_equal(ours.mask(name), mask), (reader, name)
        _check_codes(ours)


@pytest.mark.parametrize("labelmap", [False, True], ids=["binary", "labelmap"])
def test_dcmqi_seg_reads_as_dcmqi_reads_it(tmp_path, ct, labelmap):
    folder, _, grid = ct
    seg_path = sfx.dcmqi_seg(tmp_path / "seg.dcm", folder, LABELS, labelmap=labelmap)
    import pydicom

    sop = str(pydicom.dcmread(seg_path, stop_before_pixels=True).SOPClassUID)
    assert sop == ("1.2.840.10008.5.1.4.1.1.66.7" if labelmap else "1.2.840.10008.5.1.4.1.1.66.4")
    files, meta = sfx.dcmqi_read(seg_path, tmp_path / "dcmqi")
    expected = np.zeros(SHAPE, np.int64)
    for path, attributes in zip(files, meta["segmentAttributes"]):
        values = _onto_ct(path, folder)
        for a in attributes:  # binary: the voxel value is the segment number; label map: the same, one file
            expected[values == a["labelID"]] = a["labelID"]
    assert np.array_equal(expected, LABELS)  # dcmqi agrees with what went in
    for reader in READERS:
        ours = read_seg(seg_path, grid, reader=reader)
        assert sorted(ours.names) == ["Kidney right", "Liver", "Mass"], reader
        for s in ours.segments:
            assert np.array_equal(ours.mask(s.name), expected == s.label_value), (reader, s.name)
        _check_codes(ours)


HD_CASES = ["binary", "fractional", "overlapping", "labelmap-16bit", "labelmap-palette-rle"]


def _highdicom_case(tmp_path, paths, case):
    if case == "binary":
        return sfx.highdicom_seg(tmp_path / "s.dcm", paths, LABELS, "BINARY"), (1, 2, 3)
    if case == "fractional":
        fractions = np.stack([(LABELS == n) * 0.8 + (LABELS == (n % 3) + 1) * 0.3 for n in (1, 2, 3)], axis=-1)
        return sfx.highdicom_seg(tmp_path / "s.dcm", paths, fractions.astype(np.float32), "FRACTIONAL"), (1, 2, 3)
    if case == "overlapping":
        masks = np.stack([LABELS == 1, (LABELS == 1) | (LABELS == 2), LABELS == 3], axis=-1)
        return sfx.highdicom_seg(tmp_path / "s.dcm", paths, masks.astype(np.uint8), "BINARY"), (1, 2, 3)
    if case == "labelmap-16bit":  # class 4 and 6: segment number 300 in a 16-bit label map
        numbers = np.where(LABELS == 3, 300, LABELS).astype(np.uint16)
        return sfx.highdicom_seg(tmp_path / "s.dcm", paths, numbers, "LABELMAP", numbers=(1, 2, 300)), (1, 2, 300)
    return (sfx.highdicom_seg(tmp_path / "s.dcm", paths, LABELS.astype(np.uint8), "LABELMAP", palette=True),
            (1, 2, 3))


@pytest.mark.parametrize("case", HD_CASES)
def test_highdicom_seg_of_each_type_reads_as_highdicom_reads_it(tmp_path, ct, case):
    hd = need_module("highdicom")
    folder, paths, grid = ct
    seg_path, numbers = _highdicom_case(tmp_path, paths, case)
    theirs = hd.seg.segread(seg_path)
    sources = sorted(paths, key=lambda p: float(__import__("pydicom").dcmread(p).ImagePositionPatient[2]))
    uids = [str(__import__("pydicom").dcmread(p).SOPInstanceUID) for p in sources]
    if case.startswith("labelmap"):
        # highdicom 0.28.2's one-hot (combine_segments=False) drops segment numbers above 255; its combined map
        # keeps them
        combined = theirs.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True,
                                                        relabel=False)
        stack = np.stack([combined == n for n in numbers], axis=-1)
    else:
        stack = theirs.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=False)
    if case == "fractional":
        stack = stack / 255.0 if stack.max() > 1 else stack
    for reader in READERS:
        ours = read_seg(seg_path, grid, reader=reader)
        assert {s.name: s.label_value for s in ours.segments} == dict(zip(["Liver", "Kidney right", "Mass"],
                                                                          numbers)), (reader, case)
        for n, s in enumerate(ours.segments):
            expected = stack[..., n] >= 0.5 if case == "fractional" else stack[..., n] > 0
            assert np.array_equal(ours.mask(s.name), expected), (reader, case, s.name)
        _check_codes(ours)


@pytest.mark.parametrize("labelmap", [False, True], ids=["binary", "labelmap"])
def test_our_seg_is_read_by_dcmqi(tmp_path, ct, labelmap):
    """The project's SEG (1-bit frames not byte aligned, or a label map) as dcmqi reads it."""
    need_tool("segimage2itkimage")
    folder, _, grid = ct
    seg = read_seg(sfx.highdicom_seg(tmp_path / "in.dcm", ct[1], LABELS, "BINARY"), grid)
    out = tmp_path / "ours.dcm"
    export_seg(seg, folder, out=out, labelmap=labelmap)
    files, meta = sfx.dcmqi_read(out, tmp_path / "dcmqi")
    found = {}
    for path, attributes in zip(files, meta["segmentAttributes"]):
        values = _onto_ct(path, folder)
        for a in attributes:
            if a["labelID"] != 0:  # dcmqi 1.5.4 lists a label map's background segment too
                found[a["SegmentLabel"]] = (values == a["labelID"], a)
    assert sorted(found) == sorted(seg.names)
    for s in seg.segments:
        assert np.array_equal(found[s.name][0], seg.mask(s.name)), s.name
    kidney = found["Kidney right"][1]
    assert kidney["SegmentedPropertyTypeModifierCodeSequence"]["CodeValue"] == "24028007"
    assert found["Mass"][1]["AnatomicRegionSequence"]["CodeValue"] == "10200004"


def test_label_map_seg_through_import_seg_info_and_export_seg(tmp_path, ct, capsys):
    """A user's path: import dcmqi's label map, look at it, export it as a label-map SEG again (values kept)."""
    hd = need_module("highdicom")
    folder, paths, _ = ct
    numbers = np.where(LABELS == 3, 300, LABELS).astype(np.uint16)
    seg_path = sfx.highdicom_seg(tmp_path / "lm.dcm", paths, numbers, "LABELMAP", numbers=(1, 2, 300))
    out = tmp_path / "lm.seg.nrrd"
    assert main(["import-seg", str(seg_path), "--source", str(folder), "--out", str(out)]) == 0
    assert main(["info", str(out), "--json"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {s["name"]: s["value"] for s in info["segments"]} == {"Liver": 1, "Kidney right": 2, "Mass": 300}
    again = tmp_path / "again.dcm"
    assert main(["export-seg", "--segmentation", str(out), "--source", str(folder), "--out", str(again),
                 "--type", "labelmap"]) == 0, capsys.readouterr().err
    back = hd.seg.segread(again)
    assert str(back.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.66.7"
    assert sorted(back.segment_numbers) == [1, 2, 300]
    assert {back.get_segment_description(n).segment_label for n in back.segment_numbers} == {"Liver", "Kidney right",
                                                                                            "Mass"}
    overlapping = tmp_path / "ov.dcm"
    masks = np.stack([LABELS == 1, LABELS > 0, LABELS == 3], axis=-1).astype(np.uint8)
    ov = sfx.highdicom_seg(overlapping, paths, masks, "BINARY")
    assert main(["import-seg", str(ov), "--source", str(folder), "--out", str(tmp_path / "ov.seg.nrrd")]) == 0
    code = main(["export-seg", "--segmentation", str(tmp_path / "ov.seg.nrrd"), "--source", str(folder),
                 "--out", str(tmp_path / "x.dcm"), "--type", "labelmap"])
    assert code != 0 and "overlap" in capsys.readouterr().err


def test_project_labels_with_left_and_right_take_the_right_one(tmp_path, ct):
    """Class 1 in SEG import: the project names a right and a left kidney (one type code, two modifiers);
    dcmqi's 'Kidney right' must get the right kidney's name and value, not whichever label came last."""
    folder, _, grid = ct
    seg_path = sfx.dcmqi_seg(tmp_path / "seg.dcm", folder, LABELS)
    kidney = "Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure~SCT^64033007^Kidney"
    labels = [{"name": "kidney_r", "value": 7, "terminology": kidney + "~SCT^24028007^Right~~^^~^^"},
              {"name": "kidney_l", "value": 8, "terminology": kidney + "~SCT^7771000^Left~~^^~^^"},
              {"name": "liver", "value": 1}]
    for reader in READERS:
        ours = read_seg(seg_path, grid, reader=reader, labels=labels)
        assert {s.name: s.label_value for s in ours.segments} == {"kidney_r": 7, "liver": 1, "Mass": 9}, reader
        assert np.array_equal(ours.mask("kidney_r"), LABELS == 2), reader
