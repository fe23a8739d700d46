"""Training progress: a JSON-lines stream (one record per epoch) and a PNG of its curves.

A record holds ``epoch`` (0-based), ``num_epochs``, ``loss`` (total), ``loss_dice``, ``loss_ce``,
``val_loss``, ``val_dice`` (mean over labels) and ``val_dice_per_label``, ``time_s``; fields a
backend cannot give are absent.  Readers tolerate a half-written last line (the trainer may be
writing it at that moment).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import atomic_path, write_bytes_atomic


def read_progress(path) -> list[dict]:
    """All complete records of a progress file (empty list when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written right now
    return out


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def append_record(path, record: dict) -> None:
    """Append one record (one line, flushed and fsynced so a reader sees it whole)."""
    line = json.dumps(_clean(record)) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def write_records(path, records: list[dict]) -> None:
    """Replace the whole progress file atomically (used when records are re-parsed from a log)."""
    text = "".join(json.dumps(_clean(r)) + "\n" for r in records)
    write_bytes_atomic(path, text.encode("utf-8"))


def _series(records: list[dict], key: str):
    pts = [(r["epoch"], r[key]) for r in records if r.get(key) is not None and r.get("epoch") is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_progress(records: list[dict], png_path, title: str = "") -> Path:
    """Draw loss curves (total, Dice, CE, validation) and validation Dice into a PNG (atomic)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a worker thread

    fig = Figure(figsize=(8, 3.6), dpi=90)
    ax_loss, ax_dice = fig.subplots(1, 2)
    for key, label, style in (("loss", "train loss", "-"), ("loss_dice", "Dice loss", "--"),
                              ("loss_ce", "CE loss", ":"), ("val_loss", "val loss", "-.")):
        x, y = _series(records, key)
        if x:
            ax_loss.plot(x, y, style, marker="." if len(x) < 30 else None, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    x, y = _series(records, "val_dice")
    if x:
        ax_dice.plot(x, y, "-", color="tab:green", marker="." if len(x) < 30 else None, label="val Dice (mean)")
    ax_dice.set_ylim(0, 1)
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("Dice")
    ax_dice.legend(fontsize=8)
    ax_dice.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        fig.savefig(str(tmp), format="png")
    return png_path
