"""The synthetic CT phantom: realistic HU per tissue, a consistent label map, per-seed variation,
and a DICOM series that SimpleITK reads back voxel for voxel."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom, write_phantom_dicom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(seed=0)


def test_default_phantom_grid_and_types(phantom):
    vol = phantom.volume
    assert vol.array.dtype == np.int16 and vol.array.shape == (48, 96, 96)
    assert vol.geometry.size == (96, 96, 48) and vol.geometry.spacing == (1.5, 1.5, 3.0)
    assert vol.geometry.space == "LPS" and not vol.geometry.is_oblique()
    # centred on the world origin
    centre = vol.geometry.index_to_world(np.array(vol.geometry.size) / 2.0 - 0.5)
    assert np.allclose(centre, 0.0, atol=1e-9)
    assert phantom.labels.dtype == np.uint8 and phantom.labels.shape == vol.array.shape
    assert phantom.label_values == LABEL_VALUES
    for name in ("liver", "spleen", "kidney_left", "kidney_right", "bone", "aorta"):
        assert np.count_nonzero(phantom.labels == phantom.label_values[name]) > 200, name
    assert phantom.patient_id == "PHANTOM-0000"


@pytest.mark.parametrize("name, low, high", [
    ("liver", 45, 75), ("spleen", 35, 65), ("kidney_left", 15, 45), ("kidney_right", 15, 45),
    ("bone", 650, 850), ("aorta", 120, 180), ("lung_left", -900, -800), ("lung_right", -900, -800),
])
def test_tissue_hounsfield_units(phantom, name, low, high):
    # the interior of each organ (away from the partial-volume edge) has the tissue's HU
    mask = phantom.labels == phantom.label_values[name]
    core = ndimage.binary_erosion(mask, iterations=1)
    values = phantom.volume.array[core if core.sum() > 20 else mask]
    assert low <= float(np.median(values)) <= high


def test_air_fat_and_anatomical_sides(phantom):
    a, labels, g = phantom.volume.array, phantom.labels, phantom.volume.geometry
    assert np.median(a[:, 0, :]) < -950                      # air around the body
    body = a > -500
    fat_like = (a > -150) & (a < -50) & (labels == 0) & body
    assert fat_like.sum() > 1000                              # subcutaneous and visceral fat
    # LPS: patient left is +x.  Liver and right kidney on the right, spleen on the left; spine posterior (+y)
    def centroid(name):
        k, j, i = np.nonzero(labels == phantom.label_values[name])
        return g.index_to_world(np.array([i.mean(), j.mean(), k.mean()]))
    assert centroid("liver")[0] < 0 < centroid("spleen")[0]
    assert centroid("kidney_right")[0] < 0 < centroid("kidney_left")[0]
    assert centroid("bone")[1] > centroid("aorta")[1] > centroid("liver")[1] - 40
    assert centroid("lung_left")[2] > centroid("kidney_left")[2]       # lungs superior to kidneys


def test_seeds_are_different_patients_and_deterministic():
    a, b, a2 = make_phantom(seed=1), make_phantom(seed=2), make_phantom(seed=1)
    assert np.array_equal(a.volume.array, a2.volume.array) and np.array_equal(a.labels, a2.labels)
    liver_a = a.labels == LABEL_VALUES["liver"]
    liver_b = b.labels == LABEL_VALUES["liver"]
    dice = 2 * np.sum(liver_a & liver_b) / (liver_a.sum() + liver_b.sum())
    assert 0.6 < dice < 0.99          # same organ, a different patient
    assert a.patient_id != b.patient_id


def test_other_shapes_and_spacings_keep_the_anatomy():
    ph = make_phantom(seed=0, shape=(20, 40, 50), spacing=(0.8, 0.9, 2.5), noise_hu=0)
    assert ph.volume.array.shape == (20, 40, 50)
    assert ph.volume.geometry.spacing == (0.8, 0.9, 2.5)
    for name in ("liver", "spleen", "bone", "aorta"):
        assert np.any(ph.labels == ph.label_values[name]), name


def test_segmentation_matches_label_map(phantom):
    seg = phantom.segmentation()
    assert set(seg.names) == set(LABEL_VALUES)
    assert seg.geometry == phantom.volume.geometry
    for name, value in phantom.label_values.items():
        assert np.array_equal(seg.mask(name), phantom.labels == value)
    assert seg.segment("liver").terminology.startswith("SCT^10200004")
    lv = phantom.label_volume()
    assert lv.array.dtype == np.uint8 and lv.geometry == phantom.volume.geometry


def test_dicom_series_reads_back_identically_in_simpleitk(tmp_path):
    ph = make_phantom(seed=4, shape=(12, 40, 48), spacing=(1.2, 1.0, 2.5))
    paths = write_phantom_dicom(ph, tmp_path / "dcm", series_description="phantom test")
    assert len(paths) == 12 and all(p.exists() for p in paths)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    by_name = sorted(zip(paths, headers), key=lambda t: t[0].name)
    z_by_name = [float(h.ImagePositionPatient[2]) for _, h in by_name]
    assert z_by_name != sorted(z_by_name)                  # file names do not give slice order
    h = headers[0]
    assert h.Modality == "CT" and h.SOPClassUID == pydicom.uid.CTImageStorage
    assert h.PatientID == ph.patient_id and h.SeriesDescription == "phantom test"
    assert float(h.RescaleIntercept) == -1024 and float(h.RescaleSlope) == 1
    assert float(h.WindowCenter) == 40 and float(h.WindowWidth) == 400
    assert len({x.SOPInstanceUID for x in headers}) == 12 and len({x.SeriesInstanceUID for x in headers}) == 1
    for uid in (h.StudyInstanceUID, h.SeriesInstanceUID, h.SOPInstanceUID, h.FrameOfReferenceUID):
        assert pydicom.uid.UID(uid).is_valid
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "dcm")))
    image = reader.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(image), ph.volume.array)
    assert Geometry.from_sitk(image).same_grid(ph.volume.geometry, tol_mm=1e-4)
    # same phantom and description: the same UIDs (re-running the demo does not make new series)
    again = write_phantom_dicom(ph, tmp_path / "again", series_description="phantom test")
    assert pydicom.dcmread(again[0]).SeriesInstanceUID == h.SeriesInstanceUID
