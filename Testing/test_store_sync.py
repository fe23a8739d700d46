"""The sync client's local side (cache, resumable verified downloads) and the worklist logic."""
from __future__ import annotations

import hashlib

import pytest
from store_support import ThreadServer, make_team_project, write_seg

from DicomTeamAnnotateLib.store import Conflict, InvalidInput, open_store
from DicomTeamAnnotateLib.store.cache import SyncCache
from DicomTeamAnnotateLib.worklist.cases import draft_path, fetch_all_versions, open_case, submit_case
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue
from DicomTeamAnnotateLib.worklist.rows import connect, offline_status, reopen_case, worklist_rows


@pytest.fixture
def served(tmp_path):
    project = tmp_path / "project"
    tokens = make_team_project(project)
    server = ThreadServer(project)
    yield server, project, tokens
    server.stop()


def test_cache_resumes_a_partial_download_and_rejects_corrupt_bytes(served, tmp_path):
    server, project, tokens = served
    cache = SyncCache(tmp_path / "cache")
    alice = open_store(server.url, "alice", tokens["alice"], cache=cache)
    case = alice.get_case("c1")
    blob = (project / "blobs" / "sha256" / case["image_sha256"][:2] / case["image_sha256"]).read_bytes()
    part = cache.path(case["image_sha256"]).with_name(case["image_sha256"] + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(blob[: len(blob) // 3])  # an interrupted earlier download
    seen = []
    image = alice.fetch_image("c1", tmp_path / "work", progress=lambda done, total: seen.append(done))
    assert image.read_bytes() == blob and not part.exists()
    assert seen[0] == len(blob) // 3 and seen[-1] == len(blob)  # resumed, not restarted
    assert cache.verify(case["image_sha256"])
    # a corrupt partial file: the result fails its sha256, is discarded and reported
    cache.path(case["image_sha256"]).unlink()
    part.write_bytes(b"X" * (len(blob) // 2))
    with pytest.raises(InvalidInput, match="expected"):
        alice.fetch_image("c1", tmp_path / "work2")
    assert not part.exists() and not (tmp_path / "work2" / "c1.nrrd").exists()
    assert alice.fetch_image("c1", tmp_path / "work2").read_bytes() == blob  # the next try starts clean


def test_downloads_work_without_a_cache(served, tmp_path):
    server, _, tokens = served
    alice = open_store(server.url, "alice", tokens["alice"], cache=False)
    v = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
    out = alice.fetch_version(v["id"], tmp_path / "plain" / "v.seg.nrrd")
    assert out.read_bytes() == (tmp_path / "a.seg.nrrd").read_bytes()
    assert hashlib.sha256(alice.fetch_image("c1", tmp_path / "plain").read_bytes()).hexdigest() == \
        alice.get_case("c1")["image_sha256"]


@pytest.mark.parametrize("kind", ["folder", "server"])
def test_worklist_open_submit_reopen(served, tmp_path, kind):
    server, project, tokens = served
    location = server.url if kind == "server" else project
    options = {"cache": tmp_path / "cache"} if kind == "server" else {}
    alice = connect(location, "alice", tokens["alice"], **options)
    queue = OfflineQueue(tmp_path / "queue")
    rows = worklist_rows(alice, queue=queue)
    assert [(r["case_id"], r["state"], r["state_label"], r["queued"]) for r in rows] == \
        [("c1", "todo", "todo", 0), ("c2", "todo", "todo", 0)]
    assert [r["case_id"] for r in worklist_rows(alice, text="p002", queue=queue)] == ["c2"]
    opened = open_case(alice, "c1", tmp_path / "work")
    assert opened.image_path.exists() and opened.segmentation_path is None and opened.version is None
    assert [lab["name"] for lab in opened.labels] == ["liver", "spleen"] and opened.window_preset
    draft = draft_path(tmp_path / "work", alice, "c1")
    write_seg(draft, 1)  # what the panel's autosave writes
    v = submit_case(alice, "c1", draft, parent=None, queue=queue)
    assert not v.get("queued")
    assert [r["case_id"] for r in worklist_rows(alice, state="submitted", queue=queue)] == ["c1"]
    again = open_case(alice, "c1", tmp_path / "work")
    assert again.version["id"] == v["id"] and again.draft_path == draft
    assert again.segmentation_path.read_bytes() == draft.read_bytes()
    assert reopen_case(alice, "c1")["annotators"] == {"alice": "in_progress"}
    rev = connect(location, "rev", tokens.get("rev"), **options)
    bob = connect(location, "bob", tokens.get("bob"), **options)
    bob.push_version("c1", write_seg(tmp_path / "b.seg.nrrd", 2))
    got = fetch_all_versions(rev, "c1", tmp_path / "review")
    assert sorted(v["author"] for v, _ in got) == ["alice", "bob"] and all(p.exists() for _, p in got)
    assert [v["author"] for v, _ in fetch_all_versions(bob, "c1", tmp_path / "bob")] == ["bob"]  # blind
    rev.set_state("c1", "in_review")
    with pytest.raises(Conflict):
        reopen_case(alice, "c1")
    assert offline_status(alice, queue) == {"queued": 0, "items": []}
