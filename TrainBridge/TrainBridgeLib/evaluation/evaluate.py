"""Evaluate predicted label maps against ground truth: per case and label Dice, HD95, NSD, volumes.

The metrics are ``DicomTeamAnnotateLib.core.metrics.compute_metrics`` (the project's one implementation;
its empty-mask policy applies: a missed structure has HD95 = inf, written "inf").  Also: mean and
spread per label, the worst cases (lowest mean Dice) and the worst slices (lowest per-slice Dice,
with the physical position of the error to jump to in Slicer).

    python -m TrainBridgeLib.evaluation.evaluate --gt labelsTs --pred predictions [--labels dataset.json] --out DIR
        -> DIR/metrics.csv, DIR/metrics.json, DIR/summary.png
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path, write_bytes_atomic, write_json_atomic
from DicomTeamAnnotateLib.core.geometry import Geometry, resample_like
from DicomTeamAnnotateLib.core.metrics import EMPTY_POLICY_TEXT, compute_metrics
from DicomTeamAnnotateLib.io.volumes import read_volume

METRICS = ("dice", "hd95", "assd", "nsd", "volume_gt_ml", "volume_pred_ml", "volume_diff_ml")
ENDING = ".nii.gz"


def read_labelmap(path):
    """(int array (K, J, I), Geometry) of a label-map file."""
    vol = read_volume(path)
    return vol.array, vol.geometry


def labels_from(spec) -> dict | None:
    """{name: value} (no background) from a dataset.json path, a {name: value} dict, or None."""
    if spec is None:
        return None
    if isinstance(spec, (str, Path)):
        spec = json.loads(Path(spec).read_text(encoding="utf-8"))
    spec = spec.get("labels", spec)
    return {str(n): int(v) for n, v in spec.items() if int(v) != 0}


def slice_scores(gt: np.ndarray, pred: np.ndarray, value: int, axis: int) -> list[dict]:
    """Per-slice Dice of one label along an index axis (slices where both are empty are skipped)."""
    a, b = np.moveaxis(gt == value, axis, 0), np.moveaxis(pred == value, axis, 0)
    na, nb = a.reshape(len(a), -1).sum(1), b.reshape(len(b), -1).sum(1)
    inter = (a & b).reshape(len(a), -1).sum(1)
    out = []
    for s in np.flatnonzero((na + nb) > 0):
        out.append({"slice": int(s), "dice": float(2 * inter[s] / (na[s] + nb[s])), "gt_voxels": int(na[s]),
                    "pred_voxels": int(nb[s]), "error_voxels": int(na[s] + nb[s] - 2 * inter[s])})
    return out


def _error_centre(gt, pred, value, axis, index, geometry: Geometry) -> dict:
    """LPS and RAS position of the centre of the disagreement in one slice (where to look)."""
    err = np.moveaxis((gt == value) ^ (pred == value), axis, 0)[index]
    if not err.any():
        err = np.moveaxis((gt == value) | (pred == value), axis, 0)[index]
    pts = np.argwhere(err).mean(axis=0)  # (row, col) in the moved array
    kji = np.insert(pts, axis, index)  # back to (k, j, i)
    lps = geometry.to_lps().index_to_world(kji[::-1])
    return {"center_lps": [float(v) for v in lps], "center_ras": [float(-lps[0]), float(-lps[1]), float(lps[2])]}


def evaluate_case(gt: np.ndarray, pred: np.ndarray, geometry: Geometry, labels: dict, *,
                  tolerance_mm: float = 1.0, hd_mode: str = "max", worst_slices: int = 5) -> dict:
    """{label: metrics} plus "_worst_slices" for one case (arrays on the same grid)."""
    axis = 2 - geometry.plane_axis("axial")  # index axis i,j,k -> array axis k,j,i
    out, slices = {}, []
    for name, value in labels.items():
        m = compute_metrics(pred == value, gt == value, geometry.spacing, tolerance_mm=tolerance_mm, hd_mode=hd_mode)
        out[name] = {"dice": m["dice"], "hd95": m["hd95"], "assd": m["assd"], "nsd": m["nsd"],
                     "volume_gt_ml": m["volume_b_ml"], "volume_pred_ml": m["volume_a_ml"],
                     "volume_diff_ml": m["volume_diff_ml"]}
        for s in slice_scores(gt, pred, value, axis):
            if s["dice"] < 1.0:
                slices.append({"label": name, "axis": "ijk"[2 - axis], **s})
    slices.sort(key=lambda s: (s["dice"], -s["error_voxels"]))
    for s in slices[:worst_slices]:
        s.update(_error_centre(gt, pred, labels[s["label"]], axis, s["slice"], geometry))
    out["_worst_slices"] = slices[:worst_slices]
    return out


def _stats(values: list) -> dict:
    v = np.array([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    finite = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "mean": float(v.mean()) if finite.size == v.size else math.inf,
            "mean_finite": float(finite.mean()) if finite.size else None,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n_inf": int(v.size - finite.size)}


def summarize(cases: dict, labels: dict) -> dict:
    """Per label and metric: n, mean (inf if any case is inf), mean over finite cases, std, median, min, max."""
    return {name: {m: _stats([cases[c][name][m] for c in cases]) for m in METRICS} for name in labels}


def _json_safe(obj):
    if isinstance(obj, float) and math.isinf(obj):
        return "inf" if obj > 0 else "-inf"  # the metrics module's policy: spelled, not capped
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def evaluate_folders(gt_dir, pred_dir, out_dir=None, *, labels=None, tolerance_mm: float = 1.0, hd_mode: str = "max",
                     worst: int = 10, progress=None) -> dict:
    """Evaluate every ``{case}.nii.gz`` of ``gt_dir`` against ``pred_dir``; write files when ``out_dir``."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    gt_files = sorted(p for p in gt_dir.glob(f"*{ENDING}") if not p.name.startswith("."))
    if not gt_files:
        raise ValueError(f"{gt_dir}: no {ENDING} ground-truth files")
    missing = [p.name for p in gt_files if not (pred_dir / p.name).exists()]
    if missing:
        raise FileNotFoundError(f"{pred_dir}: no prediction for {len(missing)} case(s): {', '.join(missing[:10])}")
    labels = labels_from(labels)
    notes, cases, worst_slices, seen, by_case = [], {}, [], {}, {}
    for n, gt_path in enumerate(gt_files, start=1):
        case = gt_path.name[: -len(ENDING)]
        gt, g = read_labelmap(gt_path)
        pred, gp = read_labelmap(pred_dir / gt_path.name)
        if not gp.same_grid(g, tol_mm=1e-3):
            notes.append(f"case '{case}': prediction resampled onto the ground-truth grid ({'; '.join(gp.differences(g))})")
            pred = resample_like(pred, gp, g, label=True)
        # without label names, every value found in this case's ground truth or prediction
        case_labels = labels or {f"label_{v}": int(v) for v in np.union1d(np.unique(gt), np.unique(pred)) if v != 0}
        seen.update(case_labels)
        result = evaluate_case(gt, pred, g, case_labels, tolerance_mm=tolerance_mm, hd_mode=hd_mode)
        by_case[case] = [{"case": case, **s} for s in result.pop("_worst_slices")]
        worst_slices += by_case[case]
        cases[case] = result
        if progress:
            progress(n, len(gt_files), case)
    all_labels = labels or dict(sorted(seen.items(), key=lambda kv: kv[1]))
    for c in cases.values():  # label-less mode: a label absent from a case is "both empty"
        for name in all_labels:
            c.setdefault(name, {"dice": 1.0, "hd95": 0.0, "assd": 0.0, "nsd": 1.0, "volume_gt_ml": 0.0,
                                "volume_pred_ml": 0.0, "volume_diff_ml": 0.0})
    case_mean = {c: float(np.mean([cases[c][n]["dice"] for n in all_labels])) for c in cases}
    worst_slices.sort(key=lambda s: (s["dice"], -s["error_voxels"]))
    result = {
        "gt_dir": str(gt_dir.resolve()), "pred_dir": str(pred_dir.resolve()), "tolerance_mm": tolerance_mm,
        "hd_mode": hd_mode, "empty_policy": EMPTY_POLICY_TEXT, "labels": all_labels, "cases": cases,
        "case_mean_dice": case_mean, "summary": summarize(cases, all_labels),
        "worst_cases": [{"case": c, "mean_dice": d} for c, d in sorted(case_mean.items(), key=lambda kv: kv[1])[:worst]],
        "worst_slices": worst_slices[:worst], "worst_slices_by_case": by_case, "notes": notes,
    }
    if out_dir is not None:
        write_outputs(result, out_dir)
    return result


def write_outputs(result: dict, out_dir) -> dict:
    """metrics.csv (one row per case and label), metrics.json, summary.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "label", "label_value", "dice", "hd95_mm", "assd_mm", "nsd", "volume_gt_ml", "volume_pred_ml",
                "volume_diff_ml"])
    for case, per_label in result["cases"].items():
        for name, value in result["labels"].items():
            m = per_label[name]
            w.writerow([case, name, value] + [_fmt(m[k]) for k in METRICS])
    write_bytes_atomic(out / "metrics.csv", buf.getvalue().encode())
    write_json_atomic(out / "metrics.json", _json_safe(result))
    plot_summary(result, out / "summary.png")
    return {"csv": out / "metrics.csv", "json": out / "metrics.json", "png": out / "summary.png"}


def _fmt(v) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def plot_summary(result: dict, png_path) -> Path:
    """Box plots of Dice and HD95 (finite values; count of inf noted) per label."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    names = list(result["labels"])
    fig = Figure(figsize=(max(6, 0.7 * len(names) + 3), 4.2), dpi=90)
    ax_d, ax_h = fig.subplots(1, 2)
    dice = [[result["cases"][c][n]["dice"] for c in result["cases"]] for n in names]
    hd = [[v for v in (result["cases"][c][n]["hd95"] for c in result["cases"]) if math.isfinite(v)] for n in names]
    ax_d.boxplot(dice, showmeans=True)
    ax_d.set_ylim(-0.02, 1.02)
    ax_d.set_title(f"Dice ({len(result['cases'])} case(s))", fontsize=10)
    ax_h.boxplot([h if h else [np.nan] for h in hd], showmeans=True)
    n_inf = [result["summary"][n]["hd95"].get("n_inf", 0) for n in names]
    ax_h.set_title("HD95 (mm)" + (f"; {sum(n_inf)} missed (inf) not drawn" if sum(n_inf) else ""), fontsize=10)
    for ax in (ax_d, ax_h):
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(str(tmp), format="png")
    return Path(png_path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m TrainBridgeLib.evaluation.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--gt", required=True)
    p.add_argument("--pred", required=True)
    p.add_argument("--labels", help="dataset.json (label names)")
    p.add_argument("--out", required=True)
    p.add_argument("--tolerance-mm", type=float, default=1.0)
    args = p.parse_args(argv)
    try:
        result = evaluate_folders(args.gt, args.pred, args.out, labels=args.labels, tolerance_mm=args.tolerance_mm)
    except (ValueError, FileNotFoundError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(summary_text(result))
    return 0


def _number(value) -> float:
    """A metric as a float: "inf"/"-inf" (as metrics.json spells them) and None (NaN) included."""
    if value is None:
        return math.nan
    return float(value)  # float("inf") parses the spelled-out infinity


def load_metrics(path) -> dict:
    """Read metrics.json with "inf" turned back into float infinity."""
    def hook(d):
        return {k: (math.inf if v == "inf" else -math.inf if v == "-inf" else v) for k, v in d.items()}

    return json.loads(Path(path).read_text(encoding="utf-8"), object_hook=hook)


def summary_text(result: dict) -> str:
    """A small table: label, mean Dice +- std, median HD95 (mm), mean NSD."""
    lines = [f"{'label':24s} {'Dice mean':>9s} {'+-std':>6s} {'HD95 med':>9s} {'NSD mean':>8s}"]
    for name, s in result["summary"].items():
        d, h, nsd = s["dice"], s["hd95"], s["nsd"]
        lines.append(f"{name:24s} {_number(d.get('mean')):9.3f} {_number(d.get('std', 0)):6.3f} "
                     f"{_number(h.get('median')):9.2f} {_number(nsd.get('mean')):8.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
