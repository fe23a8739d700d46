"""`make demo`: the whole workflow end to end on data the project generates itself.

    python -m DicomTeamAnnotateLib.demo --out demo-output [--skip sam,train]

1. a synthetic CT phantom written as a DICOM series (realistic HU, known label map);
2. ingestion: the volume, `ingest_report.json` and a three-plane MPR picture (soft tissue);
3. a team round trip: a project on the phantom, two annotators push, a reviewer lists both;
4. consensus of simulated readers (STAPLE) with its HTML report;
5. SAM: one box on the phantom's liver, propagated through the volume, with a picture;
6. TrainBridge: nnU-Net export of several phantom patients, a short MONAI training, its
   evaluation table and loss curve.

Each step is a function of the module that owns it; this file only strings them together.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .atomic import write_json_atomic

STEPS = ("phantom", "ingest", "team", "consensus", "sam", "train")


def step_phantom(out: Path, ctx: dict) -> str:
    from .phantom import make_phantom, write_phantom_dicom
    from .segio import write_labelmap

    phantom = make_phantom(seed=0)
    files = write_phantom_dicom(phantom, out / "phantom_dicom", patient_id="PHANTOM-001")
    write_labelmap(phantom.segmentation(), out / "phantom_truth.nii.gz")
    ctx["phantom"] = phantom
    return f"{len(files)} DICOM slices in {out / 'phantom_dicom'}, truth labels in phantom_truth.nii.gz"


def step_ingest(out: Path, ctx: dict) -> str:
    from .cli_ingest import ingest_to_folder
    from .volume import read_volume
    from .windowing import render_mpr_png

    report = ingest_to_folder([out / "phantom_dicom"], out / "ingest")
    series = report["series"][0]
    volume = read_volume(series["output_file"])
    ctx["volume"] = volume
    render_mpr_png(volume, out / "phantom_mpr.png", "soft tissue", labels=ctx["phantom"].segmentation())
    return (f"{series['number_of_slices']} slices -> {Path(series['output_file']).name}, size {series['size']}, "
            f"spacing {[round(s, 3) for s in series['spacing']]}; picture phantom_mpr.png")


def step_team(out: Path, ctx: dict) -> str:
    from .store.demo import team_round_trip

    summary = team_round_trip(out / "team")
    return f"reviewer sees {len(summary['reviewer_sees'])} versions from {sorted({v['author'] for v in summary['reviewer_sees']})}"


def step_consensus(out: Path, ctx: dict) -> str:
    from ConsensusReviewLib.demo import consensus_demo

    summary = consensus_demo(out / "consensus")
    flagged = [q['case_id'] for q in summary['queue'] if q['needs_review']]
    return f"{len(summary['cases'])} cases, to review: {flagged or 'none'}; report {summary['project_report']}"


def step_sam(out: Path, ctx: dict) -> str:
    from SamPromptLib.demo import run_demo

    summary = run_demo(out / "sam", organ="liver")
    return f"{summary['organ']} from one box on slice {summary['slice']}: 3D Dice {summary['dice']:.3f}; picture {summary['png']}"


def step_train(out: Path, ctx: dict) -> str:
    from TrainBridgeLib.demo import train_demo

    summary = train_demo(out / "train")
    return ", ".join(f"{k} {v}" for k, v in summary.items() if k in ("mean_dice", "table", "curve"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="folder for every output and picture")
    parser.add_argument("--skip", default="", help=f"comma-separated steps to skip ({', '.join(STEPS)})")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    ctx: dict = {}
    results = {}
    for name in STEPS:
        if name in skip:
            print(f"[{name}] skipped")
            continue
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        summary = globals()[f"step_{name}"](out, ctx)
        seconds = time.perf_counter() - t0
        results[name] = {"summary": summary, "seconds": round(seconds, 1)}
        print(f"[{name}] {summary} ({seconds:.1f} s)", flush=True)
    write_json_atomic(out / "demo_summary.json", results)
    print(f"demo: all outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
