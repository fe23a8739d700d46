"""Write one consensus to a folder: the files ``dicomteam consensus --out DIR`` promises.

    DIR/consensus.seg.nrrd         the consensus as a Slicer segmentation (names, colours, terminology)
    DIR/consensus.nii.gz           the same as a label map (+ consensus.json: label names and values)
    DIR/probability_<label>.nii.gz STAPLE methods: foreground probability per label (float32)
    DIR/disagreement.nii.gz        the disagreement map (float32, 0..1) for the review layer
    DIR/agreement.json             per label: pairwise Dice/HD95/ASSD/NSD matrices (annotators in input
                                   order), per-annotator figures vs the consensus, parameters, record
    DIR/agreement.csv              one row per label and annotator
    DIR/report.html (+ PNGs)       the case report
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np

from ConsensusReviewLib.agreement import to_json_safe
from ConsensusReviewLib.report import agreement_rows, write_case_report, write_csv
from ConsensusReviewLib.review_queue import ReviewThresholds, build_queue, case_summary, disputed_fraction
from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.segmentations import write_labelmap, write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import write_volume

SCHEMA = "dicomteam.consensus.agreement/1"


def safe_label(name: str) -> str:
    """A label name usable in a file name: 'kidney left' -> 'kidney_left'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "label"


def review_status(result, case_id: str = "", thresholds: ReviewThresholds = ReviewThresholds()) -> dict:
    """The case's queue entry: worst-label summary, needs_review and the reasons.

    Computed once per result (the outputs and the project queue both ask for it)."""
    key = (case_id, thresholds)
    if key not in result.reviews:
        disputed = {name: disputed_fraction(result.inputs.masks[name]) for name in result.agreement}
        summary = case_summary(case_id, result.agreement, disputed, len(result.inputs.annotators))
        result.reviews[key] = build_queue([summary], thresholds)[0]
    return copy.deepcopy(result.reviews[key])


def agreement_document(result, case_id: str = "", review: dict | None = None) -> dict:
    """The content of agreement.json (JSON-safe: inf as "inf", undefined as null)."""
    doc = {
        "schema": SCHEMA, "case": case_id, "method": result.method,
        "annotators": list(result.inputs.annotators), "sources": list(result.inputs.sources),
        "parameters": result.record["parameters"], "metric_definitions": result.record["metric_definitions"],
        "record": result.record,
        "labels": {},
        "review": review,
    }
    for label, a in result.agreement.items():
        entry = dict(a)
        entry["staple"] = result.record["labels"].get(label) or result.record["labels"].get("all_labels")
        doc["labels"][label] = entry
    return to_json_safe(doc)


def write_consensus_outputs(result, out_dir, case_id: str = "", image=None, report: bool = True,
                            thresholds: ReviewThresholds = ReviewThresholds()) -> dict:
    """Write every output file of one consensus; returns {what: path}."""

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    geometry = result.inputs.geometry
    paths = {"segmentation": write_seg_nrrd(result.segmentation, out_dir / "consensus.seg.nrrd"),
             "labelmap": write_labelmap(result.segmentation, out_dir / "consensus.nii.gz")}
    for label, prob in result.probabilities.items():
        paths[f"probability:{label}"] = write_volume(Volume(prob.astype(np.float32), geometry),
                                                     out_dir / f"probability_{safe_label(label)}.nii.gz")
    if result.disagreement is not None:
        paths["disagreement"] = write_volume(Volume(result.disagreement, geometry), out_dir / "disagreement.nii.gz")
    review = review_status(result, case_id, thresholds) if result.agreement else None
    paths["agreement"] = write_json_atomic(out_dir / "agreement.json", agreement_document(result, case_id, review))
    paths["csv"] = write_csv(agreement_rows(result.agreement, case_id), out_dir / "agreement.csv")
    if report:
        paths["report"] = write_case_report(result, out_dir, case_id, image, review)
    return paths
