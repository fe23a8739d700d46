"""The MONAI backend's training job: train (``python -m TrainBridgeLib.backends.monai.trainer``), predict the
held-out test set, evaluate it, as steps of the generic job runner (jobs.runner), which knows no backend."""
from __future__ import annotations

from pathlib import Path

from TrainBridgeLib.backends.monai.models import ARCHITECTURES
from TrainBridgeLib.jobs.runner import Job, job_environment, make_step, python_executable


def build_monai_job(dataset_dir, job_dir, *, arch: str = "segresnet", epochs: int = 50, device: str = "cpu",
                    fold: int = 0, threads: int | None = None, extra_args: list | None = None,
                    predict_test: bool = True, spawn=None) -> Job:
    """Create (not start) a MONAI job: train, predict imagesTs, evaluate against labelsTs."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (choose one of {', '.join(ARCHITECTURES)})")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dataset_dir = Path(dataset_dir).resolve()
    if not (dataset_dir / "dataset.json").exists():
        raise ValueError(f"{dataset_dir}: no dataset.json (not an exported dataset)")
    if not (dataset_dir / "splits_final.json").exists():
        raise ValueError(f"{dataset_dir}: no splits_final.json (export it with dicomteam export-nnunet)")
    job_dir = Path(job_dir).resolve()
    py = python_executable()
    train_argv = [py, "-m", "TrainBridgeLib.backends.monai.trainer", "--dataset", str(dataset_dir), "--out", str(job_dir),
                  "--arch", arch, "--epochs", str(epochs), "--device", device, "--fold", str(fold)]
    train_argv += [str(a) for a in (extra_args or [])]
    steps = [make_step("train", train_argv, resume_argv=train_argv + ["--resume"])]
    pred_dir, eval_dir = job_dir / "predictions", job_dir / "evaluation"
    if predict_test and any((dataset_dir / "imagesTs").glob("*.nii.gz")):
        steps.append(make_step("predict", [py, "-m", "TrainBridgeLib.backends.monai.predict", "--job", str(job_dir), "--input",
                                           str(dataset_dir / "imagesTs"), "--out", str(pred_dir), "--device", device]))
        if any((dataset_dir / "labelsTs").glob("*.nii.gz")):
            steps.append(make_step("evaluate", [py, "-m", "TrainBridgeLib.evaluation.evaluate",
                                                "--gt", str(dataset_dir / "labelsTs"),
                                                "--pred", str(pred_dir), "--labels", str(dataset_dir / "dataset.json"),
                                                "--out", str(eval_dir)]))
    params = {"dataset": str(dataset_dir), "arch": arch, "epochs": epochs, "device": device, "fold": fold,
              "threads": threads}
    outputs = {"model_dir": str(job_dir), "predictions": str(pred_dir), "evaluation": str(eval_dir)}
    return Job.create(job_dir, steps, backend="monai", env=job_environment(threads=threads), params=params,
                      outputs=outputs, spawn=spawn)
