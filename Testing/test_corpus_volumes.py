"""Corpus: NRRD in every encoding and layout, NIfTI as nibabel writes it, label maps above 255 and
damaged files, read by the project and compared with pynrrd, SimpleITK and nibabel (issue 11,
classes 4 and 5, and the 'invalid files' of the corpus)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from corpus import volume_files as vf

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_labelmap
from DicomTeamAnnotateLib.io.volumes import read_volume

TOL = 1e-4
_ROT = np.array([[0.8, -0.6, 0.0], [0.36, 0.48, -0.8], [0.48, 0.64, 0.6]])  # rows orthonormal
DIRECTIONS = _ROT * np.array([[0.75], [0.9], [2.5]])  # rows: world vectors of i, j, k
ORIGIN = (-101.25, 33.5, 70.125)
DATA = np.random.default_rng(11).integers(-1024, 3000, (5, 7, 9)).astype(np.int16)


def sitk_geometry(path) -> Geometry:
    """SimpleITK's header reading (works for every encoding: it does not decode the voxels)."""
    import SimpleITK as sitk

    r = sitk.ImageFileReader()
    r.SetFileName(str(path))
    r.ReadImageInformation()
    return Geometry(size=r.GetSize(), spacing=r.GetSpacing(), origin=r.GetOrigin(), direction=r.GetDirection())


def assert_same_grid(ours: Geometry, theirs: Geometry):
    assert ours.to_lps().size == theirs.size
    assert np.allclose(ours.to_lps().matrix(), theirs.to_lps().matrix(), atol=TOL)


@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2", "ascii"])
@pytest.mark.parametrize("detached", [False, True])
def test_nrrd_each_encoding_attached_and_detached(tmp_path, encoding, detached):
    import nrrd

    path = vf.write_nrrd(tmp_path / ("v.nhdr" if detached else "v.nrrd"), DATA, encoding=encoding,
                         directions=DIRECTIONS, origin=ORIGIN, detached=detached)
    ours = read_volume(path)
    data, _ = nrrd.read(str(path), index_order="C")
    assert np.array_equal(ours.array, data) and ours.array.dtype == data.dtype
    assert_same_grid(ours.geometry, sitk_geometry(path))


def test_nrrd_big_endian_and_ras_space(tmp_path):
    import SimpleITK as sitk

    path = vf.write_nrrd(tmp_path / "be.nrrd", DATA, endian="big", directions=DIRECTIONS, origin=ORIGIN,
                         space="right-anterior-superior")
    ours = read_volume(path)
    theirs = sitk.ReadImage(str(path))
    assert np.array_equal(ours.array, sitk.GetArrayFromImage(theirs))
    assert_same_grid(ours.geometry, Geometry.from_sitk(theirs))


def test_bzip2_volume_through_info(tmp_path, capsys):
    """Class 5: ITK's NrrdIO (SimpleITK, Slicer) has no bzip2; pynrrd reads it, and so do we."""
    import nrrd

    path = vf.write_nrrd(tmp_path / "bz.nrrd", DATA, encoding="bzip2", directions=DIRECTIONS, origin=ORIGIN)
    assert main(["info", str(path), "--json", "--image"]) == 0
    info = json.loads(capsys.readouterr().out)
    data, _ = nrrd.read(str(path), index_order="C")
    assert info["range"] == [float(data.min()), float(data.max())] and info["dtype"] == "int16"
    assert np.allclose(info["geometry"]["origin"], sitk_geometry(path).origin, atol=TOL)


def test_hex_encoding_and_byte_skips_as_teem_writes_them(tmp_path):
    """What pynrrd does not write: hex (SimpleITK reads it), byte skip -1 attached and detached."""
    import SimpleITK as sitk

    raw = DATA.astype("<i2").tobytes()
    cases = {
        "hex": vf.write_nrrd_by_hand(tmp_path / "hex.nrrd", vf.basic_fields(DATA, "short", "hex"),
                                     raw.hex().encode()),
        "skip-attached": vf.write_nrrd_by_hand(tmp_path / "skip.nrrd", {**vf.basic_fields(DATA, "short", "raw"),
                                                                        "byte skip": -1}, b"junk!" + raw),
    }
    (tmp_path / "d").mkdir()
    cases["skip-detached"] = vf.write_nrrd_by_hand(tmp_path / "d" / "skip.nhdr", {
        **vf.basic_fields(DATA, "short", "raw"), "byte skip": -1}, b"", data_file=b"\0" * 13 + raw)
    for name, path in cases.items():
        ours = read_volume(path)
        theirs = sitk.ReadImage(str(path))
        assert np.array_equal(ours.array, sitk.GetArrayFromImage(theirs)) and np.array_equal(ours.array, DATA), name
        assert_same_grid(ours.geometry, Geometry.from_sitk(theirs))


@pytest.mark.parametrize("case", ["big-endian", "qform-only", "sform-only"])
def test_nifti_written_by_nibabel(tmp_path, case):
    import nibabel as nib

    affine = np.eye(4)
    affine[:3, :3] = DIRECTIONS.T * [[-1], [-1], [1]]  # the same grid in RAS
    affine[:3, 3] = np.array(ORIGIN) * [-1, -1, 1]
    path = vf.write_nifti(tmp_path / "v.nii.gz", DATA, affine, big_endian=case == "big-endian",
                          transform="qform" if case == "qform-only" else "sform")
    image = nib.load(path)
    if case == "big-endian":
        assert image.header.endianness == ">"
    ours = read_volume(path)
    assert np.array_equal(ours.array, np.transpose(np.asarray(image.dataobj), (2, 1, 0)))
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    assert np.allclose(ours.geometry.to_lps().matrix(), flip @ image.affine, atol=TOL)


# ----- label values above 255 (class 4) -----------------------------------------------------------
def test_freesurfer_label_values_are_kept_everywhere(tmp_path, capsys):
    import nibabel as nib

    labels, names = vf.freesurfer_labels()
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    path = vf.write_nifti(tmp_path / "aparc+aseg.nii.gz", labels, affine)
    (tmp_path / "aparc+aseg.json").write_text(json.dumps({"labels": {n: v for v, n in names.items()}}), encoding="utf-8")
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {s["name"]: s["value"] for s in info["segments"]} == {n: v for v, n in names.items()}
    for s in info["segments"]:
        assert s["voxels"] == int((labels == s["value"]).sum()), s["name"]
    seg = read_segmentation(path)
    assert {s.name: s.label_value for s in seg.segments} == {n: v for v, n in names.items()}
    out = write_labelmap(seg, tmp_path / "again.nii.gz")
    assert np.array_equal(np.transpose(np.asarray(nib.load(out).dataobj), (2, 1, 0)), labels)
    assert json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))["labels"]["ctx-rh-insula"] == 2035
    seg_nrrd = tmp_path / "again.seg.nrrd"
    assert main(["consensus", "--method", "majority", "--out", str(tmp_path / "c"), "--no-report",
                 str(path), str(out)]) == 0
    from DicomTeamAnnotateLib.io.seg_nrrd import write_seg_nrrd

    write_seg_nrrd(seg, seg_nrrd)
    back = read_segmentation(seg_nrrd)
    assert back.segment("ctx-rh-insula").label_value == 2035 and np.array_equal(back.mask("ctx-rh-insula"),
                                                                                  labels == 2035)


def test_export_nnunet_records_the_source_values(tmp_path, capsys):
    from DicomTeamAnnotateLib.core.volume import Volume
    from DicomTeamAnnotateLib.io.volumes import write_volume

    labels, names = vf.freesurfer_labels()
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    images, maps = [], []
    for n in range(2):
        maps.append(vf.write_nifti(tmp_path / f"l{n}.nii.gz", labels, affine))
        (tmp_path / f"l{n}.json").write_text(json.dumps({"labels": {nm: v for v, nm in names.items()}}), encoding="utf-8")
        g = read_volume(maps[-1]).geometry
        images.append(write_volume(Volume(np.zeros(labels.shape, np.int16), g), tmp_path / f"i{n}.nrrd"))
    argv = ["export-nnunet", "--images", *map(str, images), "--labels", *map(str, maps), "--patients", "a", "b",
            "--out", str(tmp_path / "raw"), "--name", "Aseg", "--test-fraction", "0", "--folds", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    dataset = next((tmp_path / "raw").glob("Dataset*"))
    record = json.loads((dataset / "trainbridge.json").read_text(encoding="utf-8"))
    source = {d["name"]: d["source_value"] for d in record["label_source"]}
    assert source == {n: v for v, n in names.items()}


def test_teem_label_257_is_reported_as_257(tmp_path, capsys):
    data = np.zeros((3, 4, 5), np.uint16)
    data[1, 1:3, 1:4] = 257
    data[2, 0, 0] = 1
    path = vf.write_nrrd(tmp_path / "l257.nrrd", data)
    assert main(["info", str(path), "--json", "--labels"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted((s["value"], s["voxels"]) for s in info["segments"]) == [(1, 1), (257, 6)]


# ----- damaged files: refused, the file named -----------------------------------------------------
def _damaged(tmp_path):
    raw = DATA.astype("<i2").tobytes()
    fields = vf.basic_fields(DATA, "short", "raw")
    files = {
        "truncated raw NRRD": vf.write_nrrd_by_hand(tmp_path / "cut.nrrd", fields, raw[:-10]),
        "truncated gzip NRRD": vf.write_nrrd_by_hand(tmp_path / "cutgz.nrrd", {**fields, "encoding": "gzip"},
                                                     vf.gzip_bytes(raw)[:-40]),
        "negative byte skip": vf.write_nrrd_by_hand(tmp_path / "skip.nrrd", {**fields, "byte skip": -5}, raw),
        "sizes that overflow": vf.write_nrrd_by_hand(tmp_path / "huge.nrrd", {**fields, "sizes": "4294967296 "
                                                     "4294967296 4294967296"}, raw),
    }
    nifti = vf.write_nifti(tmp_path / "full.nii", DATA, np.eye(4))
    cut = tmp_path / "cut.nii"
    cut.write_bytes(nifti.read_bytes()[:-100])
    files["truncated NIfTI"] = cut
    return files


def test_damaged_files_are_refused_with_the_file_named(tmp_path, capsys):
    for what, path in _damaged(tmp_path).items():
        assert main(["info", str(path)]) == 2, what
        err = capsys.readouterr().err
        assert str(path) in err, (what, err)


def test_truncated_dicom_is_rejected_with_its_name(tmp_path):
    from corpus.dicom_series import write_pydicom_series

    from DicomTeamAnnotateLib.dicom.ingest import ingest

    paths = write_pydicom_series(tmp_path / "ct", DATA)
    victim = paths[2]
    victim.write_bytes(victim.read_bytes()[:-50])
    result = ingest(tmp_path / "ct")
    assert [p for p, _ in result.rejected] == [str(victim)] and "truncated" in result.rejected[0][1]
    # the gap it leaves is said, and filled between its neighbours (never with the cut file's bytes)
    assert len(result.series) == 1 and any("non-uniform slice spacing" in w for w in result.series[0].warnings)
