"""The annotation loop in the TrainBridge panel, inside the Slicer harness (Slicer 5.12's packages, real MRML):
'Pre-annotate' with a MONAI job trained here pushes predictions of the cases not yet annotated through the
hub's connection (first use asks for torch, MONAI and pynrrd), a second click pushes nothing twice, and
'Effort' shows the table per round and annotator with its picture. The harness fails a run when a Slicer, Qt
or MRML call happens off the main thread."""
from __future__ import annotations

import pytest
from loop_support import ONTOLOGY, SHAPE, train_small_monai_job
from slicer_support import run_in_slicer

from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.store import admin, open_store
from DicomTeamAnnotateLib.worklist.effort import EffortTracker

pytestmark = pytest.mark.slow  # a short training here, then first-use installs and predictions in the harness



def test_preannotate_then_effort_from_the_panel(fresh_env, tmp_path):
    model = train_small_monai_job(tmp_path / "model")
    project = tmp_path / "project"
    admin.init_project(project, "Loop", ONTOLOGY)
    admin.add_member(project, "rev", "reviewer")
    admin.add_member(project, "alice", "annotator")
    for seed in (30, 31, 32):
        admin.add_case(project, f"ph{seed}", make_phantom(seed=seed, shape=SHAPE).volume, f"P{seed}")
        admin.assign(project, f"ph{seed}", "alice")
    # alice annotated ph30 from scratch in 7 active minutes: no candidate for the model, one effort row
    truth = make_phantom(seed=30, shape=SHAPE).segmentation()
    tracker = EffortTracker(now=0)
    for minute in range(1, 8):  # an edit a minute for seven minutes
        tracker.editor_operation("Paint", 60 * minute)
    alice = open_store(project, "alice")
    alice.push_version("ph30", write_seg_nrrd(truth, tmp_path / "a.seg.nrrd"), meta={"effort": tracker.record(None, truth, 420)})
    r = run_in_slicer(fresh_env, tmp_path, "loop:preannotate_and_effort", project=project, work=tmp_path / "work",
                      model=model)
    out = r["result"]
    assert out["enabled_before_connect"] == [False, False] and out["enabled"] is True
    assert out["status_before_connect"].startswith("Connect to a project")
    assert out["annotator"][0] is False and "reviewer or an admin" in out["annotator"][1], out["annotator"]
    assert out["not_a_model"][0] is False and "not a model (expected job.json" in out["not_a_model"][1], out["not_a_model"]
    assert out["strategies"] == ["first", "random", "uncertainty"]
    # limit 1, least certain first: only the case the model is less sure of, the other skipped with its score
    assert out["status"].startswith("Round 2: 1 prediction(s) pushed by model/job"), out["status"]
    first = [c for c, kinds in out["kinds_first"].items() if kinds == ["prediction"]]
    other = ({"ph31", "ph32"} - set(first)).pop()
    assert len(first) == 1 and out["scores"][first[0]] >= out["scores"][other], (out["kinds_first"], out["scores"])
    assert f"{other}: less uncertain than the ones pushed" in out["skipped_first"], out["skipped_first"]
    assert out["kinds"] == {"ph30": ["annotation"], "ph31": ["prediction"], "ph32": ["prediction"]}
    assert all(0.0 <= s <= 1.0 for s in out["scores"].values())
    assert out["again"]["status"].startswith("Round 2: 1 prediction(s) pushed") and "1 case(s) skipped" in out["again"]["status"]
    assert f"{first[0]}: already pre-annotated by this model" in out["again"]["skipped"]
    effort = out["effort"]
    assert effort["status"] == "1 case(s) with effort records." and effort["picture"].endswith("effort.png")
    with open(effort["picture"], "rb") as fh:  # a real PNG, not only a path the stand-in's pixmap kept
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [row[:4] for row in effort["rows"]] == [["1", "alice", "1", "7.000"], ["1", "all", "1", "7.000"]]
    asked = " ".join(out["questions"])
    assert "PyTorch" in asked and "monai>=1.3" in asked and "matplotlib>=3.7" in asked
