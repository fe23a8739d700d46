"""Corpus: DICOM images written by other tools: enhanced multi-frame MR and CT with several frame
types at one position (issue 11, class 2), sagittal and oblique series from SimpleITK/GDCM and
pydicom, every transfer syntax pydicom decodes, 12-bit signed and unsigned stored values.
Compared with the truth the writer holds, with pydicom reading frame by frame, SimpleITK/GDCM's
series reader and pydicom's own decoding."""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from corpus import dicom_series as ds_
from corpus import enhanced

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.dicom.ingest import ingest

TOL = 1e-4


# ----- enhanced multi-frame with several frame types at one position (class 2) ----------------------
@pytest.mark.parametrize("kinds, modality, order, type_dimension", [
    (enhanced.FIELD_MAP, "MR", "type-fastest", True),
    (enhanced.FIELD_MAP, "MR", "type-slowest", False),   # nothing but FrameType tells them apart
    (enhanced.DUAL_ECHO, "MR", "type-fastest", False),   # one frame type, two echo times
    (enhanced.DUAL_ENERGY_CT, "CT", "type-slowest", True),
], ids=["fieldmap", "fieldmap-no-dimension", "dual-echo", "dual-energy-ct"])
def test_frame_types_at_one_position_become_one_volume_each(tmp_path, kinds, modality, order, type_dimension):
    truth = enhanced.write_enhanced(tmp_path / "mf.dcm", kinds, modality=modality, order=order,
                                    type_dimension=type_dimension, n_slices=12)
    result = ingest(tmp_path / "mf.dcm")
    assert len(result.series) == len(kinds), result.rejected
    seen = set()
    for s in result.series:
        name = s.series_id.rsplit("-", 1)[1]  # each volume named by what tells it apart
        assert name in truth, (s.series_id, list(truth))
        seen.add(name)
        told = s.metadata["distinguished_by"]
        assert set(told) & {"frame type", "echo time"}, told
        assert np.allclose(s.volume.array, truth[name], atol=1e-3), name  # never a mix of kinds
        g = s.volume.geometry
        assert np.allclose(g.origin, (-7.5, -5.0, 20.0)) and np.allclose(g.spacing, (1.25, 1.5, 3.0))
    assert seen == set(truth)


def test_field_map_equals_pydicoms_frame_by_frame_reading(tmp_path):
    """pydicom as the independent reader: each frame's FrameType, position and rescale, read one by one."""
    enhanced.write_enhanced(tmp_path / "mf.dcm", enhanced.FIELD_MAP, n_slices=5, order="type-slowest")
    ds = pydicom.dcmread(tmp_path / "mf.dcm")
    pixels = ds.pixel_array
    frames = {}
    for n, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        kind = item.MRImageFrameTypeSequence[0].FrameType[2]
        position = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        rescale = item.PixelValueTransformationSequence[0]
        value = pixels[n] * float(rescale.RescaleSlope) + float(rescale.RescaleIntercept)
        frames.setdefault(kind.replace(" ", "_"), []).append((position, value))
    ours = {s.series_id.rsplit("-", 1)[1]: s.volume for s in ingest(tmp_path / "mf.dcm").series}
    assert sorted(ours) == sorted(frames)
    for name, items in frames.items():
        for position, value in items:
            k = ours[name].geometry.world_to_index(position)
            assert np.allclose(k, np.round(k), atol=TOL) and np.allclose(k[:2], 0, atol=TOL)
            assert np.allclose(ours[name].array[int(round(k[2]))], value)


def test_ingest_cli_names_each_volume_by_its_frame_type(tmp_path, capsys):
    enhanced.write_enhanced(tmp_path / "mf.dcm", enhanced.FIELD_MAP)
    assert main(["ingest", str(tmp_path / "mf.dcm"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text(encoding="utf-8"))
    names = sorted(e["output_file"].rsplit("-", 1)[1] for e in report["series"])
    assert names == ["B0_MAP.nrrd", "M.nrrd"] and "frame type ORIGINAL\\PRIMARY\\B0 MAP\\NONE" in out


# ----- classic series: sagittal and oblique, from SimpleITK/GDCM and pydicom ----------------------
_OBLIQUE = np.linalg.qr(np.array([[0.9, -0.3, 0.2], [0.35, 0.88, -0.1], [-0.1, 0.2, 0.95]]))[0]
ORIENTATIONS = {"sagittal": np.column_stack([(0, 1, 0), (0, 0, -1), (-1, 0, 0)]),
                "oblique": _OBLIQUE * np.sign(np.diag(_OBLIQUE))}
PIXELS = np.random.default_rng(5).integers(-1000, 2000, (7, 11, 13)).astype(np.int16)


@pytest.mark.parametrize("writer", ["gdcm", "pydicom"])
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_sagittal_and_oblique_series_equal_gdcms_reading(tmp_path, writer, orientation):
    direction = ORIENTATIONS[orientation]
    spacing, origin = (0.65, 0.8, 3.0), (41.5, -12.25, 160.0)
    if writer == "gdcm":
        ds_.write_gdcm_series(tmp_path / "s", PIXELS, spacing=spacing, origin=origin, direction=direction)
    else:
        ds_.write_pydicom_series(tmp_path / "s", PIXELS, spacing=spacing, origin=origin, direction=direction)
    result = ingest(tmp_path / "s")
    assert len(result.series) == 1 and not result.rejected, result.rejected
    ours = result.series[0].volume
    array, g_origin, g_spacing, g_direction = ds_.read_gdcm_series(tmp_path / "s")
    assert np.array_equal(ours.array, array)
    g = ours.geometry.to_lps()
    assert np.allclose(g.origin, g_origin, atol=TOL) and np.allclose(g.spacing, g_spacing, atol=TOL)
    assert np.allclose(g.direction_matrix, g_direction, atol=1e-5)
    assert np.allclose(g.direction_matrix, direction, atol=1e-5)


# ----- transfer syntaxes and stored bits --------------------------------------------------------------
@pytest.mark.parametrize("name", list(ds_.LOSSLESS_SYNTAXES))
def test_each_transfer_syntax_pydicom_writes_decodes_to_the_original(tmp_path, name):
    from pydicom.pixels import get_encoder
    from pydicom.uid import UID

    uid = UID(ds_.LOSSLESS_SYNTAXES[name])
    if uid.is_compressed and not get_encoder(uid).is_available:
        pytest.fail(f"pydicom has no encoder for {name} here (pylibjpeg/pyjpegls are core dependencies)")
    # 12-bit signed; OpenJPEG needs planes of at least 32 pixels a side for its default resolution levels
    stored = np.random.default_rng(3).integers(-2048, 2048, (3, 32, 40)).astype(np.int16)
    paths = ds_.write_pydicom_series(tmp_path / "src", stored, bits_stored=12, signed=True, intercept=-1024.0)
    ds_.encode_series(paths, uid, tmp_path / name)
    result = ingest(tmp_path / name)
    assert len(result.series) == 1, result.rejected
    assert str(uid.name) in result.series[0].metadata["transfer_syntax"]
    assert np.array_equal(result.series[0].volume.array.astype(np.int32), stored.astype(np.int32) - 1024)


# one grayscale file of each transfer syntax that pydicom's test data holds beyond the ones above
PYDICOM_FILES = {"JPEG Extended": "JPGExtended.dcm", "JPEG Lossless SV1": "JPGLosslessP14SV1_1s_1f_8b.dcm",
                 "JPEG-LS near-lossless": "JPEGLSNearLossless_16.dcm", "JPEG 2000": "JPEG2000.dcm",
                 "JPEG 2000 lossless 15-bit": "RG1_J2KR.dcm", "Deflated": "image_dfl.dcm"}


@pytest.mark.parametrize("what", list(PYDICOM_FILES))
def test_pydicom_test_files_of_each_syntax_decode_as_pydicom_decodes_them(tmp_path, what):
    from pydicom.data import get_testdata_file

    source = get_testdata_file(PYDICOM_FILES[what])
    if source is None:
        pytest.skip(f"{PYDICOM_FILES[what]} not in this pydicom/pydicom-data")
    ds = pydicom.dcmread(source)
    if "ImagePositionPatient" not in ds:  # place the image in space (the pixels are left encoded as they are)
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
    for keyword in ("SeriesInstanceUID", "SOPInstanceUID"):
        if not str(ds.get(keyword, "")).strip():
            setattr(ds, keyword, pydicom.uid.generate_uid())
    ds.save_as(tmp_path / "one.dcm")
    result = ingest(tmp_path / "one.dcm")
    assert len(result.series) == 1, result.rejected
    theirs = pydicom.dcmread(tmp_path / "one.dcm")
    expected = theirs.pixel_array * float(theirs.get("RescaleSlope", 1) or 1) + float(theirs.get("RescaleIntercept", 0)
                                                                                     or 0)
    assert np.array_equal(result.series[0].volume.array[0].astype(np.float64), expected)


@pytest.mark.parametrize("signed", [True, False])
def test_12_bit_values_with_what_scanners_leave_above_the_high_bit(tmp_path, signed):
    """Signed values whose upper 4 bits are zero (not sign-extended), unsigned ones with junk there:
    the stored value is the 12 bits (pydicom and GDCM agree)."""
    rng = np.random.default_rng(9)
    truth = rng.integers(-2048, 2048, (3, 5, 6)) if signed else rng.integers(0, 4096, (3, 5, 6))
    paths = ds_.write_pydicom_series(tmp_path / "s", truth, bits_stored=12, signed=signed, modality="MR")
    for path in paths:
        d = pydicom.dcmread(path)
        words = np.frombuffer(d.PixelData, np.uint16).copy()
        words = words & 0x0FFF if signed else words | 0xA000
        d.PixelData = words.tobytes()
        d.save_as(path)
    ours = ingest(tmp_path / "s").series[0].volume.array
    assert np.array_equal(ours.astype(np.int64), truth)
    assert np.array_equal(ds_.read_gdcm_series(tmp_path / "s")[0].astype(np.int64), truth)
