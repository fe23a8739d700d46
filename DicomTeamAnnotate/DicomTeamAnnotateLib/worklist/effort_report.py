"""The effort the project's work took, from the effort records pushed with the versions.

``effort_rows(store)``: one row per case and annotator (their sessions added up); ``effort_table``:
per round of the loop and annotator; ``plot_effort``: time and edit size per case, by round.

A version's round: the round of the prediction its work started from (``meta.model.round``, set
by ``dicomteam preannotate``: the first model is round 2), found by following the version's
parents back; work that started from no prediction is round 1.  What a member sees is what the
store lets them read: an annotator of a blind project gets their own rows only.
"""
from __future__ import annotations

import statistics

from DicomTeamAnnotateLib.core.atomic import atomic_path

SUMS = ("active_s", "idle_s", "sam_prompts", "sam_propagations", "editor_operations")


def version_round(version: dict, by_id: dict) -> int:
    """The loop round of a version: its nearest prediction ancestor's round, else 1."""
    seen = set()
    v = version
    while v is not None and v["id"] not in seen:
        seen.add(v["id"])
        if v.get("kind") == "prediction":
            return int(((v.get("meta") or {}).get("model") or {}).get("round") or 2)
        v = by_id.get(v.get("parent"))
    return 1


def effort_rows(store, case_ids: list | None = None) -> list[dict]:
    """One row per (case, annotator) with effort records: summed time and actions over their sessions
    (each session's latest record), the latest session's voxels changed and start-vs-result Dice."""
    rows = []
    for case in store.list_cases():
        cid = case["case_id"]
        if case_ids is not None and cid not in case_ids:
            continue
        versions = store.list_versions(cid)
        by_id = {v["id"]: v for v in versions}
        per_author: dict = {}
        for v in versions:  # push order: a session's later record replaces its earlier one
            effort = (v.get("meta") or {}).get("effort")
            if v["kind"] != "annotation" or not isinstance(effort, dict):
                continue
            per_author.setdefault(v["author"], {})[effort.get("session") or v["id"]] = (v, effort)
        for author, sessions in per_author.items():
            records = list(sessions.values())
            last_version, last = records[-1]
            first_version = records[0][0]
            row = {"case_id": cid, "annotator": author, "version": last_version["id"],
                   "round": version_round(first_version, by_id), "start": records[0][1].get("start"),
                   "sessions": len(records)}
            for key in SUMS:
                row[key] = round(sum(float(e.get(key) or 0) for _, e in records), 3)
            for key in ("voxels_changed", "ml_changed", "voxels_result", "dice_start_result"):
                row[key] = last.get(key)
            rows.append(row)
    return sorted(rows, key=lambda r: (r["round"], r["annotator"], r["case_id"]))


def effort_table(rows: list[dict]) -> list[dict]:
    """Per round and annotator (and 'all' per round): cases, median and total active minutes, SAM prompts,
    propagations, editor operations and voxels changed per case, mean start-vs-result Dice."""
    groups: dict = {}
    for r in rows:
        for who in (r["annotator"], "all"):
            groups.setdefault((r["round"], who), []).append(r)
    out = []
    for (rnd, who), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] == "all", kv[0][1])):
        dice = [r["dice_start_result"] for r in rs if r.get("dice_start_result") is not None]
        minutes = [r["active_s"] / 60.0 for r in rs]
        out.append({"round": rnd, "annotator": who, "cases": len(rs),
                    "median_active_min": round(statistics.median(minutes), 2),
                    "total_active_min": round(sum(minutes), 2),
                    "sam_prompts_per_case": _mean(r["sam_prompts"] for r in rs),
                    "sam_propagations_per_case": _mean(r["sam_propagations"] for r in rs),
                    "editor_operations_per_case": _mean(r["editor_operations"] for r in rs),
                    "voxels_changed_per_case": _mean(r.get("voxels_changed") or 0 for r in rs),
                    "mean_dice_start_result": _mean(dice) if dice else None})
    return out


def _mean(values) -> float:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 2) if values else 0.0


def table_text(table: list[dict]) -> str:
    """The table as aligned text (what `dicomteam effort` prints)."""
    head = (f"{'round':>5}  {'annotator':<12} {'cases':>5} {'median min':>10} {'total min':>9} {'SAM prompts':>11} "
            f"{'propag.':>7} {'edits':>6} {'voxels changed':>14} {'Dice start/result':>17}")
    lines = [head]
    for t in table:
        dice = "-" if t["mean_dice_start_result"] is None else f"{t['mean_dice_start_result']:.3f}"
        lines.append(f"{t['round']:>5}  {t['annotator']:<12} {t['cases']:>5} {t['median_active_min']:>10.2f} "
                     f"{t['total_active_min']:>9.2f} {t['sam_prompts_per_case']:>11.1f} "
                     f"{t['sam_propagations_per_case']:>7.1f} {t['editor_operations_per_case']:>6.1f} "
                     f"{t['voxels_changed_per_case']:>14.0f} {dice:>17}")
    return "\n".join(lines)


def plot_effort(rows: list[dict], path, title: str = "Annotation effort per case") -> str:
    """A PNG: active minutes against voxels changed, one point per case and annotator, coloured by round;
    beside it the median minutes per round.  Returns the path."""
    # no pyplot: it switches the process's backend and keeps global state, and this runs on a worker
    # thread in Slicer (TrainBridge's Effort) beside Slicer's own Qt
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rounds = sorted({r["round"] for r in rows})
    colors = colormaps["tab10"]
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for n, rnd in enumerate(rounds):
        rs = [r for r in rows if r["round"] == rnd]
        ax.scatter([r.get("voxels_changed") or 0 for r in rs], [r["active_s"] / 60 for r in rs], s=36,
                   color=colors(n), label=f"round {rnd}" + (" (from scratch)" if rnd == 1 else " (from prediction)"))
    ax.set_xlabel("voxels changed from the starting point")
    ax.set_ylabel("active time (min)")
    ax.set_title(title)
    if rounds:
        ax.legend(loc="upper left", fontsize=8)
    medians = [statistics.median([r["active_s"] / 60 for r in rows if r["round"] == rnd]) for rnd in rounds]
    bx.bar([str(r) for r in rounds], medians, color=[colors(n) for n in range(len(rounds))])
    bx.set_xlabel("round")
    bx.set_ylabel("median active time per case (min)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return str(path)
