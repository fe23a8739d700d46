"""DICOM SEG export and import without a server: the phantom (known labels) and the real CT.

Round trips are checked with two independent readers (highdicom, and ours on pydicom's
functional groups): same label map, same geometry, same names, colours and codes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pydicom
import pytest

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segmentation, terminology_code
from DicomTeamAnnotateLib.demo.phantom import TERMINOLOGY, make_phantom, write_phantom_dicom

pytest.importorskip("highdicom")
from DicomTeamAnnotateLib.pacs.seg_export import (
    ANATOMICAL_STRUCTURE,
    TISSUE,
    export_seg,
    read_source_series,
    segment_codes,
)
from DicomTeamAnnotateLib.pacs.seg_import import read_seg  # noqa: E402

READERS = ("highdicom", "pydicom")
# highdicom warns that a one-component PatientName ("PHANTOM-0003") may not be a person's name
pytestmark = pytest.mark.filterwarnings("ignore:.*person name:UserWarning")


def _values(seg):
    return {s.name: s.label_value for s in seg.segments}


def _same_labels(a: Segmentation, b: Segmentation) -> bool:
    values = _values(b)
    return np.array_equal(a.to_labelmap(values), b.to_labelmap(values))


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    """A small phantom CT series (axial) and its ground-truth segmentation."""
    ph = make_phantom(seed=3, shape=(16, 48, 40), spacing=(1.25, 1.5, 2.5))
    folder = tmp_path_factory.mktemp("phantom") / "dicom"
    write_phantom_dicom(ph, folder)
    return folder, ph.segmentation()


def _rotated_phantom(tmp_path, direction, name):
    """The phantom written with another orientation (sagittal / oblique): same voxels, rotated grid."""
    from DicomTeamAnnotateLib.core.volume import Volume
    from DicomTeamAnnotateLib.demo.phantom import Phantom

    ph = make_phantom(seed=4, shape=(10, 32, 28), spacing=(1.0, 1.2, 2.0))
    g = ph.volume.geometry
    rotated = dataclasses.replace(g, direction=tuple(np.asarray(direction, dtype=float).ravel()),
                                  origin=(12.5, -30.0, 41.0))
    ph = Phantom(Volume(ph.volume.array, rotated, ph.volume.metadata), ph.labels, ph.label_values)
    folder = tmp_path / name
    write_phantom_dicom(ph, folder, patient_id=f"ROT-{name}")
    return folder, ph.segmentation()


@pytest.mark.parametrize("fractional", [False, True], ids=["binary", "fractional"])
@pytest.mark.parametrize("reader", READERS)
def test_phantom_round_trip(phantom_series, tmp_path, fractional, reader):
    folder, seg = phantom_series
    out = tmp_path / "seg.dcm"
    result = export_seg(seg, folder, out=out, fractional=fractional)
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG" and ds.SegmentationType == ("FRACTIONAL" if fractional else "BINARY")
    assert len(ds.SegmentSequence) == len(seg.segments) == len(result["segments"])
    # every frame references an instance of the source series
    sources = {d.SOPInstanceUID for d in read_source_series(folder)}
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == read_source_series(folder)[0].SeriesInstanceUID
    for item in ds.PerFrameFunctionalGroupsSequence:
        assert item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID in sources

    back = read_seg(out, seg.geometry, reader=reader)
    assert back.geometry.same_grid(seg.geometry), back.geometry.differences(seg.geometry)
    assert _same_labels(back, seg)
    assert [s.name for s in back.segments] == [s.name for s in seg.segments]
    assert _values(back) == _values(seg)  # phantom values are 1..N: segment numbers give them back
    for a, b in zip(back.segments, seg.segments):
        assert np.allclose(a.color, b.color, atol=2.5 / 255), (a.name, a.color, b.color)
        assert terminology_code(a.terminology) == terminology_code(b.terminology)


@pytest.mark.parametrize("reader", READERS)
def test_read_without_reference_gives_the_seg_grid(phantom_series, tmp_path, reader):
    folder, seg = phantom_series
    export_seg(seg, folder, out=tmp_path / "seg.dcm")
    back = read_seg(tmp_path / "seg.dcm", reader=reader)
    # on its own grid (highdicom may order slices the other way): equal once aligned by physical space
    assert _same_labels(back.resampled(seg.geometry), seg)


@pytest.mark.parametrize("direction", [
    [[0, 0, -1], [1, 0, 0], [0, -1, 0]],                                          # sagittal
    [[0.8660254, 0.0, -0.5], [0.1767767, 0.9354143, 0.3061862], [0.4677072, -0.3535534, 0.8100925]],  # oblique
], ids=["sagittal", "oblique"])
def test_rotated_grids_round_trip(tmp_path, direction):
    d = np.asarray(direction, dtype=float).T  # columns = i, j, k axes
    d[:, 2] = np.cross(d[:, 0], d[:, 1])  # right-handed, exactly orthonormal
    folder, seg = _rotated_phantom(tmp_path, d, "rot")
    export_seg(seg, folder, out=tmp_path / "seg.dcm")
    for reader in READERS:
        back = read_seg(tmp_path / "seg.dcm", seg.geometry, reader=reader)
        assert back.geometry.same_grid(seg.geometry, tol_mm=1e-3), (reader, back.geometry.differences(seg.geometry))
        assert _same_labels(back, seg), reader


def test_overlapping_segments_round_trip(phantom_series, tmp_path):
    folder, seg = phantom_series
    liver = seg.mask("liver")
    region = np.zeros_like(liver)
    region[:, :, : liver.shape[2] // 2] = True
    overlapping = Segmentation.from_masks({**{s.name: seg.mask(s.name) for s in seg.segments},
                                           "left_half": region & (seg.layers[0] > 0)}, seg.geometry)
    assert overlapping.layers.shape[0] == 2
    export_seg(overlapping, folder, out=tmp_path / "seg.dcm")
    assert pydicom.dcmread(tmp_path / "seg.dcm").SegmentsOverlap in ("YES", "UNDEFINED")
    for reader in READERS:
        back = read_seg(tmp_path / "seg.dcm", seg.geometry, reader=reader)
        for s in overlapping.segments:
            assert np.array_equal(back.mask(s.name), overlapping.mask(s.name)), (reader, s.name)


def test_fractional_probabilities(phantom_series, tmp_path):
    folder, seg = phantom_series
    k, j, i = np.meshgrid(*(np.linspace(0, 1, n) for n in seg.geometry.shape), indexing="ij")
    prob = np.clip(0.2 + 0.7 * i * seg.mask("liver"), 0, 1).astype(np.float32)
    export_seg(seg, folder, out=tmp_path / "seg.dcm", probabilities={"liver": prob})
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    assert ds.SegmentationType == "FRACTIONAL" and ds.SegmentationFractionalType == "PROBABILITY"
    for reader in READERS:
        back = read_seg(tmp_path / "seg.dcm", seg.geometry, reader=reader, threshold=0.5)
        assert np.array_equal(back.mask("liver"), prob >= 0.5 - 0.5 / 255), reader
        assert np.array_equal(back.mask("spleen"), seg.mask("spleen")), reader


def test_label_values_follow_the_project_labels(phantom_series, tmp_path):
    folder, seg = phantom_series
    export_seg(seg, folder, out=tmp_path / "seg.dcm")
    labels = [{"name": "Spleen", "value": 40}, {"name": "liver", "value": 9},
              {"name": "aorta_by_code", "value": 77, "terminology": TERMINOLOGY["aorta"]}]
    for reader in READERS:
        back = read_seg(tmp_path / "seg.dcm", seg.geometry, reader=reader, labels=labels)
        got = _values(back)
        assert got["Spleen"] == 40 and got["liver"] == 9 and got["aorta_by_code"] == 77
        assert np.array_equal(back.mask("Spleen"), seg.mask("spleen"))
        assert np.array_equal(back.mask("aorta_by_code"), seg.mask("aorta"))
        others = [v for n, v in got.items() if n not in ("Spleen", "liver", "aorta_by_code")]
        assert min(others) > 77 and len(set(got.values())) == len(got)


def test_segment_codes_defaults():
    assert segment_codes(None) == (TISSUE, TISSUE)
    assert segment_codes("SCT^10200004^Liver") == (ANATOMICAL_STRUCTURE, ("10200004", "SCT", "Liver"))
    slicer = ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure~"
              "SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^")
    assert segment_codes(slicer) == (("123037004", "SCT", "Anatomical Structure"), ("10200004", "SCT", "Liver"))


@pytest.mark.parametrize("reader", READERS)
def test_left_and_right_keep_their_type_modifier(phantom_series, tmp_path, reader):
    """Slicer's 'Kidney' + 'Right'/'Left': one type code, told apart by the type modifier (0062,0011)."""
    folder, seg = phantom_series
    slicer = ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure~"
              "SCT^64033007^Kidney~SCT^{}~Anatomic codes - DICOM master list~^^~^^")
    sides = {"kidney_left": "7771000^Left", "kidney_right": "24028007^Right"}
    segments = [dataclasses.replace(s, terminology=slicer.format(sides[s.name])) if s.name in sides else s
                for s in seg.segments]
    export_seg(Segmentation(seg.layers.copy(), seg.geometry, segments), folder, out=tmp_path / "seg.dcm",
               algorithm_type="AUTOMATIC")
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    for item in ds.SegmentSequence:
        if item.SegmentLabel in sides:
            prop_type = item.SegmentedPropertyTypeCodeSequence[0]
            assert prop_type.CodeValue == "64033007"
            assert prop_type.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == sides[item.SegmentLabel].split("^")[0]
        family = item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmFamilyCodeSequence[0]
        assert (family.CodeValue, family.CodeMeaning) == ("123110", "Artificial Intelligence")
    back = {s.name: s.terminology for s in read_seg(tmp_path / "seg.dcm", seg.geometry, reader=reader).segments}
    for name, modifier in sides.items():
        assert back[name].split("~")[3] == f"SCT^{modifier}"


def test_segment_without_terminology_reads_back_without(phantom_series, tmp_path):
    folder, seg = phantom_series
    plain = Segmentation(seg.layers.copy(), seg.geometry,
                         [dataclasses.replace(s, terminology=None) for s in seg.segments])
    export_seg(plain, folder, out=tmp_path / "seg.dcm")
    item = pydicom.dcmread(tmp_path / "seg.dcm").SegmentSequence[0]
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == TISSUE[0]
    assert all(s.terminology is None for s in read_seg(tmp_path / "seg.dcm", seg.geometry, reader="pydicom").segments)


def test_grid_mismatch_is_refused_with_the_file_named(phantom_series, tmp_path):
    folder, seg = phantom_series
    g = seg.geometry
    shifted = Geometry(size=g.size, spacing=g.spacing, origin=(g.origin[0] + 0.6, *g.origin[1:]), direction=g.direction)
    with pytest.raises(ValueError, match=r"IM\w+\.dcm: position .* is not a slice"):
        export_seg(Segmentation(seg.layers, shifted, seg.segments), folder, out=tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_source_with_blank_uids_is_refused(ct_dicom_dir, tmp_path):
    with pytest.raises(ValueError, match="empty StudyInstanceUID"):
        read_source_series(ct_dicom_dir)


def test_not_a_seg_is_refused(phantom_series):
    folder, _ = phantom_series
    some_ct = sorted(folder.iterdir())[0]
    for reader in READERS:
        with pytest.raises(ValueError, match="not a DICOM Segmentation"):
            read_seg(some_ct, reader=reader)


def test_real_ct_organs_round_trip_through_the_cli(ct_dicom_dir, ct_organs_path, tmp_path):
    """The shared CT (JPEG 2000, blank UIDs given fresh ones) and its 31-label organ map, via the CLI."""
    from pacs_orthanc import with_fresh_uids

    from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume
    from DicomTeamAnnotateLib.io.segmentations import read_segmentation

    source = tmp_path / "ct"
    with_fresh_uids(ct_dicom_dir, source)
    geometry = load_dicom_volume(source).geometry
    organs = read_segmentation(ct_organs_path, reference=geometry)
    assert len(organs.segments) > 20 and max(_values(organs).values()) > 100  # non-contiguous values

    from DicomTeamAnnotateLib.cli.main import main  # the real `dicomteam` entry point

    assert main(["export-seg", "--segmentation", str(ct_organs_path), "--source", str(source),
                 "--out", str(tmp_path / "organs.seg.dcm")]) == 0
    labels = tmp_path / "labels.json"
    labels.write_text(__import__("json").dumps({"labels": _values(organs)}), encoding="utf-8")
    for reader in READERS:
        out = tmp_path / f"back-{reader}.seg.nrrd"
        assert main(["import-seg", str(tmp_path / "organs.seg.dcm"), "--source", str(source), "--labels", str(labels),
                     "--reader", reader, "--out", str(out)]) == 0
        back = read_segmentation(out)
        assert back.geometry.same_grid(geometry)
        assert _values(back) == _values(organs)
        assert _same_labels(back, organs), reader
