"""`make demo`'s consensus part: phantom cases annotated by simulated readers, consensus, reports.

``consensus_demo(out_dir)`` makes ``n_cases`` phantom patients, lets ``n_readers`` simulated
readers annotate each (one of them systematically generous), writes their files, runs STAPLE
on each case (with the per-case report), and writes the project report with the review queue
and the annotator bias flags.  Returns a summary, also written to ``out_dir/consensus_demo.json``.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ConsensusReviewLib.agreement import to_json_safe
from ConsensusReviewLib.bias import systematic_bias
from ConsensusReviewLib.consensus import run_consensus
from ConsensusReviewLib.inputs import load_annotations
from ConsensusReviewLib.outputs import review_status, write_consensus_outputs
from ConsensusReviewLib.report import agreement_rows, write_project_report
from ConsensusReviewLib.review_queue import build_queue
from ConsensusReviewLib.simulate import simulate_reader_segmentations
from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import write_volume

log = logging.getLogger(__name__)


def consensus_demo(out_dir, *, n_cases: int = 3, n_readers: int = 3, method: str = "staple", seed: int = 0,
                   shape=(32, 80, 80), spacing=(1.8, 1.8, 3.6)) -> dict:
    """Run the demo into ``out_dir`` (see module docstring); returns its summary."""

    out = Path(out_dir)
    summaries, rows, cases = [], [], []
    names = [f"reader{n + 1}" for n in range(n_readers)]
    for case in range(n_cases):
        case_id = f"phantom{case + 1}"
        phantom = make_phantom(seed=seed + case, shape=shape, spacing=spacing)
        case_dir = out / case_id
        image = write_volume(phantom.volume, case_dir / "image.nrrd")
        # the same reader seed offsets across cases keep each reader's habit (bias) from case to case
        segs = simulate_reader_segmentations(phantom, n_readers, seed=seed, names=names)
        files = [write_seg_nrrd(s, case_dir / "annotations" / f"{name}.seg.nrrd") for s, name in zip(segs, names)]
        inputs = load_annotations(files, reference=image)
        result = run_consensus(inputs, method)
        paths = write_consensus_outputs(result, case_dir / "consensus", case_id=case_id, image=phantom.volume)
        status = review_status(result, case_id)
        summaries.append({k: v for k, v in status.items() if k not in ("needs_review", "reasons")})
        rows.extend(agreement_rows(result.agreement, case_id))
        cases.append({"case": case_id, "report": str(paths["report"]), "needs_review": status["needs_review"]})
        log.info("consensus demo: %s done (%s)", case_id, "needs review" if status["needs_review"] else "ok")
    queue = build_queue(summaries)
    bias = systematic_bias(rows)
    report = write_project_report(queue, bias, out, title="Consensus demo: phantom cases, simulated readers")
    summary = to_json_safe({"method": method, "cases": cases, "project_report": str(report),
                            "queue": [{k: q[k] for k in ("case_id", "worst_label", "mean_pairwise_dice",
                                                         "needs_review")} for q in queue],
                            "flags": [b for b in bias if b["flags"]]})
    write_json_atomic(out / "consensus_demo.json", summary)
    return summary


def demo_step(out, ctx: dict) -> str:
    """`make demo`'s consensus step (entry point ``dicomteam.demo``): one line for the summary."""
    summary = consensus_demo(out / "consensus")
    flagged = [q["case_id"] for q in summary["queue"] if q["needs_review"]]
    return f"{len(summary['cases'])} cases, to review: {flagged or 'none'}; report {summary['project_report']}"


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = consensus_demo(sys.argv[1] if len(sys.argv) > 1 else "demo-output/consensus")
    print(f"project report: {result['project_report']}")
