"""The project's review queue: the agreement of every case of a store, lowest first.

ConsensusReviewLogic.buildReviewQueue delegates here. The consensus of one case is the caller's
(``case_run``: the logic's inputsFromStore + runConsensus), so the panel, its tests and the
queue compute a case the same way. Plain Python: runs on any thread.
"""
from __future__ import annotations

import tempfile

from ConsensusReviewLib.bias import systematic_bias
from ConsensusReviewLib.report import agreement_rows, write_project_report
from ConsensusReviewLib.review_queue import ReviewThresholds, build_queue


def build_project_queue(store, case_run, thresholds=None, *, case_ids=None, work_dir=None, mark_in_review=False,
                        out_dir=None, progress=None) -> dict:
    """The queue of every case with two or more annotators; {'queue', 'bias', 'skipped', 'marked', 'report'}.

    ``case_run(case_id, tmp_dir)`` returns a consensus run ({'result', 'status', ...}) of the case,
    its inputs downloaded to ``tmp_dir`` (removed afterwards), or raises ValueError to skip it.
    ``mark_in_review`` moves the cases that cross a threshold to 'in review' (a reviewer's right).
    """
    limits = ReviewThresholds(**(thresholds or {}))
    case_ids = list(case_ids) if case_ids is not None else [c["case_id"] for c in store.list_cases()]
    summaries, rows, skipped = [], [], []
    for n, case_id in enumerate(case_ids):
        if progress is not None:
            progress(n, len(case_ids))
        try:
            with tempfile.TemporaryDirectory(prefix="dicomteam-queue-", dir=work_dir) as tmp:
                run = case_run(case_id, tmp)
        except ValueError as exc:  # fewer than two annotators, an annotation that does not fit
            skipped.append(f"{case_id}: {exc}")
            continue
        summaries.append({k: v for k, v in run["status"].items() if k not in ("needs_review", "reasons")})
        rows.extend(agreement_rows(run["result"].agreement, case_id))
    queue = build_queue(summaries, limits)
    marked = []
    if mark_in_review:
        for entry in queue:
            if entry["needs_review"] and store.states(entry["case_id"])["state"] not in ("in_review", "adjudicated"):
                store.set_state(entry["case_id"], "in_review")
                marked.append(entry["case_id"])
    bias = systematic_bias(rows)
    report = str(write_project_report(queue, bias, out_dir)) if out_dir else None
    if progress is not None:
        progress(len(case_ids), len(case_ids))
    return {"queue": queue, "bias": bias, "skipped": skipped, "marked": marked, "report": report}
