"""An nnU-Net job's model in nnU-Net's own results layout, for ``nnUNetv2_predict`` and SlicerNNUnet as they are.

A TrainBridge nnU-Net job already trains into ``JOB/nnUNet_results`` (``DatasetXXX_Name/
Trainer__Plans__configuration/{dataset.json, plans.json, fold_K/checkpoint_final.pth}``);
``export_nnunet_results`` copies that model folder into another results root (a lab's shared
``nnUNet_results``, or a folder to zip for SlicerNNUnet), checkpoints verified by sha256, without
the job's logs and validation outputs.  Then::

    nnUNet_results=OUT nnUNetv2_predict -i IMAGES -o SEG -d XXX -c CONFIG -tr TRAINER -f K
    nnUNetv2_predict_from_modelfolder -i IMAGES -o SEG -m OUT/DatasetXXX_Name/TRAINER__PLANS__CONFIG -f K
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.hashing import sha256_file
from TrainBridgeLib.jobs.runner import JOB_FILE

MODEL_FILES = ("dataset.json", "plans.json", "dataset_fingerprint.json")
FOLD_FILES = ("checkpoint_final.pth", "checkpoint_best.pth", "debug.json")


def nnunet_model_folder(job_dir) -> tuple[Path, int]:
    """(the job's nnU-Net model folder ``Trainer__Plans__config``, its fold)."""
    job_dir = Path(job_dir)
    record = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    if record.get("backend") != "nnunet":
        raise ValueError(f"{job_dir}: a {record.get('backend')} job, not an nnU-Net one")
    fold_dir = Path(record["outputs"]["model_dir"])
    if not (fold_dir / "checkpoint_final.pth").exists():
        raise FileNotFoundError(f"{fold_dir}: no checkpoint_final.pth (has the training finished?)")
    return fold_dir.parent, int(record["params"].get("fold", 0))


def export_nnunet_results(job_dir, results_dir) -> Path:
    """Copy the job's model into ``results_dir/DatasetXXX_Name/Trainer__Plans__config``; returns that folder."""
    model_dir, fold = nnunet_model_folder(job_dir)
    target = Path(results_dir) / model_dir.parent.name / model_dir.name
    (target / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
    copies = [(model_dir / n, target / n) for n in MODEL_FILES if (model_dir / n).exists()]
    copies += [(model_dir / f"fold_{fold}" / n, target / f"fold_{fold}" / n) for n in FOLD_FILES
               if (model_dir / f"fold_{fold}" / n).exists()]
    for src, dest in copies:
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        if sha256_file(dest)[0] != sha256_file(src)[0]:
            raise OSError(f"{dest}: the copy differs from {src}")
    return target
