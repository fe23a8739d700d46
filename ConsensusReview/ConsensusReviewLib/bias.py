"""Per-annotator bias against the consensus, and flags for annotators systematically off.

For one case and label: sensitivity and specificity against the consensus (voxel counts over
the whole image, as STAPLE counts them), signed volume difference (annotator - consensus), and
how the disagreeing voxels split into false positives (over-segmentation) and false
negatives (under-segmentation).  Undefined ratios (e.g. sensitivity when the consensus is
empty) are NaN, written as null in JSON.

Across cases (``systematic_bias``): an annotator is flagged "over-segments" / "under-segments"
for a label when the signed volume difference has the same sign and exceeds
``volume_pct`` percent in at least ``min_share`` of at least ``min_cases`` cases, and "low
agreement" when the Dice against the consensus is below ``low_dice`` in that share of cases.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from DicomTeamAnnotateLib.core.metrics import volume_ml


@dataclass(frozen=True)
class BiasThresholds:
    """When an annotator counts as systematically off (see module docstring)."""

    volume_pct: float = 10.0
    low_dice: float = 0.7
    min_share: float = 0.75
    min_cases: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def confusion_counts(mask: np.ndarray, reference: np.ndarray) -> dict:
    """Voxel counts tp, fp, fn, tn of ``mask`` against ``reference``."""
    mask, reference = np.asarray(mask, dtype=bool), np.asarray(reference, dtype=bool)
    if mask.shape != reference.shape:
        raise ValueError(f"masks have different shapes {mask.shape} and {reference.shape}")
    tp = int(np.count_nonzero(mask & reference))
    n_mask, n_ref = int(np.count_nonzero(mask)), int(np.count_nonzero(reference))
    fp, fn = n_mask - tp, n_ref - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(mask.size) - tp - fp - fn}


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def annotator_bias(mask: np.ndarray, reference: np.ndarray, spacing: Sequence[float]) -> dict:
    """Sensitivity, specificity, signed volume difference and FP/FN split of ``mask`` vs ``reference``."""
    c = confusion_counts(mask, reference)
    v, v_ref = volume_ml(mask, spacing), volume_ml(reference, spacing)
    wrong = c["fp"] + c["fn"]
    return {
        "sensitivity": _ratio(c["tp"], c["tp"] + c["fn"]),
        "specificity": _ratio(c["tn"], c["tn"] + c["fp"]),
        "volume_ml": v, "reference_volume_ml": v_ref, "volume_diff_ml": v - v_ref,
        "volume_diff_pct": 100.0 * _ratio(v - v_ref, v_ref) if v_ref else (0.0 if v == 0 else math.inf),
        "fp_voxels": c["fp"], "fn_voxels": c["fn"],
        "fp_share": _ratio(c["fp"], wrong), "fn_share": _ratio(c["fn"], wrong),
        "tendency": tendency(c["fp"], c["fn"]),
    }


def tendency(fp: int, fn: int, margin: float = 0.2) -> str:
    """'over' when false positives outnumber false negatives by ``margin`` of the errors, 'under', else 'balanced'."""
    wrong = fp + fn
    if wrong == 0:
        return "balanced"
    share = (fp - fn) / wrong
    return "over" if share > margin else "under" if share < -margin else "balanced"


def systematic_bias(rows: Iterable[dict], thresholds: BiasThresholds = BiasThresholds()) -> list:
    """Flags for annotators systematically off across cases.

    ``rows``: one dict per (case, label, annotator) with keys ``case``, ``label``, ``annotator``,
    ``volume_diff_pct`` and ``dice`` (as ``agreement`` writes them).  Returns one dict per
    (annotator, label) with case counts, shares, mean values and ``flags`` (possibly empty).
    """
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["annotator"], r["label"]), []).append(r)
    out = []
    for (annotator, label), rs in sorted(groups.items()):
        n = len(rs)
        pct = np.array([r["volume_diff_pct"] for r in rs], dtype=float)
        dices = np.array([r["dice"] for r in rs], dtype=float)
        over = float(np.mean(pct > thresholds.volume_pct))
        under = float(np.mean(pct < -thresholds.volume_pct))
        low = float(np.mean(dices < thresholds.low_dice))
        flags = []
        if n >= thresholds.min_cases:
            if over >= thresholds.min_share:
                flags.append("over-segments")
            if under >= thresholds.min_share:
                flags.append("under-segments")
            if low >= thresholds.min_share:
                flags.append("low agreement")
        finite = pct[np.isfinite(pct)]
        out.append({"annotator": annotator, "label": label, "cases": n,
                    "share_over": over, "share_under": under, "share_low_dice": low,
                    "mean_volume_diff_pct": float(finite.mean()) if finite.size else math.nan,
                    "mean_dice": float(np.nanmean(dices)) if np.isfinite(dices).any() else math.nan,
                    "flags": flags})
    return out
