"""TrainBridgeLogic (the panel's logic) headless (see gui_support.py): export from a real folder
project and from scene nodes, the evaluation views (table, comparison nodes, one label, side by
side / overlaid, jump to the worst slice), and a real MONAI training job followed, reattached and
cancelled as the panel does it.
"""
from __future__ import annotations

from gui_support import run_scenario


def test_export_from_project_and_nodes_and_evaluation_views(tmp_path):
    out = run_scenario("trainbridge_export_evaluate", tmp_path, env={"DICOMTEAM_CACHE": str(tmp_path / "cache")})
    # the project's adjudicated versions only (c3 has none), the project's labels in order
    assert out["store_cases"] == ["c0", "c1", "c2"]
    assert out["dataset_name"] == "Dataset500_Team" and out["counts"] == [2, 1, 2]
    assert out["labels"] == {"background": 0, "liver": 1, "spleen": 2, "kidney_left": 3, "kidney_right": 4}
    assert out["monai_json"] and out["export_progress_last"] == [3, 3]
    assert out["provenance"] == ["adjudicated"] * 3
    # nodes: labels written on the image grid with the dataset's values; a patient stays in one fold
    assert out["node_dataset_ids_differ"] and out["node_label_equal"]
    assert out["p0_together"] == [["node0", "node1"], ["node2"]] or out["p0_together"] == [["node2"], ["node0", "node1"]]
    assert "volume node and a segmentation node" in out["missing_nodes"]

    # evaluation: the missed liver slice is the worst, the table starts with it
    assert out["first_row"][1] == "liver" and out["dice_sorted"]
    assert out["summary_text"].startswith("liver: Dice 0.8")
    assert out["worst_slice"][1:] == ["liver", out["missed_slice"], 0.0]
    assert "no evaluation here" in out["no_metrics"]
    # comparison: nodes reused, one label, side by side in the two views, or overlaid with an outline
    assert out["comparison_nodes_reused"]
    assert out["side_by_side_views"] == ["vtkMRMLSliceNodeRed", "vtkMRMLSliceNodeYellow"]
    assert out["visible_segments"] == ["liver"]
    assert out["overlaid_views"] == [0, 0] and out["overlaid_fill"] == [True, False]
    assert 0 < out["pred_liver_voxels"] < out["gt_liver_voxels"]
    assert out["jumped_to"] == out["center_ras"]


def test_training_job_is_followed_reattached_and_cancelled(tmp_path):
    out = run_scenario("trainbridge_job", tmp_path)
    assert "dataset folder" in out["no_folders"]
    assert out["running_status"] == {"state": "running", "step": "train", "backend": "monai", "num_epochs": 40}
    assert out["status_text"].startswith("running, step train, epoch ") and "val Dice" in out["status_text"]
    assert out["curves_png"]
    assert out["attached_state"] == "running"
    assert out["cancelled"] == "cancelled" and out["supervisor_gone"] and out["after_cancel"] == "cancelled"
    assert "not a job folder" in out["attach_nothing"]
