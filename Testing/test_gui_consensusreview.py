"""ConsensusReviewLogic (the panel's logic) on a real folder project, headless (see gui_support.py).

Three simulated readers push to the project; the reviewer's consensus becomes MRML nodes (consensus
segmentation, disagreement and vote-count layers with their colour table and transparency), the
adjudication starts from one reader's version and is published with its audit record, and the
review queue is built (lowest agreement first) and marks flagged cases 'in review'.
"""
from __future__ import annotations

from gui_support import run_scenario

LABELS = ["liver", "spleen", "kidney_left", "kidney_right"]


def test_reviewer_round_trip_consensus_layers_adjudication_and_queue(tmp_path):
    out = run_scenario("consensusreview_team", tmp_path, env={"DICOMTEAM_HOME": str(tmp_path / "home")})
    assert out["cases"][0] == {"case_id": "c1", "state": "submitted", "annotators": ["a1", "a2", "a3"]}

    # inputs from the project: every reader's latest version, the project's labels only
    assert out["annotators"] == out["versions_used"] == ["a1", "a2", "a3"]
    assert out["labels"] == LABELS
    assert out["report_exists"] and "needs_review" in out["status_keys"] and "reasons" in out["status_keys"]
    assert out["label_rows"] == 4 and out["annotator_rows"] == 12
    assert {"dice", "hd95", "nsd", "sensitivity", "specificity", "volume_diff_ml", "tendency"} <= set(
        out["first_annotator_row"])

    # nodes: the consensus node holds the computed masks, the image is the case's, nodes are reused
    assert out["consensus_node_equal"] and out["reference_voxels_equal"]
    assert out["nodes_reused"] and out["consensus_nodes_in_scene"] == 1

    # the disagreement layer: the computed map on the inputs' grid, coloured, zero transparent
    assert out["map_choices"][0] == "disagreement"
    assert "votes:liver" in out["map_choices"] and "probability:liver" in out["map_choices"]
    assert out["map_equal"] and out["map_geometry_error"] < 1e-6
    assert out["map_display"] == [True, 1, True, 1.0, 0]
    assert out["votes_reuse_node"] and out["votes_max"] == 3.0 and out["votes_window"] == 3.0

    # adjudication from a2's version: what was edited and where it started are in the audit record
    assert out["starts"] == ["annotator:a1", "annotator:a2", "annotator:a3", "consensus"]
    assert out["start_is_a2"]
    published = out["published"]
    assert published["kind"] == "adjudicated" and published["author"] == published["reviewer"] == "rev"
    assert published["method"] == "staple" and published["started_from_a2"]
    assert published["inputs"] == ["a1", "a2", "a3"] and published["note"] == "trimmed the liver"
    assert published["liver_removed"] == out["removed"] > 0
    assert out["case_state"] == "adjudicated"

    # nodes and files give the same aligned masks as the project
    assert out["nodes_equal_store"] and out["files_equal_store"]
    assert out["node_annotators"] == ["reader a1", "reader a2", "reader a3"]
    assert "at least two" in out["one_node"]

    # review queue: lowest agreement first, single-reader case skipped, flagged cases marked
    assert sorted(case for case, _flag in out["queue"]) == ["c1", "c2"] and all(flag for _case, flag in out["queue"])
    assert out["queue_dice"] == sorted(out["queue_dice"])
    assert len(out["skipped"]) == 1 and out["skipped"][0].startswith("c3:")
    assert out["marked"] == ["c2"], "c1 is adjudicated already; c2 crosses the 0.97 Dice threshold"
    assert out["states_after"] == {"c1": "adjudicated", "c2": "in_review", "c3": "submitted"}
    assert out["project_report"] and out["progress_last"] == [3, 3]
