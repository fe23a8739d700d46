"""Quick MONAI training on an exported nnU-Net dataset; runs inside a job:

    python -m TrainBridgeLib.backends.monai.trainer --dataset RAW/DatasetXXX_Name --out JOB_DIR
        [--arch segresnet|unet|swinunetr|vnet] [--epochs N] [--device cpu|cuda] [--fold K] [--resume]

Patches sampled around labels and background (``RandCropByPosNegLabeld``; one per case when the
patch holds the whole image), Dice + cross-entropy loss with nnU-Net's batch Dice over the
foreground classes, sliding-window validation on the fold's validation cases.  Every epoch appends a record
to ``progress.jsonl``, redraws ``curves.png`` and writes ``checkpoint_latest.pt`` (the resume
point); the best validation Dice goes to ``checkpoint_best.pt``.  The dataset is preprocessed
once and kept in memory: these runs are trials on small datasets.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path, write_json_atomic
from TrainBridgeLib.backends.monai.models import ARCHITECTURES, DEFAULT_LR, build_network, default_patch, model_config
from TrainBridgeLib.backends.monai.preprocessing import (
    normalization_spec,
    normalize,
    read_channels,
    read_image,
    resample,
    target_geometry,
)
from TrainBridgeLib.export.splits import read_splits_final
from TrainBridgeLib.jobs.progress import append_record, plot_progress, read_progress, write_records

MODEL_CONFIG = "model_config.json"


def load_fold(dataset_dir: Path, fold: int) -> tuple:
    """(dataset.json, train case ids, val case ids) from the export's splits_final.json."""
    meta = json.loads((dataset_dir / "dataset.json").read_text(encoding="utf-8"))
    splits = read_splits_final(dataset_dir / "splits_final.json")
    if not 0 <= fold < len(splits):
        raise ValueError(f"fold {fold} does not exist ({len(splits)} fold(s) in splits_final.json)")
    return meta, list(splits[fold]["train"]), list(splits[fold]["val"])


def load_cases(dataset_dir: Path, case_ids: list, n_channels: int) -> list[dict]:
    """Raw arrays of the given training cases: image (C, K, J, I), label (K, J, I), geometry."""
    out = []
    for case in case_ids:
        paths = [dataset_dir / "imagesTr" / f"{case}_{c:04d}.nii.gz" for c in range(n_channels)]
        image, geometry = read_channels(paths)
        label, _ = read_image(dataset_dir / "labelsTr" / f"{case}.nii.gz")
        out.append({"case": case, "image": image, "label": label.astype(np.int64), "geometry": geometry})
    return out


def preprocess(cases: list[dict], spacing, spec) -> list[dict]:
    """Resample to the training spacing and normalise; labels as (1, K, J, I) for MONAI."""
    out = []
    for c in cases:
        work = target_geometry(c["geometry"], spacing)
        img = normalize(resample(c["image"], c["geometry"], work, label=False), spec)
        lab = resample(c["label"].astype(np.int16), c["geometry"], work, label=True)
        out.append({"case": c["case"], "image": img, "label": lab[np.newaxis].astype(np.float32)})
    return out


def dice_per_label(pred: np.ndarray, gt: np.ndarray, n_labels: int) -> list:
    """Dice of each foreground label (NaN when a label is absent from both)."""
    out = []
    for v in range(1, n_labels + 1):
        a, b = pred == v, gt == v
        s = int(a.sum()) + int(b.sum())
        out.append(2.0 * int((a & b).sum()) / s if s else float("nan"))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m TrainBridgeLib.backends.monai.trainer", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, help="nnU-Net raw dataset folder (DatasetXXX_Name)")
    p.add_argument("--out", required=True, help="job folder (checkpoints, progress.jsonl, curves.png)")
    p.add_argument("--arch", default="segresnet", choices=ARCHITECTURES)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--patch", type=int, nargs=3, metavar=("K", "J", "I"), help="patch size (default: from data)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--samples-per-case", type=int, default=2,
                   help="patches per case and batch (1 when the patch holds the whole image: its crops are all alike)")
    p.add_argument("--iterations", type=int, help="iterations per epoch (default: one pass over the cases)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (default: per architecture)")
    p.add_argument("--val-every", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: OMP_NUM_THREADS)")
    p.add_argument("--workers", type=int, help="patch-sampling processes (default: 0 on CPU, up to 4 on a GPU)")
    p.add_argument("--model-kwargs", default="{}", help="JSON overrides of the architecture's arguments")
    p.add_argument("--resume", action="store_true", help="continue from checkpoint_latest.pt")
    return p.parse_args(argv)


def default_workers(device: str) -> int:
    """Loader worker processes: none on CPU (the cores train), a few on a GPU (sampling would starve it)."""
    return 0 if str(device).startswith("cpu") else max(1, min(4, (os.cpu_count() or 2) // 2))


def patch_loader(train_set: list[dict], patch, batch_size: int = 2, samples_per_case: int = 2, workers: int = 0):
    """A MONAI DataLoader of random patches (2/3 centred on a label, 1/3 on background) with mild
    intensity augmentation; no flips (they would swap left and right organs)."""
    from monai.data import DataLoader, Dataset, list_data_collate, set_track_meta
    from monai.transforms import Compose, RandCropByPosNegLabeld, RandScaleIntensityd, RandShiftIntensityd, SpatialPadd

    set_track_meta(False)  # plain tensors: no affine/metadata bookkeeping on patches that never go to disk

    transform = Compose([
        SpatialPadd(keys=["image", "label"], spatial_size=patch),
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=patch, pos=2, neg=1,
                               num_samples=samples_per_case),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
    ])
    return DataLoader(Dataset(train_set, transform=transform), batch_size=max(1, batch_size // samples_per_case),
                      shuffle=True, num_workers=workers, collate_fn=list_data_collate,
                      persistent_workers=workers > 0, pin_memory=workers > 0)


class BatchStream:
    """Endless batches from a loader (a new shuffled pass when one ends)."""

    def __init__(self, loader):
        self.loader, self._it = loader, iter(())

    def next(self):
        batch = next(self._it, None)
        if batch is None:
            self._it = iter(self.loader)
            batch = next(self._it)
        return batch


def train_iterations(model, loss_fn, optimizer, stream: BatchStream, iterations: int, device) -> dict:
    """``iterations`` optimiser steps; returns the mean total, Dice and CE losses."""
    import torch

    model.train()
    sums = torch.zeros(3, device=device)  # summed on the device: no GPU sync per iteration
    for _ in range(iterations):
        batch = stream.next()
        # plain tensors: MONAI's MetaTensor would route every network op through __torch_function__
        x, y = (_plain(batch[k]).to(device, non_blocking=True) for k in ("image", "label"))
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        l_dice, l_ce = loss_fn.dice(logits, y), loss_fn.ce(logits, y)
        loss = loss_fn.lambda_dice * l_dice + loss_fn.lambda_ce * l_ce
        loss.backward()
        optimizer.step()
        sums += torch.stack([loss.detach(), l_dice.detach(), l_ce.detach()])
    total, dice, ce = (sums / max(1, iterations)).tolist()
    return {"loss": total, "loss_dice": dice, "loss_ce": ce}


def _plain(t):
    return t.as_tensor() if hasattr(t, "as_tensor") else t


def validate(model, loss_fn, val_set: list[dict], patch, label_names: list, device) -> dict:
    """Sliding-window prediction of every validation case: mean loss, mean Dice and Dice per label."""
    import torch
    from monai.inferers import sliding_window_inference

    model.eval()
    dices, losses = [], []
    with torch.no_grad():
        for c in val_set:
            x = torch.from_numpy(c["image"][np.newaxis]).to(device)
            y = torch.from_numpy(c["label"][np.newaxis]).to(device)
            logits = sliding_window_inference(x, patch, 2, model, overlap=0.25, mode="gaussian")
            losses.append(float(loss_fn(logits, y)))
            dices.append(dice_per_label(logits.argmax(1)[0].cpu().numpy(), c["label"][0], len(label_names)))
    per_label = np.nanmean(np.array(dices, dtype=float), axis=0)
    return {"val_loss": float(np.mean(losses)), "val_dice": float(np.nanmean(per_label)),
            "val_dice_per_label": {n: float(v) for n, v in zip(label_names, per_label)}}


def prepare_data(dataset_dir: Path, fold: int) -> dict:
    """Read, resample and normalise the fold's cases; returns sets, labels, spacing, normalisation."""
    meta, train_ids, val_ids = load_fold(dataset_dir, fold)
    channel_names = [meta["channel_names"][k] for k in sorted(meta["channel_names"], key=int)]
    labels = {n: int(v) for n, v in meta["labels"].items() if int(v) != 0}
    raw_train = load_cases(dataset_dir, train_ids, len(channel_names))
    raw_val = load_cases(dataset_dir, val_ids, len(channel_names))
    spacing = [float(s) for s in np.median([c["geometry"].spacing for c in raw_train], axis=0)]
    spec = normalization_spec(channel_names, [c["image"] for c in raw_train], [c["label"] for c in raw_train])
    return {"train": preprocess(raw_train, spacing, spec), "val": preprocess(raw_val, spacing, spec),
            "train_ids": train_ids, "val_ids": val_ids, "labels": labels, "channel_names": channel_names,
            "spacing": spacing, "normalization": spec,
            # the orientation the network learnt (a prediction puts other images into it by physical position)
            "direction": list(raw_train[0]["geometry"].to_lps().direction) if raw_train else None,
            "terminology": label_terminology(dataset_dir)}


def label_terminology(dataset_dir: Path) -> dict:
    """{label name: terminology} from the export's trainbridge.json ({} when unknown): a model's labels map
    onto a project's ontology by terminology first (see the loop's preannotation)."""
    path = dataset_dir / "trainbridge.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {d["name"]: d["terminology"] for d in doc.get("label_source") or [] if d.get("terminology")}


def train(args) -> dict:
    """Run the training described by ``args``; returns the last epoch's record."""
    import torch
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    dataset_dir = Path(args.dataset).resolve()
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    set_determinism(seed=args.seed)
    device = torch.device(args.device)
    data = prepare_data(dataset_dir, args.fold)
    train_set, val_set, labels = data["train"], data["val"], data["labels"]
    label_names = [n for n, _ in sorted(labels.items(), key=lambda kv: kv[1])]
    median_shape = np.median([c["image"].shape[1:] for c in train_set], axis=0)
    patch = list(args.patch) if args.patch else default_patch(args.arch, median_shape)
    config = model_config(args.arch, len(data["channel_names"]), len(labels) + 1, **json.loads(args.model_kwargs))
    model = build_network(config).to(device)
    description = {"model": config, "labels": labels, "channel_names": data["channel_names"],
                   "spacing": data["spacing"], "normalization": data["normalization"], "patch_size": patch,
                   "direction": data["direction"], "terminology": data["terminology"],
                   "dataset": str(dataset_dir), "fold": args.fold, "train_cases": data["train_ids"],
                   "val_cases": data["val_ids"], "epochs": args.epochs}
    write_json_atomic(out / MODEL_CONFIG, description)

    # nnU-Net's choice: Dice over the whole batch (a small organ absent from one patch no longer gives that
    # sample's Dice a 0/0) and over the foreground classes only (the background's Dice is ~1 from the start
    # and dilutes the organs' gradient). On the demo's phantoms it took a short run from mean test Dice
    # 0.33 (per-sample Dice with background, SegResNet) to 0.77 after 100 steps.
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, include_background=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr or DEFAULT_LR[args.arch], weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: (1 - e / max(1, args.epochs)) ** 0.9)
    start, best = 0, -1.0
    progress_path = out / "progress.jsonl"
    if args.resume and (out / "checkpoint_latest.pt").exists():
        ck = torch.load(out / "checkpoint_latest.pt", map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        start, best = ck["epoch"] + 1, ck.get("best", -1.0)
        write_records(progress_path, [r for r in read_progress(progress_path) if r["epoch"] < start])
        print(f"resuming after epoch {ck['epoch']}", flush=True)
    elif progress_path.exists():
        progress_path.unlink()

    workers = default_workers(args.device) if args.workers is None else args.workers
    whole = all(p >= s for p, s in zip(patch, np.max([c["image"].shape[1:] for c in train_set], axis=0)))
    samples = 1 if whole else args.samples_per_case  # whole-image "patches" of one case would all be alike
    stream = BatchStream(patch_loader(train_set, patch, args.batch_size, samples, workers))
    iterations = args.iterations or max(1, len(stream.loader))
    print(f"training {args.arch} on {len(train_set)} case(s), validating on {len(val_set)}; patch {patch}, "
          f"spacing {data['spacing']}, {iterations} iteration(s) x {args.epochs} epoch(s) on {device}", flush=True)
    record = {}
    for epoch in range(start, args.epochs):
        t0 = time.time()
        losses = train_iterations(model, loss_fn, optimizer, stream, iterations, device)
        scheduler.step()
        train_time = time.time() - t0
        record = {"epoch": epoch, "num_epochs": args.epochs, **losses, "lr": optimizer.param_groups[0]["lr"],
                  "iterations": iterations, "it_per_s": iterations / max(train_time, 1e-9)}
        if val_set and ((epoch + 1) % args.val_every == 0 or epoch == args.epochs - 1):
            record.update(validate(model, loss_fn, val_set, patch, label_names, device))
        record["time_s"] = time.time() - t0
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "epoch": epoch, "best": best, "config": description}
        if record.get("val_dice") is not None and math.isfinite(record["val_dice"]) and record["val_dice"] > best:
            best = state["best"] = record["val_dice"]
            _save(torch, state, out / "checkpoint_best.pt")
        _save(torch, state, out / "checkpoint_latest.pt")
        append_record(progress_path, record)
        plot_progress(read_progress(progress_path), out / "curves.png", title=f"MONAI {args.arch}")
        print(f"epoch {epoch + 1}/{args.epochs}: loss {record['loss']:.4f} (dice {record['loss_dice']:.4f}, "
              f"ce {record['loss_ce']:.4f})" + (f", val Dice {record['val_dice']:.4f}" if "val_dice" in record else "")
              + f", {record['it_per_s']:.2f} it/s", flush=True)
    final = {"model": model.state_dict(), "epoch": args.epochs - 1, "best": best, "config": description}
    _save(torch, final, out / "checkpoint_final.pt")
    if not (out / "checkpoint_best.pt").exists():
        _save(torch, final, out / "checkpoint_best.pt")
    return record


def _save(torch, obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, str(tmp))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"monai_trainer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
