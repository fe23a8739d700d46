"""Overlap, surface-distance and volume metrics between two binary masks: ONE implementation
shared by ConsensusReview (agreement, bias) and TrainBridge (model evaluation).

Inputs are boolean (K, J, I) arrays on the same grid and the grid's spacing in (i, j, k) order,
as ``Geometry.spacing`` gives it (a ``Geometry`` itself is accepted too).  ``a`` is the mask
being judged (an annotator, a prediction), ``b`` the reference (the consensus, the ground truth);
only ``volume_diff_ml`` = volume(a) - volume(b) depends on the order.

Definitions (chosen to equal MONAI's ``compute_hausdorff_distance(percentile=95)``,
``compute_average_surface_distance(symmetric=True)`` and ``compute_surface_dice``; the tests
check that):

* surface = boundary voxels (6-connected erosion, see ``surface.py``); distances in mm.
* ``hd95``, mode "max" (default): the larger of the two directed 95th percentiles (linear
  interpolation) of the surface distances, as MONAI and DeepMind's surface-distance define it.
  Mode "mean": the average of the two directed 95th percentiles, SlicerRT's definition.
* ``assd``: mean of all surface distances of both directions pooled together.
* ``nsd``: normalised surface Dice at ``tolerance_mm``: the share of boundary voxels of both
  masks that lie within the tolerance of the other surface (boundary-voxel counts, MONAI's
  ``use_subvoxels=False``).
* volumes in mL (voxel count x voxel volume).

EMPTY-MASK POLICY (``EMPTY_POLICY``; reports print ``EMPTY_POLICY_TEXT``):
both masks empty -> Dice 1, NSD 1, HD95 0, ASSD 0 (perfect agreement that nothing is there);
exactly one empty -> Dice 0, NSD 0, HD95 inf, ASSD inf (not capped: a missed structure is not
"a few cm off"; JSON/CSV writers spell it "inf").  Averages over cases that include an infinite
distance are infinite on purpose; report the count of one-empty cases beside finite means.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from DicomTeamAnnotateLib.core.surface import SurfaceSet, spacing_kji

HD_MODES = {
    "max": "maximum of the two directed 95th percentiles (MONAI, DeepMind surface-distance)",
    "mean": "average of the two directed 95th percentiles (SlicerRT)",
}

EMPTY_POLICY = {
    "both_empty": {"dice": 1.0, "nsd": 1.0, "hd95": 0.0, "assd": 0.0},
    "one_empty": {"dice": 0.0, "nsd": 0.0, "hd95": math.inf, "assd": math.inf},
}
EMPTY_POLICY_TEXT = ("Empty masks: both empty -> Dice 1, NSD 1, HD95 0 mm, ASSD 0 mm; "
                     "one empty -> Dice 0, NSD 0, HD95 inf, ASSD inf (not capped).")


def _pair(a: np.ndarray, b: np.ndarray) -> tuple:
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks have different shapes {a.shape} and {b.shape}: resample onto one grid first")
    if a.ndim != 3:
        raise ValueError(f"masks must be 3-D (K, J, I) arrays, got {a.ndim}-D")
    return a, b


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient 2|A and B| / (|A| + |B|); 1.0 when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks have different shapes {a.shape} and {b.shape}: resample onto one grid first")
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return EMPTY_POLICY["both_empty"]["dice"]
    return 2.0 * int(np.count_nonzero(a & b)) / total


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of a mask in millilitres."""
    return int(np.count_nonzero(mask)) * float(np.prod(spacing_kji(spacing))) / 1000.0


def distance_metrics(d_ab: np.ndarray, d_ba: np.ndarray, tolerance_mm: float = 1.0,
                     hd_mode: str = "max") -> dict:
    """HD95, ASSD and NSD from the two directed surface-distance arrays (empty-mask policy applied)."""
    if hd_mode not in HD_MODES:
        raise ValueError(f"hd_mode must be one of {sorted(HD_MODES)}, got {hd_mode!r}")
    if tolerance_mm < 0 or not math.isfinite(tolerance_mm):
        raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm}")
    if d_ab.size == 0 and d_ba.size == 0:
        return {k: EMPTY_POLICY["both_empty"][k] for k in ("hd95", "assd", "nsd")}
    if d_ab.size == 0 or d_ba.size == 0:
        return {k: EMPTY_POLICY["one_empty"][k] for k in ("hd95", "assd", "nsd")}
    p_ab, p_ba = float(np.percentile(d_ab, 95)), float(np.percentile(d_ba, 95))
    hd = max(p_ab, p_ba) if hd_mode == "max" else 0.5 * (p_ab + p_ba)
    pooled_sum = float(d_ab.sum()) + float(d_ba.sum())
    n = d_ab.size + d_ba.size
    within = int(np.count_nonzero(d_ab <= tolerance_mm)) + int(np.count_nonzero(d_ba <= tolerance_mm))
    return {"hd95": hd, "assd": pooled_sum / n, "nsd": within / n}


def hd95(a: np.ndarray, b: np.ndarray, spacing: Sequence[float], mode: str = "max") -> float:
    """95th-percentile Hausdorff distance in mm ("max" of the directed percentiles, or their "mean")."""
    a, b = _pair(a, b)
    s = SurfaceSet([a, b], spacing)
    return distance_metrics(s.distances(0, 1), s.distances(1, 0), hd_mode=mode)["hd95"]


def assd(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance in mm."""
    a, b = _pair(a, b)
    s = SurfaceSet([a, b], spacing)
    return distance_metrics(s.distances(0, 1), s.distances(1, 0))["assd"]


def nsd(a: np.ndarray, b: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 1.0) -> float:
    """Normalised surface Dice at ``tolerance_mm``."""
    a, b = _pair(a, b)
    s = SurfaceSet([a, b], spacing)
    return distance_metrics(s.distances(0, 1), s.distances(1, 0), tolerance_mm=tolerance_mm)["nsd"]


def compute_metrics(a: np.ndarray, b: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 1.0,
                    hd_mode: str = "max") -> dict:
    """Dice, HD95, ASSD, NSD (mm, real spacing) and volumes (mL) of mask ``a`` against mask ``b``."""
    a, b = _pair(a, b)
    s = SurfaceSet([a, b], spacing)
    out = {"dice": dice(a, b)}
    out.update(distance_metrics(s.distances(0, 1), s.distances(1, 0), tolerance_mm, hd_mode))
    va, vb = volume_ml(a, spacing), volume_ml(b, spacing)
    out.update(volume_a_ml=va, volume_b_ml=vb, volume_diff_ml=va - vb)
    return out


def pairwise_metrics(masks: Sequence[np.ndarray], spacing: Sequence[float], tolerance_mm: float = 1.0,
                     hd_mode: str = "max") -> dict:
    """N x N matrices {dice, hd95, assd, nsd} among masks (symmetric; one distance transform per mask)."""
    masks = [np.asarray(m, dtype=bool) for m in masks]
    return pairwise_matrices(masks, SurfaceSet(masks, spacing).all_distances(), tolerance_mm, hd_mode)


def pairwise_matrices(masks: Sequence[np.ndarray], dist: dict, tolerance_mm: float = 1.0,
                      hd_mode: str = "max") -> dict:
    """N x N matrices {dice, hd95, assd, nsd} among boolean ``masks`` from ``SurfaceSet.all_distances()``.

    ``dist`` may cover more masks than ``masks`` (e.g. a consensus appended last); only the
    first N are used.
    """
    n = len(masks)
    out = {k: np.zeros((n, n)) for k in ("dice", "hd95", "assd", "nsd")}
    for i in range(n):
        out["dice"][i, i], out["nsd"][i, i] = 1.0, 1.0
        for j in range(i + 1, n):
            d = distance_metrics(dist[i, j], dist[j, i], tolerance_mm, hd_mode)
            d["dice"] = dice(masks[i], masks[j])
            for k in out:
                out[k][i, j] = out[k][j, i] = d[k]
    return out
