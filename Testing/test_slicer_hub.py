"""The DicomTeamAnnotate panel inside the Slicer harness (Slicer 5.12's packages, real MRML, its loaders).

Each test clicks through the panel as a user would; the harness fails a run when a Slicer, Qt or
MRML call happens off the main thread.
"""
from __future__ import annotations

import pytest
from slicer_support import run_in_slicer

from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.store import admin

LABELS = [{"name": "liver", "value": 1, "color": [0.9, 0.5, 0.4], "terminology": "SCT^10200004^Liver"},
          {"name": "spleen", "value": 2, "color": [0.6, 0.3, 0.6]}]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "project"
    phantom = make_phantom(seed=0, shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0))
    admin.init_project(folder, "Harness", LABELS)
    admin.add_case(folder, "c1", phantom.volume, "P1")
    admin.add_member(folder, "alice", "annotator")
    admin.add_member(folder, "rev", "reviewer")
    admin.assign(folder, "c1", "alice")
    return folder


def test_annotator_round_trip_through_the_panel(fresh_env, tmp_path, project):
    r = run_in_slicer(fresh_env, tmp_path, "hub:project_round_trip", project=project, work=tmp_path / "work",
                      queue=tmp_path / "queue")
    out = r["result"]
    assert out["connect_enabled_before"] is False and out["connect_enabled"] is True
    assert out["token_enabled_for_folder"] is False
    assert "Connected to project 'Harness' as alice (annotator)" in out["status"]
    assert [row[0] for row in out["worklist"]] == ["c1"]
    assert out["open_enabled_without_selection"] is False and out["open_enabled"] is True
    # first use of segmentation files in a Slicer without pynrrd: asked, then installed into Slicer's Python
    asked = [i for i in r["installs"] if i["call"] == "pip_ensure" and i["missing"]]
    assert asked and asked[0]["missing"] == ["pynrrd>=1.0"] and asked[0]["prompted"]
    assert asked[0]["constraints"] and not asked[0]["skip_in_testing"]
    installed = [i for i in r["installs"] if i["call"] == "pip_install"]
    assert installed and installed[0]["requirements"] == ["pynrrd>=1.0"] and "error" not in installed[0]
    assert out["segments"] == ["liver", "spleen"] and out["submit_enabled"]
    assert out["red_background"]
    assert out["draft_written"]
    assert "Submitted as version" in out["after_submit"] and out["message_cleared"] == ""
    assert out["worklist_after_submit"][0][2] == "submitted"
    assert out["versions"][0][0] == "alice" and out["versions"][0][3] == "liver done"
    assert out["worklist_after_reopen"][0][2] == "in progress"
    # a finished task never reads as cancelled, and its dialog stays until the task has ended
    assert "Cancelling..." not in out["status_messages"]
    assert out["dialogs"] and all(not d["visible"] and d["canceled_slots"] == 0 and not d["autoClose"]
                                  for d in out["dialogs"])
    assert not out["errors"], out["errors"]


@pytest.fixture
def predicted_project(tmp_path):
    """Three cases; the model pre-annotated c1 (uncertainty 0.2) and c2 (0.6), not c3."""
    import numpy as np

    from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
    from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
    from DicomTeamAnnotateLib.store import open_store

    folder = tmp_path / "project"
    admin.init_project(folder, "Loop", LABELS)
    admin.add_member(folder, "alice", "annotator")
    admin.add_member(folder, "rev", "reviewer")
    phantom = make_phantom(seed=0, shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0))
    for case in ("c1", "c2", "c3"):
        admin.add_case(folder, case, phantom.volume, "P" + case)
        admin.assign(folder, case, "alice")
    layers = np.zeros((1,) + phantom.volume.geometry.shape, np.uint8)
    layers[0, 3:7, 10:22, 10:25] = 1
    seg = Segmentation(layers, phantom.volume.geometry, [Segment("liver", 1, (0.9, 0.5, 0.4), layer=0)])
    write_seg_nrrd(seg, tmp_path / "prediction.seg.nrrd")
    rev = open_store(folder, "rev")
    for case, score in (("c1", 0.2), ("c2", 0.6)):
        rev.push_version(case, tmp_path / "prediction.seg.nrrd", kind="prediction", message="pre-annotated",
                         meta={"model": {"name": "unet-r1", "job_id": "job-1", "weights_sha256": "a" * 64, "round": 1},
                               "uncertainty": {"score": score}})
    return folder


def test_an_annotator_starts_from_the_models_prediction_and_the_push_carries_the_effort(
        slicer_env, tmp_path, predicted_project):
    r = run_in_slicer(slicer_env, tmp_path, "hub:prediction_start_and_effort", project=predicted_project,
                      work=tmp_path / "work", queue=tmp_path / "queue")
    out = r["result"]
    assert out["order_choices"] == ["first", "random", "uncertainty"]
    assert [row[0] for row in out["worklist_first"]] == ["c1", "c2", "c3"]
    headers = out["headers"]
    model, score = headers.index("Model"), headers.index("Uncertainty")
    rows = {row[0]: row for row in out["worklist_uncertainty"]}
    assert [row[0] for row in out["worklist_uncertainty"]] == ["c2", "c1", "c3"]  # least certain first
    assert rows["c1"][model] == "unet-r1 (round 1)" and rows["c1"][score] == "0.200" and rows["c2"][score] == "0.600"
    assert rows["c3"][model] == "" and rows["c3"][score] == ""
    assert "started from the model's prediction (unet-r1, round 1)" in out["case_label"], out["case_label"]
    assert out["versions"][0][0] == "model unet-r1" and out["versions"][0][1] == "prediction"
    start, start_version = out["tracker_start"]
    assert start == "prediction" and start_version == out["versions"][0][-1]
    counts = out["counts"]
    # one operation per apply (the undone stroke was one; the undo is none), named by the active effect
    assert counts["operations"] == {"Erase": 1, "Paint": 3} and counts["sam_prompts"] == 0, counts
    assert "Pushed version" in out["after_push"]
    pushed = out["pushed"]
    assert pushed["parent"] == start_version  # the store knows exactly what was changed
    effort = pushed["effort"]
    assert effort["start"] == "prediction" and effort["editor_operations"] == 4
    # 124 voxels added to the model's 720 (Dice 2*720 / (720 + 844))
    assert effort["voxels_changed"] == 124 and effort["dice_start_result"] == round(1440 / 1564, 5), effort
    assert out["effort_after_close"] is True


def test_reviewer_lists_and_loads_an_annotators_version(slicer_env, tmp_path, project):
    run_in_slicer(slicer_env, tmp_path, "hub:project_round_trip", project=project, work=tmp_path / "a",
                  queue=tmp_path / "queue")
    out = run_in_slicer(slicer_env, tmp_path, "hub:reviewer_loads_version", project=project,
                        work=tmp_path / "rev")["result"]
    assert {row[0] for row in out["versions"]} == {"alice"}
    assert out["load_enabled"] and out["loaded"] and "alice" in out["loaded"]


def test_a_failing_connection_names_the_folder(slicer_env, tmp_path):
    missing = tmp_path / "no-such-project"
    out = run_in_slicer(slicer_env, tmp_path, "hub:connect_fails", location=missing)["result"]
    assert out["connected"] is False and out["status"] == "Not connected."
    assert any(str(missing) in e for e in out["errors"]), out["errors"]


def test_load_dicom_then_cancel(slicer_env, tmp_path, ct_dicom_dir):
    r = run_in_slicer(slicer_env, tmp_path, "hub:load_dicom_and_cancel", folder=ct_dicom_dir)
    out = r["result"]
    assert out["load_enabled_empty"] is False and out["load_enabled"] is True
    assert out["summary"].startswith("Loaded 1 volume(s) from 1 series") and out["volumes"] == 1
    assert out["preset_enabled"] and out["window"] == [1500.0, -600.0]
    assert out["layout"] == 3  # four-up
    assert "Cancelling..." not in out["status_before_cancel"]
    assert out["summary_cancelled"] == "Loading cancelled." and out["volumes_after_cancel"] == 1
    assert out["load_enabled_cleared"] is False
    # the shared CT is JPEG 2000, which Slicer's own Pillow decodes: nothing is asked for
    assert not [i for i in r["installs"] if i["call"] == "pip_ensure" and i["missing"]], r["installs"]


def test_load_dicom_asks_for_decoders_only_when_the_files_need_them(fresh_env, tmp_path):
    from pydicom.data import get_testdata_file

    folder = tmp_path / "jpeg-lossless"
    folder.mkdir()
    source = get_testdata_file("bad_sequence.dcm")  # a CT slice in JPEG Lossless SV1 (pydicom's test files)
    (folder / "slice.dcm").write_bytes(open(source, "rb").read())
    r = run_in_slicer(fresh_env, tmp_path, "hub:load_dicom_needing_decoders", folder=folder)
    asked = [i for i in r["installs"] if i["call"] == "pip_ensure" and i["missing"]]
    assert len(asked) == 1 and any(m.startswith("pylibjpeg-libjpeg") for m in asked[0]["missing"]), asked
    assert asked[0]["prompted"]
    assert r["result"]["summary"].startswith("Loaded 1 volume(s)") and r["result"]["volumes"] == 1, r["result"]


def test_custom_window_spin_boxes_keep_their_range(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "hub:custom_window_range")["result"]
    assert out == {"width_min": 1.0, "width_max": 100000.0, "level_min": -5000.0, "autosave_min": 5}


def test_the_modules_own_self_test_passes_in_slicer(slicer_env, tmp_path):
    """DicomTeamAnnotateTest, as ctest runs it inside Slicer: ingestion into nodes, presets, the layout, a round trip."""
    names = ["test_LoadPhantomSeries", "test_RejectedFilesAreReported", "test_ProjectRoundTrip",
             "test_LoadDicomThroughThePanel"]
    out = run_in_slicer(slicer_env, tmp_path, "scripts:self_tests", testing=True,
                        tests={"DicomTeamAnnotate": names})["result"]
    assert out == {f"DicomTeamAnnotate.{n}": "passed" for n in names}, out


def test_the_thread_guard_catches_slicer_qt_and_mrml_calls_off_the_main_thread(slicer_env, tmp_path):
    r = run_in_slicer(slicer_env, tmp_path, "startup:thread_guard_catches", check=False)
    found = "\n".join(r["violations"])
    assert "vtkMRMLScene.GetNumberOfNodes" in found and "slicer.util.getNodes" in found and "qt.QTimer" in found
    assert "bad worker" in found


def test_on_an_older_slicer_the_sam_effect_is_not_offered_and_the_panels_say_why(slicer_env, tmp_path):
    """Slicer 5.10 has no slicer.packaging: the effect would fail at its first click, so it is not registered."""
    r = run_in_slicer(slicer_env, tmp_path, "startup:older_slicer", slicer_version="5.10")
    out = r["result"]
    assert "SAM Prompt" not in out["effects"]
    for name in ("SamPrompt", "DicomTeamAnnotate"):
        assert any("needs 3D Slicer 5.12 or newer (this is 5.10)" in t for t in out["labels"][name]), out["labels"]
    # reached another way (the console, a script), an install says the same instead of a ModuleNotFoundError
    assert out["ensured"] is False
    assert [b for b in out["boxes"] if "5.12" in b["text"]], out["boxes"]


def test_a_failed_install_shows_one_error(slicer_env, tmp_path):
    r = run_in_slicer(slicer_env, tmp_path, "startup:failed_install")
    out = r["result"]
    assert out["ok"] is False
    errors = [b for b in out["boxes"] if "fail" in b["text"].lower()]
    assert len(errors) == 1 and "Package installation failed" in errors[0]["text"], out["boxes"]


def test_a_failed_pytorch_install_is_a_message(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "startup:failed_torch_install")["result"]
    assert out["ok"] is False
    assert [b for b in out["boxes"] if "Installing PyTorch for a torch feature" in b["text"]], out["boxes"]
