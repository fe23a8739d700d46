"""pydicom-data's edge cases: compressed and big-endian files decode to the same values as their
uncompressed twins (and as SimpleITK/GDCM); enhanced multi-frame CT and RT Dose become volumes;
everything else fails with a named reason."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

pytest.importorskip("pydicom.data")
from pydicom.data import get_testdata_file  # noqa: E402

from DicomTeamAnnotateLib.dicom.ingest import ingest  # noqa: E402


def data(name):
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom-data file {name} not available")
    return path


def one(name):
    result = ingest(data(name))
    assert len(result.series) == 1, result.rejected
    return result.series[0]


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm"])
def test_transfer_syntaxes_decode_to_the_uncompressed_values(name):
    ref = one("MR_small.dcm")
    s = one(name)
    assert np.array_equal(s.volume.array, ref.volume.array)
    assert s.volume.geometry == ref.volume.geometry


def test_jpeg2000_ct_equals_uncompressed_in_hounsfield_units():
    j2k, raw = one("693_J2KR.dcm"), one("693_UNCR.dcm")
    assert np.array_equal(j2k.volume.array.astype(np.int32), raw.volume.array.astype(np.int32))
    assert raw.metadata["units"] == "HU" and raw.volume.array.min() == -3024


@pytest.mark.parametrize("name", ["CT_small.dcm", "693_J2KR.dcm", "bad_sequence.dcm", "MR_small_RLE.dcm"])
def test_single_files_equal_simpleitk(name):
    # bad_sequence.dcm is JPEG lossless (process 14)
    s = one(name)
    image = sitk.ReadImage(data(name))
    expected = sitk.GetArrayFromImage(image)
    assert np.array_equal(s.volume.array, expected.reshape(s.volume.array.shape))
    g = s.volume.geometry
    assert np.allclose(g.origin, image.GetOrigin(), atol=1e-4)
    assert np.allclose(g.spacing[:2], image.GetSpacing()[:2], atol=1e-6)
    assert np.allclose(np.array(g.direction).reshape(3, 3)[:, :2],
                       np.array(image.GetDirection()).reshape(3, 3)[:, :2], atol=1e-6)
    assert any("single slice" in w for w in s.warnings)


def test_enhanced_ct_multiframe_becomes_a_volume():
    s = one("eCT_Supplemental.dcm")
    g = s.volume.geometry
    # frames at z = -159 and -149 with orientation (-1,0,0)/(0,1,0): normal -z, so z = -149 comes first
    assert g.size == (512, 512, 2)
    assert np.allclose(g.origin, (99.5, -301.5, -149.0))
    assert np.allclose(g.direction_matrix, np.diag([-1.0, 1.0, -1.0]))
    assert np.allclose(g.spacing, (0.388672, 0.388672, 10.0))
    import pydicom

    ds = pydicom.dcmread(data("eCT_Supplemental.dcm"))
    stored = ds.pixel_array.astype(np.int32)
    assert np.array_equal(s.volume.array, stored[::-1] - 1024)      # per-frame rescale -1024
    assert (s.metadata["window_center"], s.metadata["window_width"]) == (49.0, 102.0)


def test_rt_dose_grid_frames_with_dose_scaling():
    s = one("rtdose.dcm")
    assert s.volume.geometry.size == (10, 10, 15)
    assert s.volume.array.dtype == np.float32 and 0.7 < float(s.volume.array.max()) < 1.3


@pytest.mark.parametrize("name, reason", [
    ("emri_small.dcm", "multi-frame image (10 frames, MR) without functional groups"),
    ("emri_small_jpeg_2k_lossless_too_short.dcm", "multi-frame image"),
    ("MR_truncated.dcm", "truncated: pixel data holds"),
    ("no_meta.dcm", "not a DICOM file"),
    ("reportsi.dcm", "no pixel data (Basic Text SR Storage)"),
    ("rtplan_truncated.dcm", "no pixel data"),
    ("SC_rgb_jpeg.dcm", "colour image (PhotometricInterpretation 'RGB'"),
    ("liver.dcm", "DICOM SEG"),
    ("RG1_J2KR.dcm", "no ImagePositionPatient/ImageOrientationPatient"),
    ("badVR.dcm", "cannot decode pixel data"),
])
def test_unusable_files_fail_with_a_named_reason(name, reason):
    path = data(name)
    result = ingest(path)
    assert result.series == []
    assert [p for p, _ in result.rejected] == [path]
    assert result.rejected[0][1].startswith(reason), result.rejected[0][1]


def test_dicomdir_is_named():
    import os

    path = data("DICOMDIR")
    result = ingest(path)
    assert result.rejected == [(path, "DICOMDIR (a media directory index, not an image)")]
    assert os.path.basename(path) == "DICOMDIR"


def test_every_pydicom_data_file_loads_or_is_refused_with_a_reason():
    """All of pydicom-data, one file at a time: a volume, or a rejection that names a reason; never a crash."""
    import os

    from pydicom.data import get_testdata_files

    files = sorted(get_testdata_files())
    assert len(files) > 200
    loaded, refused = [], []
    for path in files:
        result = ingest(path)
        if result.series:
            assert all(s.volume.array.size and s.volume.geometry.size for s in result.series), path
            loaded.append(os.path.basename(path))
        else:
            assert result.rejected and all(str(p) and len(reason) > 5 for p, reason in result.rejected), path
            refused.append(os.path.basename(path))
    # the image files of the suite load (spot checks), the rest are refused for what they are
    assert {"CT_small.dcm", "MR_small_RLE.dcm", "eCT_Supplemental.dcm", "693_J2KR.dcm", "rtdose.dcm"} <= set(loaded)
    assert {"rtplan.dcm", "README.txt", "SC_rgb.dcm", "MR_truncated.dcm", "liver.dcm"} <= set(refused)


def test_enhanced_mr_multiframe_equals_its_single_frame_series(tmp_path):
    """A legacy-converted Enhanced MR (highdicom, per-frame functional groups, frames shuffled)
    becomes the same volume and geometry as the single-frame series it was made from."""
    pytest.importorskip("highdicom")
    import random

    from highdicom.legacy import LegacyConvertedEnhancedMRImage
    from pydicom.uid import MRImageStorage, generate_uid

    from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
    from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume

    phantom = make_phantom(seed=3, shape=(12, 32, 40))
    mr = []
    for i, path in enumerate(write_phantom_dicom(phantom, tmp_path / "ct")):
        ds = pydicom.dcmread(path)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.Modality, ds.PixelRepresentation = "MR", 1
        for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
            if keyword in ds:
                del ds[keyword]
        ds.update({"ScanningSequence": "SE", "SequenceVariant": "NONE", "MRAcquisitionType": "2D",
                   "EchoTime": 10, "RepetitionTime": 500, "MagneticFieldStrength": 1.5})
        (tmp_path / "mr").mkdir(exist_ok=True)
        ds.save_as(tmp_path / "mr" / f"{i}.dcm")
        mr.append(ds)
    single = load_dicom_volume(tmp_path / "mr")
    random.Random(0).shuffle(mr)
    enhanced = LegacyConvertedEnhancedMRImage(legacy_datasets=mr, series_instance_uid=generate_uid(),
                                              series_number=9, sop_instance_uid=generate_uid(), instance_number=1)
    enhanced.save_as(tmp_path / "enhanced.dcm")
    result = ingest(tmp_path / "enhanced.dcm")
    assert len(result.series) == 1, result.rejected
    s = result.series[0]
    assert s.metadata["modality"] == "MR" and s.metadata["number_of_files"] == 1
    assert np.array_equal(s.volume.array, single.array)
    assert s.volume.geometry == single.geometry
