"""Predictions in the store (issue 13): a model's output as a version of kind 'prediction', on every backend.

The rules: only reviewers/admins push predictions and they name their model; blinding hides
annotators from each other, not the model from them; an annotator opening a pre-annotated case
starts from the prediction and their push descends from it; a prediction moves no workflow state
and never conflicts; consensus, adjudication and exports leave predictions out; the worklist rows
carry the prediction and its uncertainty, and order by it.
"""
from __future__ import annotations

import json

import pytest
from store_support import backend_for, postgres_cluster, postgres_url, write_seg  # noqa: F401

from ConsensusReviewLib.store_case import annotation_versions, load_store_case
from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.store import Forbidden, InvalidInput
from DicomTeamAnnotateLib.store.model import choose_version
from DicomTeamAnnotateLib.worklist.cases import open_case
from DicomTeamAnnotateLib.worklist.rows import order_rows, worklist_rows

BACKENDS = ["folder", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def team(request, tmp_path):
    with backend_for(request.param, tmp_path, request) as backend:
        yield backend


def model_meta(name="unet-r1", score=0.2, sha="a" * 64, rnd=2):
    return {"model": {"name": name, "job_id": "job-1", "weights_sha256": sha, "round": rnd, "backend": "monai"},
            "uncertainty": {"score": score, "measure": "mean normalised softmax entropy inside the predicted foreground"}}


def test_prediction_is_pushed_by_staff_naming_its_model(team, tmp_path):
    alice, rev = team.open("alice"), team.open("rev")
    seg = write_seg(tmp_path / "p.seg.nrrd", seed=1)
    with pytest.raises(Forbidden, match="predictions"):
        alice.push_version("c1", seg, kind="prediction", meta=model_meta())
    with pytest.raises(InvalidInput, match="must name its model"):
        rev.push_version("c1", seg, kind="prediction", meta={"uncertainty": {"score": 0.1}})
    p = rev.push_version("c1", seg, kind="prediction", meta=model_meta(), message="by unet-r1")
    assert p["kind"] == "prediction" and p["meta"]["model"]["name"] == "unet-r1" and p["conflict"] is False
    # a prediction is no reading: the case and its annotators stay 'todo'
    assert rev.states("c1")["state"] == "todo" and set(rev.states("c1")["annotators"].values()) == {"todo"}
    # a later model's prediction continues nothing and still is no conflict
    p2 = rev.push_version("c1", write_seg(tmp_path / "p2.seg.nrrd", seed=2), kind="prediction",
                          meta=model_meta("unet-r2", sha="b" * 64, rnd=3))
    assert p2["conflict"] is False
    assert alice.latest_version("c1", kind="prediction")["id"] == p2["id"]


def test_blinding_hides_annotators_not_the_model(team, tmp_path):
    alice, bob, rev = team.open("alice"), team.open("bob"), team.open("rev")
    p = rev.push_version("c1", write_seg(tmp_path / "p.seg.nrrd", seed=1), kind="prediction", meta=model_meta())
    b = bob.push_version("c1", write_seg(tmp_path / "b.seg.nrrd", seed=3), parent=p["id"])
    seen = alice.list_versions("c1")
    assert [v["id"] for v in seen] == [p["id"]]  # the model's version, not bob's
    assert alice.get_version(p["id"])["meta"]["model"]["weights_sha256"] == "a" * 64
    assert alice.fetch_version(p["id"], tmp_path / "got.seg.nrrd").read_bytes() == \
        (tmp_path / "p.seg.nrrd").read_bytes()
    with pytest.raises(Forbidden):
        alice.get_version(b["id"])


def test_opening_a_preannotated_case_starts_from_the_prediction(team, tmp_path):
    alice, rev = team.open("alice"), team.open("rev")
    p = rev.push_version("c1", write_seg(tmp_path / "p.seg.nrrd", seed=1), kind="prediction", meta=model_meta())
    opened = open_case(alice, "c1", tmp_path / "work")
    assert opened.start == "prediction" and opened.version["id"] == p["id"]
    assert opened.segmentation_path.read_bytes() == (tmp_path / "p.seg.nrrd").read_bytes()
    assert opened.prediction["model"] == "unet-r1" and opened.prediction["uncertainty"] == 0.2
    mine = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", seed=4), parent=opened.version["id"])
    assert mine["parent"] == p["id"] and mine["conflict"] is False
    alice.set_state("c1", "submitted")
    assert rev.states("c1")["annotators"]["alice"] == "submitted"
    # from now on she continues her own version
    again = open_case(alice, "c1", tmp_path / "work2")
    assert again.start == "version" and again.version["id"] == mine["id"]
    assert open_case(alice, "c2", tmp_path / "work3").start == "new"


def test_consensus_adjudication_and_exports_leave_predictions_out(team, tmp_path):
    alice, bob, rev = team.open("alice"), team.open("bob"), team.open("rev")
    p = rev.push_version("c1", write_seg(tmp_path / "p.seg.nrrd", seed=1), kind="prediction", meta=model_meta())
    for n, who in enumerate((alice, bob)):
        who.push_version("c1", write_seg(tmp_path / f"{n}.seg.nrrd", seed=10 + n), parent=p["id"])
        who.set_state("c1", "submitted")
    chosen = annotation_versions(rev, "c1")
    assert [v["author"] for v in chosen] == ["alice", "bob"]
    assert choose_version(rev.list_versions("c1"), "adjudicated") is None  # the export's choice: no prediction
    # unless asked: the model joins as one more rater
    inputs, _, versions = load_store_case(rev, "c1", tmp_path / "asked", include_predictions=True)
    assert inputs.annotators == ["alice", "bob", "model"] and versions[-1]["id"] == p["id"]
    assert "the model unet-r1" in inputs.sources[-1]
    out = tmp_path / "consensus"
    store_args = ["--store", team.location, "--user", "rev", "--case", "c1", "--method", "majority"]
    if team.server:
        store_args += ["--token", team.tokens["rev"]]
    assert dicomteam(["consensus", *store_args, "--out", str(out / "without")]) == 0
    assert dicomteam(["consensus", *store_args, "--include-predictions", "--out", str(out / "with")]) == 0
    readers = [json.loads((out / w / "agreement.json").read_text(encoding="utf-8"))
               for w in ("without", "with")]
    assert [r["annotators"] for r in readers] == [["alice", "bob"], ["alice", "bob", "model"]]


def test_worklist_rows_carry_the_prediction_and_order_by_uncertainty(team, tmp_path):
    alice, rev = team.open("alice"), team.open("rev")
    rev.push_version("c2", write_seg(tmp_path / "p2.seg.nrrd", seed=1), kind="prediction", meta=model_meta(score=0.6))
    rev.push_version("c1", write_seg(tmp_path / "p1.seg.nrrd", seed=2), kind="prediction", meta=model_meta(score=0.1))
    rows = worklist_rows(alice, order="uncertainty", queue=None)
    assert [(r["case_id"], r["score"]) for r in rows] == [("c2", 0.6), ("c1", 0.1)]
    assert rows[0]["prediction"]["model"] == "unet-r1" and rows[0]["prediction"]["job_id"] == "job-1"
    assert rows[0]["state"] == "todo" and rows[0]["latest_version"] is None  # not her version
    assert [r["case_id"] for r in worklist_rows(rev, order="first")] == ["c1", "c2"]


def test_order_rows_strategies():
    rows = [{"case_id": f"c{i}", "score": s} for i, s in enumerate([0.3, None, 0.9, 0.1, None])]
    assert [r["case_id"] for r in order_rows(rows, "uncertainty")] == ["c2", "c0", "c3", "c1", "c4"]
    assert [r["case_id"] for r in order_rows(rows, "first")] == ["c0", "c1", "c2", "c3", "c4"]
    shuffled = [r["case_id"] for r in order_rows(rows, "random", seed="alice")]
    assert shuffled == [r["case_id"] for r in order_rows(list(reversed(rows)), "random", seed="alice")]  # stable
    assert sorted(shuffled) == ["c0", "c1", "c2", "c3", "c4"]
    assert any([r["case_id"] for r in order_rows(rows, "random", seed=s)] != shuffled for s in ("bob", "carol", 7))
    with pytest.raises(ValueError, match="order must be one of"):
        order_rows(rows, "smallest")
