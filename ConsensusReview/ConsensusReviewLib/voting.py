"""Majority voting, vote counts and the disagreement map.

TIE POLICY (``TIE_POLICIES``), stated in every consensus record:
* binary, per label: a voxel is in the consensus when MORE than half of the annotators marked it.
  An exact half (possible with an even number of annotators) is a tie: ``tie="background"``
  (default) leaves it out, ``tie="foreground"`` puts it in.
* label maps: the label with strictly the most votes wins (background 0 takes part); a tie
  between the top labels gives background (``tie="background"``, default) or an "undecided"
  value, max label + 1, as ITK's ``LabelVotingImageFilter`` does (``tie="undecided"``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ConsensusReviewLib.patterns import label_patterns

TIE_POLICIES = {
    "background": "a tie (exactly half the votes; or two labels with the most votes) is background",
    "foreground": "binary only: exactly half of the votes is enough to be in the consensus",
    "undecided": "label maps only: a tie between labels gets the undecided value (max label + 1, as ITK)",
}


def vote_count(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-voxel number of annotators who marked the voxel (uint8 / uint16)."""
    masks = list(masks)
    dtype = np.uint8 if len(masks) < 256 else np.uint16
    count = np.zeros(np.shape(masks[0]), dtype=dtype)
    for m in masks:
        count += np.asarray(m, dtype=bool)
    return count


def majority_vote(masks: Sequence[np.ndarray], tie: str = "background") -> np.ndarray:
    """Binary majority vote of N masks with the stated tie policy."""
    if tie not in ("background", "foreground"):
        raise ValueError(f"binary majority vote tie policy must be 'background' or 'foreground', got {tie!r}")
    masks = list(masks)
    n = len(masks)
    if n < 1:
        raise ValueError("majority vote needs at least one annotation")
    doubled = vote_count(masks).astype(np.int32) * 2
    return doubled >= n if tie == "foreground" else doubled > n


def majority_vote_labels(decisions: np.ndarray, n_labels: int) -> np.ndarray:
    """Vote on a pattern table (P, N) of labels: the unique most-voted label, else ``n_labels``.

    Identical to ITK's ``LabelVotingImageFilter`` (which STAPLE's multi-label seeding uses).
    """
    votes = np.zeros((decisions.shape[0], n_labels), dtype=np.int64)
    rows = np.arange(decisions.shape[0])
    for k in range(decisions.shape[1]):
        np.add.at(votes, (rows, decisions[:, k]), 1)
    best = votes.max(axis=1)
    unique = (votes == best[:, None]).sum(axis=1) == 1
    return np.where(unique, votes.argmax(axis=1), n_labels)


def majority_vote_labelmap(labelmaps: Sequence[np.ndarray], tie: str = "background") -> np.ndarray:
    """Label-map majority vote (0 = background takes part) with the stated tie policy."""
    if tie not in ("background", "undecided"):
        raise ValueError(f"label-map majority vote tie policy must be 'background' or 'undecided', got {tie!r}")
    maps = [np.asarray(m) for m in labelmaps]
    n_labels = int(max(int(m.max(initial=0)) for m in maps)) + 1
    table = label_patterns(maps, n_labels)
    winner = majority_vote_labels(table.decisions, n_labels)
    if tie == "background":
        winner = np.where(winner == n_labels, 0, winner)
    dtype = np.uint8 if n_labels < 255 else np.uint16
    return table.to_voxels(winner, dtype)


def disagreement_fraction(masks: Sequence[np.ndarray], consensus: np.ndarray) -> np.ndarray:
    """Per voxel, the share of annotators whose decision differs from the consensus (0..1, float32)."""
    masks = list(masks)
    count = vote_count(masks).astype(np.float32)
    n = float(len(masks))
    return np.where(consensus, (n - count) / n, count / n).astype(np.float32)


def staple_uncertainty(probability: np.ndarray) -> np.ndarray:
    """STAPLE uncertainty 1 - |2p - 1|: 0 where p is 0 or 1, 1 where p = 0.5 (float32)."""
    p = np.asarray(probability, dtype=np.float32)
    return (1.0 - np.abs(2.0 * p - 1.0)).astype(np.float32)
