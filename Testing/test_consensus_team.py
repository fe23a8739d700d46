"""The team round trip: three annotators push to a store, the reviewer runs consensus and
adjudicates, and the ground truth is in the store with its audit record (real HTTP server)."""
from __future__ import annotations

import datetime
import json

import numpy as np
import pytest

from ConsensusReviewLib.adjudication import latest_adjudication, publish_adjudication
from ConsensusReviewLib.consensus import run_consensus
from ConsensusReviewLib.simulate import simulate_reader_segmentations
from ConsensusReviewLib.store_case import load_store_case
from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd
from DicomTeamAnnotateLib.store import Forbidden, admin, open_store
from DicomTeamAnnotateLib.store.server import BackgroundServer

ANNOTATORS = ("ann", "bob", "cat")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A blind project with case c1 (three annotators pushed and submitted) and c2 (one annotator)."""
    root = tmp_path_factory.mktemp("team")
    project = root / "project"
    phantom = make_phantom(seed=3, shape=(24, 64, 64), spacing=(2.0, 2.0, 4.0))
    labels = [{"name": s.name, "value": s.label_value, "color": list(s.color), "terminology": s.terminology}
              for s in phantom.segmentation().segments]
    (root / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    admin.init_project(project, "Phantom team", root / "labels.json", blind=True)
    admin.add_case(project, "c1", phantom.volume, "P001")
    admin.add_case(project, "c2", phantom.volume, "P002")
    roles = {u: "annotator" for u in ANNOTATORS} | {"rev": "reviewer"}
    tokens = {u: admin.add_member(project, u, r) for u, r in roles.items()}
    for u in ANNOTATORS:
        admin.assign(project, "c1", u)
    admin.assign(project, "c2", "ann")
    server = BackgroundServer(project)
    pushed = {}
    for u, seg in zip(ANNOTATORS, simulate_reader_segmentations(phantom, 3, seed=11)):
        store = open_store(server.url, u, tokens[u])
        path = write_seg_nrrd(seg, root / f"{u}.seg.nrrd")
        pushed[u] = store.push_version("c1", path, message=f"{u}'s work")["id"]
        store.set_state("c1", "submitted")
        if u == "ann":
            store.push_version("c2", path, message="only one annotator")
        store.close()
    # a fourth annotator with a draft that was never submitted: not a read for consensus by default
    tokens["dan"] = admin.add_member(project, "dan", "annotator")
    admin.assign(project, "c1", "dan")
    dan = open_store(server.url, "dan", tokens["dan"])
    pushed["dan"] = dan.push_version("c1", write_seg_nrrd(phantom.segmentation(), root / "dan.seg.nrrd"))["id"]
    dan.close()
    yield {"root": root, "project": project, "server": server, "tokens": tokens, "pushed": pushed, "phantom": phantom}
    server.stop()


def test_reviewer_adjudicates_and_the_ground_truth_is_in_the_store(team, tmp_path):
    rev = open_store(team["server"].url, "rev", team["tokens"]["rev"])
    inputs, image, versions = load_store_case(rev, "c1", tmp_path)
    assert inputs.annotators == list(ANNOTATORS)  # dan's draft is left out
    assert load_store_case(rev, "c1", tmp_path / "all", submitted_only=False)[0].annotators == [*ANNOTATORS, "dan"]
    assert [v["id"] for v in versions] == [team["pushed"][u] for u in ANNOTATORS]
    assert inputs.geometry.same_grid(team["phantom"].volume.geometry)
    result = run_consensus(inputs, "staple")
    # the reviewer edits the consensus: removes the aorta from its top slice
    aorta = result.mask("aorta")
    top = int(np.flatnonzero(aorta.any(axis=(1, 2)))[-1])
    edited_aorta = aorta.copy()
    edited_aorta[top] = False
    edited = result.segmentation.with_masks({"aorta": edited_aorta})
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    record = publish_adjudication(rev, "c1", edited, consensus_record=result.record, versions=versions,
                                  started_from="consensus", start=result.segmentation)
    assert record["kind"] == "adjudicated" and record["author"] == "rev" and not record["conflict"]
    rev.close()

    # what any team member now finds in the store (a blind annotator sees adjudicated versions)
    ann = open_store(team["server"].url, "ann", team["tokens"]["ann"])
    stored = latest_adjudication(ann, "c1")
    assert stored is not None and stored["id"] == record["id"]
    audit = stored["meta"]["audit"]
    assert audit["reviewer"] == "rev" and audit["case_id"] == "c1"
    assert datetime.datetime.fromisoformat(audit["time"]) >= before
    assert audit["method"] == "staple" and audit["parameters"]["threshold"] == 0.5
    # read as the blind annotator ann: her own input in full, the others' ids and hashes hidden (issue 15 item 1)
    assert [(i["version_id"], i["author"]) for i in audit["inputs"]] == \
        [(team["pushed"][u] if u == "ann" else "(hidden)", u) for u in ANNOTATORS]
    assert audit["inputs"][0]["sha256"] and all(i["sha256"] == "(hidden)" for i in audit["inputs"][1:])
    assert audit["started_from"] == "consensus"
    assert audit["edits"]["aorta"] == {"added": 0, "removed": int(aorta[top].sum())}
    assert audit["edits"]["liver"] == {"added": 0, "removed": 0}
    assert len(audit["consensus"]["labels"]["liver"]["sensitivity"]) == 3
    truth = read_segmentation(ann.fetch_version(stored["id"], tmp_path / "truth.seg.nrrd"))
    assert truth.geometry.same_grid(inputs.geometry)
    assert np.array_equal(truth.mask("aorta"), edited_aorta)
    assert np.array_equal(truth.mask("liver"), result.mask("liver"))
    assert ann.states("c1")["state"] == "adjudicated"
    with pytest.raises(Forbidden):  # annotators never publish ground truth
        publish_adjudication(ann, "c1", edited)
    ann.close()


def test_cli_consensus_from_the_store_publishes_and_reports(team, tmp_path, capsys):
    project = str(team["project"])
    out = tmp_path / "c1"
    assert main(["consensus", "--store", project, "--user", "rev", "--case", "c1", "--method", "majority",
                 "--out", str(out), "--publish", "--no-report"]) == 0
    text = capsys.readouterr().out
    assert "consensus (majority) of 3 annotators: ann, bob, cat" in text and "published adjudicated version" in text
    assert main(["consensus", "--store", project, "--user", "rev", "--case", "c1", "--method", "majority",
                 "--out", str(tmp_path / "drafts"), "--no-report", "--include-unsubmitted"]) == 0
    assert "of 4 annotators: ann, bob, cat, dan" in capsys.readouterr().out
    store = open_store(project, "rev")
    chain = [v for v in store.list_versions("c1") if v["kind"] == "adjudicated"]
    assert chain[-1]["meta"]["audit"]["method"] == "majority"
    assert not chain[-1]["conflict"] and chain[-1]["parent"] == (chain[-2]["id"] if len(chain) > 1 else None)
    doc = json.loads((out / "agreement.json").read_text(encoding="utf-8"))
    assert doc["annotators"] == list(ANNOTATORS) and doc["sources"][0].startswith("version ")
    # every case: c2 has one annotator and is skipped; the project report and queue are written
    allout = tmp_path / "all"
    assert main(["consensus", "--store", project, "--user", "rev", "--all-cases", "--method", "staple",
                 "--out", str(allout), "--no-report"]) == 0
    queue = json.loads((allout / "queue.json").read_text(encoding="utf-8"))
    assert [q["case_id"] for q in queue["queue"]] == ["c1"]
    assert "c2" in queue["skipped"][0] and "at least two annotators" in queue["skipped"][0]
    assert (allout / "project_report.html").is_file() and (allout / "review_queue.csv").is_file()
    assert {b["annotator"] for b in queue["bias"]} == set(ANNOTATORS)
    # an annotator of a blind project cannot see the others' versions: a clear error, no traceback
    assert main(["consensus", "--store", project, "--user", "ann", "--case", "c1", "--method", "staple",
                 "--out", str(tmp_path / "x")]) == 2
    assert "at least two annotators" in capsys.readouterr().err
