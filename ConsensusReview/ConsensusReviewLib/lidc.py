"""The LIDC-IDRI multi-reader nodule masks (``../shared/data/lidc_multirater``) and a reader summary.

Each ``.npz`` holds ``masks`` (R, row, column, slice) on a common bounding box, ``spacing`` along
(row, column, slice), ``readers`` (annotation ids) and ``patient``.  LIDC readers are anonymous
and their order differs between nodules, so "reader 1..4" below are reading *slots*, not people.
Specificities are over each nodule's bounding box (no CT pixels are shipped), so they depend on
the crop; sensitivities and Dice do not.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ConsensusReviewLib.agreement import label_agreement
from ConsensusReviewLib.staple import staple_binary
from DicomTeamAnnotateLib.core.geometry import Geometry


def load_lidc_nodule(path) -> tuple:
    """One nodule: (masks bool (R, K, J, I), Geometry, info dict).

    Our arrays are (k, j, i) = (slice, row, column) and our spacing is (i, j, k) = (column, row,
    slice), so the file's axes and spacing are reordered.  The crop's position is unknown:
    origin 0, axial axes.
    """
    path = Path(path)
    with np.load(path) as data:
        raw = data["masks"]
        if raw.ndim != 4:
            raise ValueError(f"{path}: 'masks' must be (readers, row, column, slice), got shape {raw.shape}")
        masks = np.ascontiguousarray(raw.transpose(0, 3, 1, 2)).astype(bool)
        sp = [float(v) for v in data["spacing"]]
        info = {"case": path.stem, "patient": str(data["patient"]), "readers": [str(r) for r in data["readers"]]}
    geometry = Geometry(size=masks.shape[:0:-1], spacing=(sp[1], sp[0], sp[2]))
    return masks, geometry, info


def lidc_index(lidc_dir) -> list:
    """The nodules listed in ``index.json``."""
    return json.loads((Path(lidc_dir) / "index.json").read_text(encoding="utf-8"))


def nodule_files(lidc_dir) -> list:
    """Every nodule file, sorted by name."""
    return sorted(Path(lidc_dir).glob("*.npz"))


def reader_summary(lidc_dir) -> dict:
    """STAPLE over every nodule: per reader slot mean sensitivity, specificity and Dice vs the consensus."""
    per_nodule = []
    for path in nodule_files(lidc_dir):
        masks, geometry, info = load_lidc_nodule(path)
        result = staple_binary(list(masks), dtype=np.float64)
        consensus = result.mask()
        names = [f"reader{n + 1}" for n in range(len(masks))]
        agreement = label_agreement(list(masks), consensus, geometry.spacing, names)
        per_nodule.append({"case": info["case"], "patient": info["patient"],
                           "staple_sensitivity": result.sensitivity.tolist(),
                           "staple_specificity": result.specificity.tolist(),
                           "dice_vs_consensus": [r["dice"] for r in agreement["per_annotator"]],
                           "mean_pairwise_dice": agreement["mean_pairwise_dice"],
                           "iterations": result.iterations})
    n_slots = max(len(r["staple_sensitivity"]) for r in per_nodule) if per_nodule else 0
    readers = []
    for slot in range(n_slots):
        rows = [r for r in per_nodule if slot < len(r["staple_sensitivity"])]
        readers.append({"reader": f"reader{slot + 1}", "nodules": len(rows),
                        "mean_sensitivity": float(np.mean([r["staple_sensitivity"][slot] for r in rows])),
                        "mean_specificity": float(np.mean([r["staple_specificity"][slot] for r in rows])),
                        "mean_dice_vs_consensus": float(np.mean([r["dice_vs_consensus"][slot] for r in rows]))})
    all_sens = [s for r in per_nodule for s in r["staple_sensitivity"]]
    return {"nodules": len(per_nodule), "patients": len({r["patient"] for r in per_nodule}), "readers": readers,
            "overall": {"mean_sensitivity": float(np.mean(all_sens)) if all_sens else float("nan"),
                        "sensitivity_p10_p90": [float(np.percentile(all_sens, 10)), float(np.percentile(all_sens, 90))]
                        if all_sens else None,
                        "mean_pairwise_dice": float(np.mean([r["mean_pairwise_dice"] for r in per_nodule]))
                        if per_nodule else float("nan")},
            "per_nodule": per_nodule}


def format_reader_summary(summary: dict) -> str:
    """A few readable lines of ``reader_summary``."""
    lines = [f"LIDC STAPLE summary: {summary['nodules']} nodules, {summary['patients']} patients "
             "(reader slots, not identities; specificity over each nodule's bounding box)"]
    for r in summary["readers"]:
        lines.append(f"  {r['reader']}: sensitivity {r['mean_sensitivity']:.3f}, specificity "
                     f"{r['mean_specificity']:.4f}, Dice vs STAPLE consensus {r['mean_dice_vs_consensus']:.3f} "
                     f"({r['nodules']} nodules)")
    o = summary["overall"]
    lines.append(f"  all readers: mean sensitivity {o['mean_sensitivity']:.3f} (10th-90th percentile "
                 f"{o['sensitivity_p10_p90'][0]:.3f}-{o['sensitivity_p10_p90'][1]:.3f}), mean pairwise Dice "
                 f"{o['mean_pairwise_dice']:.3f}")
    return "\n".join(lines)
