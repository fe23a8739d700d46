"""Scenario: DicomTeamAnnotateLogic on a real folder project (see test_gui_dicomteamannotate_project.py).

argv: TMP_DIR. Alice opens a case (image, ontology segmentation, window preset), draws, autosaves,
reopens from the draft, submits, reopens; bob (blind) sees nothing of hers; the reviewer loads her version.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("DicomTeamAnnotate")

import numpy as np  # noqa: E402
import store_support as ss  # noqa: E402
import vtk  # noqa: E402

from DicomTeamAnnotateLib.core.windowing import get_preset  # noqa: E402
from DicomTeamAnnotateLib.io.segmentations import read_segmentation  # noqa: E402
from DicomTeamAnnotateLib.slicer.mrml import node_to_segmentation, node_to_volume, segmentation_to_node  # noqa: E402
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue  # noqa: E402

tmp = Path(sys.argv[1])
project, work = tmp / "project", tmp / "work"
ss.make_team_project(project)
out = {}

logic = M.DicomTeamAnnotateLogic()
logic.queue = OfflineQueue(tmp / "queue")
info = logic.connect(str(project), "alice")
logic.setStore(info["store"])
out["whoami"] = info["whoami"]
out["project_name"] = info["project"]["name"]
out["worklist"] = [(r["case_id"], r["state"]) for r in logic.worklistRows()]
out["filtered"] = [r["case_id"] for r in logic.worklistRows("todo", "c2")]
try:
    logic.connect("", "alice")
    out["empty_location"] = "accepted"
except ValueError as exc:
    out["empty_location"] = str(exc)

# --- open: image, ontology, preset --------------------------------------------------------------
reports = []
fetched = logic.fetchCase("c1", work, progress=lambda done, total=None: reports.append((done, total)))
session = logic.loadCase(fetched)
out["source"] = session.source
out["parent"] = session.parent
vol = node_to_volume(session.volume_node)
ref = ss.synthetic_volume(seed=1)
out["voxels_equal"] = bool(np.array_equal(vol.array, ref.array))
out["geometry_error"] = float(np.abs(np.subtract(vol.geometry.origin, ref.geometry.to_lps().origin)).max())
display = session.volume_node.GetDisplayNode()
out["window"] = [display.GetLevel(), display.GetWindow(), display.GetAutoWindowLevel()]
out["preset"] = fetched.window_preset
out["preset_window"] = list(get_preset(fetched.window_preset))
segmentation = session.segmentation_node.GetSegmentation()
segments = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
out["segments"] = [(s.GetName(), [round(c, 3) for c in s.GetColor()]) for s in segments]
tag = vtk.reference("")
segments[0].GetTag("TerminologyEntry", tag)
out["liver_terminology"] = str(tag)
out["case_attribute"] = session.segmentation_node.GetAttribute(M.CASE_ATTRIBUTE)
out["unchanged_draft"] = str(logic.saveDraft(session))

# --- draw, autosave, open again from the draft ---------------------------------------------------
seg = logic.currentSegmentation(session)
liver = np.zeros(seg.geometry.shape, bool)
liver[4:9, 10:20, 8:22] = True
segmentation_to_node(seg.with_masks({"liver": liver}), reference_volume_node=session.volume_node,
                     node=session.segmentation_node)
draft = logic.saveDraft(session)
out["draft_written"] = draft is not None and draft.is_file()
out["second_draft"] = str(logic.saveDraft(session))
again = logic.fetchCase("c1", work)
out["draft_is_newer"] = logic.draftIsNewer(again)
resumed = logic.loadCase(again, useDraft=True)
out["old_nodes_replaced"] = not session.alive()
out["resumed_source"] = resumed.source
out["resumed_liver"] = int(logic.currentSegmentation(resumed).mask("liver").sum())

# --- submit, reopen -----------------------------------------------------------------------------
version = logic.pushSegmentation(resumed, logic.currentSegmentation(resumed), "first pass", submit=True)
logic.afterPush(resumed, version)
out["pushed"] = {k: version.get(k) for k in ("author", "parent", "message", "kind", "queued")}
out["draft_after_push"] = resumed.draft_path.exists()
out["parent_after_push"] = resumed.parent == version["id"]
stored = logic.store.fetch_version(version["id"], tmp / "check.seg.nrrd")
out["stored_liver_equal"] = bool(np.array_equal(read_segmentation(stored).mask("liver"), liver))
out["state_after_submit"] = {r["case_id"]: r["state"] for r in logic.worklistRows()}["c1"]
out["reopened"] = logic.reopen("c1")["annotators"]["alice"]
second = logic.pushSegmentation(resumed, logic.currentSegmentation(resumed), "", submit=False)
out["second_parent_is_first"] = second["parent"] == version["id"]

# --- blind annotator, reviewer ----------------------------------------------------------------------
logic.setStore(logic.connect(str(project), "bob")["store"])
out["bob_sees"] = [v["author"] for v in logic.listVersions("c1")]
logic.setStore(logic.connect(str(project), "rev")["store"])
versions = logic.listVersions("c1")
out["reviewer_sees"] = [(v["author"], v["message"]) for v in versions]
node = logic.loadVersion(*logic.fetchVersion(versions[0], work))
out["version_node_attribute"] = node.GetAttribute(M.VERSION_ATTRIBUTE) == versions[0]["id"]
out["version_node_liver_equal"] = bool(np.array_equal(
    node_to_segmentation(node, reference_geometry=resumed.geometry).mask("liver"), liver))
out["liver_voxels"] = int(liver.sum())
gui_support.emit(out)
