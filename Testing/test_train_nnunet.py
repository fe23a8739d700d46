"""TrainBridge nnU-Net backend, for real: plan/preprocess, a 1-epoch training (nnUNetTrainer_1epoch),
prediction of the held-out test set and its evaluation, as one background job; the progress
stream is parsed from nnU-Net's own log."""
from __future__ import annotations

import json

import pytest

from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom
from TrainBridgeLib.backends.nnunet import build_nnunet_job, parse_nnunet_log, trainer_for_epochs
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.nnunet import export_nnunet


def test_trainer_names_for_epoch_counts():
    assert trainer_for_epochs(1) == "nnUNetTrainer_1epoch" and trainer_for_epochs(5) == "nnUNetTrainer_5epochs"
    assert trainer_for_epochs(None) == "nnUNetTrainer"
    with pytest.raises(ValueError, match="fixed-length trainers"):
        trainer_for_epochs(3)


@pytest.mark.slow  # a few minutes on 2 idle cores (nnU-Net's 250 iterations + its own final validation)
def test_nnunet_one_epoch_job_end_to_end(tmp_path):
    cases = [CaseInput(f"c{p}", f"P{p}", [make_phantom(seed=p, shape=(16, 32, 32)).volume],
                       make_phantom(seed=p, shape=(16, 32, 32)).label_volume()) for p in range(4)]
    r = export_nnunet(cases, tmp_path / "nnUNet_raw", "Smoke", labels=LABEL_VALUES,
                      preprocessed_dir=tmp_path / "nnUNet_preprocessed", test_fraction=0.25, folds=3)
    job = build_nnunet_job(r.dataset_dir, tmp_path / "job", configuration="2d", epochs=1, device="cpu", threads=2)
    steps = job.record["steps"]
    assert [s["name"] for s in steps] == ["plan", "train", "predict", "evaluate"]
    train_argv = steps[1]["argv"]
    assert train_argv[train_argv.index("-tr"):] == ["-tr", "nnUNetTrainer_1epoch", "-device", "cpu"]
    assert train_argv[-7:-4] == [str(r.dataset_id), "2d", "0"]
    assert steps[1]["resume_argv"][-1] == "--c"
    job.start()
    state = job.wait(timeout=1500, poll_s=2)
    assert state == "finished", job.log_tail(60)
    records = job.progress()
    assert len(records) == 1 and records[0]["epoch"] == 0 and records[0]["num_epochs"] == 1
    assert isinstance(records[0]["loss"], float) and set(records[0]["val_dice_per_label"]) == set(LABEL_VALUES)
    assert records == parse_nnunet_log((job.dir / "log.txt").read_text(encoding="utf-8"), 1, list(LABEL_VALUES))
    assert (job.dir / "curves.png").exists()
    test_case = r.splits.test[0]
    assert (job.dir / "predictions" / f"{test_case}.nii.gz").exists()
    metrics = json.loads((job.dir / "evaluation" / "metrics.json").read_text(encoding="utf-8"))
    assert list(metrics["cases"]) == [test_case] and set(metrics["labels"]) == set(LABEL_VALUES)
    model_dir = json.loads((job.dir / "job.json").read_text(encoding="utf-8"))["outputs"]["model_dir"]
    assert (tmp_path / "job" / "nnUNet_results").is_dir() and model_dir.endswith("fold_0")
