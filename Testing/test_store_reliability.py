"""Reliability of the store: many writers at once, a server killed mid-upload, pushes while offline.

Real components only: `dicomteam serve` in a subprocess on 127.0.0.1, real processes writing
one project folder, real SIGKILL.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from store_support import (  # noqa: F401
    ProcessServer,
    free_port,
    free_ports,
    make_team_project,
    postgres_cluster,
    postgres_url,
    synthetic_volume,
    write_seg,
)

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd
from DicomTeamAnnotateLib.store import admin, open_store
from DicomTeamAnnotateLib.store.model import StoreError
from DicomTeamAnnotateLib.store.verify import verify_project
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue, push_or_queue

N_CLIENTS, N_VERSIONS = 20, 10


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _crowd_project(tmp_path) -> tuple[Path, dict, dict]:
    """A project with 20 more annotators on c1/c2 and 10 distinct files for each."""
    project = tmp_path / "project"
    tokens = make_team_project(project)
    files = {}
    for n in range(N_CLIENTS):
        user = f"u{n:02d}"
        tokens[user] = admin.add_member(project, user, "annotator")
        admin.assign(project, "c1" if n % 2 else "c2", user)
        files[user] = [write_seg(tmp_path / "files" / f"{user}-{i}.seg.nrrd", seed=1000 * n + i)
                       for i in range(N_VERSIONS)]
    return project, tokens, files


def _push_chain(store, case_id, paths) -> list[str]:
    ids, parent = [], None
    for i, path in enumerate(paths):
        v = store.push_version(case_id, path, parent=parent, message=f"{store.user} #{i}")
        ids.append(v["id"])
        parent = v["id"]
    return ids


def _check_all_present(reviewer, files, tmp_path) -> None:
    versions = reviewer.list_versions("c1") + reviewer.list_versions("c2")
    crowd = [v for v in versions if v["author"].startswith("u")]
    assert len(crowd) == N_CLIENTS * N_VERSIONS
    assert not any(v["conflict"] for v in crowd)
    expected = {(u, f"{u} #{i}"): sha(p) for u, paths in files.items() for i, p in enumerate(paths)}
    got = {(v["author"], v["message"]): v["sha256"] for v in crowd}
    assert got == expected
    for v in crowd:  # bytes identical, as fetched back through the store
        out = reviewer.fetch_version(v["id"], tmp_path / "back" / f"{v['id']}.seg.nrrd")
        assert sha(out) == v["sha256"]


def test_twenty_clients_push_concurrently_to_the_server(tmp_path):
    project, tokens, files = _crowd_project(tmp_path)
    server = ProcessServer(project).start()
    try:
        def client(user):
            store = open_store(server.url, user, tokens[user], cache=tmp_path / f"cache-{user}")
            case = "c1" if int(user[1:]) % 2 else "c2"
            return _push_chain(store, case, files[user])

        with ThreadPoolExecutor(N_CLIENTS) as pool:
            results = list(pool.map(client, sorted(files)))
        assert sum(len(r) for r in results) == N_CLIENTS * N_VERSIONS
        _check_all_present(open_store(server.url, "rev", tokens["rev"], cache=tmp_path / "cache-rev"), files, tmp_path)
    finally:
        server.stop()
    assert verify_project(project) == []


def _folder_client(project, user, case, paths, queue):
    try:
        queue.put(_push_chain(open_store(project, user), case, paths))
    except BaseException as exc:  # report, never hang the parent
        queue.put(repr(exc))


def test_twenty_processes_push_concurrently_to_the_folder_store(tmp_path):
    project, _, files = _crowd_project(tmp_path)
    ctx = multiprocessing.get_context("fork")  # cheap: the children share the parent's imports
    results = ctx.Queue()
    procs = [ctx.Process(target=_folder_client, args=(project, u, "c1" if int(u[1:]) % 2 else "c2", files[u], results))
             for u in sorted(files)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(o, list) and len(o) == N_VERSIONS for o in outcomes), outcomes
    _check_all_present(open_store(project, "rev"), files, tmp_path)
    assert verify_project(project) == []
    assert not list((project / "events").glob(".*"))  # no temporary event file left behind


def _noisy_case(project, tmp_path) -> Path:
    """Case 'big' (128x128x32) and a poorly compressible segmentation of it (~200 kB)."""
    g = Geometry(size=(128, 128, 32), spacing=(0.7, 0.7, 1.5), origin=(0.0, 0.0, 0.0))
    admin.add_case(project, "big", synthetic_volume(g, seed=3), "P003")
    admin.assign(project, "big", "alice")
    rng = np.random.default_rng(7)
    layer = rng.integers(0, 8, g.shape).astype(np.uint8)
    seg = Segmentation(layer, g, [Segment(f"s{v}", v) for v in range(1, 8)])
    return write_seg_nrrd(seg, tmp_path / "noisy.seg.nrrd")


CHECKSUMS = pytest.mark.parametrize("checksum", ["crc32c", "sha256"])  # the client's two ways to prove a push


@CHECKSUMS
def test_server_killed_mid_upload_then_the_client_retry_completes(tmp_path, checksum):
    if checksum == "crc32c":
        pytest.importorskip("google_crc32c")
    project = tmp_path / "project"
    tokens = make_team_project(project)
    seg = _noisy_case(project, tmp_path)
    size, digest = seg.stat().st_size, sha(seg)
    server = ProcessServer(project).start()
    killed, seen = threading.Event(), {}

    def progress(done, total):
        if not killed.is_set() and done >= 0.4 * total:
            server.kill()  # SIGKILL while this chunk is still being sent
            killed.set()

    store = open_store(server.url, "alice", tokens["alice"], cache=False, chunk_size=32 * 1024, retry_window_s=90,
                       chunk_checksum=checksum)
    worker = threading.Thread(target=lambda: seen.update(
        version=store.push_version("big", seg, message="survives a crash", progress=progress)))
    try:
        worker.start()
        assert killed.wait(60), "the upload never reached 40%"
        # Dead server: the partial bytes sit in uploads/, no blob and no version exist.
        blob = project / "blobs" / "sha256" / digest[:2] / digest
        assert not blob.exists()
        parts = list((project / "uploads").glob("*.part.seg.nrrd"))
        assert len(parts) == 1 and 0 < parts[0].stat().st_size < size
        assert not [e for e in (project / "events").iterdir() if '"version"' in e.read_text(encoding="utf-8")]
        server.start()  # same port: the client's retries find it
        worker.join(120)
        assert not worker.is_alive() and "version" in seen
    finally:
        server.stop()
    version = seen["version"]
    assert version["sha256"] == digest and version["size"] == size
    assert blob.exists() and sha(blob) == digest
    assert not list((project / "uploads").glob("*.part.seg.nrrd"))  # the session was consumed
    assert verify_project(project) == []  # index == event files, blobs intact
    rev = open_store(project, "rev")
    assert [v["id"] for v in rev.list_versions("big")] == [version["id"]]


@CHECKSUMS
def test_a_file_changed_during_its_upload_makes_no_version(tmp_path, checksum):
    """An autosave rewriting the file mid-push: the mixed bytes never become a version."""
    if checksum == "crc32c":
        pytest.importorskip("google_crc32c")
    project = tmp_path / "project"
    tokens = make_team_project(project)
    seg = _noisy_case(project, tmp_path)
    first = seg.read_bytes()
    other = read_segmentation(seg)
    other.layers = (7 - other.layers).astype(np.uint8)
    new_bytes = write_seg_nrrd(other, tmp_path / "other.seg.nrrd").read_bytes()
    changed = threading.Event()

    def progress(done, total):
        if not changed.is_set() and done >= 0.3 * total:
            with open(seg, "r+b") as fh:  # in place, as an editor saving over the file would
                fh.write(new_bytes)
                fh.truncate()
            changed.set()

    server = ProcessServer(project).start()
    try:
        store = open_store(server.url, "alice", tokens["alice"], cache=False, chunk_size=32 * 1024,
                           chunk_checksum=checksum)
        with pytest.raises(StoreError, match="changed while it was uploaded"):
            store.push_version("big", seg, message="half old, half new", progress=progress)
        assert changed.is_set()
        assert store.list_versions("big") == []
        v = store.push_version("big", seg, message="saved")  # once saved, the push goes through
        assert v["sha256"] == sha(seg) != hashlib.sha256(first).hexdigest()
    finally:
        server.stop()


def test_offline_queue_keeps_pushes_and_sends_them_later(tmp_path):
    project = tmp_path / "project"
    tokens = make_team_project(project)
    server = ProcessServer(project, port=free_port())  # not started yet: the store is down
    store = open_store(server.url, "alice", tokens["alice"], cache=False, connect_window_s=0.3)
    queue = OfflineQueue(tmp_path / "queue")
    f1, f2 = write_seg(tmp_path / "a.seg.nrrd", 1), write_seg(tmp_path / "b.seg.nrrd", 2)
    q1 = push_or_queue(store, "c1", f1, message="offline 1", queue=queue)
    q2 = push_or_queue(store, "c1", f2, parent=q1["id"], message="offline 2", queue=queue, submit=True)
    assert q1["queued"] and q2["queued"]
    assert [i["version_id"] for i in queue.pending(store.location, "alice")] == [q1["id"], q2["id"]]
    f1.unlink()  # the queue keeps its own copy
    try:
        server.start()
        result = queue.flush(store)
        assert [v["id"] for v in result["sent"]] == [q1["id"], q2["id"]] and result["remaining"] == 0
        versions = store.list_versions("c1")
        assert [(v["id"], v["parent"], v["conflict"]) for v in versions] == [(q1["id"], None, False),
                                                                             (q2["id"], q1["id"], False)]
        assert versions[1]["sha256"] == sha(f2)
        assert store.states("c1")["annotators"] == {"alice": "submitted"}
        assert queue.flush(store) == {"sent": [], "failed": [], "remaining": 0}
    finally:
        server.stop()


@pytest.mark.parametrize("reason", ["in_review"])
def test_a_refused_queued_push_is_kept_aside_not_dropped(tmp_path, reason):
    project = tmp_path / "project"
    make_team_project(project)
    queue = OfflineQueue(tmp_path / "queue")
    alice = open_store(project, "alice")
    alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
    queue.enqueue(alice.location, "alice", "c1", write_seg(tmp_path / "b.seg.nrrd", 2), message="late")
    open_store(project, "rev").set_state("c1", reason)
    result = queue.flush(alice)
    assert result["sent"] == [] and len(result["failed"]) == 1 and result["remaining"] == 0
    kept = list((tmp_path / "queue" / "failed").glob("*.seg.nrrd"))
    assert len(kept) == 1 and sha(kept[0]) == sha(tmp_path / "b.seg.nrrd")
    assert "review" in result["failed"][0][1]


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_two_server_instances_share_one_project(tmp_path, request, db):
    """No state in the server process: two instances on one folder + database behave as one."""
    import requests

    db_url = request.getfixturevalue("postgres_url") if db == "postgres" else None
    project = tmp_path / "project"
    tokens = make_team_project(project)
    port_one, port_two = free_ports(2)
    one, two = (ProcessServer(project, port_one, db_url=db_url), ProcessServer(project, port_two, db_url=db_url))
    try:
        one.start()
        two.start()
        alice = open_store(one.url, "alice", tokens["alice"], cache=False)
        v1 = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
        rev2 = open_store(two.url, "rev", tokens["rev"], cache=False)
        assert [v["id"] for v in rev2.list_versions("c1")] == [v1["id"]]
        # one upload, its chunks sent to different instances (as a load balancer may do)
        data = write_seg(tmp_path / "b.seg.nrrd", 2).read_bytes()
        auth = {"Authorization": f"Bearer {tokens['alice']}"}
        octet = {**auth, "Content-Type": "application/octet-stream"}
        uid = requests.post(one.url + "/api/v1/cases/c1/uploads", json={"size": len(data), "parent": v1["id"]},
                            headers=auth, timeout=10).json()["upload_id"]
        half = len(data) // 2
        requests.put(one.url + f"/api/v1/uploads/{uid}", params={"offset": 0}, data=data[:half], headers=octet,
                     timeout=10).raise_for_status()
        requests.put(two.url + f"/api/v1/uploads/{uid}", params={"offset": half}, data=data[half:], headers=octet,
                     timeout=10).raise_for_status()
        r = requests.post(two.url + f"/api/v1/uploads/{uid}/finalize",
                          json={"sha256": hashlib.sha256(data).hexdigest()}, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        v2 = r.json()
        assert v2["parent"] == v1["id"] and not v2["conflict"]
        assert open_store(one.url, "rev", tokens["rev"], cache=False).get_version(v2["id"])["sha256"] == v2["sha256"]
        # an admin adds a member on the folder while both run: the new token works at once
        token = admin.add_member(project, "carol", "reviewer")
        assert open_store(two.url, "carol", token, cache=False).whoami() == {"user": "carol", "role": "reviewer"}
    finally:
        one.stop()
        two.stop()
    assert verify_project(project, db_url) == []
