"""The training backends by name, and the one call that builds a job of any of them.

    job = start_training(dataset_dir, job_dir, backend="monai", arch="segresnet", epochs=2)
    job.status()   # state, step, epoch, latest losses / val Dice, curves_png
    job.cancel(); job.resume()

Each backend builds its Job from the generic runner's steps (jobs.runner), which names no backend:
``monai`` (backends.monai.job: train, predict the test set, evaluate) and ``nnunet`` (backends.nnunet:
nnU-Net v2's own commands). A new backend adds its builder here; the panel and ``dicomteam train``
offer what ``BACKENDS`` lists.
"""
from __future__ import annotations

from TrainBridgeLib.backends.monai.job import build_monai_job
from TrainBridgeLib.backends.nnunet import build_nnunet_job
from TrainBridgeLib.jobs.runner import Job

BACKENDS = ("monai", "nnunet")  # the order the panel offers them: the quick one first


def build_training_job(dataset_dir, job_dir, *, backend: str, arch: str = "segresnet", epochs: int | None = None,
                       device: str = "cpu", fold: int = 0, threads: int | None = None, spawn=None, **kwargs) -> Job:
    """Create (not start) a job of ``backend`` (nnU-Net: ``epochs`` picks a fixed-length trainer)."""
    if backend == "monai":
        return build_monai_job(dataset_dir, job_dir, arch=arch, epochs=epochs or 50, device=device, fold=fold,
                               threads=threads, spawn=spawn, **kwargs)
    if backend == "nnunet":
        return build_nnunet_job(dataset_dir, job_dir, epochs=epochs, device=device, fold=fold, threads=threads,
                                spawn=spawn, **kwargs)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def start_training(dataset_dir, job_dir, **kwargs) -> Job:
    """Create and start a training job in the background; returns the Job (poll ``status()``)."""
    return build_training_job(dataset_dir, job_dir, **kwargs).start()
