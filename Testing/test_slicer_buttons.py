"""Every panel button no other test pressed, pressed through its widget inside the Slicer harness.

Each Slicer session (a module fixture: a session costs seconds) presses a group of buttons; each test reads
what one group showed the user and changed in the scene or the project (scenarios/buttons.py). The harness
fails a session when a Slicer, Qt or MRML call happens off the main thread.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import zipfile

import numpy as np
import pytest
from pacs_orthanc import PASSWORD, USER, find_orthanc, start_orthanc
from slicer_support import make_session_env, run_in_slicer
from store_support import free_port

from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
from DicomTeamAnnotateLib.io.segmentations import read_segmentation
from DicomTeamAnnotateLib.io.volumes import write_volume
from DicomTeamAnnotateLib.store import admin, open_store

LABELS = [{"name": "liver", "value": 1, "color": [0.9, 0.5, 0.4], "terminology": "SCT^10200004^Liver"},
          {"name": "spleen", "value": 2, "color": [0.6, 0.3, 0.6]}]
SHAPE = (12, 40, 48)


def make_project(folder, assign_c2=False):
    """A folder project: c1 assigned to alice, c2 not (yet); alice annotates, rev reviews; alice's token."""
    admin.init_project(folder, "Buttons", LABELS)
    for n, case in enumerate(("c1", "c2")):
        admin.add_case(folder, case, make_phantom(seed=n, shape=SHAPE, spacing=(1.5, 1.5, 3.0)).volume, f"P{n + 1}")
    token = admin.add_member(folder, "alice", "annotator")
    admin.add_member(folder, "rev", "reviewer")
    admin.assign(folder, "c1", "alice")
    if assign_c2:
        admin.assign(folder, "c2", "alice")
    return token


def kill_noted(pids_file):
    """End the project servers a scenario started and noted (it stops them itself unless it failed)."""
    if not pids_file.is_file():
        return
    for line in pids_file.read_text(encoding="utf-8").split():
        try:
            os.kill(int(line), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


# ----- DicomTeamAnnotate: a project folder ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_session(tmp_path_factory):
    """One Slicer session on a fresh environment (no pynrrd yet: the first Open installs it)."""
    root = tmp_path_factory.mktemp("hub-buttons")
    env = make_session_env(root / "session")
    project = root / "project"
    make_project(project)
    result = run_in_slicer(env, root, "buttons:hub_project_buttons", project=project, work=root / "work",
                           queue=root / "queue")
    return result, project


def test_browse_fills_the_store_folder_and_refresh_shows_a_newly_assigned_case(project_session):
    r, project = project_session
    out = r["result"]
    assert out["location_after_cancel"] == "", "a cancelled folder dialog must leave the field as it was"
    assert out["location_after_browse"] == str(project)
    assert out["connect_enabled_without_user"] is False and out["connect_enabled"] is True
    assert out["status"].startswith("Connected to project 'Buttons' as alice (annotator)")
    assert out["worklist"] == ["c1"]
    # the administrator assigned c2 meanwhile: the table shows it only after Refresh
    assert out["worklist_before_refresh"] == ["c1"] and out["refresh_enabled"]
    assert out["worklist_after_refresh"] == ["c1", "c2"] and out["worklist_status"] == "2 case(s)."


def test_pip_busy_with_another_install_is_said_so_not_declined(project_session):
    """9d: Slicer's RuntimeError 'pip_install is already in progress' is told as it is; nothing opens."""
    busy = project_session[0]["result"]["pip_busy"]
    assert busy["opened"] is False and busy["volumes"] == 0
    said = busy["status"] + [b["text"] for b in busy["boxes"]]
    assert any("Not installed" in s and "already in progress" in s for s in busy["status"]), said
    assert not any("declin" in s.lower() for s in said), said


def test_a_second_click_during_the_first_use_install_starts_no_second_install(project_session):
    """9c: the click that arrives while pip installs pynrrd is told an installation runs; one install, one case."""
    second = project_session[0]["result"]["second_click"]
    assert second["accepted"] is True, "the second click did not reach the button"
    assert second["installs_meanwhile"] == [], "the second click started an install of its own"
    assert any("installation of Python packages is running" in s for s in second["status"]), second["status"]
    assert second["installs"] == [["pynrrd>=1.0"]]
    assert second["case"] == "c1" and second["volumes"] == 1


def test_edit_in_segment_editor_brings_the_case_back_into_the_editor(project_session):
    out = project_session[0]["result"]
    assert out["edit_enabled_without_case"] is False and out["edit_enabled"] is True
    assert out["edit"] == {"module": "SegmentEditor", "segmentation": True, "source": True}


def test_save_version_pushes_a_version_without_submitting(project_session):
    out, project = project_session[0]["result"], project_session[1]
    assert out["save_enabled_without_case"] is False and out["save_enabled"] is True
    assert out["after_save"].endswith(f"Pushed version {out['parent_after_save']}."), out["after_save"]
    assert out["message_after_save"] == "" and out["draft_after_save"] is False
    assert [row[0] for row in out["worklist_after_save"]] == ["c1", "c2"]
    assert out["worklist_after_save"][0][2] == "in progress", "Save version must not submit the case"
    assert [(row[0], row[1], row[3]) for row in out["versions_after_save"]] == [("alice", "annotation", "half done")]
    store = open_store(project, "rev")
    (version,) = store.list_versions("c1")
    assert version["id"] == out["parent_after_save"] and version["author"] == "alice"
    assert version["message"] == "half done" and store.states("c1")["annotators"]["alice"] == "in_progress"
    seg = read_segmentation(store.fetch_version(version["id"], project.parent / "check.seg.nrrd"))
    assert int(seg.mask("liver").sum()) == out["drawn_voxels"]
    assert not out["errors"], out["errors"]


# ----- DicomTeamAnnotate: Load DICOM (ZIP) and DICOMweb ----------------------------------------------------------


@pytest.fixture(scope="module")
def dicom_session(tmp_path_factory, slicer_env):
    """Browse (ZIP) and Load; DICOMweb from a dead address and from Orthanc (when Orthanc is installed)."""
    import pydicom

    from DicomTeamAnnotateLib.pacs import dicomweb as dw

    root = tmp_path_factory.mktemp("dicom-buttons")
    files = write_phantom_dicom(make_phantom(seed=3, shape=SHAPE, spacing=(1.5, 1.5, 3.0)), root / "series")
    zip_path = root / "series.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for f in files:
            archive.write(f, f.name)
    project = root / "project"
    make_project(project)
    found, reason = find_orthanc()
    if found is None and os.environ.get("CI"):
        pytest.fail(f"required under CI: {reason}")
    server = start_orthanc(root / "orthanc") if found else None
    try:
        if server is not None:
            phantom = make_phantom(seed=4, shape=(8, 24, 24), patient_id="BTN-A")
            dw.stow(server.client(), [pydicom.dcmread(f) for f in write_phantom_dicom(phantom, root / "pacs")])
        result = run_in_slicer(slicer_env, root, "buttons:hub_dicom_buttons", zip_path=zip_path, project=project,
                               dead_url=f"http://127.0.0.1:{free_port()}/dicom-web",
                               orthanc_url=server.url if server else None, user=USER, password=PASSWORD,
                               patient="BTN-A")
    finally:
        if server is not None:
            server.stop()
    return result, project, reason


def test_browse_zip_then_load_reads_the_chosen_archive(dicom_session):
    out = dicom_session[0]["result"]
    assert out["load_enabled_before"] is False and out["path_after_cancel"] == ""
    assert out["load_enabled"] is True, "the ZIP chosen in the dialog was not taken"
    assert out["load_summary"].startswith("Loaded 1 volume(s) from 1 series"), out["load_summary"]
    assert out["volumes"] == 1


def test_browse_zip_shows_the_chosen_archive_in_the_path_field(dicom_session):
    assert dicom_session[0]["result"]["path_after_browse"].endswith("series.zip")


def test_dicomweb_import_from_an_address_nothing_listens_on_says_so(dicom_session):
    out = dicom_session[0]["result"]
    dead = out["dead"]
    assert out["import_enabled_empty"] is False and out["import_enabled"] is True
    assert dead["summary"].startswith("Import failed:") and "127.0.0.1" in dead["summary"], dead["summary"]
    assert "failed or was cut" in dead["summary"] and dead["rows"] == []
    assert len(dead["errors"]) == 1 and "The DICOMweb import stopped." in dead["errors"][0]


def test_dicomweb_import_adds_the_pacs_series_as_a_case(dicom_session):
    r, project, reason = dicom_session
    out = r["result"]
    if "import" not in out:
        pytest.skip(reason)
    assert out["import"]["summary"].startswith("1 case(s) added, 0 series already in the project"), out["import"]
    assert out["import"]["visible"] and len(out["import"]["rows"]) == 1
    case_id, status, patient, _series = out["import"]["rows"][0]
    assert status == "added" and patient == "BTN-A"
    assert out["again"]["summary"].startswith("0 case(s) added, 1 series already in the project"), out["again"]
    cases = {c["case_id"]: c for c in open_store(project, "rev").list_cases()}
    assert case_id in cases and cases[case_id]["patient_id"] == "BTN-A"
    assert not out["import_errors"], out["import_errors"]


# ----- DicomTeamAnnotate: a project server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_session(tmp_path_factory, slicer_env):
    """Forget token; Save version while the server is down, Send now while down, then once it is back."""
    root = tmp_path_factory.mktemp("server-buttons")
    project = root / "project"
    token = make_project(project)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [os.environ.get("DICOMTEAM_SERVER_PYTHON", sys.executable), "-m", "DicomTeamAnnotateLib.cli", "serve",
               str(project), "--host", "127.0.0.1", "--port", str(port)]
    pids = root / "server.pids"
    try:
        result = run_in_slicer(slicer_env, root, "buttons:hub_server_buttons", url=url, token=token,
                               server_command=command, pids_file=pids, work=root / "work", queue=root / "queue")
    finally:
        kill_noted(pids)
    return result, project


def test_forget_token_removes_the_saved_token(server_session):
    out = server_session[0]["result"]
    assert out["remember"] is True and out["status"].startswith("Connected to project 'Buttons' as alice (annotator)")
    assert out["token_saved"] == {"keys": 1, "value": True, "loaded": True}
    forgotten = out["forgotten"]
    assert forgotten["field"] == "" and forgotten["keys"] == [] and forgotten["loaded"] == ""
    assert "Saved token removed." in forgotten["status"] and forgotten["still_connected"]


def test_send_now_sends_the_push_queued_while_the_server_was_down(server_session):
    out, project = server_session[0]["result"], server_session[1]
    assert out["banner_online"] is False and out["sync_enabled_online"] is True
    queued = out["queued"]
    assert "cannot be reached" in queued["label"] and "queued and will be sent later" in queued["label"]
    assert queued["banner"] and "OFFLINE" in queued["banner_text"] and "1 push(es) wait" in queued["banner_text"]
    assert queued["pending"] == 1 and queued["sync_enabled"]
    still = out["still_down"]
    assert still["pending"] == 1 and still["banner"] and "1 push(es) wait" in still["banner_text"]
    assert still["errors"] == [], "Send now while the server is down is no error: the push stays queued"
    assert out["pending_before_send"] == 1, "the push was sent before Send now was pressed"
    sent = out["sent"]
    assert "1 queued push(es) sent." in sent["status"] and sent["pending"] == 0 and sent["banner"] is False
    assert sent["parent"] == sent["queued_id"]
    assert [(v[1], v[2]) for v in sent["versions"]] == [("alice", "while offline")]
    assert sent["versions"][0][0] == sent["queued_id"]
    (version,) = open_store(project, "rev").list_versions("c1")
    seg = read_segmentation(open_store(project, "rev").fetch_version(version["id"], project.parent / "sent.seg.nrrd"))
    assert int(seg.mask("liver").sum()) == out["drawn_voxels"]


def test_a_push_queued_offline_brings_no_error_box(server_session):
    """The banner says the store is offline and the push waits: no dialog on top ('Could not read the worklist')."""
    out = server_session[0]["result"]
    assert out["queued"]["errors"] == [], out["queued"]["errors"]


# ----- ConsensusReview: 'Segment Editor' of the adjudication; TrainBridge: Evaluation > Load ----------------------


@pytest.fixture(scope="module")
def review_session(tmp_path_factory, slicer_env):
    """An evaluation written by TrainBridge's evaluator (two cases, two labels) and a folder without one."""
    from TrainBridgeLib.evaluation.evaluate import evaluate_folders

    root = tmp_path_factory.mktemp("review-buttons")
    for case, seed in (("case1", 0), ("case2", 1)):
        phantom = make_phantom(seed=seed, shape=(10, 32, 32), spacing=(1.5, 1.5, 3.0))
        labels = np.where(np.isin(phantom.labels, [1, 2]), phantom.labels, 0).astype(np.uint8)
        write_volume(Volume(labels, phantom.volume.geometry), root / "gt" / f"{case}.nii.gz")
        pred = labels.copy()
        pred[:, :, : 12 + 4 * seed] = 0  # case2 misses more
        write_volume(Volume(pred, phantom.volume.geometry), root / "pred" / f"{case}.nii.gz")
    evaluate_folders(root / "gt", root / "pred", root / "evaluation", labels={"liver": 1, "spleen": 2})
    (root / "job").mkdir()
    result = run_in_slicer(slicer_env, root, "buttons:review_and_evaluation_buttons",
                           evaluation_dir=root / "evaluation", not_an_evaluation=root / "job")
    return result, root


def test_consensus_segment_editor_button_brings_the_adjudication_back(review_session):
    out = review_session[0]["result"]
    assert out["run_status"].startswith("majority of 3 annotators"), out["run_status"]
    assert out["edit_enabled_before"] is False and out["edit_enabled_after_run"] is False
    assert out["module_after_start"] == "SegmentEditor" and out["edit_enabled"] is True
    assert out["edit"] == {"module": "SegmentEditor", "segmentation": True, "source": True, "nodes": 5}


def test_trainbridge_load_fills_the_evaluation_tables(review_session):
    out, root = review_session[0]["result"], review_session[1]
    metrics = json.loads((root / "evaluation" / "metrics.json").read_text(encoding="utf-8"))
    assert out["load_enabled_empty"] is False and out["load_enabled"] is True
    loaded = out["loaded"]
    assert len(loaded["rows"]) == 4
    dice = [float(row[2]) for row in loaded["rows"]]
    assert dice == sorted(dice), "worst Dice first"
    for case, label, shown, *_rest in loaded["rows"]:
        assert float(shown) == pytest.approx(metrics["cases"][case][label]["dice"], abs=5e-4)
    assert loaded["cases"][0] == metrics["worst_cases"][0]["case"] and sorted(loaded["cases"]) == ["case1", "case2"]
    assert loaded["labels"] == ["liver", "spleen"] and "liver" in loaded["summary"]
    assert loaded["worst"] and loaded["show_enabled"] and loaded["jump_enabled"]
    bad = out["not_an_evaluation"]
    assert len(bad["errors"]) == 1 and str(root / "job" / "metrics.json") in bad["errors"][0], bad
    assert out["load_enabled_cleared"] is False


# ----- SAM Prompt: the panel's Cancel and Clear cache; the effect's buttons; 9b; 9f ----------------------------------


@pytest.fixture(scope="module")
def sam_session(tmp_path_factory, slicer_env):
    pytest.importorskip("torch")  # the PyTorch extension's stand-in links the test environment's torch
    root = tmp_path_factory.mktemp("sam-buttons")
    return run_in_slicer(slicer_env, root, "buttons:sam_buttons", timeout=1500, scene_file=root / "scene.mrml")


@pytest.mark.slow
def test_sam_panel_cancel_stops_the_precomputation_and_clear_cache_empties_it(sam_session):
    out = sam_session["result"]
    assert out["precompute_enabled"] and out["cancel_enabled_idle"] is False
    assert out["precompute_started"] and out["cancel_enabled_running"] is True
    cancel = out["precompute_cancel"]
    assert cancel["status"] == "Cancelled." and cancel["pending"] == 0
    assert cancel["cancel_enabled"] is False and cancel["precompute_enabled"] is True
    assert cancel["cached"] <= cancel["done_at_cancel"] + 1 < cancel["total"] == 64, cancel
    assert out["cache_before_clear"] > 0
    assert out["cache_after_clear"]["entries"] == 0 and "0 slice(s)" in out["cache_after_clear"]["label"]


@pytest.mark.slow
def test_sam_effect_propagate_buttons_carry_the_preview_up_down_and_both(sam_session):
    out = sam_session["result"]
    assert out["idle_buttons"] == {"propagate": {"down": False, "both": False, "up": False}, "apply": False,
                                   "cancel": False, "stop_visible": False}
    assert out["prompted"]["buttons"]["apply"] and all(out["prompted"]["buttons"]["propagate"].values())
    assert out["prompted"]["preview_nodes"] == ["SAM preview"]
    running = out["running_buttons"]
    assert running["stop_visible"] and not any(running["propagate"].values()) and not running["apply"]
    k, up, down = out["propagate_up_down"]["k"], out["propagate_up_down"]["up"], out["propagate_up_down"]["after_down"]
    assert min(up) == k and max(up) > k, up
    assert set(up) < set(down) and min(down) < k, down


@pytest.mark.slow
def test_sam_effect_stop_and_cancel_during_a_propagation_apply_nothing_of_it(sam_session):
    out = sam_session["result"]
    stop = out["stop"]
    assert stop["busy_when_pressed"] and stop["stop_visible"] and stop["status"] == "Stopped."
    assert stop["slices"] == [out["propagate_up_down"]["k"]] and stop["preview_unchanged"], stop
    after = out["apply_after_stop"]
    assert after["equal_prompted"] and after["slices"] == [out["propagate_up_down"]["k"]] and after["undo_states"] == 1
    cancel = out["cancel_running"]
    assert cancel["busy_when_pressed"] and cancel["cancel_enabled"]
    assert cancel["preview"] is False and cancel["preview_nodes"] == [] and cancel["segment_unchanged"]
    assert not cancel["buttons"]["apply"] and not cancel["buttons"]["cancel"]
    finished = out["cancel_preview"]
    assert finished["preview"] is False and finished["preview_nodes"] == [] and finished["segment_unchanged"]


@pytest.mark.slow
def test_sam_effect_cancel_during_a_propagation_says_cancelled(sam_session):
    assert sam_session["result"]["cancel_running"]["status"].startswith("Cancelled."), \
        sam_session["result"]["cancel_running"]["status"]


@pytest.mark.slow
def test_sam_effect_apply_writes_the_preview_into_the_segment(sam_session):
    out = sam_session["result"]
    apply = out["apply"]
    assert apply["equal_preview"] and apply["slices"] > 1 and apply["dice"] > 0.8, apply
    assert apply["undo_states"] == 1 and apply["preview_nodes"] == [] and not apply["buttons"]["apply"]
    assert apply["status"].startswith("Applied.")
    assert not out["errors"], out["errors"]


@pytest.mark.slow
def test_sam_preview_is_not_saved_with_the_scene_and_goes_with_its_segmentation(sam_session):
    """9b: the preview node stays out of the saved scene, and a change of the editor's segmentation drops it."""
    out = sam_session["result"]
    assert out["scene"]["preview_in_scene"] == ["SAM preview"]
    assert out["scene"]["segmentation_saved"] and out["scene"]["preview_saved"] is False
    change = out["segmentation_change"]
    assert change["had_preview"] and change["preview"] is False and change["preview_nodes"] == []
    assert not change["buttons"]["apply"] and not any(change["buttons"]["propagate"].values())
    assert change["other_empty"] and change["segment_unchanged"]


@pytest.mark.slow
def test_sam_preview_goes_when_the_user_picks_another_segmentation_in_the_editor(sam_session):
    switch = sam_session["result"]["editor_switch"]
    assert switch["preview_nodes"] == [] and switch["preview"] is False


@pytest.mark.slow
def test_sam_effect_views_a_volume_under_a_rotating_parent_transform(sam_session):
    """9f: 90 degrees about R: the axial view shows the volume's coronal plane; the box maps to its voxels.
    30 degrees: the view is oblique to the volume; the effect says so and prompts nothing."""
    rotated = sam_session["result"]["rotated"]
    assert rotated["started"] and rotated["plane"] == "coronal", rotated
    assert rotated["slice"] == rotated["expected_slice"] and rotated["box"] == rotated["expected_box"], rotated
    assert all(abs(z) < 1e-3 for z in rotated["view_offsets"])
    assert rotated["mask_slices"] == [rotated["expected_slice"]] and rotated["inside_box"] > 0.9, rotated
    assert rotated["preview_transform"]
    oblique = sam_session["result"]["oblique"]
    assert "oblique" in oblique["status"] and oblique["error"] and not oblique["busy"] and not oblique["prompted"]
