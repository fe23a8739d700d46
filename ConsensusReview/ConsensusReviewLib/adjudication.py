"""Adjudication: the reviewer's final ground truth, published to the store with its audit record.

The reviewer starts from the consensus or from one annotator's version, edits it (Segment
Editor in Slicer, or any tool), and ``publish_adjudication`` pushes the result as an
'adjudicated' version whose ``meta["audit"]`` says who, when, which method with which
parameters, from which input versions, what it started from and how much the reviewer changed.
"""
from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

import numpy as np

from ConsensusReviewLib.agreement import to_json_safe
from ConsensusReviewLib.inputs import find_segment
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd

AUDIT_SCHEMA = "dicomteam.adjudication.audit/1"
_META_BUDGET = 60 * 1024   # the store accepts 64 KiB of meta; keep a margin


def edit_summary(final, start) -> dict:
    """Per label voxels the reviewer added and removed, comparing ``final`` with ``start``."""
    out = {}
    for s in final.segments:
        f = final.mask(s.name)
        match = find_segment(start, s) if start is not None else None
        if match is None or not start.geometry.same_grid(final.geometry):
            out[s.name] = {"added": int(np.count_nonzero(f)), "removed": 0, "new_label": match is None}
            continue
        b = start.mask(match.name)
        out[s.name] = {"added": int(np.count_nonzero(f & ~b)), "removed": int(np.count_nonzero(b & ~f))}
    return out


def _compact_record(record: dict) -> dict:
    """The consensus record without bulky parts (confusion matrices stay in agreement.json)."""
    labels = {}
    for name, rec in (record.get("labels") or {}).items():
        keep = {k: rec[k] for k in ("method", "iterations", "itk_elapsed_iterations", "converged", "prior",
                                    "threshold", "tie_policy", "undecided_voxels") if k in rec}
        for k in ("sensitivity", "specificity"):
            if k in rec:
                keep[k] = [round(float(x), 6) for x in rec[k]]
        labels[name] = keep
    return {"method": record.get("method"), "parameters": record.get("parameters"),
            "region": record.get("region"), "created": record.get("created"), "labels": labels}


def audit_record(reviewer: str, case_id: str, consensus_record: dict | None, versions: list, started_from: str,
                 edits: dict | None = None, note: str = "") -> dict:
    """Who, when, method, parameters and inputs of one adjudication (JSON-safe, < 60 KiB)."""
    audit = {
        "schema": AUDIT_SCHEMA, "case_id": case_id, "reviewer": reviewer,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "method": (consensus_record or {}).get("method", "manual"),
        "parameters": (consensus_record or {}).get("parameters", {}),
        "inputs": [{"version_id": v["id"], "author": v["author"], "sha256": v.get("sha256"),
                    "created": v.get("created")} for v in versions],
        "started_from": started_from, "edits": edits or {}, "note": note,
        "consensus": _compact_record(consensus_record) if consensus_record else None,
    }
    audit = to_json_safe(audit)
    if len(json.dumps(audit)) > _META_BUDGET and audit["consensus"]:
        audit["consensus"]["labels"] = "omitted (too large for the version record; see agreement.json)"
    return audit


def start_segmentation(result, inputs, versions, start: str) -> tuple:
    """(Segmentation, started_from text) to adjudicate from: 'consensus' or 'annotator:<name>'.

    ``versions``: the annotation version records of the inputs (project cases), to name the start.
    """
    if start == "consensus":
        return result.segmentation, "consensus"
    kind, _sep, name = start.partition(":")
    if kind != "annotator" or name not in inputs.annotators:
        raise ValueError(f"unknown starting point {start!r}")
    k = inputs.annotators.index(name)
    seg = Segmentation.from_masks({s.name: inputs.masks[s.name][k] for s in inputs.labels}, inputs.geometry,
                                  colors={s.name: s.color for s in inputs.labels},
                                  terminology={s.name: s.terminology for s in inputs.labels},
                                  values={s.name: s.label_value for s in inputs.labels})
    version = next((v for v in versions or [] if v["author"] == name), None)
    return seg, (f"version {version['id']}" if version else f"annotator {name}")


def publish_adjudication(store, case_id: str, segmentation, *, consensus_record: dict | None = None,
                         versions: list | None = None, started_from: str = "consensus", start=None,
                         message: str = "", note: str = "") -> dict:
    """Push ``segmentation`` as the case's adjudicated version; returns the store's version record.

    ``versions``: the annotation version records the consensus was made from; ``started_from``:
    "consensus" or "version <id>"; ``start``: the Segmentation the reviewer started from (to
    record how much was edited).  The parent is the case's latest adjudicated version, so a
    re-adjudication continues the chain instead of conflicting with it.
    """
    versions = list(versions or [])
    edits = edit_summary(segmentation, start) if start is not None else {}
    audit = audit_record(store.user, case_id, consensus_record, versions, started_from, edits, note)
    previous = [v for v in store.list_versions(case_id) if v["kind"] == "adjudicated"]
    parent = previous[-1]["id"] if previous else None
    message = message or f"adjudicated ground truth ({audit['method']}, from {started_from})"
    with tempfile.TemporaryDirectory(prefix="dicomteam-adjudication-") as tmp:
        path = write_seg_nrrd(segmentation, Path(tmp) / f"{case_id}-adjudicated.seg.nrrd")
        return store.push_version(case_id, path, parent=parent, message=message, kind="adjudicated",
                                  meta={"audit": audit})


def latest_adjudication(store, case_id: str) -> dict | None:
    """The case's latest adjudicated version record (with ``meta["audit"]``), or None."""
    previous = [v for v in store.list_versions(case_id) if v["kind"] == "adjudicated"]
    return previous[-1] if previous else None
