"""What the TrainBridge panel shows after an evaluation, without Qt or MRML:

* ``load_comparison``: a case's image channel(s), ground truth and prediction as Volumes and
  Segmentations on the image grid (the prediction aligned by physical position), label names
  and colours from dataset.json -- ready for the MRML adapter to turn into nodes;
* ``label_view``: one label at a time -- its ground-truth and predicted masks, and an overlay
  segmentation of agreement / missed / extra voxels;
* ``worst_cases`` / ``worst_slices``: from metrics.json, with the RAS point to jump the slice
  views to (Slicer's world frame).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.geometry import resample_like
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, default_color
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.volumes import read_volume
from TrainBridgeLib.evaluation.evaluate import load_metrics

OVERLAY_COLORS = {"agree": (0.2, 0.8, 0.2), "missed": (0.95, 0.2, 0.2), "extra": (0.2, 0.4, 1.0)}


@dataclass
class CaseComparison:
    """One case: image channels, ground truth and prediction (same grid), dataset labels {name: value}."""

    case_id: str
    images: list
    ground_truth: Segmentation
    prediction: Segmentation
    labels: dict
    notes: list = field(default_factory=list)


def _segmentation(array: np.ndarray, geometry, labels: dict, source: str) -> Segmentation:
    segments = [Segment(name=n, label_value=v, color=default_color(v - 1)) for n, v in labels.items()]
    seg = Segmentation.from_labelmap(array.astype(np.uint8), geometry, segments)
    seg.metadata["source"] = source
    return seg


def load_comparison(dataset_dir, case_id: str, prediction_dir) -> CaseComparison:
    """Image, ground truth and prediction of ``case_id`` (a test or training case of the dataset)."""
    d = Path(dataset_dir)
    meta = json.loads((d / "dataset.json").read_text(encoding="utf-8"))
    labels = {n: int(v) for n, v in meta["labels"].items() if int(v) != 0}
    record = json.loads((d / "cases.json").read_text(encoding="utf-8")).get(case_id)
    if record is None:
        raise ValueError(f"{d}: no case '{case_id}' in cases.json")
    if not record.get("label"):
        raise ValueError(f"case '{case_id}': no ground-truth label in the dataset")
    pred_path = Path(prediction_dir) / f"{case_id}.nii.gz"
    if not pred_path.exists():
        raise FileNotFoundError(f"{pred_path}: no prediction for case '{case_id}'")
    images = [read_volume(d / p) for p in record["images"]]
    grid = images[0].geometry
    gt = read_volume(d / record["label"])
    pred = read_volume(pred_path)
    notes = []
    if not pred.geometry.same_grid(grid, tol_mm=1e-3):
        notes.append("prediction resampled onto the image grid: " + "; ".join(pred.geometry.differences(grid)))
        pred = Volume(resample_like(pred.array, pred.geometry, grid, label=True), grid)
    return CaseComparison(case_id, images, _segmentation(gt.array, grid, labels, str(d / record["label"])),
                          _segmentation(pred.array, grid, labels, str(pred_path)), labels, notes)


def label_view(comparison: CaseComparison, label: str) -> dict:
    """One label: {'ground_truth', 'prediction', 'overlay'} Segmentations (overlay: agree/missed/extra)."""
    if label not in comparison.labels:
        raise KeyError(f"no label '{label}' (labels: {', '.join(comparison.labels)})")
    g = comparison.ground_truth.geometry
    gt = comparison.ground_truth.mask(label) if label in comparison.ground_truth.names else np.zeros(g.shape, bool)
    pr = comparison.prediction.mask(label) if label in comparison.prediction.names else np.zeros(g.shape, bool)
    color = comparison.ground_truth.segment(label).color if label in comparison.ground_truth.names else (1, 1, 0)
    masks = {"agree": gt & pr, "missed": gt & ~pr, "extra": pr & ~gt}
    overlay = Segmentation.from_masks(masks, g, colors=OVERLAY_COLORS)
    return {"ground_truth": Segmentation.from_masks({f"{label} (truth)": gt}, g, colors={f"{label} (truth)": color}),
            "prediction": Segmentation.from_masks({f"{label} (model)": pr}, g, colors={f"{label} (model)": color}),
            "overlay": overlay}


def read_metrics(path_or_job) -> dict:
    """metrics.json (with float infinities) from its path, an evaluation folder, or a job folder."""
    p = Path(path_or_job)
    for candidate in (p, p / "metrics.json", p / "evaluation" / "metrics.json"):
        if candidate.is_file():
            return load_metrics(candidate)
    raise FileNotFoundError(f"{p}: no metrics.json (has the evaluation run?)")


def worst_cases(metrics, n: int = 10) -> list[dict]:
    """[{'case', 'mean_dice'}] lowest first."""
    m = metrics if isinstance(metrics, dict) else read_metrics(metrics)
    means = m["case_mean_dice"]
    return [{"case": c, "mean_dice": means[c]} for c in sorted(means, key=means.get)[:n]]


def worst_slices(metrics, case_id: str | None = None, n: int = 10) -> list[dict]:
    """[{'case', 'label', 'slice', 'dice', 'center_ras', ...}] lowest Dice first, optionally of one case."""
    m = metrics if isinstance(metrics, dict) else read_metrics(metrics)
    rows = m["worst_slices"] if case_id is None else m.get("worst_slices_by_case", {}).get(case_id, [])
    return rows[:n]
