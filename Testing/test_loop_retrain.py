"""Retraining in the loop (issue 13): `dicomteam train --store ... --when-new N` starts a training only when
N adjudicated cases are new since the last one, keeps every earlier case in its split (a test patient stays a
test patient), and `preannotate --model LOOP_DIR` uses the loop's latest finished model."""
from __future__ import annotations

import json

import pytest

from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.store import admin, open_store
from TrainBridgeLib.export.splits import check_splits, extend_splits, make_splits
from TrainBridgeLib.jobs.runner import Job
from TrainBridgeLib.loop.backends import open_model
from TrainBridgeLib.loop.retrain import read_loop

SHAPE = (16, 24, 24)


def test_extend_splits_keeps_every_earlier_case_in_place():
    before = make_splits({f"c{i}": f"P{i}" for i in range(10)}, test_fraction=0.2, folds=3, seed=1)
    grown = {**{f"c{i}": f"P{i}" for i in range(10) if i != 4}, **{f"n{i}": f"Q{i}" for i in range(6)},
             "c10": "P1"}  # a second case of an earlier patient, and c4 no longer adjudicated
    after = extend_splits(before, grown, test_fraction=0.34, seed=1)
    assert not check_splits(after)
    assert set(before.test) - {"c4"} <= set(after.test)
    for k, fold in enumerate(before.folds):
        assert set(fold["val"]) - {"c4"} <= set(after.folds[k]["val"])
    assert "c4" not in after.patient_of and len(after.folds) == 3
    patient_1 = "test" if "c1" in after.test else after.fold_of("c1")
    assert ("test" if "c10" in after.test else after.fold_of("c10")) == patient_1  # follows its patient
    new_test = [c for c in after.test if c.startswith("n")]
    assert len(new_test) == 2  # a third of the six new patients held out, as make_splits would


def _adjudicate(project, case_id, tmp_path):
    truth = make_phantom(seed=int(case_id[2:]), shape=SHAPE).segmentation()
    path = write_seg_nrrd(truth, tmp_path / f"{case_id}.seg.nrrd")
    rev = open_store(project, "rev")
    before = rev.latest_version(case_id, kind="adjudicated")  # a re-adjudication continues the last one
    rev.push_version(case_id, path, kind="adjudicated", parent=before["id"] if before else None)


@pytest.mark.slow  # two short training jobs (~1 minute)
def test_train_when_new_retrains_with_the_same_splits(tmp_path, capsys):
    project, loop = tmp_path / "project", tmp_path / "loop"
    labels = [{"name": n, "value": v} for n, v in make_phantom(seed=0, shape=SHAPE).label_values.items()]
    admin.init_project(project, "Loop", labels)
    admin.add_member(project, "rev", "reviewer")
    for seed in range(8):
        admin.add_case(project, f"ph{seed}", make_phantom(seed=seed, shape=SHAPE).volume, f"P{seed}")
    for seed in range(5):
        _adjudicate(project, f"ph{seed}", tmp_path)
    train = ["train", "--store", str(project), "--user", "rev", "--when-new", "2", "--backend", "monai",
             "--arch", "unet", "--epochs", "1", "--iterations", "1", "--threads", "2", "--no-test", "--out", str(loop),
             "--model-kwargs", json.dumps({"channels": [4, 8], "strides": [2], "num_res_units": 0})]
    assert dicomteam(train) == 0
    first = read_loop(loop)["rounds"]
    assert len(first) == 1 and sorted(first[0]["cases"]) == [f"ph{s}" for s in range(5)]
    assert Job(first[0]["job"]).status()["state"] == "finished"
    capsys.readouterr()
    _adjudicate(project, "ph5", tmp_path)
    assert dicomteam(train) == 0
    assert "1 new adjudicated case(s) since the last training; waiting for 2" in capsys.readouterr().out
    _adjudicate(project, "ph6", tmp_path)
    _adjudicate(project, "ph0", tmp_path)  # re-adjudicated: counts as new
    assert dicomteam(train) == 0
    rounds = read_loop(loop)["rounds"]
    assert len(rounds) == 2 and rounds[1]["new"] == ["ph0", "ph5", "ph6"]
    old, new = rounds[0]["splits"], rounds[1]["splits"]
    assert set(old["test"]) <= set(new["test"])
    for k, fold in enumerate(old["folds"]):
        assert set(fold["val"]) <= set(new["folds"][k]["val"])
    assert open_model(loop).source == open_model(rounds[1]["job"]).source  # the loop's latest model
    capsys.readouterr()
    assert dicomteam(["preannotate", "--store", str(project), "--user", "rev", "--model", str(loop), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [p["case_id"] for p in summary["pushed"]] == ["ph7"] and summary["model"]["job_id"] == "round-2/job"
