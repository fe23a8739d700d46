"""The TrainBridge part of ``make demo``: round 1 of the loop and the model it trains.

Phantom patients become cases of a folder project; simulated annotators annotate them from
nothing (their effort recorded with each version) and a reviewer adjudicates; the adjudicated
cases are exported from the store (nnU-Net layout, patient-level splits) and a short MONAI
training job learns them; its test-set evaluation table and curves are the step's output.

    python -m TrainBridgeLib.demo --out demo-output/train [--epochs 8] [--device cpu]

The recipe (a small 3-level UNet on whole phantom volumes, batch Dice over the organs + CE,
12 x 16 steps) reaches a mean test Dice of about 0.9 within 1-4 minutes on two CPU cores; see
benchmarks/bench_train.py for the figures.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from DicomTeamAnnotateLib.demo.loop_project import REVIEWER, add_phantom_cases, annotate_round, make_phantom_project
from TrainBridgeLib.backends.monai.job import build_monai_job
from TrainBridgeLib.evaluation.evaluate import load_metrics, summary_text
from TrainBridgeLib.export.from_store import cases_from_store
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.export.other_formats import write_monai_datalist

SHAPE = (32, 64, 64)
ROUND1_SEEDS = tuple(range(1000, 1010))
# A UNet of 8-64 channels over three levels sees a whole 32x64x64 phantom at once (no patch sampling
# needed) and learns all eight organs within ~130 steps; SegResNet with 8 filters needed several
# times more on the same CPU budget (benchmarks/bench_train.py measures both).
DEMO_ARCH = "unet"
DEMO_MODEL_KWARGS = {"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1}


def wait_for(job, log=print) -> dict:
    """Follow a job until it ends, logging each epoch; returns its final status (raises unless finished)."""
    seen = 0
    while True:
        st = job.status()
        for r in job.progress()[seen:]:
            log(f"  epoch {r['epoch'] + 1}/{r['num_epochs']}: loss {r['loss']:.3f} (Dice {r['loss_dice']:.3f}, "
                f"CE {r['loss_ce']:.3f}), val Dice {r.get('val_dice', float('nan')):.3f}")
            seen += 1
        if st["state"] in ("finished", "failed", "cancelled", "lost"):
            break
        time.sleep(1.0)
    if st["state"] != "finished":
        raise RuntimeError(f"demo training {st['state']}:\n{job.log_tail(30)}")
    return st


def train_from_store(project, out: Path, *, epochs: int, iterations: int, arch: str = DEMO_ARCH,
                     model_kwargs: dict | None = None, device: str = "cpu", threads: int | None = None,
                     log=print) -> dict:
    """Export the project's adjudicated cases and train on them; returns mean test Dice, table and paths."""
    with tempfile.TemporaryDirectory(prefix=".store-download-", dir=out) as tmp:
        cases, labels = cases_from_store(project, REVIEWER, work_dir=tmp)
        export = export_nnunet(cases, out / "nnUNet_raw", "PhantomDemo", labels=labels, dataset_id=500,
                               preprocessed_dir=out / "nnUNet_preprocessed", test_fraction=0.3, folds=5,
                               overwrite=True)
    write_monai_datalist(export.dataset_dir)
    log(f"exported {len(cases)} adjudicated case(s) to {export.dataset_dir} (test: {', '.join(export.splits.test)})")
    kwargs = DEMO_MODEL_KWARGS if model_kwargs is None and arch == DEMO_ARCH else (model_kwargs or {})
    extra = ["--iterations", iterations, "--model-kwargs", json.dumps(kwargs)]
    job = build_monai_job(export.dataset_dir, out / "job", arch=arch, epochs=epochs, device=device, threads=threads,
                          extra_args=extra).start()
    log(f"training job {job.dir} (pid {job.record['pid']})")
    t0 = time.time()
    wait_for(job, log)
    seconds = time.time() - t0
    metrics = load_metrics(job.dir / "evaluation" / "metrics.json")
    table = summary_text(metrics)
    log(f"test-set evaluation ({len(metrics['cases'])} case(s)), {seconds:.0f} s:\n{table}")
    mean_dice = sum(metrics["case_mean_dice"].values()) / len(metrics["case_mean_dice"])
    return {"mean_dice": round(mean_dice, 3), "train_s": round(seconds, 1),
            "table": job.dir / "evaluation" / "metrics.csv", "curve": job.dir / "curves.png",
            "summary_png": job.dir / "evaluation" / "summary.png", "dataset": export.dataset_dir, "job": job.dir,
            "text": table, "test_cases": list(export.splits.test)}


def train_demo(out_dir, *, seeds=ROUND1_SEEDS, shape=SHAPE, epochs: int = 12, iterations: int = 16,
               arch: str = DEMO_ARCH, device: str = "cpu", threads: int | None = None, log=print) -> dict:
    """Round 1 in ``out_dir``: the project, its annotation from scratch, the training; see the module docstring."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    project = out / "project"
    if project.exists():
        shutil.rmtree(project)
    make_phantom_project(project)
    case_ids = add_phantom_cases(project, list(seeds), shape)
    rows = annotate_round(project, case_ids, shape, out / "work")
    minutes = sum(r["effort"]["active_s"] for r in rows) / 60
    log(f"round 1: {len(rows)} case(s) annotated from scratch and adjudicated ({minutes:.0f} simulated active min)")
    summary = train_from_store(project, out, epochs=epochs, iterations=iterations, arch=arch, device=device,
                               threads=threads, log=log)
    return {**summary, "project": project, "round1_cases": case_ids, "shape": list(shape)}


def demo_step(out, ctx: dict) -> str:
    """`make demo`'s training step (entry point ``dicomteam.demo``): one line for the summary."""
    summary = train_demo(out / "train")
    ctx["train"] = summary
    return ", ".join(f"{k} {v}" for k, v in summary.items() if k in ("mean_dice", "train_s", "table", "curve"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m TrainBridgeLib.demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="demo-output/train")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--iterations", type=int, default=16)
    p.add_argument("--arch", default=DEMO_ARCH)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    result = train_demo(args.out, epochs=args.epochs, iterations=args.iterations, arch=args.arch, device=args.device,
                        threads=args.threads)
    for key in ("mean_dice", "train_s", "table", "curve", "summary_png"):
        print(f"{key}: {result[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
