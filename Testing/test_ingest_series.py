"""Grouping, splitting, sorting and geometry on synthetic series written as real DICOM files:
two series in a folder, overlapping or disjoint acquisitions, repeated positions, a stray
orientation, a missing slice, a large gap, gantry tilt, oblique planes, float rescale."""
from __future__ import annotations

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.demo.phantom import Phantom, make_phantom, write_phantom_dicom
from DicomTeamAnnotateLib.dicom.ingest import ingest

SHAPE = (8, 24, 28)      # small: K, J, I


def small(seed=0, **kw):
    return make_phantom(seed=seed, shape=SHAPE, spacing=(2.0, 2.5, 3.0), **kw)


def write(ph, folder, **kw):
    """Write a phantom series; return its paths in slice order (k = 0, 1, ...)."""
    paths = write_phantom_dicom(ph, folder, **kw)
    return sorted(paths, key=lambda p: pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber)


def patch(path, **attrs):
    ds = pydicom.dcmread(path)
    for key, value in attrs.items():
        setattr(ds, key, value)
    if "SOPInstanceUID" in attrs:
        ds.file_meta.MediaStorageSOPInstanceUID = attrs["SOPInstanceUID"]
    ds.save_as(path)


def by_id(result):
    return {s.series_id: s for s in result.series}


def test_two_series_in_one_folder(tmp_path):
    a, b = small(1), small(2)
    pa = write(a, tmp_path, patient_id="A")
    pb = write(b, tmp_path, patient_id="B")
    result = ingest(tmp_path)
    assert result.rejected == []
    series = by_id(result)
    uid_a = pydicom.dcmread(pa[0]).SeriesInstanceUID
    uid_b = pydicom.dcmread(pb[0]).SeriesInstanceUID
    assert set(series) == {uid_a, uid_b}
    assert np.array_equal(series[uid_a].volume.array, a.volume.array)
    assert np.array_equal(series[uid_b].volume.array, b.volume.array)
    assert series[uid_a].volume.geometry.same_grid(a.volume.geometry)
    assert series[uid_a].metadata["patient_id"] == "A" and series[uid_a].warnings == []


def test_sorting_ignores_file_names_and_instance_numbers(tmp_path):
    ph = small(3)
    paths = write(ph, tmp_path)
    for k, p in enumerate(paths):
        patch(p, InstanceNumber=(k * 5) % 7 + 1)           # scrambled InstanceNumbers
    vol = ingest(tmp_path).series[0].volume
    assert np.array_equal(vol.array, ph.volume.array)


def _second_set(ph, folder, series_uid, acquisition, instance_offset=0):
    paths = write(ph, folder, series_uid=series_uid)
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        patch(p, SOPInstanceUID=generate_uid(), AcquisitionNumber=acquisition,
              InstanceNumber=int(ds.InstanceNumber) + instance_offset)
    return paths


def test_overlapping_acquisitions_split_with_a_warning(tmp_path):
    a, b = small(4), small(5)
    uid = generate_uid()
    write(a, tmp_path / "a", series_uid=uid)
    _second_set(b, tmp_path / "b", uid, acquisition=2, instance_offset=100)
    result = ingest(tmp_path)
    series = by_id(result)
    assert set(series) == {f"{uid}-1", f"{uid}-2"}
    assert np.array_equal(series[f"{uid}-1"].volume.array, a.volume.array)
    assert np.array_equal(series[f"{uid}-2"].volume.array, b.volume.array)
    for s in series.values():
        assert any("AcquisitionNumber" in w and "overlap" in w for w in s.warnings)


def test_repeated_positions_without_distinguishing_tags_split_in_instance_order(tmp_path):
    a, b = small(6), small(7)
    uid = generate_uid()
    write(a, tmp_path / "a", series_uid=uid)
    _second_set(b, tmp_path / "b", uid, acquisition=1, instance_offset=100)
    series = by_id(ingest(tmp_path))
    assert np.array_equal(series[f"{uid}-1"].volume.array, a.volume.array)
    assert np.array_equal(series[f"{uid}-2"].volume.array, b.volume.array)
    assert any("no tag tells them apart" in w for w in series[f"{uid}-1"].warnings)


def test_acquisitions_at_disjoint_positions_stay_one_volume(tmp_path):
    ph = small(8)
    paths = write(ph, tmp_path)
    for k, p in enumerate(paths):
        patch(p, AcquisitionNumber=1 + k // 4)               # sequential CT: one number per table position
    result = ingest(tmp_path)
    assert len(result.series) == 1
    assert np.array_equal(result.series[0].volume.array, ph.volume.array)
    assert any("disjoint positions" in w for w in result.series[0].warnings)


def test_a_slice_in_another_orientation_becomes_its_own_volume(tmp_path):
    ph = small(9)
    paths = write(ph, tmp_path)
    stray = tmp_path / "localizer.dcm"
    ds = pydicom.dcmread(paths[0])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]       # sagittal
    ds.InstanceNumber = 99
    ds.save_as(stray)
    result = ingest(tmp_path)
    sizes = sorted(s.volume.geometry.size[2] for s in result.series)
    assert sizes == [1, SHAPE[0]]
    main = next(s for s in result.series if s.volume.geometry.size[2] == SHAPE[0])
    assert np.array_equal(main.volume.array, ph.volume.array)
    assert any("differ in orientation" in w for w in main.warnings)


def test_missing_slice_is_resampled_to_uniform_spacing(tmp_path):
    ph = small(10, noise_hu=0)
    paths = write(ph, tmp_path)
    paths[3].unlink()
    s = ingest(tmp_path).series[0]
    assert s.volume.geometry.same_grid(ph.volume.geometry)
    assert any("non-uniform slice spacing" in w for w in s.warnings)
    kept = [0, 1, 2, 4, 5, 6, 7]
    assert np.array_equal(s.volume.array[kept], ph.volume.array[kept])
    expected = (ph.volume.array[2].astype(float) + ph.volume.array[4]) / 2
    assert np.abs(s.volume.array[3] - expected).max() <= 0.5 + 1e-6


def test_a_large_gap_is_refused_with_a_reason(tmp_path):
    ph = small(11)
    paths = write(ph, tmp_path)
    for p in paths[4:]:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        patch(p, ImagePositionPatient=[x, y, z + 60.0])
    result = ingest(tmp_path)
    assert result.series == []
    (label, reason), = result.rejected
    assert label.startswith("series ") and "refusing to interpolate" in reason


def test_gantry_tilt_is_detected_and_resampled(tmp_path):
    ph = small(12, noise_hu=0)
    orig = ph.volume.array
    # slice k is shifted one row (2.5 mm) further along +y per slice; its pixels show the same anatomy
    tilted = np.full_like(orig, -1000)
    for k in range(SHAPE[0]):
        tilted[k, : SHAPE[1] - k] = orig[k, k:]
    tilted_ph = Phantom(Volume(tilted, ph.volume.geometry), ph.labels, ph.label_values, patient_id="TILT")
    paths = write(tilted_ph, tmp_path)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        patch(p, ImagePositionPatient=[x, y + 2.5 * k, z], GantryDetectorTilt=39.8)
    s = ingest(tmp_path).series[0]
    assert any("gantry tilt" in w and "GantryDetectorTilt 39.8" in w for w in s.warnings)
    g = s.volume.geometry
    assert np.allclose(g.direction_matrix, np.eye(3)) and g.same_grid(ph.volume.geometry)
    for k in range(SHAPE[0]):          # rows shifted in from outside the field of view are fill
        assert np.array_equal(s.volume.array[k, k:], orig[k, k:])


def test_oblique_series_matches_simpleitk(tmp_path):
    ph = small(13)
    angle = np.deg2rad(25.0)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    g = ph.volume.geometry
    oblique = Geometry(size=g.size, spacing=g.spacing, origin=(10.0, -20.0, 30.0), direction=rot.ravel())
    write(Phantom(Volume(ph.volume.array, oblique), ph.labels, ph.label_values), tmp_path)
    s = ingest(tmp_path).series[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    assert np.array_equal(s.volume.array, sitk.GetArrayFromImage(image))
    assert s.volume.geometry.differences(Geometry.from_sitk(image), tol_mm=1e-4) == []
    assert s.volume.geometry.differences(oblique, tol_mm=1e-4) == [] and s.warnings == []


def test_float_rescale_gives_float32_values(tmp_path):
    ph = small(14)
    for p in write(ph, tmp_path):
        patch(p, RescaleSlope="0.5")
    s = ingest(tmp_path).series[0]
    assert s.volume.array.dtype == np.float32
    expected = 0.5 * (ph.volume.array.astype(np.float32) + 1024) - 1024
    assert np.array_equal(s.volume.array, expected)
    assert s.metadata["rescale_slope"] == 0.5
