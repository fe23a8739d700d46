"""Issue 15, items 1-4 and 6: attacks on blinding and integrity, performed against a real server.

Each test does what an attacker (or a crash, or a full disk) does, on a server on 127.0.0.1
(SQLite and PostgreSQL index) and on the folder store where the attack applies there too.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from store_support import (  # noqa: F401
    Api,
    backend_for,
    fill_disk,
    make_team_project,
    postgres_cluster,
    postgres_url,
    small_disk,
    write_seg,
)

from DicomTeamAnnotateLib.store import Conflict, InvalidInput, open_store
from DicomTeamAnnotateLib.store.server import BackgroundServer
from DicomTeamAnnotateLib.store.verify import verify_project
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue, push_or_queue

SERVERS = ["sqlite", "postgres"]
BACKENDS = ["folder", *SERVERS]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=SERVERS)
def served(request, tmp_path):
    with backend_for(request.param, tmp_path, request) as backend:
        yield backend


@pytest.fixture(params=BACKENDS)
def team(request, tmp_path):
    with backend_for(request.param, tmp_path, request) as backend:
        yield backend


# ----- 1. blinding bypass by content address -----------------------------------------------------------
def test_naming_an_existing_hash_gets_no_version_without_the_bytes(served, tmp_path):
    api = Api(served.server.url, served.tokens)
    alice_file = write_seg(tmp_path / "a.seg.nrrd", 1)
    va = served.open("alice").push_version("c1", alice_file)
    # bob (co-annotator of the blind case c1) names alice's sha256: he must send the bytes himself
    r = api("POST", "/cases/c1/uploads", "bob", json={"sha256": va["sha256"], "size": va["size"]})
    assert r.status_code == 200 and r.json().get("upload_id") and r.json().get("version") is None, r.text
    fin = api("POST", f"/uploads/{r.json()['upload_id']}/finalize", "bob", json={})
    assert fin.status_code == 409 and fin.json()["offset"] == 0  # nothing sent, nothing made
    # a wrong size does not tell him the size of alice's blob either
    r = api("POST", "/cases/c1/uploads", "bob", json={"sha256": va["sha256"], "size": va["size"] + 7})
    assert r.status_code == 200 and str(va["size"]) not in r.text
    assert [v["author"] for v in served.open("rev").list_versions("c1")] == ["alice"]


def test_an_adjudicated_record_does_not_reveal_other_annotators_work(team, tmp_path):
    alice, bob, rev = team.open("alice"), team.open("bob"), team.open("rev")
    va = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
    vb = bob.push_version("c1", write_seg(tmp_path / "b.seg.nrrd", 2))
    inputs = [{"version_id": v["id"], "author": v["author"], "sha256": v["sha256"]} for v in (va, vb)]
    final = rev.push_version("c1", write_seg(tmp_path / "gt.seg.nrrd", 3), parent=va["id"], kind="adjudicated",
                             message=f"from version {va['id']}", meta={"audit": {"inputs": inputs}})
    seen = bob.latest_version("c1", kind="adjudicated")  # every annotator finds the ground truth
    assert seen is not None and seen["id"] == final["id"]
    text = json.dumps(seen)
    assert va["id"] not in text and va["sha256"] not in text  # alice's work stays hidden from bob
    assert seen["meta"]["audit"]["inputs"][1] == inputs[1] and seen["parent"] is None  # his own is shown
    assert json.dumps(bob.get_version(final["id"])) == text
    assert rev.get_version(final["id"])["meta"]["audit"]["inputs"] == inputs  # the reviewer sees it all


# ----- 2. strict JSON in; a bad record never breaks a listing ------------------------------------------
def _plant_event(project, record: dict, text: str | None = None) -> str:
    """Write an event file as an older server (or a damaged disk) left it."""
    stamp = record["time"].replace("-", "").replace(":", "")
    name = f"{stamp}-{record['id']}.json"
    (project / "events" / name).write_text(text if text is not None else json.dumps(record), encoding="utf-8")  # NaN allowed
    return name


def test_non_standard_json_is_refused_and_a_bad_record_never_breaks_a_listing(team, tmp_path):
    alice, rev = team.open("alice"), team.open("rev")
    seg = write_seg(tmp_path / "a.seg.nrrd", 1)
    deep = {"x": 1}
    for _ in range(200):
        deep = {"x": deep}
    for meta in ({"score": float("nan")}, {"score": float("inf")}, deep):
        with pytest.raises(InvalidInput):
            alice.push_version("c1", seg, meta=meta)
    if team.server is not None:
        api = Api(team.server.url, team.tokens)
        for body in (b'{"size": 10, "meta": {"score": NaN}}', b'{"size": Infinity}',
                     b'{"size": 10, "meta": ' + b"[" * 100000 + b"]" * 100000 + b"}"):
            r = api("POST", "/cases/c1/uploads", data=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json()["error"] == "InvalidInput", (body[:40], r.status_code, r.text)
    assert rev.list_versions("c1") == []
    good = alice.push_version("c1", seg)
    now = "2030-01-01T00:00:00.000000Z"
    nan_version = {**good, "id": "vnanrecord0001", "created": now, "meta": {"score": float("nan")}}
    nan_version.pop("conflict")
    _plant_event(team.project_dir, {"id": "a" * 32, "type": "version", "time": now, "actor": "alice",
                                    "case_id": "c1", "data": nan_version})
    torn = _plant_event(team.project_dir, {"id": "b" * 32, "type": "version", "time": now, "actor": "alice",
                                           "case_id": "c1", "data": {}}, text='{"id": "' + "b" * 32 + '", "ty')
    deadline = time.monotonic() + 5
    while len(rev.list_versions("c1")) < 2 and time.monotonic() < deadline:  # the server imports within 0.5 s
        time.sleep(0.1)
    for user in ("alice", "bob", "rev", "boss"):
        store = team.open(user)
        store.worklist()
        store.audit()
        if user != "bob":
            listed = store.list_versions("c1")
            assert [v["id"] for v in listed] == [good["id"], "vnanrecord0001"]
            assert listed[1]["meta"] == {"score": None}
    problems = verify_project(team.project_dir)
    assert any(torn in p and "unreadable" in p for p in problems), problems


# ----- 3. concurrent writes to one upload; blobs named by their bytes -----------------------------------
def test_two_writers_of_one_upload_cannot_mix_their_bytes(served, tmp_path):
    api = Api(served.server.url, served.tokens)
    first = write_seg(tmp_path / "a.seg.nrrd", 5).read_bytes()
    second = first.replace(b"Name:=liver", b"Name:=livex", 1)  # same length, other bytes, still a segmentation
    assert second != first and len(second) == len(first)
    uid = api("POST", "/cases/c1/uploads", json={"size": len(first)}).json()["upload_id"]
    barrier = threading.Barrier(2)

    def put(data):
        def slowly():
            for i in range(0, len(data), 256):
                yield data[i:i + 256]
                time.sleep(0.01)
        barrier.wait()
        return api("PUT", f"/uploads/{uid}", params={"offset": 0}, data=slowly(),
                   headers={"Content-Type": "application/octet-stream"})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(put, (first, second)))
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    kept = first if answers[0].status_code == 200 else second
    part = served.project_dir / "uploads" / f"{uid}.part.seg.nrrd"
    assert part.read_bytes() == kept  # one writer's bytes, whole
    r = api("POST", f"/uploads/{uid}/finalize", json={"sha256": sha(kept)})
    assert r.status_code == 200, r.text
    blob = served.project_dir / "blobs" / "sha256" / sha(kept)[:2] / sha(kept)
    assert sha(blob.read_bytes()) == sha(kept) == r.json()["sha256"]


def test_a_planted_blob_is_verified_before_it_is_reused(team, tmp_path):
    seg = write_seg(tmp_path / "a.seg.nrrd", 6)
    digest = sha(seg.read_bytes())
    blob = team.project_dir / "blobs" / "sha256" / digest[:2] / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"not the segmentation at all")  # a corrupt blob under a valid name
    alice = team.open("alice")
    v = alice.push_version("c1", seg)
    assert v["sha256"] == digest and sha(blob.read_bytes()) == digest
    assert alice.fetch_version(v["id"], tmp_path / "back.seg.nrrd").read_bytes() == seg.read_bytes()


# ----- 4. one version id, two users, at once -----------------------------------------------------------
def test_one_version_id_pushed_by_two_users_at_once(team, tmp_path):
    files = {u: write_seg(tmp_path / f"{u}.seg.nrrd", seed) for u, seed in (("alice", 11), ("bob", 12))}
    stores = {u: team.open(u) for u in files}
    winners = []
    for n in range(4):
        vid = f"vrace{n:08d}"
        barrier = threading.Barrier(2)

        def push(user, vid=vid, barrier=barrier):
            barrier.wait()
            try:
                return stores[user].push_version("c1", files[user], version_id=vid)
            except Conflict as exc:
                return exc

        with ThreadPoolExecutor(2) as pool:
            results = dict(zip(files, pool.map(push, list(files))))
        won = {u: r for u, r in results.items() if isinstance(r, dict)}
        assert len(won) == 1 and sum(isinstance(r, Conflict) for r in results.values()) == 1, results
        (user, version), = won.items()
        assert version["author"] == user and version["sha256"] == sha(files[user].read_bytes())
        winners.append((vid, user))
    listed = team.open("rev").list_versions("c1")
    assert [(v["id"], v["author"]) for v in listed] == winners
    assert verify_project(team.project_dir) == []
    if team.kind == "sqlite":  # verify compares the index's records with the events, field by field
        import sqlite3

        with sqlite3.connect(team.project_dir / "index.sqlite") as db:
            db.execute("UPDATE versions SET data = replace(data, '\"message\": \"\"', '\"message\": \"forged\"') "
                       "WHERE id = ?", (winners[0][0],))
        problems = verify_project(team.project_dir)
        assert problems == [f"version {winners[0][0]}: the index and the event files disagree on message"]


# ----- 6. a full disk between the blob and its event ---------------------------------------------------
@pytest.mark.parametrize("db", SERVERS)
def test_a_full_disk_after_the_blob_is_finished_by_a_retry_and_a_push_is_queued(tmp_path, request, db):
    db_url = request.getfixturevalue("postgres_url") if db == "postgres" else None
    with small_disk(tmp_path / "disk", 24) as disk:
        project = disk / "project"
        tokens = make_team_project(project)
        with BackgroundServer(project, db_url) as server:
            api = Api(server.url, tokens)
            data = write_seg(tmp_path / "a.seg.nrrd", 8).read_bytes()
            uid = api("POST", "/cases/c1/uploads", json={"size": len(data)}).json()["upload_id"]
            assert api("PUT", f"/uploads/{uid}", params={"offset": 0}, data=data,
                       headers={"Content-Type": "application/octet-stream"}).status_code == 200
            filler = fill_disk(disk, leave=4096)  # room for the version id's claim, none for its event
            r = api("POST", f"/uploads/{uid}/finalize", json={"sha256": sha(data)})
            assert r.status_code == 503 and r.json()["error"] == "StoreUnavailable", r.text  # retryable
            problems = verify_project(project, db_url)
            assert any(p.startswith(f"blob {sha(data)}: referenced by no case or version") for p in problems)
            assert any("claimed but no readable event" in p for p in problems), problems
            filler.unlink()
            filler = fill_disk(disk)
            # the client keeps a push that meets the full disk in its offline queue
            alice = open_store(server.url, "alice", tokens["alice"], cache=False, retry_window_s=1,
                               connect_window_s=0.5)
            queue = OfflineQueue(tmp_path / "queue")
            queued = push_or_queue(alice, "c2", write_seg(tmp_path / "b.seg.nrrd", 9), queue=queue)
            assert queued.get("queued") is True
            filler.unlink()
            r = api("POST", f"/uploads/{uid}/finalize", json={"sha256": sha(data)})  # the same finalize, again
            assert r.status_code == 200 and r.json()["sha256"] == sha(data), r.text
            assert queue.flush(alice)["remaining"] == 0
            assert {v["id"] for v in alice.list_versions("c2")} == {queued["id"]}
        assert verify_project(project, db_url) == []
