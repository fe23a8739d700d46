"""ONE contract suite for the Store interface, run unchanged against three backends:

* ``folder``: the folder store on a project directory;
* ``sqlite``: the real server (uvicorn, 127.0.0.1) with its default SQLite index, over HTTP;
* ``postgres``: the same server on a throwaway PostgreSQL cluster (skipped without PostgreSQL
  binaries, failing under CI).
"""
from __future__ import annotations

import hashlib

import pytest
from store_support import GEOMETRY, LABELS, backend_for, postgres_cluster, postgres_url, write_seg  # noqa: F401

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.io.volumes import read_volume
from DicomTeamAnnotateLib.store import Conflict, Forbidden, GeometryMismatch, InvalidInput, NotFound, Unauthorized

BACKENDS = ["folder", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def team(request, tmp_path):
    with backend_for(request.param, tmp_path, request) as backend:
        yield backend


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_project_cases_and_members(team):
    alice, rev = team.open("alice"), team.open("rev")
    project = alice.project()
    assert project["name"] == "Team" and project["blind"] is True
    assert [(lab["name"], lab["value"]) for lab in project["labels"]] == [("liver", 1), ("spleen", 2)]
    assert project["labels"][1]["color"] == pytest.approx([0x9e / 255, 0x5c / 255, 0x91 / 255], abs=1e-3)
    assert project["labels"][0]["terminology"] == LABELS[0]["terminology"]
    assert project["window_preset"]
    assert alice.whoami() == {"user": "alice", "role": "annotator"}
    assert [c["case_id"] for c in team.open("bob").list_cases()] == ["c1"]  # only assigned cases
    cases = rev.list_cases()
    assert [(c["case_id"], c["patient_id"]) for c in cases] == [("c1", "P001"), ("c2", "P002")]
    assert Geometry.from_dict(cases[0]["geometry"]).same_grid(GEOMETRY)
    assert cases[0]["attributes"] == {} and cases[1]["attributes"] == {"site": "B", "scanner": "X 1"}
    assert {m["user"]: m["role"] for m in rev.members()} == {"alice": "annotator", "bob": "annotator",
                                                           "rev": "reviewer", "boss": "admin"}
    assert alice.members() == [{"user": "alice", "role": "annotator"}]
    assert rev.assignments("c1") == [{"case_id": "c1", "user": "alice"}, {"case_id": "c1", "user": "bob"}]
    with pytest.raises(Forbidden):
        team.open("bob").get_case("c2")  # not assigned
    with pytest.raises(NotFound):
        rev.get_case("nope")
    with pytest.raises(Unauthorized):
        team.open("mallory", token="wrong").whoami()


def test_push_versions_conflicts_and_fetch(team, tmp_path):
    alice = team.open("alice")
    files = [write_seg(tmp_path / f"s{i}.seg.nrrd", seed=i) for i in range(3)]
    v1 = alice.push_version("c1", files[0], message="first")
    v2 = alice.push_version("c1", files[1], parent=v1["id"], message="second")
    v3 = alice.push_version("c1", files[2], parent=v1["id"], message="from another machine")
    assert (v1["conflict"], v2["conflict"], v3["conflict"]) == (False, False, True)
    listed = alice.list_versions("c1")
    assert [v["id"] for v in listed] == [v1["id"], v2["id"], v3["id"]]
    for v, f in zip(listed, files):
        assert v["sha256"] == sha(f) and v["author"] == "alice" and v["kind"] == "annotation"
        assert v["case_id"] == "c1" and v["created"] and v["size"] == f.stat().st_size
    assert [v["conflict"] for v in listed] == [False, False, True]
    assert listed[1]["parent"] == v1["id"] and listed[0]["parent"] is None
    assert alice.latest_version("c1")["id"] == v3["id"]
    assert alice.get_version(v2["id"])["message"] == "second"
    # content round trip: bytes identical, image intact
    out = alice.fetch_version(v2["id"], tmp_path / "out" / "v2.seg.nrrd")
    assert out.read_bytes() == files[1].read_bytes()
    image = alice.fetch_image("c1", tmp_path / "img")
    assert sha(image) == alice.get_case("c1")["image_sha256"]
    assert read_volume(image).geometry.same_grid(GEOMETRY)
    # a second pull reuses the cache / blob and gives the same bytes
    assert sha(alice.fetch_image("c1", tmp_path / "img2")) == sha(image)


def test_idempotent_push_and_reused_version_id(team, tmp_path):
    alice = team.open("alice")
    f0, f1 = write_seg(tmp_path / "a.seg.nrrd", 10), write_seg(tmp_path / "b.seg.nrrd", 11)
    first = alice.push_version("c2", f0, version_id="vfixed000001")
    again = alice.push_version("c2", f0, version_id="vfixed000001")  # a retried push
    assert first["id"] == again["id"] == "vfixed000001"
    assert len(alice.list_versions("c2")) == 1
    with pytest.raises(Conflict):
        alice.push_version("c2", f1, version_id="vfixed000001")
    assert [v["sha256"] for v in alice.list_versions("c2")] == [sha(f0)]


def test_blind_project_hides_other_annotators(team, tmp_path):
    alice, bob, rev = team.open("alice"), team.open("bob"), team.open("rev")
    va = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
    vb = bob.push_version("c1", write_seg(tmp_path / "b.seg.nrrd", 2))
    assert [v["id"] for v in bob.list_versions("c1")] == [vb["id"]]
    with pytest.raises(Forbidden):
        bob.list_versions("c1", author="alice")
    with pytest.raises(Forbidden):
        bob.get_version(va["id"])
    with pytest.raises(Forbidden):
        bob.fetch_version(va["id"], tmp_path / "stolen.seg.nrrd")
    assert not (tmp_path / "stolen.seg.nrrd").exists()
    with pytest.raises(Forbidden):
        bob.push_version("c1", write_seg(tmp_path / "c.seg.nrrd", 3), parent=va["id"])
    assert {v["author"] for v in rev.list_versions("c1")} == {"alice", "bob"}
    assert [v["id"] for v in rev.list_versions("c1", author="alice")] == [va["id"]]
    assert rev.fetch_version(va["id"], tmp_path / "r.seg.nrrd").read_bytes() == (tmp_path / "a.seg.nrrd").read_bytes()


def test_states_and_review_workflow(team, tmp_path):
    alice, bob, rev = team.open("alice"), team.open("bob"), team.open("rev")
    assert rev.states("c1")["state"] == "todo"
    with pytest.raises(Conflict):
        alice.set_state("c1", "submitted")  # nothing pushed yet
    va = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
    assert rev.states("c1")["annotators"] == {"alice": "in_progress", "bob": "todo"}
    assert alice.set_state("c1", "submitted")["annotators"] == {"alice": "submitted"}
    assert rev.states("c1")["state"] == "in_progress"
    bob.push_version("c1", write_seg(tmp_path / "b.seg.nrrd", 2))
    bob.set_state("c1", "submitted")
    assert rev.states("c1")["state"] == "submitted"
    with pytest.raises(Forbidden):
        alice.set_state("c1", "in_progress", annotator="bob")
    with pytest.raises(InvalidInput):
        alice.set_state("c1", "finished")
    rev.set_state("c1", "in_review")
    assert rev.states("c1")["state"] == "in_review"
    with pytest.raises(Conflict):
        alice.set_state("c1", "in_progress")  # no reopening during review
    with pytest.raises(Conflict):
        alice.push_version("c1", write_seg(tmp_path / "c.seg.nrrd", 3))
    with pytest.raises(Forbidden):
        alice.push_version("c2", write_seg(tmp_path / "d.seg.nrrd", 4), kind="adjudicated")
    final = rev.push_version("c1", write_seg(tmp_path / "gt.seg.nrrd", 5), parent=va["id"], kind="adjudicated",
                             message="ground truth", meta={"method": "majority"})
    assert final["kind"] == "adjudicated" and final["meta"] == {"method": "majority"} and not final["conflict"]
    assert rev.states("c1")["state"] == "adjudicated"
    assert alice.worklist()[0]["state"] == "adjudicated"
    assert final["id"] in [v["id"] for v in alice.list_versions("c1")]  # the ground truth is not blinded
    rev.set_state("c1", "in_progress")  # a reviewer reopens the case
    assert alice.set_state("c1", "in_progress")["annotators"] == {"alice": "in_progress"}


def test_worklist_and_audit(team, tmp_path):
    alice, rev = team.open("alice"), team.open("rev")
    v = alice.push_version("c2", write_seg(tmp_path / "a.seg.nrrd", 1), message="m")
    rows = {r["case_id"]: r for r in alice.worklist()}
    assert set(rows) == {"c1", "c2"}
    assert rows["c2"]["state"] == "in_progress" and rows["c2"]["latest_version"] == v["id"]
    assert rows["c1"]["state"] == "todo" and rows["c1"]["n_versions"] == 0 and rows["c1"]["patient_id"] == "P001"
    review = {r["case_id"]: r for r in rev.worklist()}
    assert review["c1"]["annotators"] == {"alice": "todo", "bob": "todo"}
    assert [r["case_id"] for r in team.open("bob").worklist()] == ["c1"]
    alice.set_state("c2", "submitted")
    log = rev.audit()
    kinds = [(e["type"], e["actor"]) for e in log]
    assert kinds[:2] == [("case", kinds[0][1]), ("case", kinds[0][1])]
    assert ("version", "alice") in kinds and kinds[-1] == ("state", "alice")
    assert [e["time"] for e in log] == sorted(e["time"] for e in log)
    assert all("token_sha256" not in e["data"] for e in log)
    assert {e["actor"] for e in alice.audit()} == {"alice"}
    assert [e["type"] for e in rev.audit("c2")][-2:] == ["version", "state"]


def test_bad_input_is_refused_and_nothing_is_stored(team, tmp_path):
    alice = team.open("alice")
    before = alice.list_versions("c1")
    for bad in ("../c1", "..", "c1/../../etc", "a b"):
        with pytest.raises(InvalidInput):
            alice.list_versions(bad)
        with pytest.raises(InvalidInput):
            alice.push_version(bad, write_seg(tmp_path / "x.seg.nrrd", 1))
    other = Geometry(size=(32, 32, 16), spacing=(1.0, 1.0, 2.5), origin=(-12.0, -10.0, 30.0))
    with pytest.raises(GeometryMismatch, match="spacing"):
        alice.push_version("c1", write_seg(tmp_path / "wrong.seg.nrrd", 1, geometry=other))
    not_seg = tmp_path / "junk.seg.nrrd"
    not_seg.write_bytes(b"NRRD0004\nthis is not a segmentation\n")
    with pytest.raises(InvalidInput):
        alice.push_version("c1", not_seg)
    with pytest.raises(NotFound):
        alice.push_version("c1", write_seg(tmp_path / "y.seg.nrrd", 2), parent="vdoesnotexist1")
    with pytest.raises(InvalidInput):
        alice.push_version("c1", write_seg(tmp_path / "z.seg.nrrd", 3), kind="final")
    assert alice.list_versions("c1") == before == []
