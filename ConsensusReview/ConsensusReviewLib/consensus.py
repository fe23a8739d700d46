"""One consensus of one case: majority vote, binary STAPLE per label, or multi-label STAPLE.

``run_consensus(inputs, method)`` is what the CLI, the Slicer panel and the tests call.  Its
result carries the consensus segmentation (on the reference grid, same names, colours and
terminology as the inputs), per-label probability maps (STAPLE), per-label vote counts, one
disagreement map for the review layer, the agreement figures, and the record that goes into
the audit trail: method, parameters, region, iteration counts, inputs.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np

from ConsensusReviewLib.agreement import label_agreement, metric_definitions
from ConsensusReviewLib.inputs import ConsensusInputs
from ConsensusReviewLib.staple import DEFAULT_THRESHOLD, STAPLE_VARIANTS, staple_binary, staple_multilabel
from ConsensusReviewLib.voting import TIE_POLICIES, disagreement_fraction, majority_vote, staple_uncertainty, vote_count
from DicomTeamAnnotateLib.core.segmentation import Segmentation

METHODS = {
    "majority": "majority vote per label",
    "staple": "binary STAPLE per label (Warfield 2004), thresholded probability",
    "multilabel-staple": "multi-label STAPLE over all labels at once (Rohlfing 2004)",
}
DISAGREEMENT_MAPS = {
    "majority": "share of annotators whose decision differs from the consensus (max over labels)",
    "staple": "STAPLE uncertainty 1 - |2p - 1| (max over labels)",
    "multilabel-staple": "2 x (1 - highest posterior label probability), clipped to [0, 1]",
}


@dataclass
class ConsensusResult:
    """The consensus of one case, its maps, agreement figures and audit record."""

    method: str
    inputs: ConsensusInputs
    segmentation: Segmentation
    probabilities: dict = field(default_factory=dict)   # label name -> float32 (K, J, I); STAPLE only
    vote_counts: dict = field(default_factory=dict)     # label name -> uint8 (K, J, I)
    disagreement: np.ndarray | None = None              # float32 (K, J, I) in [0, 1]
    agreement: dict = field(default_factory=dict)       # label name -> label_agreement(...)
    record: dict = field(default_factory=dict)
    reviews: dict = field(default_factory=dict, repr=False, compare=False)  # outputs.review_status's, by
                                                                           # (case id, thresholds)

    def mask(self, label: str) -> np.ndarray:
        return self.segmentation.mask(label)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_consensus(inputs: ConsensusInputs, method: str = "staple", *, threshold: float = DEFAULT_THRESHOLD,
                  tie: str = "background", staple_variant: str = "itk", tolerance_mm: float = 1.0,
                  hd_mode: str = "max", with_agreement: bool = True) -> ConsensusResult:
    """Consensus of ``inputs`` by ``method`` ("majority", "staple", "multilabel-staple")."""
    if method not in METHODS:
        raise ValueError(f"unknown consensus method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1), got {threshold}")
    names = [s.name for s in inputs.labels]
    masks, probabilities, label_records = {}, {}, {}
    if method == "majority":
        for name in names:
            masks[name] = majority_vote(inputs.masks[name], tie=tie)
            label_records[name] = {"method": "majority", "tie_policy": TIE_POLICIES[tie]}
    elif method == "staple":
        for name in names:
            result = staple_binary(inputs.masks[name])
            probabilities[name] = result.probability
            masks[name] = result.mask(threshold)
            label_records[name] = result.record() | {"threshold": threshold}
    else:
        masks, probabilities, label_records = _multilabel(inputs, names, staple_variant)
    votes = {name: vote_count(inputs.masks[name]) for name in names}
    disagreement = _disagreement_map(method, inputs, masks, probabilities)
    colors = {s.name: s.color for s in inputs.labels}
    terms = {s.name: s.terminology for s in inputs.labels}
    values = {s.name: s.label_value for s in inputs.labels}  # the annotators' values (2035 stays 2035)
    segmentation = Segmentation.from_masks(masks, inputs.geometry, colors=colors, terminology=terms, values=values)
    agreement = {}
    if with_agreement:
        for name in names:
            agreement[name] = label_agreement(inputs.masks[name], masks[name], inputs.geometry.spacing,
                                              inputs.annotators, tolerance_mm, hd_mode)
    record = {
        "method": method, "method_description": METHODS[method], "created": _utc_now(),
        "parameters": {"threshold": threshold if method != "majority" else None,
                       "threshold_rule": "probability > threshold" if method == "staple" else None,
                       "tie_policy": TIE_POLICIES[tie] if method == "majority" else None,
                       "staple_variant": staple_variant if method == "multilabel-staple" else None,
                       "tolerance_mm": tolerance_mm, "hd_mode": hd_mode},
        "metric_definitions": metric_definitions(tolerance_mm, hd_mode),
        "disagreement_map": DISAGREEMENT_MAPS[method],
        "region": f"whole reference image {list(inputs.geometry.size)} (I, J, K)",
        "labels": label_records,
        "inputs": inputs.provenance(),
    }
    return ConsensusResult(method, inputs, segmentation, probabilities, votes, disagreement, agreement, record)


def _multilabel(inputs: ConsensusInputs, names: list, variant: str) -> tuple:
    """Multi-label STAPLE: each annotator's labels as one label map (value = label order, 1..L)."""
    if variant not in STAPLE_VARIANTS:
        raise ValueError(f"staple_variant must be one of {sorted(STAPLE_VARIANTS)}, got {variant!r}")
    n = len(inputs.annotators)
    dtype = np.uint8 if len(names) < 255 else np.uint16
    maps = [np.zeros(inputs.geometry.shape, dtype=dtype) for _ in range(n)]
    overlaps = 0
    for value, name in enumerate(names, start=1):
        for k in range(n):
            m = inputs.masks[name][k]
            overlaps += int(np.count_nonzero(maps[k][m]))
            maps[k][m] = value
    # the undecided value must not be any label's value, even of a label nobody drew
    result = staple_multilabel(maps, variant=variant, undecided_label=len(names) + 1)
    masks, probabilities = {}, {}
    for value, name in enumerate(names, start=1):
        masks[name] = result.labels == value
        probabilities[name] = result.probability(value)
    undecided = int(np.count_nonzero(result.labels == result.undecided_label))
    record = result.record() | {"label_values": {name: v for v, name in enumerate(names, start=1)},
                                "undecided_voxels": undecided,
                                "undecided_policy": "undecided voxels belong to no label in the consensus",
                                "overlapping_voxels": overlaps,
                                "overlap_policy": "where an annotator's segments overlap, the later label wins"}
    return masks, probabilities, {"all_labels": record}


def _disagreement_map(method: str, inputs: ConsensusInputs, masks: dict, probabilities: dict) -> np.ndarray:
    out = np.zeros(inputs.geometry.shape, dtype=np.float32)
    for name in masks:
        if method == "majority":
            np.maximum(out, disagreement_fraction(inputs.masks[name], masks[name]), out=out)
        elif method == "staple":
            np.maximum(out, staple_uncertainty(probabilities[name]), out=out)
    if method == "multilabel-staple":
        best = np.zeros(inputs.geometry.shape, dtype=np.float32)
        covered = np.zeros(inputs.geometry.shape, dtype=np.float32)
        for p in probabilities.values():
            np.maximum(best, p, out=best)
            covered += p
        best = np.maximum(best, 1.0 - covered)          # background's posterior
        out = np.clip(2.0 * (1.0 - best), 0.0, 1.0).astype(np.float32)
    return out
