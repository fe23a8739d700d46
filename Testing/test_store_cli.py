"""The store's `dicomteam` commands, as a script would use them (folder store and real server)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from store_support import LABELS, ProcessServer, free_port

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_labelmap, write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import read_volume, write_volume


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Private cache and queue folders; no token in the environment."""
    monkeypatch.setenv("DICOMTEAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DICOMTEAM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DICOMTEAM_TOKEN", raising=False)
    return tmp_path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli_project(env, capsys):
    """A project made with the CLI only: a phantom DICOM series and a volume file as cases."""
    phantom = make_phantom(seed=4, shape=(12, 32, 32), spacing=(2.0, 2.0, 4.0), patient_id="PH-4")
    dicom = env / "dicom"
    write_phantom_dicom(phantom, dicom, patient_id="PH-4")
    write_volume(make_phantom(seed=5, shape=(12, 32, 32), spacing=(2.0, 2.0, 4.0)).volume, env / "ph5.nrrd")
    (env / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    proj = env / "proj"
    assert run(capsys, "project", "init", proj, "--name", "CLI team", "--labels", env / "labels.json")[0] == 0
    code, out, _ = run(capsys, "project", "add-case", proj, "--case", "ph4", "--image", dicom, "--patient", "PH-4")
    assert code == 0 and "ph4" in out
    assert run(capsys, "project", "add-case", proj, "--case", "ph5", "--image", env / "ph5.nrrd",
               "--patient", "PH-5")[0] == 0
    tokens = {}
    for user, role in (("ann", "annotator"), ("rev", "reviewer")):
        code, out, err = run(capsys, "project", "add-member", proj, "--user", user, "--role", role)
        assert code == 0 and len(out.strip()) >= 32 and "token" in err
        tokens[user] = out.strip()
    assert run(capsys, "project", "assign", proj, "--case", "ph4", "--user", "ann")[0] == 0
    return proj, tokens, phantom


def _seg_file(env, phantom, name="liver.seg.nrrd"):
    return write_seg_nrrd(phantom.segmentation(), env / name)


def test_folder_store_round_trip(cli_project, env, capsys):
    proj, tokens, phantom = cli_project
    store = ["--store", proj, "--user", "ann"]
    code, out, _ = run(capsys, "push", *store, "--case", "ph4", "--segmentation", _seg_file(env, phantom),
                       "--message", "first pass")
    assert code == 0
    v1 = out.strip()
    # a label map is converted to a .seg.nrrd with the project's label names
    write_labelmap(phantom.segmentation(), env / "pred.nii.gz")
    code, out, err = run(capsys, "push", *store, "--case", "ph4", "--segmentation", env / "pred.nii.gz")
    v2 = out.strip()
    assert code == 0 and v2 != v1, err
    code, out, _ = run(capsys, "versions", *store, "--case", "ph4", "--json")
    versions = json.loads(out)
    assert [(v["id"], v["parent"], v["conflict"]) for v in versions] == [(v1, None, False), (v2, v1, False)]
    code, out, _ = run(capsys, "versions", *store, "--case", "ph4")
    assert v1 in out and "first pass" in out
    code, out, _ = run(capsys, "pull", *store, "--case", "ph4", "--out", env / "work")
    image, seg = out.split()
    volume = read_volume(image)
    assert volume.geometry.same_grid(phantom.volume.geometry)
    assert np.array_equal(volume.array, phantom.volume.array)  # ingestion kept the HU values
    assert v2 in seg and read_segmentation(seg).geometry.same_grid(phantom.volume.geometry)
    code, out, _ = run(capsys, "status", *store, "--json")
    rows = json.loads(out)
    assert [(r["case_id"], r["state"], r["latest_version"]) for r in rows] == [("ph4", "in_progress", v2)]
    code, out, _ = run(capsys, "status", "--store", proj, "--user", "rev")
    assert "ph4" in out and "ph5" in out


def test_cli_errors_are_one_line(cli_project, env, capsys):
    proj, _, phantom = cli_project
    code, _, err = run(capsys, "push", "--store", proj, "--user", "ann", "--case", "../ph4", "--segmentation",
                       _seg_file(env, phantom))
    assert code == 2 and "invalid case id" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "push", "--store", proj, "--user", "ann", "--case", "ph5", "--segmentation",
                       _seg_file(env, phantom))
    assert code == 2 and "not assigned" in err
    code, _, err = run(capsys, "status", "--store", proj, "--user", "nobody")
    assert code == 2 and "not a member" in err
    code, _, err = run(capsys, "project", "add-case", proj, "--case", "ph4", "--image", env / "ph5.nrrd",
                       "--patient", "X")
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "project", "init", proj, "--name", "again", "--labels", env / "labels.json")
    assert code == 2 and "already a project" in err
    wrong = Geometry(size=(32, 32, 12), spacing=(2.0, 2.0, 3.0))
    seg = phantom.segmentation()
    seg.geometry = wrong
    code, _, err = run(capsys, "push", "--store", proj, "--user", "ann", "--case", "ph4", "--segmentation",
                       write_seg_nrrd(seg, env / "wrong.seg.nrrd"))
    assert code == 2 and "geometry does not match" in err


def test_server_commands_and_offline_queue(cli_project, env, capsys, monkeypatch):
    proj, tokens, phantom = cli_project
    server = ProcessServer(proj, port=free_port())
    seg = _seg_file(env, phantom)
    store = ["--store", server.url, "--user", "ann"]
    # the server is down: the push is queued on disk and its id printed
    code, out, err = run(capsys, "push", *store, "--token", tokens["ann"], "--case", "ph4", "--segmentation", seg)
    queued = out.strip()
    assert code == 0 and queued and "offline queue" in err
    server.start()
    try:
        monkeypatch.setenv("DICOMTEAM_TOKEN", tokens["ann"])  # the token may come from the environment
        code, out, err = run(capsys, "status", *store, "--json")
        assert code == 0 and "sent 1 queued" in err
        assert json.loads(out)[0]["latest_version"] == queued
        code, out, _ = run(capsys, "push", *store, "--case", "ph4", "--segmentation", seg, "--message", "online")
        v2 = out.strip()
        code, out, _ = run(capsys, "versions", *store, "--case", "ph4", "--json")
        assert [(v["id"], v["parent"]) for v in json.loads(out)] == [(queued, None), (v2, queued)]
        code, out, _ = run(capsys, "pull", *store, "--case", "ph4", "--out", env / "pulled")
        image, pulled = out.split()
        assert read_volume(image).geometry.same_grid(phantom.volume.geometry)
        assert open(pulled, "rb").read() == seg.read_bytes()
        monkeypatch.delenv("DICOMTEAM_TOKEN")
        code, _, err = run(capsys, "versions", *store, "--case", "ph4")
        assert code == 2 and "token" in err
        code, out, _ = run(capsys, "versions", "--store", server.url, "--user", "rev", "--token", tokens["rev"],
                           "--case", "ph4")
        assert queued in out and v2 in out
    finally:
        server.stop()


def test_dicomteam_entry_point(cli_project):
    proj, _, _ = cli_project
    exe = os.path.join(os.path.dirname(sys.executable), "dicomteam")
    r = subprocess.run([exe, "status", "--store", str(proj), "--user", "rev", "--json"], capture_output=True,
                       encoding="utf-8", errors="replace", timeout=120)
    assert r.returncode == 0, r.stderr
    assert [row["case_id"] for row in json.loads(r.stdout)] == ["ph4", "ph5"]


def test_team_round_trip_demo(tmp_path):
    from DicomTeamAnnotateLib.demo.team import team_round_trip

    summary = team_round_trip(tmp_path / "demo")
    assert summary["store"].startswith("http://127.0.0.1:")
    assert sorted(v["author"] for v in summary["reviewer_sees"]) == ["ann1", "ann2"]
    assert summary["case_state"] == "submitted"
    for author in ("ann1", "ann2"):
        assert (tmp_path / "demo" / f"phantom-01.{author}.seg.nrrd").exists()
    assert json.loads((tmp_path / "demo" / "team_round_trip.json").read_text(encoding="utf-8"))["pushed"] == summary["pushed"]


def test_real_ct_case_and_real_label_map(env, capsys, ct_dicom_dir, ct_organs_path):
    """The real abdominal CT through ingestion, its real TotalSegmentator label map pushed and pulled back."""
    proj = env / "ct"
    (env / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    assert run(capsys, "project", "init", proj, "--name", "CT", "--labels", env / "labels.json")[0] == 0
    assert run(capsys, "project", "add-case", proj, "--case", "ct01", "--image", ct_dicom_dir,
               "--patient", "TS-1")[0] == 0
    assert run(capsys, "project", "add-member", proj, "--user", "ann", "--role", "annotator")[0] == 0
    assert run(capsys, "project", "assign", proj, "--case", "ct01", "--user", "ann")[0] == 0
    store = ["--store", proj, "--user", "ann"]
    code, out, err = run(capsys, "push", *store, "--case", "ct01", "--segmentation", ct_organs_path)
    assert code == 0, err
    code, out, _ = run(capsys, "pull", *store, "--case", "ct01", "--out", env / "work")
    image, seg_path = out.split()
    seg = read_segmentation(seg_path)
    assert seg.geometry.same_grid(read_volume(image).geometry)
    voxels = json.loads(ct_organs_path.with_name("organs.json").read_text(encoding="utf-8"))["voxels"]
    for organ in ("liver", "spleen", "aorta"):  # names from the label map's sidecar, voxels unchanged
        assert int(seg.mask(organ).sum()) == voxels[organ]


def test_tokens_never_read_as_options(capsys):
    """A token is passed as ``--token T``; one starting with '-' would be taken for an option
    (this failed one CI run in 64). Every token carries the ``dta_`` prefix."""
    from DicomTeamAnnotateLib.store.auth import new_token

    tokens = {new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(t.startswith("dta_") and len(t) >= 40 for t in tokens)
