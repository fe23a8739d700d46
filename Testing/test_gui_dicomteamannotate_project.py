"""DicomTeamAnnotateLogic (the panel's logic) on real project stores, headless (see gui_support.py).

A folder project: worklist, open a case into MRML nodes with the project's ontology and window
preset, draw, autosave a draft, resume from it, submit, reopen; blinding for annotators, all
versions for the reviewer. A real server process: token handling, a push queued while the
server is down and sent when it is back.
"""
from __future__ import annotations

from gui_support import run_scenario


def _env(tmp_path):
    # The offline queue and the download cache of the scenario, never the user's own.
    return {"DICOMTEAM_HOME": str(tmp_path / "home"), "DICOMTEAM_CACHE": str(tmp_path / "cache")}


def test_annotator_round_trip_on_a_folder_project(tmp_path):
    out = run_scenario("dicomteamannotate_project", tmp_path, env=_env(tmp_path))
    assert out["whoami"] == {"user": "alice", "role": "annotator"} and out["project_name"] == "Team"
    assert out["worklist"] == [["c1", "todo"], ["c2", "todo"]]
    assert out["filtered"] == ["c2"]
    assert "location" in out["empty_location"]

    # opening: the image on its grid, the project's labels (names, colours, terminology), its preset
    assert out["source"] == "new" and out["parent"] is None
    assert out["voxels_equal"] and out["geometry_error"] < 1e-6
    assert out["window"] == out["preset_window"] + [0], "the project's window preset, auto window/level off"
    assert out["segments"] == [["liver", [0.86, 0.55, 0.44]], ["spleen", [0.62, 0.361, 0.569]]]
    assert "SCT^10200004^Liver" in out["liver_terminology"]
    assert out["case_attribute"] == "c1"

    # drafts: written only on change, offered back when newer than my latest version
    assert out["unchanged_draft"] == "None"
    assert out["draft_written"] and out["second_draft"] == "None"
    assert out["draft_is_newer"] and out["resumed_source"] == "draft"
    assert out["old_nodes_replaced"], "opening the open case again replaces its nodes"
    assert out["resumed_liver"] == out["liver_voxels"] == 700

    # submit: the stored bytes are what was drawn; the draft is obsolete; the chain of parents holds
    assert out["pushed"] == {"author": "alice", "parent": None, "message": "first pass", "kind": "annotation",
                             "queued": None}
    assert not out["draft_after_push"] and out["parent_after_push"]
    assert out["stored_liver_equal"]
    assert out["state_after_submit"] == "submitted" and out["reopened"] == "in_progress"
    assert out["second_parent_is_first"]

    # blind project: bob sees nothing of alice's; the reviewer sees and loads her versions
    assert out["bob_sees"] == []
    assert out["reviewer_sees"] == [["alice", "first pass"], ["alice", ""]]
    assert out["version_node_attribute"] and out["version_node_liver_equal"]


def test_server_token_offline_queue_and_recovery(tmp_path):
    out = run_scenario("dicomteamannotate_offline", tmp_path, env=_env(tmp_path))
    assert out["saved_in"] == "settings" and out["reloaded"] and out["other_user"] == ""
    assert out["settings_key_has_no_url"]
    assert out["wrong_token"] == "Unauthorized"
    assert out["download_progress_reaches_total"]
    assert out["token_in_scene"] is False, "the token must never be written into the scene"

    assert out["queued"] and out["banner_count"] == 1 and out["parent_is_queued_version"]
    assert out["worklist_offline"] == "StoreUnavailable"
    assert out["sent"] and out["remaining"] == 0 and out["banner_after"] == 0
    assert out["state_after_flush"] == "submitted"
    assert out["versions_after_flush"] == ["offline work"]
