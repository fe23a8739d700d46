"""Preprocessing shared by the MONAI trainer, its predictor and the exported model's ``infer.py``.

One definition, recorded in the model's manifest, so that training and inference cannot drift:

* resampling to the training spacing (median spacing of the training cases) with SimpleITK:
  linear for images, nearest neighbour for labels; predictions go back to the original grid;
* intensity normalisation per channel: ``ct`` (clip to the training foreground's 0.5-99.5
  percentiles, then z-score with the foreground mean/std, as nnU-Net does for CT) or ``zscore``
  (per image, for MRI and anything else).

Arrays are (C, K, J, I) float32; Geometry spacing is (i, j, k) as everywhere in the project.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry, resample_like

_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii\.gz$")


def read_image(path):
    """(array (K, J, I), Geometry) of a volume file, via SimpleITK."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), Geometry.from_sitk(img)


def group_channel_files(folder) -> dict:
    """{case: [channel paths in order]} for ``{case}_{XXXX}.nii.gz`` files in ``folder``."""
    out: dict = {}
    for p in sorted(Path(folder).glob("*.nii.gz")):
        m = _CHANNEL_FILE.match(p.name)
        if m:
            out.setdefault(m["case"], {})[int(m["channel"])] = p
    return {c: [chans[i] for i in sorted(chans)] for c, chans in out.items()}


def read_channels(paths: list):
    """(array (C, K, J, I) float32, Geometry of channel 0); all channels must share its grid."""
    arrays, geometry = [], None
    for p in paths:
        arr, g = read_image(p)
        if geometry is None:
            geometry = g
        elif not g.same_grid(geometry):
            raise ValueError(f"{p}: grid differs from channel 0 ({'; '.join(g.differences(geometry))})")
        arrays.append(arr.astype(np.float32, copy=False))
    return np.stack(arrays), geometry


def target_geometry(geometry: Geometry, spacing) -> Geometry:
    """The same field of view on a grid with ``spacing`` (i, j, k)."""
    if spacing is None or np.allclose(geometry.spacing, spacing, rtol=1e-4, atol=1e-5):
        return geometry
    extent = np.array(geometry.size) * np.array(geometry.spacing)
    size = np.maximum(1, np.round(extent / np.array(spacing))).astype(int)
    # keep the physical centre: first voxel centre moves by half a voxel change along each axis
    shift = (np.array(spacing) - np.array(geometry.spacing)) / 2.0
    origin = np.array(geometry.origin) + geometry.direction_matrix @ shift
    return Geometry(size=tuple(size), spacing=tuple(spacing), origin=tuple(origin), direction=geometry.direction,
                    space=geometry.space)


def resample(array: np.ndarray, geometry: Geometry, reference: Geometry, *, label: bool) -> np.ndarray:
    """Resample a (K, J, I) or (C, K, J, I) array onto ``reference`` by physical position."""
    if geometry.same_grid(reference):
        return array
    if array.ndim == 4:
        return np.stack([resample_like(a, geometry, reference, label=label) for a in array])
    return resample_like(array, geometry, reference, label=label)


def foreground_stats(images: list, labels: list) -> dict:
    """Percentiles, mean and std of channel intensities inside the labels (nnU-Net's CT statistics)."""
    rng = np.random.default_rng(0)
    per_channel = []
    for c in range(images[0].shape[0]):
        samples = []
        for img, lab in zip(images, labels):
            vals = img[c][lab > 0]
            if vals.size > 20000:  # a fixed-size sample per case keeps this cheap on big volumes
                vals = rng.choice(vals, 20000, replace=False)
            samples.append(vals)
        v = np.concatenate(samples) if samples else np.zeros(1)
        if v.size == 0:
            v = np.concatenate([i[c].ravel() for i in images])
        lo, hi = np.percentile(v, [0.5, 99.5])
        clipped = np.clip(v, lo, hi)
        per_channel.append({"clip": [float(lo), float(hi)], "mean": float(clipped.mean()),
                            "std": float(max(clipped.std(), 1e-6))})
    return per_channel


def normalization_spec(channel_names: list, images: list, labels: list) -> list[dict]:
    """Per-channel normalisation: 'ct' with training statistics for CT channels, else 'zscore'."""
    stats = foreground_stats(images, labels)
    out = []
    for c, name in enumerate(channel_names):
        if str(name).upper() == "CT":
            out.append({"scheme": "ct", **stats[c]})
        else:
            out.append({"scheme": "zscore"})
    return out


def normalize(array: np.ndarray, spec: list[dict]) -> np.ndarray:
    """Apply the per-channel normalisation to (C, K, J, I)."""
    out = np.empty(array.shape, dtype=np.float32)
    for c, s in enumerate(spec):
        a = array[c].astype(np.float32)
        if s["scheme"] == "ct":
            a = (np.clip(a, *s["clip"]) - s["mean"]) / s["std"]
        else:
            a = (a - a.mean()) / max(float(a.std()), 1e-6)
        out[c] = a
    return out


def prepare_image(paths_or_array, spacing, spec, geometry: Geometry | None = None):
    """(normalised (C, K, J, I) on the training spacing, its geometry, the original geometry)."""
    if isinstance(paths_or_array, np.ndarray):
        arr, original = paths_or_array.astype(np.float32), geometry
    else:
        arr, original = read_channels(list(paths_or_array))
    work = target_geometry(original, spacing)
    arr = resample(arr, original, work, label=False)
    return normalize(arr, spec), work, original
