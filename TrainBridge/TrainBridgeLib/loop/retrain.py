"""Retraining when enough new adjudicated cases came in: ``dicomteam train --store ... --when-new N``.

A loop folder (the ``--out`` of the command) remembers each training it started in ``loop.json``:
the adjudicated version of every case it was trained on and the splits it used.  A run counts the
store's adjudicated cases that are new (or re-adjudicated) since the last training; with at least
N of them it exports the project's adjudicated cases into ``round-K/`` with the earlier splits
kept (``extend_splits``: earlier test patients stay test patients) and starts a training job there.
Run from a scheduler it makes the loop unattended; while a training is still running, a run starts
nothing.
"""
from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.store import open_store
from DicomTeamAnnotateLib.store.model import choose_version
from TrainBridgeLib.backends.registry import build_training_job
from TrainBridgeLib.export.from_store import cases_from_store
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.export.splits import Splits
from TrainBridgeLib.jobs.runner import JOB_FILE, Job
from TrainBridgeLib.loop.model_folder import LOOP_FILE


def read_loop(folder) -> dict:
    """The loop folder's record ({'rounds': [...]}), empty when none was started there."""
    path = Path(folder) / LOOP_FILE
    if not path.exists():
        return {"rounds": []}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable loop record ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rounds"), list):
        raise ValueError(f"{path}: not a loop record (expected {{'rounds': [...]}})")
    return doc


def adjudicated_versions(location, user: str, token: str | None = None) -> dict:
    """{case id: id of its latest adjudicated version} for every case that has one."""
    store = open_store(location, user, token)
    try:
        out = {}
        for case in store.list_cases():
            v = choose_version(store.list_versions(case["case_id"]), "adjudicated")
            if v is not None:
                out[case["case_id"]] = v["id"]
        return out
    finally:
        store.close()


def new_cases(current: dict, loop: dict) -> list[str]:
    """Cases whose adjudicated version the last training did not use (new or re-adjudicated)."""
    last = loop["rounds"][-1]["cases"] if loop["rounds"] else {}
    return sorted(c for c, v in current.items() if last.get(c) != v)


def retrain_if_new(location, user: str, out_dir, *, when_new: int, token: str | None = None, backend: str = "monai",
                   name: str = "Loop", test_fraction: float = 0.2, folds: int = 5, seed: int = 0, log=print,
                   **job_options) -> dict:
    """Start a training in ``out_dir/round-K`` when at least ``when_new`` adjudicated cases are new.

    Returns {'started': bool, 'reason', 'new': [case ids], 'job' (when started), 'round'}.
    ``job_options`` go to ``build_training_job`` (arch, epochs, device, threads, extra_args...).
    """
    if when_new < 1:
        raise ValueError(f"--when-new must be >= 1, got {when_new}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    loop = read_loop(out)
    if loop["rounds"]:
        last_job = Path(loop["rounds"][-1]["job"])
        if (last_job / JOB_FILE).exists() and Job(last_job).is_running():
            return {"started": False, "new": [], "reason": f"the last training ({last_job}) is still running"}
    current = adjudicated_versions(location, user, token)
    fresh = new_cases(current, loop)
    if len(fresh) < when_new:
        return {"started": False, "new": fresh,
                "reason": f"{len(fresh)} new adjudicated case(s) since the last training; waiting for {when_new}"}
    k = len(loop["rounds"]) + 1
    round_dir = out / f"round-{k}"
    previous = Splits.from_dict(loop["rounds"][-1]["splits"]) if loop["rounds"] else None
    with tempfile.TemporaryDirectory(prefix=".store-download-", dir=out) as tmp:
        cases, labels = cases_from_store(location, user, token=token, versions=current, work_dir=tmp,
                                         case_ids=sorted(current))
        export = export_nnunet(cases, round_dir / "nnUNet_raw", name, labels=labels,
                               preprocessed_dir=round_dir / "nnUNet_preprocessed", test_fraction=test_fraction,
                               folds=folds, seed=seed, previous_splits=previous, overwrite=True)
    log(f"round {k}: {len(cases)} adjudicated case(s) ({len(fresh)} new) exported to {export.dataset_dir}")
    job = build_training_job(export.dataset_dir, round_dir / "job", backend=backend, **job_options)
    loop["rounds"].append({"round": k, "job": str(job.dir), "dataset": str(export.dataset_dir),
                           "cases": {c.case_id: c.source["version_id"] for c in cases}, "new": fresh,
                           "splits": export.splits.to_dict(), "store": str(location),
                           "started": datetime.datetime.now().isoformat(timespec="seconds")})
    write_json_atomic(out / LOOP_FILE, loop)
    job.start()
    return {"started": True, "new": fresh, "job": job, "round": k, "reason": f"{len(fresh)} new adjudicated case(s)"}
