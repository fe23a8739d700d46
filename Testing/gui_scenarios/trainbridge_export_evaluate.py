"""Scenario: TrainBridgeLogic export and evaluation views (see test_gui_trainbridge.py).

argv: TMP_DIR. A folder project whose reviewer adjudicated three of four phantom cases is exported
(nnU-Net layout, patient splits); cases made of scene nodes are exported too; a prediction of the
test case (the ground truth with part of the liver missed) is evaluated with TrainBridgeLib's own
evaluation, and the panel's logic loads it: table, comparison nodes, one label, side by side or
overlaid, jump to the worst slice.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("TrainBridge")

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import slicer  # noqa: E402

from DicomTeamAnnotateLib.core.segmentation import Segmentation  # noqa: E402
from DicomTeamAnnotateLib.demo.phantom import make_phantom  # noqa: E402
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd  # noqa: E402
from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node  # noqa: E402
from DicomTeamAnnotateLib.store import admin, open_store  # noqa: E402
from TrainBridgeLib.evaluation.evaluate import evaluate_folders  # noqa: E402

tmp = Path(sys.argv[1])
LABELS = ("liver", "spleen", "kidney_left", "kidney_right")
phantoms = [make_phantom(seed=n, shape=(16, 32, 32), spacing=(1.5, 1.5, 3.0)) for n in range(4)]
segments = {s.name: s for s in phantoms[0].segmentation().segments}
project = tmp / "project"
admin.init_project(project, "Train", [{"name": n, "value": segments[n].label_value, "color": list(segments[n].color),
                                       "terminology": segments[n].terminology} for n in LABELS])
admin.add_member(project, "rev", "reviewer")
reviewer = open_store(project, "rev")
for n, phantom in enumerate(phantoms):
    admin.add_case(project, f"c{n}", phantom.volume, f"P{n}")
    if n < 3:  # c3 has no adjudicated version: skipped by the export
        truth = Segmentation.from_masks({name: phantom.labels == phantom.label_values[name] for name in LABELS},
                                        phantom.volume.geometry, terminology={k: segments[k].terminology for k in LABELS})
        path = write_seg_nrrd(truth, tmp / "truth" / f"c{n}.seg.nrrd")
        reviewer.push_version(f"c{n}", path, kind="adjudicated", message="ground truth")

out = {}
logic = M.TrainBridgeLogic()
logic.store = reviewer

# --- export from the project ------------------------------------------------------------------------
cases, labels = logic.casesFromStore(tmp / "download")
out["store_cases"] = sorted(c.case_id for c in cases)
reports = []
summary = logic.exportDataset(cases, tmp / "raw", "Team", labels=labels, folds=2, test_fraction=0.34,
                              monai_json=True, progress=lambda done, total: reports.append((done, total)))
dataset = Path(summary["dataset_dir"])
out["dataset_name"] = dataset.name
out["counts"] = [summary["n_train"], summary["n_test"], summary["folds"]]
out["labels"] = summary["labels"]
out["monai_json"] = Path(summary["monai_json"]).is_file()
out["export_progress_last"] = reports[-1]
records = json.loads((dataset / "cases.json").read_text())
out["provenance"] = sorted(r.get("source", {}).get("kind") for r in records.values())

# --- export from scene nodes (patients P0, P0, P1: one patient never in two splits) -----------------
node_cases = []
for n, patient in enumerate(("P0", "P0", "P1")):
    volume = volume_to_node(phantoms[n].volume, name=f"image{n}")
    seg = segmentation_to_node(phantoms[n].segmentation(), reference_volume_node=volume, name=f"labels{n}")
    node_cases.append(logic.caseFromNodes(f"node{n}", patient, volume, seg))
node_summary = logic.exportDataset(node_cases, tmp / "raw", "Nodes", folds=2, test_fraction=0.0)
node_dataset = Path(node_summary["dataset_dir"])
out["node_dataset_ids_differ"] = node_summary["dataset_id"] != summary["dataset_id"]
values = node_summary["labels"]
label_file = sitk.GetArrayFromImage(sitk.ReadImage(str(node_dataset / "labelsTr" / "node1.nii.gz")))
expected = np.zeros_like(label_file)
for name, value in values.items():
    if name != "background":
        expected[phantoms[1].labels == phantoms[1].label_values[name]] = value
out["node_label_equal"] = bool(np.array_equal(label_file, expected))
splits = json.loads((node_dataset / "splits_final.json").read_text())
out["p0_together"] = [sorted(f["val"]) for f in splits]
try:
    logic.caseFromNodes("x", "P", None, None)
    out["missing_nodes"] = "accepted"
except ValueError as exc:
    out["missing_nodes"] = str(exc)

# --- evaluation of a prediction that misses part of the liver ----------------------------------------
test_case = sorted(p.name[:-7] for p in (dataset / "labelsTs").glob("*.nii.gz"))[0]
gt_image = sitk.ReadImage(str(dataset / "labelsTs" / f"{test_case}.nii.gz"))
pred = sitk.GetArrayFromImage(gt_image)
liver_value = summary["labels"]["liver"]
k = int(np.flatnonzero((pred == liver_value).any(axis=(1, 2)))[len(np.flatnonzero((pred == liver_value).any(axis=(1, 2)))) // 2])
pred[k][pred[k] == liver_value] = 0  # the middle liver slice missed
pred_image = sitk.GetImageFromArray(pred)
pred_image.CopyInformation(gt_image)
(tmp / "pred").mkdir()
sitk.WriteImage(pred_image, str(tmp / "pred" / f"{test_case}.nii.gz"))
evaluate_folders(dataset / "labelsTs", tmp / "pred", tmp / "evaluation", labels=dataset / "dataset.json")

evaluation = logic.loadEvaluation(tmp / "evaluation")
rows = logic.evaluationRows(evaluation)
out["first_row"] = [rows[0]["case"], rows[0]["label"]]
out["dice_sorted"] = [r["dice"] for r in rows] == sorted(r["dice"] for r in rows)
out["summary_text"] = logic.summaryText(evaluation)
worst = evaluation["worst_slices"][0]
out["worst_slice"] = [worst["case"], worst["label"], worst["slice"], worst["dice"]]
out["missed_slice"] = k
try:
    logic.loadEvaluation(tmp / "nowhere")
    out["no_metrics"] = "accepted"
except FileNotFoundError as exc:
    out["no_metrics"] = str(exc)

read = logic.readComparison(evaluation, test_case)
nodes = logic.showComparison(read)
again = logic.showComparison(logic.readComparison(evaluation, test_case), previous=nodes)
out["comparison_nodes_reused"] = all(again[key] is nodes[key] for key in ("image", "gt", "pred"))
logic.setComparisonView(nodes, "side by side", "liver")
gt_display, pred_display = nodes["gt"].GetDisplayNode(), nodes["pred"].GetDisplayNode()
out["side_by_side_views"] = [gt_display.GetNumberOfViewNodeIDs() and gt_display.GetNthViewNodeID(0),
                             pred_display.GetNumberOfViewNodeIDs() and pred_display.GetNthViewNodeID(0)]
segmentation = nodes["pred"].GetSegmentation()
out["visible_segments"] = sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())
                                 if pred_display.GetSegmentVisibility(segmentation.GetNthSegmentID(i)))
logic.setComparisonView(nodes, "overlaid", "spleen")
out["overlaid_views"] = [gt_display.GetNumberOfViewNodeIDs(), pred_display.GetNumberOfViewNodeIDs()]
out["overlaid_fill"] = [gt_display.GetVisibility2DFill(), pred_display.GetVisibility2DFill()]
out["pred_liver_voxels"] = int(read["pred"].mask("liver").sum())
out["gt_liver_voxels"] = int(read["gt"].mask("liver").sum())

red = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceNode")
red.SetLayoutName("Red")
logic.jumpToSlice(worst)
m = red.GetSliceToRAS()
out["jumped_to"] = [m.GetElement(r, 3) for r in range(3)]
out["center_ras"] = worst["center_ras"]
gui_support.emit(out)
