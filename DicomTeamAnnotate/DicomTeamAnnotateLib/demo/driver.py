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
from importlib.metadata import entry_points
from pathlib import Path

from DicomTeamAnnotateLib.cli.ingest import ingest_to_folder
from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.core.windowing import render_mpr_png
from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
from DicomTeamAnnotateLib.demo.team import team_round_trip
from DicomTeamAnnotateLib.io.segmentations import write_labelmap
from DicomTeamAnnotateLib.io.volumes import read_volume

DEMO_GROUP = "dicomteam.demo"


def step_phantom(out: Path, ctx: dict) -> str:
    phantom = make_phantom(seed=0)
    files = write_phantom_dicom(phantom, out / "phantom_dicom", patient_id="PHANTOM-001")
    write_labelmap(phantom.segmentation(), out / "phantom_truth.nii.gz")
    ctx["phantom"] = phantom
    return f"{len(files)} DICOM slices in {out / 'phantom_dicom'}, truth labels in phantom_truth.nii.gz"


def step_ingest(out: Path, ctx: dict) -> str:
    report = ingest_to_folder([out / "phantom_dicom"], out / "ingest")
    series = report["series"][0]
    volume = read_volume(series["output_file"])
    ctx["volume"] = volume
    render_mpr_png(volume, out / "phantom_mpr.png", "soft tissue", labels=ctx["phantom"].segmentation())
    return (f"{series['number_of_slices']} slices -> {Path(series['output_file']).name}, size {series['size']}, "
            f"spacing {[round(s, 3) for s in series['spacing']]}; picture phantom_mpr.png")


def step_team(out: Path, ctx: dict) -> str:
    summary = team_round_trip(out / "team")
    authors = sorted({v["author"] for v in summary["reviewer_sees"]})
    return f"reviewer sees {len(summary['reviewer_sees'])} versions from {authors}"


def steps() -> list[tuple[str, object]]:
    """(name, step function) in running order: the core's, then the modules' plug-ins.

    A module adds a step through the ``dicomteam.demo`` entry-point group (pyproject.toml), named
    ``NN-name``: NN orders the steps, the core's are 10-30. A step is ``step(out, ctx) -> str``.
    """
    core = [("10-phantom", step_phantom), ("20-ingest", step_ingest), ("30-team", step_team)]
    plugins = [(ep.name, ep.load()) for ep in entry_points(group=DEMO_GROUP)]
    return [(name.split("-", 1)[1], step) for name, step in sorted(core + plugins, key=lambda item: item[0])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="folder for every output and picture")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip (phantom, ingest, team, consensus, "
                        "sam, train)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    ctx: dict = {}
    results = {}
    for name, step in steps():
        if name in skip:
            print(f"[{name}] skipped")
            continue
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        summary = step(out, ctx)
        seconds = time.perf_counter() - t0
        results[name] = {"summary": summary, "seconds": round(seconds, 1)}
        print(f"[{name}] {summary} ({seconds:.1f} s)", flush=True)
    write_json_atomic(out / "demo_summary.json", results)
    print(f"demo: all outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
