"""`dicomteam ingest PATH... --out DIR`: volumes, ingest_report.json, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pydicom

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
from DicomTeamAnnotateLib.io.volumes import read_volume


def test_ingest_writes_volumes_and_report(tmp_path, capsys):
    ph = make_phantom(seed=21, shape=(10, 32, 36))
    dcm = tmp_path / "dicom"
    write_phantom_dicom(ph, dcm)
    (dcm / "readme.txt").write_text("not dicom", encoding="utf-8")
    uid = pydicom.dcmread(next(dcm.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
    out = tmp_path / "out"
    assert main(["ingest", str(dcm), "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "ingest_report.json").read_text(encoding="utf-8"))
    entry, = report["series"]
    assert entry["uid"] == uid and entry["series_id"] == uid
    assert entry["output_file"] == str(out / f"{uid}.nrrd")
    assert entry["modality"] == "CT" and entry["number_of_slices"] == 10
    assert entry["size"] == [36, 32, 10] and entry["spacing"] == [1.5, 1.5, 3.0]
    assert entry["origin"] == list(ph.volume.geometry.origin) and entry["direction"] == list(ph.volume.geometry.direction)
    assert entry["warnings"] == [] and entry["window_center"] == 40.0
    assert report["rejected"] == [{"path": str(dcm / "readme.txt"), "reason": "not a DICOM file"}]
    vol = read_volume(entry["output_file"])
    assert np.array_equal(vol.array, ph.volume.array) and vol.geometry.same_grid(ph.volume.geometry)
    printed = capsys.readouterr().out
    assert f"{uid}.nrrd: CT 36x32x10" in printed and "1 file(s) rejected" in printed


def test_ingest_exit_code_when_nothing_is_a_volume(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["ingest", str(tmp_path / "a.txt"), str(tmp_path / "missing"), "--out", str(out)]) == 1
    report = json.loads((out / "ingest_report.json").read_text(encoding="utf-8"))
    assert report["series"] == []
    assert {r["reason"] for r in report["rejected"]} == {"not a DICOM file", "no such file or folder"}
    assert "no volume" in capsys.readouterr().err


def test_ingest_out_must_be_a_folder(tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x", encoding="utf-8")
    assert main(["ingest", str(tmp_path), "--out", str(not_a_dir)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_ingest_to_folder_is_what_the_demo_calls(tmp_path):
    from DicomTeamAnnotateLib.cli.ingest import ingest_to_folder

    ph = make_phantom(seed=22, shape=(6, 20, 20))
    write_phantom_dicom(ph, tmp_path / "dcm")
    report = ingest_to_folder([tmp_path / "dcm"], tmp_path / "out")
    vol = read_volume(report["series"][0]["output_file"])
    assert np.array_equal(vol.array, ph.volume.array)
    assert json.loads((tmp_path / "out" / "ingest_report.json").read_text(encoding="utf-8")) == report


def test_console_command_runs_as_a_user_types_it(tmp_path, ct_dicom_dir):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.run([sys.executable, "-m", "DicomTeamAnnotateLib.cli", "ingest", str(ct_dicom_dir),
                           "--out", str(out)], capture_output=True, encoding="utf-8", errors="replace", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "ingest_report.json").read_text(encoding="utf-8"))
    entry, = report["series"]
    assert entry["series_id"].startswith("derived-") and entry["derived_id"] is True
    assert (out / f"{entry['series_id']}.nrrd").exists()
    assert any("blank SeriesInstanceUID" in n for n in report["notes"])
