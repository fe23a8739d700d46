"""Simulated annotators for demos and tests: realistic disagreement with a known truth.

Each simulated reader has a personality drawn from the seed: a systematic boundary offset
(one reader draws generously, another tightly), a smooth wobble of the boundary, an in-plane
shift of up to a voxel, and a habit of skipping the first or last slice(s) of a structure.
Boundaries move in mm through a signed distance map, so anisotropic voxels are handled.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.core.surface import spacing_kji


def signed_distance_mm(mask: np.ndarray, spacing_ijk: Sequence[float], margin: int = 8) -> np.ndarray:
    """Signed distance (mm) to the mask's boundary: > 0 inside, < 0 outside (cropped + margin)."""
    sampling = spacing_kji(spacing_ijk)
    out = np.full(mask.shape, -1e3, dtype=np.float32)  # far outside wherever it is not computed
    if not mask.any():
        return out
    nz = np.nonzero(mask)
    box = tuple(slice(max(int(a.min()) - margin, 0), int(a.max()) + 1 + margin) for a in nz)
    m = mask[box]
    inside = ndimage.distance_transform_edt(m, sampling=sampling)
    outside = ndimage.distance_transform_edt(~m, sampling=sampling)
    out[box] = (inside - outside).astype(np.float32)
    return out


def _smooth_noise(shape, rng, sigma_vox=3.0) -> np.ndarray:
    """Smooth random field with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox)
    std = float(field.std())
    return field / std if std > 0 else field


def simulate_readers(phantom_labels: np.ndarray, n: int, seed: int = 0, *, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                     bias_mm: float = 1.5, wobble_mm: float = 1.0, miss_probability: float = 0.3) -> list:
    """``n`` simulated readers' label maps (uint8 (K, J, I)) of a truth label map ``phantom_labels``.

    ``spacing`` is the (i, j, k) spacing in mm; ``bias_mm`` bounds each reader's systematic
    boundary offset, ``wobble_mm`` the amplitude of its smooth boundary noise.
    """
    labels = np.asarray(phantom_labels)
    if labels.ndim != 3:
        raise ValueError(f"phantom_labels must be a (K, J, I) label map, got shape {labels.shape}")
    if n < 1:
        raise ValueError(f"need at least one reader, got {n}")
    rng = np.random.default_rng(seed)
    values = [int(v) for v in np.unique(labels) if v != 0]
    distances = {v: signed_distance_mm(labels == v, spacing) for v in values}
    readers = []
    for _ in range(n):
        reader_bias = rng.uniform(-bias_mm, bias_mm)          # the reader's habit, same for every label
        noise = _smooth_noise(labels.shape, rng) * wobble_mm
        out = np.zeros(labels.shape, dtype=np.uint8)
        for v in values:
            offset = reader_bias + rng.uniform(-0.3, 0.3) * bias_mm
            mask = (distances[v] + offset + noise) > 0
            shift = (0, int(rng.integers(-1, 2)), int(rng.integers(-1, 2)))
            mask = ndimage.shift(mask, shift, order=0, mode="constant", cval=False)
            if rng.random() < miss_probability:
                slices = np.flatnonzero(mask.any(axis=(1, 2)))
                if slices.size > 3:
                    skipped = slices[:1] if rng.random() < 0.5 else slices[-1:]
                    mask[skipped] = False
            out[mask] = v
        readers.append(out)
    return readers


def simulate_reader_segmentations(phantom, n: int, seed: int = 0, names: Sequence[str] | None = None) -> list:
    """Simulated readers of a ``phantom`` (``.labels``, ``.label_values``, ``.volume``) as Segmentations."""
    geometry = phantom.volume.geometry
    maps = simulate_readers(phantom.labels, n, seed, spacing=geometry.spacing)
    segments = phantom.segmentation().segments  # names, colours and terminology of the truth
    out = []
    for k, lm in enumerate(maps):
        seg = Segmentation.from_labelmap(lm, geometry, segments=segments)
        seg.metadata["annotator"] = names[k] if names else f"reader{k + 1}"
        out.append(seg)
    return out
