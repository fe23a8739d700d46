"""Shared pieces of the loop tests: a small MONAI job that learns the phantom's large organs, and an
nnU-Net job folder as TrainBridge writes it, with a model made by nnU-Net's own trainer class."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from DicomTeamAnnotateLib.demo.phantom import COLORS, LABEL_VALUES, TERMINOLOGY, make_phantom
from TrainBridgeLib.backends.monai.job import build_monai_job
from TrainBridgeLib.backends.nnunet import build_nnunet_job
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.jobs.runner import Job

SHAPE = (16, 32, 32)
ONTOLOGY = [dict(name=n, value=v, terminology=TERMINOLOGY[n], color=list(COLORS[n])) for n, v in LABEL_VALUES.items()]


def phantom_dataset(root: Path, n: int = 6, name: str = "Loop", test_fraction: float = 0.0, folds: int = 3):
    """An exported nnU-Net dataset of ``n`` small phantoms (labels with SNOMED terminology)."""
    cases = [CaseInput(f"case{p}", f"P{p}", [make_phantom(seed=p, shape=SHAPE).volume],
                       make_phantom(seed=p, shape=SHAPE).label_volume()) for p in range(n)]
    return export_nnunet(cases, root / "raw", name, labels=ONTOLOGY, preprocessed_dir=root / "pre",
                         test_fraction=test_fraction, folds=folds)


def train_small_monai_job(root: Path) -> Path:
    """A MONAI job trained for 96 steps on 6 small phantoms (learns the large organs); its folder."""
    export = phantom_dataset(root)
    kwargs = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}
    job = build_monai_job(export.dataset_dir, root / "job", arch="unet", epochs=6, threads=2, predict_test=False,
                          extra_args=["--iterations", 16, "--model-kwargs", json.dumps(kwargs)]).start()
    state = job.wait(timeout=900, poll_s=1)
    if state != "finished":
        raise RuntimeError(f"training {state}:\n{job.log_tail(40)}")
    return job.dir


# nnU-Net's own trainer class makes and saves the model (untrained: its training is test_train_nnunet's business)
_MAKE_NNUNET_MODEL = """
import sys, torch
from nnunetv2.run.run_training import get_trainer_from_args
torch.manual_seed(0)
trainer = get_trainer_from_args(sys.argv[1], sys.argv[2], 0, "nnUNetTrainer_1epoch", device=torch.device("cpu"))
trainer.initialize()
trainer.save_checkpoint(sys.argv[3])
"""


def nnunet_job_with_model(root: Path, configuration: str = "3d_fullres") -> Path:
    """An nnU-Net job folder (plan step run by nnU-Net, a model saved by its trainer class in the job's
    results layout, the job marked finished); its folder."""
    export = phantom_dataset(root, n=4, name="NnLoop", test_fraction=0.25, folds=3)
    job = build_nnunet_job(export.dataset_dir, root / "job", configuration=configuration, epochs=1, threads=1)
    record = job.record
    env = {**os.environ, **record["env"]}
    plan = record["steps"][0]["argv"]
    subprocess.run(plan, env=env, check=True, capture_output=True, timeout=600)
    fold_dir = Path(record["outputs"]["model_dir"])
    model_dir = fold_dir.parent
    pre = Path(record["env"]["nnUNet_preprocessed"]) / export.dataset_dir.name
    fold_dir.mkdir(parents=True, exist_ok=True)
    for name in ("dataset.json", "plans.json", "dataset_fingerprint.json"):
        (model_dir / name).write_bytes((pre / ("nnUNetPlans.json" if name == "plans.json" else name)).read_bytes())
    subprocess.run([sys.executable, "-c", _MAKE_NNUNET_MODEL, str(record["params"]["dataset_id"]), configuration,
                    str(fold_dir / "checkpoint_final.pth")], env=env, check=True, capture_output=True, timeout=600)
    Job(job.dir)._update(state="finished")
    return job.dir
