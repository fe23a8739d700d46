"""Binary STAPLE, ours vs SimpleITK's STAPLEImageFilter, on 200x512x512 with 5 annotators.

The annotators are perturbed versions of one smooth organ-like blob: each has its own boundary
offset (over/under-segmentation), a smooth wobble of the boundary, a shift of a voxel or two,
and a few missed slices at one end.  Prints both times, the ratio and the largest differences
(probability, sensitivity, specificity) on the LAST line.

    .venv/bin/python benchmarks/bench_staple.py [--shape 200 512 512] [--raters 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def organ_blob(shape, seed=0):
    """Signed 'radius' field (< 1 inside) of a lobed ellipsoid filling ~15% of the volume."""
    rng = np.random.default_rng(seed)
    k, j, i = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    kk, jj, ii = k[:, None, None], j[None, :, None], i[None, None, :]
    r = np.sqrt((kk / 0.7) ** 2 + (jj / 0.55) ** 2 + (ii / 0.5) ** 2)
    r = r * (1.0 + 0.08 * np.sin(3.0 * ii + rng.uniform(0, 6)) * np.cos(2.0 * jj + rng.uniform(0, 6)))
    return r.astype(np.float32)


def annotators(field, n, seed=0):
    """n boolean masks: per-rater boundary offset, smooth wobble, small shift, missed end slices."""
    rng = np.random.default_rng(seed + 1)
    shape = field.shape
    k = np.linspace(0, 2 * np.pi, shape[0], dtype=np.float32)[:, None, None]
    j = np.linspace(0, 2 * np.pi, shape[1], dtype=np.float32)[None, :, None]
    i = np.linspace(0, 2 * np.pi, shape[2], dtype=np.float32)[None, None, :]
    masks = []
    for _ in range(n):
        level = 1.0 + rng.uniform(-0.04, 0.04)
        wobble = 0.015 * np.sin(2 * i + rng.uniform(0, 6)) * np.sin(3 * j + rng.uniform(0, 6)) \
            + 0.01 * np.cos(4 * k + rng.uniform(0, 6))
        m = field < (level + wobble)
        m = np.roll(m, tuple(int(s) for s in rng.integers(-2, 3, size=3)), axis=(0, 1, 2))
        occupied = np.flatnonzero(m.any(axis=(1, 2)))
        missed = int(rng.integers(0, 4))
        if missed and occupied.size:
            m[occupied[-missed:]] = False          # skipped the last slices of the organ
        masks.append(m)
    return masks


def main(argv=None) -> int:
    import SimpleITK as sitk

    from ConsensusReviewLib.staple import staple_binary

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), metavar=("K", "J", "I"))
    ap.add_argument("--raters", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    field = organ_blob(tuple(args.shape), args.seed)
    masks = annotators(field, args.raters, args.seed)
    del field
    print(f"input: {args.raters} raters x {tuple(args.shape)} voxels, foreground "
          f"{np.mean([m.mean() for m in masks]):.1%} per rater")

    images = [sitk.GetImageFromArray(m.view(np.uint8)) for m in masks]
    flt = sitk.STAPLEImageFilter()
    flt.SetForegroundValue(1)
    t0 = time.perf_counter()
    sitk_out = flt.Execute(images)
    t_sitk = time.perf_counter() - t0
    sitk_prob = sitk.GetArrayViewFromImage(sitk_out)
    print(f"SimpleITK {sitk.Version.VersionString()}: {t_sitk:.2f} s, {flt.GetElapsedIterations()} iterations")

    t0 = time.perf_counter()
    ours = staple_binary(masks)
    t_ours = time.perf_counter() - t0
    print(f"ours (pattern table, {ours.n_patterns} patterns): {t_ours:.3f} s, "
          f"{ours.itk_elapsed_iterations} iterations (ITK count)")

    d_prob = float(np.abs(sitk_prob - ours.probability).max())
    d_sens = float(np.abs(np.array(flt.GetSensitivity()) - ours.sensitivity).max())
    d_spec = float(np.abs(np.array(flt.GetSpecificity()) - ours.specificity).max())
    print(f"STAPLE {args.raters}x{'x'.join(map(str, args.shape))}: SimpleITK {t_sitk:.2f} s, "
          f"ours {t_ours:.3f} s, speed-up {t_sitk / t_ours:.1f}x; max |diff| probability {d_prob:.2e}, "
          f"sensitivity {d_sens:.2e}, specificity {d_spec:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
