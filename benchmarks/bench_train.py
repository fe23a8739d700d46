"""Training throughput (iterations/s) of the MONAI backend: our trainer's loop against a bare PyTorch loop.

Data: ``--cases`` phantom CTs (``--shape`` K J I) normalised as the trainer does, in memory (no
files, so this also runs where SimpleITK is absent).  Ours: the trainer's own code path
(``patch_loader`` -> MONAI's RandCropByPosNegLabeld + intensity augmentation, Dice and CE
computed separately for the progress stream) for ``--iterations`` optimiser steps after
``--warmup`` steps.  Peer: the same network, optimiser and DiceCELoss on random patches cut with
numpy slicing -- the floor any trainer pays for the network itself.  Batch ``--batch`` of
``--patch`` patches, ``--device cpu|cuda``.  The last line prints both figures and the ratio
ours / bare loop (1.0 means no overhead).

    python benchmarks/bench_train.py [--device cpu|cuda] [--arch segresnet] [--iterations 10] [--repeat 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_data(n: int, shape) -> list[dict]:
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from TrainBridgeLib.backends.monai.preprocessing import normalization_spec, normalize

    phantoms = [make_phantom(seed=s, shape=shape) for s in range(n)]
    images = [p.volume.array[np.newaxis].astype(np.float32) for p in phantoms]
    spec = normalization_spec(["CT"], images, [p.labels for p in phantoms])
    return [{"image": normalize(img, spec), "label": p.labels[np.newaxis].astype(np.float32)}
            for img, p in zip(images, phantoms)]


def sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_ours(data, args, torch, device) -> float:
    from monai.losses import DiceCELoss

    from TrainBridgeLib.backends.monai.models import build_network, model_config
    from TrainBridgeLib.backends.monai.trainer import BatchStream, default_workers, patch_loader, train_iterations

    model = build_network(model_config(args.arch, 1, 9)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    workers = default_workers(args.device) if args.workers is None else args.workers
    stream = BatchStream(patch_loader(data, args.patch, args.batch, min(2, args.batch), workers))
    train_iterations(model, loss_fn, opt, stream, args.warmup, device)
    sync(torch, device)
    t0 = time.perf_counter()
    train_iterations(model, loss_fn, opt, stream, args.iterations, device)
    sync(torch, device)
    return args.iterations / (time.perf_counter() - t0)


def bench_bare(data, args, torch, device) -> float:
    from monai.losses import DiceCELoss

    from TrainBridgeLib.backends.monai.models import build_network, model_config

    model = build_network(model_config(args.arch, 1, 9)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    rng = np.random.default_rng(0)
    k, j, i = args.patch

    def batch():
        xs, ys = [], []
        for _ in range(args.batch):
            c = data[int(rng.integers(len(data)))]
            nk, nj, ni = c["image"].shape[1:]
            a, b, d = (int(rng.integers(0, max(1, n - p + 1))) for n, p in ((nk, k), (nj, j), (ni, i)))
            xs.append(c["image"][:, a:a + k, b:b + j, d:d + i])
            ys.append(c["label"][:, a:a + k, b:b + j, d:d + i])
        return torch.from_numpy(np.stack(xs)).to(device), torch.from_numpy(np.stack(ys)).to(device)

    def step():
        x, y = batch()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    for _ in range(args.warmup):
        step()
    sync(torch, device)
    t0 = time.perf_counter()
    for _ in range(args.iterations):
        last = step()
    float(last)
    sync(torch, device)
    return args.iterations / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="segresnet", choices=("segresnet", "unet", "swinunetr", "vnet"))
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--shape", type=int, nargs=3, default=(48, 96, 96), metavar=("K", "J", "I"))
    p.add_argument("--patch", type=int, nargs=3, default=(32, 64, 64), metavar=("K", "J", "I"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2, help="runs of each, best kept")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--workers", type=int, help="our loader's worker processes (default: the trainer's default)")
    args = p.parse_args(argv)
    import torch
    from monai.utils import set_determinism

    if args.threads:
        torch.set_num_threads(args.threads)
    set_determinism(seed=0)
    device = torch.device(args.device)
    data = make_data(args.cases, tuple(args.shape))
    ours = bare = 0.0
    for r in range(args.repeat):  # interleaved, each going first in turn; best of each
        for who in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
            if who == "ours":
                ours = max(ours, bench_ours(data, args, torch, device))
            else:
                bare = max(bare, bench_bare(data, args, torch, device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"{args.arch}, batch {args.batch} x patch {tuple(args.patch)}, {args.iterations} iterations on {name}, "
          f"best of {args.repeat}")
    print(f"training throughput ({args.device}): ours {ours:.2f} it/s (MONAI patch sampling + Dice/CE progress); "
          f"bare PyTorch loop {bare:.2f} it/s; ratio ours/bare {ours / bare:.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
