"""The TrainBridge part of ``make demo``: phantom patients -> nnU-Net export -> a short MONAI
training job -> test-set evaluation table and curve PNG.

    python -m TrainBridgeLib.demo --out demo-output/train [--epochs 10] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom
from DicomTeamAnnotateLib.io.volumes import write_volume
from TrainBridgeLib.evaluation.evaluate import load_metrics, summary_text
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.export.other_formats import write_monai_datalist
from TrainBridgeLib.jobs.training import build_monai_job


def train_demo(out_dir, *, patients: int = 6, shape=(32, 64, 64), epochs: int = 10, iterations: int = 16,
                      arch: str = "segresnet", device: str = "cpu", threads: int | None = None, log=print) -> dict:
    """Run the whole workflow in ``out_dir``; returns mean test Dice, the table and the paths it wrote."""

    out = Path(out_dir).resolve()
    src = out / "annotations"
    cases = []
    for p in range(patients):  # one seed per patient: a different anatomy each
        ph = make_phantom(seed=1000 + p, shape=shape)
        img = write_volume(ph.volume, src / f"patient{p}_ct.nii.gz")
        lab = write_volume(ph.label_volume(), src / f"patient{p}_labels.nii.gz")
        cases.append(CaseInput(f"case{p:03d}", f"PATIENT-{p}", [img], lab))
    export = export_nnunet(cases, out / "nnUNet_raw", "PhantomDemo", labels=LABEL_VALUES,
                           preprocessed_dir=out / "nnUNet_preprocessed", test_fraction=0.34, folds=2, overwrite=True)
    write_monai_datalist(export.dataset_dir)
    log(f"exported {len(cases)} case(s) to {export.dataset_dir} (test: {', '.join(export.splits.test)})")
    extra = ["--iterations", iterations, "--model-kwargs", json.dumps({"init_filters": 8}) if arch == "segresnet" else "{}"]
    job = build_monai_job(export.dataset_dir, out / "job", arch=arch, epochs=epochs, device=device, threads=threads,
                          extra_args=extra).start()
    log(f"training job {job.dir} (pid {job.record['pid']})")
    seen, t0 = 0, time.time()
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
    metrics = load_metrics(job.dir / "evaluation" / "metrics.json")
    table = summary_text(metrics)
    log(f"test-set evaluation ({len(metrics['cases'])} case(s)), {time.time() - t0:.0f} s:\n{table}")
    mean_dice = sum(metrics["case_mean_dice"].values()) / len(metrics["case_mean_dice"])
    return {"mean_dice": round(mean_dice, 3), "table": job.dir / "evaluation" / "metrics.csv",
            "curve": job.dir / "curves.png", "summary_png": job.dir / "evaluation" / "summary.png",
            "dataset": export.dataset_dir, "job": job.dir, "text": table}


def demo_step(out, ctx: dict) -> str:
    """`make demo`'s training step (entry point ``dicomteam.demo``): one line for the summary."""
    summary = train_demo(out / "train")
    return ", ".join(f"{k} {v}" for k, v in summary.items() if k in ("mean_dice", "table", "curve"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m TrainBridgeLib.demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="demo-output/train")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--iterations", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    result = train_demo(args.out, epochs=args.epochs, iterations=args.iterations, device=args.device,
                               threads=args.threads)
    for key in ("mean_dice", "table", "curve", "summary_png"):
        print(f"{key}: {result[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
