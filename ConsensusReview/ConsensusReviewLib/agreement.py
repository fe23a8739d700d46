"""Agreement per label: pairwise matrices among annotators and each annotator against the consensus.

Matrices list the annotators in input order.  Distances come from one ``SurfaceSet`` over the
N annotators plus the consensus (N+1 distance transforms for the whole label, one held in
memory at a time), with the definitions, HD95 mode and empty-mask policy of ``metrics.py``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ConsensusReviewLib.bias import annotator_bias
from DicomTeamAnnotateLib.core.metrics import (
    EMPTY_POLICY_TEXT,
    HD_MODES,
    dice,
    distance_metrics,
    pairwise_matrices,
    volume_ml,
)
from DicomTeamAnnotateLib.core.surface import SurfaceSet


def label_agreement(masks: Sequence[np.ndarray], consensus: np.ndarray, spacing: Sequence[float],
                    annotators: Sequence[str], tolerance_mm: float = 1.0, hd_mode: str = "max") -> dict:
    """Pairwise Dice/HD95/ASSD/NSD matrices, and per-annotator metrics and bias vs the consensus."""
    masks = [np.asarray(m, dtype=bool) for m in masks]
    consensus = np.asarray(consensus, dtype=bool)
    n = len(masks)
    if len(annotators) != n:
        raise ValueError(f"{len(annotators)} annotator names for {n} masks")
    dist = SurfaceSet(masks + [consensus], spacing).all_distances()
    mats = pairwise_matrices(masks, dist, tolerance_mm, hd_mode)
    per_annotator = []
    for i, name in enumerate(annotators):
        row = {"annotator": name, "dice": dice(masks[i], consensus)}
        row.update(distance_metrics(dist[i, n], dist[n, i], tolerance_mm, hd_mode))
        row.update(annotator_bias(masks[i], consensus, spacing))
        per_annotator.append(row)
    off = ~np.eye(n, dtype=bool)
    return {
        "annotators": list(annotators),
        "pairwise": {k: v.tolist() for k, v in mats.items()},
        "mean_pairwise_dice": float(mats["dice"][off].mean()) if n > 1 else 1.0,
        "max_pairwise_hd95": float(mats["hd95"][off].max()) if n > 1 else 0.0,
        "per_annotator": per_annotator,
        "consensus_volume_ml": volume_ml(consensus, spacing),
        "annotator_volumes_ml": [row["volume_ml"] for row in per_annotator],  # annotator_bias measured them
    }


def metric_definitions(tolerance_mm: float, hd_mode: str) -> dict:
    """The definitions a report must state next to its numbers."""
    return {"hd95": HD_MODES[hd_mode], "hd_mode": hd_mode, "nsd_tolerance_mm": tolerance_mm,
            "surface": "boundary voxels (6-connected erosion), Euclidean distances in mm with the real spacing",
            "empty_mask_policy": EMPTY_POLICY_TEXT,
            "volume_diff": "annotator minus consensus (mL); positive = larger than the consensus",
            "sensitivity_specificity": "voxel counts against the consensus over the whole image"}


def to_json_safe(obj):
    """Recursively make a structure JSON-safe: numpy -> Python, inf -> "inf", NaN -> None."""
    if isinstance(obj, dict):
        return {str(k): to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json_safe(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    return obj
