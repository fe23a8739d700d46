"""`make demo`'s loop step: round 2 pre-annotated by the round-1 model, corrected, and the effort of both rounds.

After TrainBridge's training step (round 1: phantom cases annotated from scratch, adjudicated, a
model trained on them), new phantom patients join the project; the model pre-annotates them
through the store (versions of kind ``prediction``); the annotators open them (starting from the
prediction, as the panel does), correct them to the same standard as round 1 and submit.  The
effort records of both rounds give the table of `dicomteam effort` and its picture.

    python -m TrainBridgeLib.loop.demo --train demo-output/train --out demo-output/loop
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.demo.loop_project import REVIEWER, add_phantom_cases, annotate_round
from DicomTeamAnnotateLib.store.interface import open_store
from DicomTeamAnnotateLib.worklist.effort_report import effort_rows, effort_table, plot_effort, table_text
from DicomTeamAnnotateLib.worklist.rows import worklist_rows
from TrainBridgeLib.loop.backends import open_model
from TrainBridgeLib.loop.preannotate import preannotate

ROUND2_SEEDS = tuple(range(2000, 2004))


def loop_demo(out_dir, project, job_dir, shape, *, seeds=ROUND2_SEEDS, log=print) -> dict:
    """Round 2 in ``project`` with the model of ``job_dir``; writes effort.json and effort.png into ``out_dir``."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    case_ids = add_phantom_cases(project, list(seeds), tuple(shape))
    reviewer = open_store(project, REVIEWER)
    model = open_model(job_dir)
    result = preannotate(reviewer, model, strategy="uncertainty")
    log(f"round {result['round']}: {model.name} pre-annotated {len(result['pushed'])} new case(s)"
        + (f", skipped {len(result['skipped'])}" if result["skipped"] else ""))
    for row in worklist_rows(reviewer, order="uncertainty")[:len(case_ids)]:
        if row["prediction"]:
            log(f"  worklist by uncertainty: {row['case_id']}  score {row['score']:.3f}  ({row['prediction']['model']})")
    annotate_round(project, case_ids, shape, out / "work")
    rows = effort_rows(reviewer)
    table = effort_table(rows)
    picture = plot_effort(rows, out / "effort.png", title="Effort per case: round 1 from scratch, round 2 corrected")
    text = table_text(table)
    log("effort per round (simulated annotators; `dicomteam effort`):\n" + text)
    by_round = {t["round"]: t for t in table if t["annotator"] == "all"}
    rounds = sorted(by_round)
    summary = {"round": result["round"], "pushed": result["pushed"], "skipped": result["skipped"],
               "table": table, "cases": rows, "picture": picture,
               "median_active_min": {str(r): by_round[r]["median_active_min"] for r in rounds},
               "saving": round(1 - by_round[rounds[-1]]["median_active_min"] / by_round[rounds[0]]["median_active_min"], 3)
               if len(rounds) > 1 and by_round[rounds[0]]["median_active_min"] else None}
    write_json_atomic(out / "effort.json", summary)
    return summary


def demo_step(out, ctx: dict) -> str:
    """`make demo`'s loop step (entry point ``dicomteam.demo``, after the training step): one summary line."""
    train = ctx.get("train")
    if not train:
        raise RuntimeError("the loop step needs the training step's model (do not skip 'train')")
    s = loop_demo(out / "loop", train["project"], train["job"], train["shape"])
    medians = ", ".join(f"round {r}: {m:.1f} min" for r, m in s["median_active_min"].items())
    return (f"{len(s['pushed'])} case(s) pre-annotated and corrected; median active time per case {medians} "
            f"({s['saving']:.0%} less); picture {s['picture']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m TrainBridgeLib.loop.demo", description=__doc__.split("\n")[0])
    p.add_argument("--train", default="demo-output/train", help="the training step's output folder")
    p.add_argument("--out", default="demo-output/loop")
    args = p.parse_args(argv)
    train = Path(args.train)
    shape = (32, 64, 64)
    summary = loop_demo(args.out, train / "project", train / "job", shape)
    print(f"picture: {summary['picture']}; saving {summary['saving']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
