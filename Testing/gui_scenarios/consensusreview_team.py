"""Scenario: ConsensusReviewLogic on a real folder project (see test_gui_consensusreview.py).

argv: TMP_DIR. Three simulated readers push their segmentations of two phantom cases (one reader
only on a third); the reviewer computes STAPLE, gets the nodes and the disagreement layer, adjudicates
from one reader's version and publishes; then builds the review queue and marks flagged cases.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("ConsensusReview")

import numpy as np  # noqa: E402
import slicer  # noqa: E402

from ConsensusReviewLib.simulate import simulate_reader_segmentations  # noqa: E402
from DicomTeamAnnotateLib.demo.phantom import make_phantom  # noqa: E402
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd  # noqa: E402
from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, node_to_volume, segmentation_to_node, volume_to_node  # noqa: E402
from DicomTeamAnnotateLib.store import admin, open_store  # noqa: E402

tmp = Path(sys.argv[1])
project = tmp / "project"
LABELS = ("liver", "spleen", "kidney_left", "kidney_right")
phantoms = {case: make_phantom(seed=seed, shape=(16, 48, 48), spacing=(1.5, 1.5, 3.0))
            for case, seed in (("c1", 0), ("c2", 1), ("c3", 2))}
segments = {s.name: s for s in phantoms["c1"].segmentation().segments}
admin.init_project(project, "Consensus", [{"name": n, "value": segments[n].label_value, "color": list(segments[n].color),
                                           "terminology": segments[n].terminology} for n in LABELS])
readers = ["a1", "a2", "a3"]
for user in readers:
    admin.add_member(project, user, "annotator")
admin.add_member(project, "rev", "reviewer")
files = {}
for case, phantom in phantoms.items():
    admin.add_case(project, case, phantom.volume, f"P-{case}")
    # c2's readers are sloppier (another seed); c3 has a single reader: no consensus possible
    segs = simulate_reader_segmentations(phantom, 3, seed=0 if case == "c1" else 7)
    for user, seg in list(zip(readers, segs))[: 1 if case == "c3" else 3]:
        admin.assign(project, case, user)
        path = write_seg_nrrd(seg, tmp / "readers" / case / f"{user}.seg.nrrd")
        files.setdefault(case, []).append(path)
        store = open_store(project, user)
        store.push_version(case, path, message=f"{user} reads {case}")
        store.set_state(case, "submitted")

out = {}
logic = M.ConsensusReviewLogic()
logic.store = open_store(project, "rev")
out["cases"] = logic.reviewCases()

# --- consensus of a project case -----------------------------------------------------------------
prepared = logic.inputsFromStore("c1", tmp / "work" / "c1")
run = logic.runConsensus(prepared, "staple", {"tolerance_mm": 1.0}, {"min_mean_pairwise_dice": 0.8},
                         tmp / "out" / "c1")
result = run["result"]
out["annotators"] = result.inputs.annotators
out["labels"] = [s.name for s in result.inputs.labels]
out["versions_used"] = [v["author"] for v in run["versions"]]
out["report_exists"] = Path(run["paths"]["report"]).is_file()
out["status_keys"] = sorted(run["status"])
out["label_rows"] = len(logic.labelRows(result))
out["annotator_rows"] = len(logic.annotatorRows(result))
out["first_annotator_row"] = sorted(logic.annotatorRows(result)[0])

nodes = logic.showResult(run)
consensus = node_to_segmentation(nodes["consensus"], reference_geometry=result.inputs.geometry)
out["consensus_node_equal"] = all(np.array_equal(consensus.mask(n), result.mask(n)) for n in LABELS)
out["reference_voxels_equal"] = bool(np.array_equal(node_to_volume(nodes["reference"]).array,
                                                    phantoms["c1"].volume.array))
again = logic.showResult(logic.runConsensus(prepared, "majority"), previous=nodes)
out["nodes_reused"] = again["consensus"] is nodes["consensus"] and again["reference"] is nodes["reference"]
out["consensus_nodes_in_scene"] = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")

out["map_choices"] = [k for k, _text in logic.mapChoices(result)]
map_node = logic.mapVolumeNode(run, "disagreement")
display = map_node.GetDisplayNode()
out["map_equal"] = bool(np.allclose(slicer.util.arrayFromVolume(map_node), result.disagreement))
out["map_geometry_error"] = float(np.abs(np.subtract(node_to_volume(map_node).geometry.origin,
                                                     result.inputs.geometry.to_lps().origin)).max())
out["map_display"] = [display.GetColorNodeID() == logic.mapColorNode().GetID(), display.GetApplyThreshold(),
                      display.GetLowerThreshold() > 0, round(display.GetWindow(), 6), display.GetAutoWindowLevel()]
out["map_nonzero"] = int(np.count_nonzero(result.disagreement))
votes = logic.mapVolumeNode(run, "votes:liver", node=map_node)
out["votes_reuse_node"] = votes is map_node
out["votes_max"] = float(slicer.util.arrayFromVolume(votes).max())
out["votes_window"] = round(votes.GetDisplayNode().GetWindow(), 6)

# --- adjudication from reader a2's version, published with the audit record -----------------------
starts = dict(logic.adjudicationStarts(run))
out["starts"] = sorted(starts)
node = logic.startAdjudication(run, "annotator:a2", nodes["reference"])
start = node_to_segmentation(node, reference_geometry=result.inputs.geometry)
k = result.inputs.annotators.index("a2")
out["start_is_a2"] = all(np.array_equal(start.mask(n), result.inputs.masks[n][k]) for n in LABELS)
liver = start.mask("liver").copy()
removed = int(liver[:, :, :20].sum())
liver[:, :, :20] = False
segmentation_to_node(start.with_masks({"liver": liver}), reference_volume_node=nodes["reference"], node=node)
version = logic.publish(logic.adjudicatedSegmentation(), note="trimmed the liver")
a2_version = next(v["id"] for v in run["versions"] if v["author"] == "a2")
audit = version["meta"]["audit"]
out["published"] = {"kind": version["kind"], "author": version["author"], "reviewer": audit["reviewer"],
                    "method": audit["method"], "started_from_a2": audit["started_from"] == f"version {a2_version}",
                    "inputs": [i["author"] for i in audit["inputs"]], "note": audit["note"],
                    "liver_removed": audit["edits"]["liver"]["removed"]}
out["removed"] = removed
out["case_state"] = logic.store.states("c1")["state"]

# --- nodes and files as inputs give the same masks ------------------------------------------------
reference = volume_to_node(phantoms["c1"].volume, name="c1 reference")
reader_nodes = [segmentation_to_node(s, reference_volume_node=reference, name=f"reader {u}")
                for u, s in zip(readers, simulate_reader_segmentations(phantoms["c1"], 3, seed=0))]
from_nodes = logic.inputsFromSegmentations(logic.segmentationsFromNodes(reader_nodes, reference))
from_files = logic.inputsFromFiles(files["c1"], phantoms["c1"].volume)
out["nodes_equal_store"] = all(np.array_equal(from_nodes["inputs"].masks[n], result.inputs.masks[n]) for n in LABELS)
out["files_equal_store"] = all(np.array_equal(from_files["inputs"].masks[n], result.inputs.masks[n]) for n in LABELS)
out["node_annotators"] = from_nodes["inputs"].annotators
try:
    logic.segmentationsFromNodes(reader_nodes[:1])
    out["one_node"] = "accepted"
except ValueError as exc:
    out["one_node"] = str(exc)

# --- review queue --------------------------------------------------------------------------------
reports = []
built = logic.buildReviewQueue("majority", tmp / "work", {"min_mean_pairwise_dice": 0.97}, markInReview=True,
                               outDir=tmp / "out", progress=lambda d, t: reports.append((d, t)))
out["queue"] = [(q["case_id"], q["needs_review"]) for q in built["queue"]]
out["queue_dice"] = [q["mean_pairwise_dice"] for q in built["queue"]]
out["skipped"] = built["skipped"]
out["marked"] = built["marked"]
out["states_after"] = {c: logic.store.states(c)["state"] for c in ("c1", "c2", "c3")}
out["project_report"] = Path(built["report"]).is_file()
out["progress_last"] = reports[-1]
gui_support.emit(out)
