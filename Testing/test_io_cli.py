"""`dicomteam info FILE`: geometry and labels of volumes, label maps and .seg.nrrd files."""
from __future__ import annotations

import json
import subprocess
import sys

import iocases
import numpy as np
from conftest import CT_ORGANS_JSON

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.io import segmentations as segio
from DicomTeamAnnotateLib.io.volumes import write_volume


def run(capsys, *argv):
    code = main(["info", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_on_a_segmentation(tmp_path, capsys):
    seg = iocases.segmentation("oblique")
    path = segio.write_seg_nrrd(seg, tmp_path / "a.seg.nrrd")
    code, out, _ = run(capsys, path)
    assert code == 0
    assert "segmentation (2 layer(s))" in out and "23 x 19 x 11" in out and "[oblique]" in out
    assert "0.742188 0.9 2.5 mm" in out
    code, out, _ = run(capsys, path, "--json")
    info = json.loads(out)
    assert info["kind"] == "segmentation" and info["layers"] == 2
    assert np.allclose(info["geometry"]["direction"], seg.geometry.direction)
    assert np.allclose(info["geometry"]["origin"], seg.geometry.origin)
    by_name = {s["name"]: s for s in info["segments"]}
    assert [s["name"] for s in info["segments"]] == seg.names
    assert by_name["liver"]["voxels"] == int(seg.mask("liver").sum()) and by_name["empty"]["voxels"] == 0
    assert by_name["tumor"]["layer"] == 1 and by_name["tumor"]["color"] == [1.0, 0.0, 0.25]
    assert abs(by_name["liver"]["volume_ml"] - seg.mask("liver").sum() * seg.geometry.voxel_volume_ml()) < 1e-3


def test_info_on_a_volume_and_a_labelmap(tmp_path, capsys, ct_organs_path):
    vol = iocases.volume("sagittal")
    code, out, _ = run(capsys, write_volume(vol, tmp_path / "ct.nii.gz"), "--json")
    info = json.loads(out)
    assert code == 0 and info["kind"] == "volume" and info["dtype"] == "int16"
    assert info["range"] == [float(vol.array.min()), float(vol.array.max())]
    assert np.allclose(info["geometry"]["direction"], vol.geometry.direction, atol=1e-6)
    code, out, _ = run(capsys, ct_organs_path, "--json")
    info = json.loads(out)
    expected = json.loads(CT_ORGANS_JSON.read_text(encoding="utf-8"))
    assert info["kind"] == "labelmap"
    assert {s["name"]: s["voxels"] for s in info["segments"]} == expected["voxels"]
    assert {s["name"]: s["value"] for s in info["segments"]} == expected["labels"]
    code, out, _ = run(capsys, ct_organs_path)
    assert "512 x 512 x 20" in out and "liver" in out and "366708" in out


def test_info_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, tmp_path / "missing.nrrd")
    assert code == 2 and "missing.nrrd: no such file" in err
    bad = tmp_path / "bad.nrrd"
    bad.write_bytes(b"not an image at all")
    code, _, err = run(capsys, bad)
    assert code == 2 and "bad.nrrd" in err and "Traceback" not in err


def test_info_command_line(tmp_path):
    path = segio.write_seg_nrrd(iocases.segmentation("axial"), tmp_path / "a.seg.nrrd")
    result = subprocess.run([sys.executable, "-m", "DicomTeamAnnotateLib.cli", "info", str(path), "--json"],
                            capture_output=True, encoding="utf-8", errors="replace", timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["segments"][0]["name"] == "liver"
