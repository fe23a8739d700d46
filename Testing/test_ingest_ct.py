"""Ingestion of the real CT series (JPEG 2000 lossless, blank Study/Series/SOP UIDs): equal to
SimpleITK's ImageSeriesReader; folder, file list and ZIP give the same volume; bad files are
reported and do not stop the rest."""
from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.dicom.ingest import ingest, load_dicom_volume


@pytest.fixture(scope="module")
def sitk_reference(ct_dicom_dir):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_dicom_dir)))
    image = reader.Execute()
    return sitk.GetArrayFromImage(image), Geometry.from_sitk(image)


@pytest.fixture(scope="module")
def ct_result(ct_dicom_dir):
    return ingest(ct_dicom_dir)


def test_equals_simpleitk_series_reader(ct_result, sitk_reference):
    array, geometry = sitk_reference
    assert len(ct_result.series) == 1 and ct_result.rejected == []
    vol = ct_result.series[0].volume
    assert vol.array.dtype == np.int16 == array.dtype          # HU kept as int16 (slope 1, intercept -1024)
    assert np.array_equal(vol.array, array)
    assert vol.geometry.differences(geometry, tol_mm=1e-4) == []
    assert vol.geometry.size == (512, 512, 20)
    assert np.allclose(vol.geometry.spacing, (0.9765625, 0.9765625, 2.0), atol=1e-6)


def test_blank_uids_get_a_stable_derived_id_and_are_reported(ct_result, ct_dicom_dir, tmp_path):
    s = ct_result.series[0]
    assert s.series_id.startswith("derived-") and s.metadata["derived_id"] is True
    assert s.metadata["series_instance_uid"] == "" and s.metadata["study_instance_uid"] == ""
    assert any("blank SeriesInstanceUID" in n for n in ct_result.notes)
    assert any("SeriesInstanceUID is blank" in w for w in s.warnings)
    # the same files under other names, in another folder: the same id
    copy = tmp_path / "renamed"
    copy.mkdir()
    for n, f in enumerate(sorted(ct_dicom_dir.iterdir(), reverse=True)):
        shutil.copy(f, copy / f"slice_{n:03d}.dcm")
    again = ingest(copy)
    assert [x.series_id for x in again.series] == [s.series_id]
    assert np.array_equal(again.series[0].volume.array, s.volume.array)


def test_metadata_summary(ct_result):
    m = ct_result.series[0].metadata
    assert m["modality"] == "CT" and m["units"] == "HU"
    assert m["description"] == "CT Body 3.0"
    assert m["window_center"] == 40.0 and m["window_width"] == 300.0
    assert m["rescale_slope"] == 1.0 and m["rescale_intercept"] == -1024.0
    assert m["number_of_slices"] == 20 and m["number_of_files"] == 20
    assert "JPEG 2000" in m["transfer_syntax"]
    assert m["frame_of_reference_uid"].startswith("1.3.12.2.1107.5.1.4")


def test_zip_with_nested_folders_and_file_list_give_the_same_volume(ct_result, ct_dicom_dir, tmp_path):
    files = sorted(ct_dicom_dir.iterdir())
    archive = tmp_path / "case.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n, f in enumerate(files):
            zf.write(f, f"patient/study/series{n % 2}/{f.name}")   # a series spread over two folders
        zf.writestr("patient/README.txt", "not dicom")
        zf.writestr("__MACOSX/patient/._x", "resource fork")
    from_zip = ingest(archive)
    assert len(from_zip.series) == 1
    assert np.array_equal(from_zip.series[0].volume.array, ct_result.series[0].volume.array)
    assert from_zip.series[0].volume.geometry == ct_result.series[0].volume.geometry
    assert from_zip.rejected == [(f"{archive}!patient/README.txt", "not a DICOM file")]
    assert any("operating-system" in n for n in from_zip.notes)
    from_list = ingest([str(f) for f in files[::-1]])
    assert np.array_equal(from_list.series[0].volume.array, ct_result.series[0].volume.array)


def test_bad_files_are_reported_and_do_not_stop_the_rest(ct_dicom_dir, tmp_path, sitk_reference):
    files = sorted(ct_dicom_dir.iterdir())
    folder = tmp_path / "mixed"
    folder.mkdir()
    for f in files:
        shutil.copy(f, folder / f.name)
    (folder / "notes.txt").write_text("a text file among the slices\n", encoding="utf-8")
    (folder / "empty.dcm").write_bytes(b"")
    # one slice cut short inside its JPEG 2000 stream: its header reads, its pixels do not
    broken = folder / files[7].name
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    result = ingest([folder, tmp_path / "does-not-exist"])
    reasons = dict(result.rejected)
    assert reasons[str(folder / "notes.txt")] == "not a DICOM file"
    assert reasons[str(folder / "empty.dcm")] == "empty file (0 bytes)"
    assert reasons[str(tmp_path / "does-not-exist")] == "no such file or folder"
    assert reasons[str(broken)].startswith("truncated or damaged")
    assert len(result.series) == 1
    s = result.series[0]
    # 19 slices left with one 4 mm gap: resampled back to a uniform 2 mm grid with a warning
    assert any("could not be decoded" in w for w in s.warnings)
    assert any("non-uniform slice spacing" in w for w in s.warnings)
    ref_array, ref_geometry = sitk_reference
    assert s.volume.geometry.differences(ref_geometry, tol_mm=1e-4) == []
    # slices away from the gap are the original ones
    keep = [k for k in range(20) if k not in (19 - 7, )]
    assert np.array_equal(s.volume.array[keep], ref_array[keep])


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_thread_and_process_decoding_give_the_same_volume(mode, ct_dicom_dir, sitk_reference, monkeypatch):
    monkeypatch.setenv("DICOMTEAM_DECODE", mode)
    result = ingest(ct_dicom_dir, workers=2)
    assert np.array_equal(result.series[0].volume.array, sitk_reference[0])


def test_load_dicom_volume(ct_dicom_dir, sitk_reference, tmp_path):
    vol = load_dicom_volume(ct_dicom_dir)
    assert np.array_equal(vol.array, sitk_reference[0])
    with pytest.raises(ValueError, match="no DICOM volume"):
        load_dicom_volume(tmp_path)


def test_progress_callback_reports_and_can_cancel(ct_dicom_dir):
    seen = []
    ingest(ct_dicom_dir, on_progress=lambda f, msg: seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any("decoding" in m for _, m in seen) and any("headers" in m for _, m in seen)

    class Cancelled(Exception):
        pass

    def cancel_after_headers(fraction, message):
        if "decoding" in message:
            raise Cancelled()

    with pytest.raises(Cancelled):
        ingest(ct_dicom_dir, on_progress=cancel_after_headers)
