"""nnU-Net export throughput: ours (TrainBridgeLib.export.nnunet.export_nnunet) against writing the
same NIfTI files with SimpleITK alone.

Sources: ``--cases`` phantom CTs (int16, ``--shape`` K J I, several cases per patient) written as
NIfTI images and NRRD label maps into a temporary folder (not timed).  Ours reads each source,
maps the labels to consecutive values, runs the pre-flight checks, splits by patient, writes the
nnU-Net layout (NIfTI, gzip), dataset.json, cases.json and splits_final.json, fsyncs the files and
renames the folder into place.  The peer reads each image and label map with SimpleITK and writes
it as .nii.gz -- the bare minimum an export must do.  Best of ``--repeat`` alternating runs.
The last line prints both throughputs and the ratio of times ours / SimpleITK (goal <= 1.2).

    python benchmarks/bench_export.py [--cases 12] [--shape 64 192 192] [--repeat 4]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_sources(folder: Path, n: int, shape, scale: int = 1) -> list:
    """Phantom images (.nii.gz) and label maps (.nrrd) whose label values are multiplied by ``scale``."""
    from DicomTeamAnnotateLib.core.volume import Volume
    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.io.volumes import write_volume
    from TrainBridgeLib.export.cases import CaseInput

    cases = []
    for c in range(n):
        ph = make_phantom(seed=c, shape=shape)
        img = write_volume(ph.volume, folder / f"img{c:03d}.nii.gz")
        lab = write_volume(Volume((ph.labels * scale).astype("uint8"), ph.volume.geometry), folder / f"lab{c:03d}.nrrd")
        cases.append(CaseInput(f"case{c:03d}", f"P{c // 2}", [img], lab))
    return cases


def measure(cases, tmp: Path, labels: dict, repeat: int) -> tuple:
    """Best-of-``repeat`` seconds (ours, peer), interleaved and each going first in turn."""
    ours, peer = float("inf"), float("inf")
    for r in range(repeat):
        for who in (("peer", "ours") if r % 2 == 0 else ("ours", "peer")):
            out = tmp / f"{who}{r}"
            t0 = time.perf_counter()
            run_peer(cases, out) if who == "peer" else run_ours(cases, out, labels)
            seconds = time.perf_counter() - t0
            if who == "peer":
                peer = min(peer, seconds)
            else:
                ours = min(ours, seconds)
            shutil.rmtree(out)
    return ours, peer


def run_ours(cases, out: Path, labels) -> None:
    from TrainBridgeLib.export.nnunet import export_nnunet

    export_nnunet(cases, out / "raw", "Bench", labels=labels, preprocessed_dir=out / "pre", dataset_id=500,
                  test_fraction=0.2, folds=5)


def run_peer(cases, out: Path) -> None:
    import SimpleITK as sitk

    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    for c in cases:
        sitk.WriteImage(sitk.ReadImage(str(c.images[0])), str(out / "imagesTr" / f"{c.case_id}_0000.nii.gz"), True)
        sitk.WriteImage(sitk.ReadImage(str(c.label)), str(out / "labelsTr" / f"{c.case_id}.nii.gz"), True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=12)
    p.add_argument("--shape", type=int, nargs=3, default=(64, 192, 192), metavar=("K", "J", "I"))
    p.add_argument("--repeat", type=int, default=4)
    args = p.parse_args(argv)
    from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES

    n = args.cases
    voxels = n * args.shape[0] * args.shape[1] * args.shape[2] / 1e6
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmp = Path(tmp)
        # "remap": sparse source values (10, 20, ... 80) mapped to 1..8, like a TotalSegmentator-style
        # ontology; "identity": the values are already 1..8 (the label maps are written unchanged)
        for variant, scale in (("remap", 10), ("identity", 1)):
            cases = make_sources(tmp / f"src-{variant}", n, tuple(args.shape), scale)
            labels = {name: value * scale for name, value in LABEL_VALUES.items()}
            results[variant] = measure(cases, tmp, labels, args.repeat)
        mb = sum(Path(c.images[0]).stat().st_size for c in cases) / 1e6
    print(f"{n} cases of {tuple(args.shape)} int16 ({voxels:.0f} Mvoxel, {mb:.0f} MB compressed sources), "
          f"best of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    for variant, (ours, peer) in results.items():
        print(f"  {variant:8s}: ours {ours:.2f} s, SimpleITK alone {peer:.2f} s, ratio {ours / peer:.2f}")
    ours, peer = results["remap"]
    print(f"export (nnU-Net layout, label remap, checks, splits, fsync): ours {n / ours:.2f} cases/s; "
          f"SimpleITK read+write alone {n / peer:.2f} cases/s; ratio ours/SimpleITK time {ours / peer:.2f} "
          f"(identity labels: {results['identity'][0] / results['identity'][1]:.2f}; goal <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
