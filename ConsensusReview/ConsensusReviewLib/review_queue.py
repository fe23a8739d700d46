"""The review queue: cases sorted by lowest agreement, and thresholds that send a case to review.

A case's agreement is summarised by its worst label: the lowest mean pairwise Dice among the
annotators, the largest pairwise HD95, the share of the union of all annotators' voxels on
which they do not all agree, and the lowest Dice of any annotator against the consensus.
A case goes to review when any figure crosses its threshold (``ReviewThresholds``); the
reasons are listed so the reviewer knows where to look.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ReviewThresholds:
    """A case needs review when any of these is crossed (for any label)."""

    min_mean_pairwise_dice: float = 0.80
    max_pairwise_hd95_mm: float = 10.0
    max_disputed_fraction: float = 0.30
    min_annotator_dice: float = 0.70
    min_annotators: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


def disputed_fraction(masks: np.ndarray) -> float:
    """Share of the union of the annotators' voxels on which they do not all agree (0 = identical)."""
    masks = np.asarray(masks, dtype=bool)
    union = masks.any(axis=0)
    n_union = int(np.count_nonzero(union))
    if n_union == 0:
        return 0.0
    return 1.0 - int(np.count_nonzero(masks.all(axis=0))) / n_union


def case_summary(case_id: str, agreement: dict, disputed: dict | None = None, n_annotators: int | None = None) -> dict:
    """Worst-label figures of one case from ``{label: label_agreement(...)}`` (+ disputed fractions)."""
    disputed = disputed or {}
    rows = []
    for label, a in agreement.items():
        annot = [r["dice"] for r in a["per_annotator"]]
        rows.append({"label": label, "mean_pairwise_dice": a["mean_pairwise_dice"],
                     "max_pairwise_hd95": a["max_pairwise_hd95"],
                     "min_annotator_dice": min(annot) if annot else math.nan,
                     "disputed_fraction": disputed.get(label, math.nan)})
    if not rows:
        return {"case_id": case_id, "labels": [], "worst_label": None, "mean_pairwise_dice": math.nan,
                "max_pairwise_hd95": math.nan, "min_annotator_dice": math.nan, "disputed_fraction": math.nan,
                "n_annotators": n_annotators}
    worst = min(rows, key=lambda r: r["mean_pairwise_dice"])
    return {"case_id": case_id, "labels": rows, "worst_label": worst["label"],
            "mean_pairwise_dice": worst["mean_pairwise_dice"],
            "max_pairwise_hd95": max(r["max_pairwise_hd95"] for r in rows),
            "min_annotator_dice": min(r["min_annotator_dice"] for r in rows),
            "disputed_fraction": max((r["disputed_fraction"] for r in rows if not math.isnan(r["disputed_fraction"])),
                                     default=math.nan),
            "n_annotators": n_annotators}


def review_reasons(summary: dict, thresholds: ReviewThresholds = ReviewThresholds()) -> list:
    """Why a case needs review (empty list: it does not)."""
    reasons = []
    n = summary.get("n_annotators")
    if n is not None and n < thresholds.min_annotators:
        reasons.append(f"only {n} annotation(s); {thresholds.min_annotators} needed")
    for r in summary.get("labels", []):
        label = r["label"]
        if r["mean_pairwise_dice"] < thresholds.min_mean_pairwise_dice:
            reasons.append(f"{label}: mean pairwise Dice {r['mean_pairwise_dice']:.3f} < "
                           f"{thresholds.min_mean_pairwise_dice}")
        if r["max_pairwise_hd95"] > thresholds.max_pairwise_hd95_mm:
            reasons.append(f"{label}: pairwise HD95 up to {r['max_pairwise_hd95']:.1f} mm > "
                           f"{thresholds.max_pairwise_hd95_mm} mm")
        if r["min_annotator_dice"] < thresholds.min_annotator_dice:
            reasons.append(f"{label}: an annotator's Dice vs consensus is {r['min_annotator_dice']:.3f} < "
                           f"{thresholds.min_annotator_dice}")
        if not math.isnan(r["disputed_fraction"]) and r["disputed_fraction"] > thresholds.max_disputed_fraction:
            reasons.append(f"{label}: {r['disputed_fraction']:.0%} of the drawn voxels are disputed > "
                           f"{thresholds.max_disputed_fraction:.0%}")
    return reasons


def build_queue(summaries: list, thresholds: ReviewThresholds = ReviewThresholds()) -> list:
    """Cases sorted by lowest agreement first (worst-label mean pairwise Dice), with review flags."""
    queue = []
    for s in summaries:
        reasons = review_reasons(s, thresholds)
        queue.append(dict(s, needs_review=bool(reasons), reasons=reasons))

    def key(s):
        d = s["mean_pairwise_dice"]
        return (math.inf if d is None or math.isnan(d) else d, s["case_id"])

    return sorted(queue, key=key)
