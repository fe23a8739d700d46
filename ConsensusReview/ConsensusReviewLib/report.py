"""Consensus reports: HTML with PNG pictures (matplotlib, Agg), plus CSV rows.

Per case: the parameters and metric definitions (HD95 definition, empty-mask policy), a
per-label table (pairwise and per-annotator figures), a pairwise-Dice heatmap per label, and
the consensus and the disagreement drawn over the image in the axial, coronal and sagittal
planes through the most disputed point.  Per project: the review queue and per-annotator bias.
Every file is written atomically.
"""
from __future__ import annotations

import csv
import html
import io
import math
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import write_bytes_atomic
from DicomTeamAnnotateLib.core.geometry import resample_like
from DicomTeamAnnotateLib.core.metrics import EMPTY_POLICY_TEXT
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.core.windowing import mpr_planes

# Disagreement bins drawn over the image: (name, lower bound exclusive, colour); below 0.1 is
# agreement (STAPLE leaves tiny non-zero uncertainties everywhere)
DISAGREEMENT_BINS = (("minor disagreement", 0.1, (1.0, 0.9, 0.2)), ("split", 1 / 3, (1.0, 0.55, 0.1)),
                     ("major disagreement", 2 / 3, (0.9, 0.1, 0.1)))
ANNOTATOR_COLUMNS = ("annotator", "dice", "hd95", "assd", "nsd", "sensitivity", "specificity", "volume_ml",
                     "volume_diff_ml", "volume_diff_pct", "fp_share", "fn_share", "tendency")


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return write_bytes_atomic(path, buf.getvalue())


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def heatmap_png(matrix, names, path, title: str, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis") -> Path:
    """A square heatmap of an N x N matrix with its values written in the cells."""
    m = np.asarray(matrix, dtype=float)
    n = len(names)
    fig = _figure(1.2 + 0.7 * n, 0.9 + 0.6 * n)
    ax = fig.add_subplot(111)
    shown = np.where(np.isfinite(m), m, np.nan)
    im = ax.imshow(shown, vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(n), labels=names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=names, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, _fmt(m[i, j], 2), ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(m[i, j]) and m[i, j] < (vmin + vmax) / 2 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save_png(fig, Path(path))


def most_disputed_point(disagreement: np.ndarray, geometry) -> np.ndarray:
    """World (LPS) position of the voxel with the most disagreement around it (the centre if none)."""
    from scipy import ndimage

    if disagreement is None or not np.any(disagreement > 0):
        return geometry.to_lps().index_to_world((np.array(geometry.size) - 1) / 2.0)
    smooth = ndimage.uniform_filter(disagreement.astype(np.float32), size=5)
    k, j, i = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return geometry.to_lps().index_to_world(np.array([i, j, k], dtype=float))


def disagreement_segmentation(disagreement: np.ndarray, geometry):
    """The disagreement map binned into three coloured segments (for overlays and Slicer)."""
    labels = np.zeros(disagreement.shape, dtype=np.uint8)
    segments = []
    for value, (name, low, color) in enumerate(DISAGREEMENT_BINS, start=1):
        labels[disagreement > low] = value
        segments.append(Segment(name=name, label_value=value, color=color))
    return Segmentation.from_labelmap(labels, geometry, segments=segments)


def overlay_png(result, path, image=None, preset=None) -> Path:
    """Consensus (top row) and disagreement (bottom row) over the image in the three planes."""
    geometry = result.inputs.geometry
    if image is None:  # no image: draw over the vote fraction of all labels, in grey
        votes = sum(v.astype(np.float32) for v in result.vote_counts.values())
        image = Volume(100.0 * votes / max(1, len(result.inputs.annotators)), geometry)
        window = (50.0, 100.0)
    else:
        if not image.geometry.same_grid(geometry):

            image = Volume(resample_like(image.array, image.geometry, geometry, label=False), geometry)
        window = preset or "soft tissue"
    point = most_disputed_point(result.disagreement, geometry)
    rows = [("consensus", mpr_planes(image, window, point, result.segmentation, alpha=0.45, max_pixels=256)),
            ("disagreement", mpr_planes(image, window, point, disagreement_segmentation(result.disagreement, geometry),
                                        alpha=0.65, max_pixels=256))]
    fig = _figure(10.5, 7.2)
    axes = fig.subplots(2, 3)
    for r, (row_name, panels) in enumerate(rows):
        for c, (plane, pg, gray, rgba) in enumerate(panels):
            ax = axes[r, c]
            extent = (0, pg.size[0] * pg.spacing[0], pg.size[1] * pg.spacing[1], 0)
            ax.imshow(gray, cmap="gray", vmin=0, vmax=255, extent=extent, interpolation="nearest")
            ax.imshow(rgba, extent=extent, interpolation="nearest")
            ax.set_title(f"{row_name}: {plane}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Disagreement colours: yellow minor, orange split, red major", fontsize=9)
    return _save_png(fig, Path(path))


def agreement_rows(agreement: dict, case_id: str = "") -> list:
    """Flat rows (case, label, annotator, metrics...) of ``{label: label_agreement(...)}`` for CSV."""
    rows = []
    for label, a in agreement.items():
        for r in a["per_annotator"]:
            row = {"case": case_id, "label": label}
            row.update({k: r.get(k) for k in ANNOTATOR_COLUMNS})
            row["mean_pairwise_dice"] = a["mean_pairwise_dice"]
            rows.append(row)
    return rows


def write_csv(rows: list, path) -> Path:
    """Rows of dicts to CSV (columns of the first row; inf written as 'inf', NaN empty)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else
                                 "inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in r.items()})
    return write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def _table(rows: list, columns) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}"
          "td,th{border:1px solid #bbb;padding:2px 6px;font-size:13px;text-align:right}th{background:#eee}"
          ".note{color:#555;font-size:13px}.flag{color:#b00;font-weight:bold}")


def write_case_report(result, out_dir, case_id: str = "", image=None, review: dict | None = None) -> Path:
    """``out_dir/report.html`` with heatmaps and plane overlays of one consensus."""
    out_dir = Path(out_dir)
    rec = result.record
    parts = [f"<h1>Consensus report{': ' + html.escape(case_id) if case_id else ''}</h1>",
             f"<p>Method: <b>{html.escape(rec['method'])}</b> ({html.escape(rec['method_description'])}); "
             f"created {html.escape(rec['created'])}; annotators (in input order): "
             f"{html.escape(', '.join(result.inputs.annotators))}.</p>",
             "<p class='note'>" + "<br>".join(html.escape(f"{k}: {v}") for k, v in rec["metric_definitions"].items())
             + f"<br>disagreement map: {html.escape(rec['disagreement_map'])}<br>region: {html.escape(rec['region'])}"
             + "</p>"]
    params = {k: v for k, v in rec["parameters"].items() if v is not None}
    parts.append("<p class='note'>Parameters: " + html.escape(", ".join(f"{k}={v}" for k, v in params.items()))
                 + "</p>")
    if review is not None:
        status = "NEEDS REVIEW" if review.get("needs_review") else "within the review thresholds"
        parts.append(f"<p class='{'flag' if review.get('needs_review') else 'note'}'>{status}"
                     + "".join(f"<br>{html.escape(r)}" for r in review.get("reasons", [])) + "</p>")
    for note in result.inputs.notes:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    summary = [{"label": label, "mean pairwise Dice": a["mean_pairwise_dice"],
                "max pairwise HD95 (mm)": a["max_pairwise_hd95"], "consensus volume (mL)": a["consensus_volume_ml"]}
               for label, a in result.agreement.items()]
    parts.append("<h2>Per label</h2>" + _table(summary, ["label", "mean pairwise Dice", "max pairwise HD95 (mm)",
                                                         "consensus volume (mL)"]))
    overlay = overlay_png(result, out_dir / "overlay_planes.png", image)
    parts.append(f"<h2>Consensus and disagreement</h2><img src='{overlay.name}' width='1000'>")
    for n, (label, a) in enumerate(result.agreement.items()):
        png = heatmap_png(a["pairwise"]["dice"], a["annotators"], out_dir / f"heatmap_{n:02d}.png",
                          f"{label}: pairwise Dice")
        staple = rec["labels"].get(label, {})
        extra = ""
        if "sensitivity" in staple:
            extra = "<p class='note'>STAPLE estimates: " + html.escape(", ".join(
                f"{name} p={p:.3f} q={q:.5f}" for name, p, q in
                zip(a["annotators"], staple["sensitivity"], staple["specificity"]))) + \
                f"; {staple['iterations']} iterations</p>"
        parts.append(f"<h2>{html.escape(label)}</h2><img src='{png.name}'>{extra}"
                     + _table(a["per_annotator"], ANNOTATOR_COLUMNS))
    parts.append(f"<p class='note'>{html.escape(EMPTY_POLICY_TEXT)}</p>")
    text = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Consensus {html.escape(case_id)}</title>" \
           f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    return write_bytes_atomic(out_dir / "report.html", text.encode("utf-8"))


def write_project_report(queue: list, bias: list, out_dir, title: str = "Project consensus report") -> Path:
    """``out_dir/project_report.html`` (+ CSVs): the review queue and per-annotator bias flags."""
    out_dir = Path(out_dir)
    q_cols = ["case_id", "worst_label", "mean_pairwise_dice", "max_pairwise_hd95", "min_annotator_dice",
              "disputed_fraction", "needs_review"]
    b_cols = ["annotator", "label", "cases", "mean_dice", "mean_volume_diff_pct", "share_over", "share_under",
              "flags"]
    write_csv([{k: q.get(k) for k in q_cols} | {"reasons": "; ".join(q.get("reasons", []))} for q in queue],
              out_dir / "review_queue.csv")
    write_csv([{k: (", ".join(b[k]) if k == "flags" else b.get(k)) for k in b_cols} for b in bias],
              out_dir / "annotator_bias.csv")
    parts = [f"<h1>{html.escape(title)}</h1>", "<h2>Review queue (lowest agreement first)</h2>",
             _table(queue, q_cols), "<h2>Annotator bias across cases</h2>",
             _table([b | {"flags": ", ".join(b["flags"]) or "-"} for b in bias], b_cols)]
    annotators = sorted({b["annotator"] for b in bias})
    labels = sorted({b["label"] for b in bias})
    if annotators and labels:
        m = np.full((len(annotators), len(labels)), np.nan)
        for b in bias:
            m[annotators.index(b["annotator"]), labels.index(b["label"])] = b["mean_dice"]
        fig = _figure(1.5 + 0.8 * len(labels), 1.0 + 0.45 * len(annotators))
        ax = fig.add_subplot(111)
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(annotators)), labels=annotators, fontsize=8)
        ax.set_title("mean Dice vs consensus", fontsize=9)
        fig.colorbar(im, ax=ax)
        png = _save_png(fig, out_dir / "annotator_dice.png")
        parts.insert(2, f"<img src='{png.name}'>")
    parts.append(f"<p class='note'>{html.escape(EMPTY_POLICY_TEXT)}</p>")
    text = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>" \
           f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    return write_bytes_atomic(out_dir / "project_report.html", text.encode("utf-8"))
