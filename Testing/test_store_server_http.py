"""The server's HTTP surface with hostile or broken requests: clear 4xx answers, nothing stored.

Raw HTTP (requests / http.client) against the real app under uvicorn on 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import http.client
import json

import pytest
import requests
from store_support import ThreadServer, make_team_project, write_seg

from DicomTeamAnnotateLib.core.geometry import Geometry


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    project = root / "project"
    tokens = make_team_project(project)
    server = ThreadServer(project)
    yield server, project, tokens, root
    server.stop()


def _snapshot(project) -> tuple:
    """What is stored: event files and blobs (uploads/ and tmp/ are scratch areas)."""
    events = sorted(p.name for p in (project / "events").iterdir())
    blobs = sorted(p.name for p in (project / "blobs").rglob("*") if p.is_file())
    return events, blobs


def _auth(tokens, user="alice", **extra) -> dict:
    return {"Authorization": f"Bearer {tokens[user]}", **extra}


def _raw(server, method, path, body=b"", headers=None):
    """http.client keeps the path exactly as written (no normalising of '..')."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def test_tokens_are_required_and_checked(served):
    server, project, tokens, _ = served
    api = server.url + "/api/v1"
    assert requests.get(api + "/health", timeout=10).json()["ok"] is True
    r = requests.get(api + "/cases", timeout=10)
    assert r.status_code == 401 and "token" in r.json()["detail"]
    assert requests.get(api + "/cases", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    r = requests.get(api + "/me", headers=_auth(tokens, **{"X-DicomTeam-User": "bob"}), timeout=10)
    assert r.status_code == 401 and "alice" in r.json()["detail"]
    assert requests.get(api + "/me", headers=_auth(tokens), timeout=10).json()["user"] == "alice"
    stored = "".join(p.read_text(encoding="utf-8") for p in (project / "events").iterdir())
    assert tokens["alice"] not in stored and hashlib.sha256(tokens["alice"].encode()).hexdigest() in stored


def test_malformed_json_and_wrong_content_types(served):
    server, project, tokens, _ = served
    api = server.url + "/api/v1"
    before = _snapshot(project)
    r = requests.post(api + "/cases/c1/states", data=b'{"state": "submitted",', timeout=10,
                      headers=_auth(tokens, **{"Content-Type": "application/json"}))
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = requests.post(api + "/cases/c1/states", data=b'["submitted"]', timeout=10,
                      headers=_auth(tokens, **{"Content-Type": "application/json"}))
    assert r.status_code == 400 and "object" in r.json()["detail"]
    r = requests.post(api + "/cases/c1/states", data=b'{"state": "submitted"}', timeout=10,
                      headers=_auth(tokens, **{"Content-Type": "text/plain"}))
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = requests.post(api + "/cases/c1/states", json={"state": "in_progress", "sneaky": 1}, headers=_auth(tokens),
                      timeout=10)
    assert r.status_code == 400 and "sneaky" in r.json()["detail"]
    r = requests.post(api + "/cases/c1/uploads", json={"sha256": "abc", "size": 10}, headers=_auth(tokens), timeout=10)
    assert r.status_code == 400 and "sha256" in r.json()["detail"]
    r = requests.put(api + "/uploads/" + "0" * 32, params={"offset": "zero"}, data=b"x", headers=_auth(tokens),
                     timeout=10)
    assert r.status_code == 400
    assert _snapshot(project) == before


def test_path_traversal_in_ids_and_file_names(served, tmp_path):
    server, project, tokens, _ = served
    before = _snapshot(project)
    for path in ("/api/v1/cases/../versions", "/api/v1/cases/%2E%2E/versions", "/api/v1/cases/..%2F..%2Fetc/image",
                 "/api/v1/cases/%2e%2e%2fevents/image", "/api/v1/versions/..%2F..%2Fproject.json/content",
                 "/api/v1/versions/../content"):
        status, body = _raw(server, "GET", path, headers=_auth(tokens))
        assert 400 <= status < 500, (path, status)
        assert b"Team" not in body and b'"labels"' not in body
    seg = write_seg(tmp_path / "ok.seg.nrrd", 1)
    digest = hashlib.sha256(seg.read_bytes()).hexdigest()
    body = {"sha256": digest, "size": seg.stat().st_size}
    for case in ("..", "c1%2F..%2F..%2Fx"):
        status, data = _raw(server, "POST", f"/api/v1/cases/{case}/uploads", json.dumps(body).encode(),
                            _auth(tokens, **{"Content-Type": "application/json"}))
        assert 400 <= status < 500, (case, status, data)
    r = requests.post(server.url + "/api/v1/cases/c1/uploads", json={**body, "filename": "../../evil.seg.nrrd"},
                      headers=_auth(tokens), timeout=10)
    assert r.status_code == 400 and "file name" in r.json()["detail"]
    r = requests.post(server.url + "/api/v1/cases/c1/uploads", json={**body, "version_id": "../../x"},
                      headers=_auth(tokens), timeout=10)
    assert r.status_code == 400
    assert _snapshot(project) == before
    assert not (project.parent / "evil.seg.nrrd").exists()


def _upload(server, tokens, path, case="c1", declared_sha=None, extra=None):
    """Create an upload session, send the file, finalize; returns the finalize response."""
    api = server.url + "/api/v1"
    data = path.read_bytes()
    digest = declared_sha or hashlib.sha256(data).hexdigest()
    r = requests.post(api + f"/cases/{case}/uploads", json={"sha256": digest, "size": len(data), **(extra or {})},
                      headers=_auth(tokens), timeout=10)
    assert r.status_code == 200, r.text
    uid = r.json()["upload_id"]
    r = requests.put(api + f"/uploads/{uid}", params={"offset": 0}, data=data, timeout=10,
                     headers=_auth(tokens, **{"Content-Type": "application/octet-stream"}))
    assert r.status_code == 200 and r.json()["offset"] == len(data)
    return requests.post(api + f"/uploads/{uid}/finalize", json={}, headers=_auth(tokens), timeout=30), uid


def test_mismatching_geometry_or_checksum_stores_nothing(served, tmp_path):
    server, project, tokens, _ = served
    before = _snapshot(project)
    shifted = Geometry(size=(32, 32, 16), spacing=(0.8, 0.8, 2.5), origin=(-12.3, -10.0, 30.0))
    r, uid = _upload(server, tokens, write_seg(tmp_path / "shifted.seg.nrrd", 1, geometry=shifted))
    assert r.status_code == 422 and "origin" in r.json()["detail"] and "c1" in r.json()["detail"]
    r, uid2 = _upload(server, tokens, write_seg(tmp_path / "ok.seg.nrrd", 2), declared_sha="0" * 64)
    assert r.status_code == 400 and "sha256" in r.json()["detail"]
    assert _snapshot(project) == before
    leftovers = [p.name for p in (project / "uploads").iterdir() if uid in p.name or uid2 in p.name]
    assert leftovers == []
    r = requests.get(server.url + f"/api/v1/uploads/{uid}", headers=_auth(tokens), timeout=10)
    assert r.status_code == 404


def test_resumable_upload_protocol(served, tmp_path):
    server, project, tokens, _ = served
    api = server.url + "/api/v1"
    seg = write_seg(tmp_path / "r.seg.nrrd", 3)
    data = seg.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    r = requests.post(api + "/cases/c2/uploads", json={"sha256": digest, "size": len(data), "message": "resumed"},
                      headers=_auth(tokens), timeout=10)
    uid = r.json()["upload_id"]
    octet = _auth(tokens, **{"Content-Type": "application/octet-stream"})
    half = len(data) // 2
    assert requests.put(api + f"/uploads/{uid}", params={"offset": 0}, data=data[:half], headers=octet,
                        timeout=10).json()["offset"] == half
    r = requests.put(api + f"/uploads/{uid}", params={"offset": 0}, data=data, headers=octet, timeout=10)
    assert r.status_code == 409 and r.json()["offset"] == half  # tells where to resume
    r = requests.put(api + f"/uploads/{uid}", params={"offset": half}, data=data[half:] + b"extra", headers=octet,
                     timeout=10)
    assert r.status_code == 400  # more than declared; the stored part is untouched
    r = requests.post(api + f"/uploads/{uid}/finalize", json={}, headers=_auth(tokens), timeout=10)
    assert r.status_code == 409 and r.json()["offset"] == half  # incomplete: not finalized
    assert requests.get(api + f"/uploads/{uid}", headers=_auth(tokens, user="bob"), timeout=10).status_code == 404
    assert requests.get(api + f"/uploads/{uid}", headers=_auth(tokens), timeout=10).json()["offset"] == half
    assert requests.put(api + f"/uploads/{uid}", params={"offset": half}, data=data[half:], headers=octet,
                        timeout=10).json()["offset"] == len(data)
    r = requests.post(api + f"/uploads/{uid}/finalize", json={}, headers=_auth(tokens), timeout=30)
    assert r.status_code == 200 and r.json()["sha256"] == digest and r.json()["message"] == "resumed"
    got = requests.get(api + f"/versions/{r.json()['id']}/content", headers=_auth(tokens), timeout=10)
    assert got.content == data and got.headers["X-Content-SHA256"] == digest
    ranged = requests.get(api + f"/versions/{r.json()['id']}/content", timeout=10,
                          headers=_auth(tokens, Range=f"bytes={half}-"))
    assert ranged.status_code == 206 and ranged.content == data[half:]


def test_roles_enforced_over_http(served, tmp_path):
    server, project, tokens, _ = served
    seg = write_seg(tmp_path / "x.seg.nrrd", 4)
    data = seg.read_bytes()
    body = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    r = requests.post(server.url + "/api/v1/cases/c2/uploads", json={**body, "kind": "adjudicated"},
                      headers=_auth(tokens), timeout=10)
    assert r.status_code == 403
    r = requests.post(server.url + "/api/v1/cases/c2/uploads", json=body, headers=_auth(tokens, user="bob"), timeout=10)
    assert r.status_code == 403 and "not assigned" in r.json()["detail"]
    r = requests.get(server.url + "/api/v1/cases/c2/image", headers=_auth(tokens, user="bob"), timeout=10)
    assert r.status_code == 403


def _crc(data: bytes) -> str:
    import google_crc32c

    return f"{google_crc32c.value(data):08x}"


def test_chunks_with_crc32c_are_kept_only_when_they_arrive_intact(served, tmp_path):
    """A chunk whose CRC32C does not match is refused (409, resume offset unchanged, nothing kept);
    when every chunk carried one, finalize needs no sha256 from the client: the server's names the blob."""
    pytest.importorskip("google_crc32c")
    server, project, tokens, _ = served
    api = server.url + "/api/v1"
    data = write_seg(tmp_path / "crc.seg.nrrd", 7).read_bytes()
    uid = requests.post(api + "/cases/c2/uploads", json={"size": len(data)}, headers=_auth(tokens),
                        timeout=10).json()["upload_id"]
    octet = _auth(tokens, **{"Content-Type": "application/octet-stream"})
    third = len(data) // 3
    first, second, rest = data[:third], data[third:2 * third], data[2 * third:]
    ok = requests.put(api + f"/uploads/{uid}", params={"offset": 0}, data=first, timeout=10,
                      headers={**octet, "X-Chunk-CRC32C": _crc(first)})
    assert ok.status_code == 200 and ok.json()["offset"] == third
    damaged = bytes([second[0] ^ 0xFF]) + second[1:]  # one byte changed on the way
    r = requests.put(api + f"/uploads/{uid}", params={"offset": third}, data=damaged, timeout=10,
                     headers={**octet, "X-Chunk-CRC32C": _crc(second)})
    assert r.status_code == 409 and r.json()["offset"] == third and "CRC32C" in r.json()["detail"]
    upload_file = project / "uploads" / f"{uid}.part.seg.nrrd"
    assert upload_file.stat().st_size == third  # nothing of the refused chunk stays
    r = requests.put(api + f"/uploads/{uid}", params={"offset": third}, data=second, timeout=10,
                     headers={**octet, "X-Chunk-CRC32C": "xyz"})
    assert r.status_code == 400 and "8 hex digits" in r.json()["detail"]
    for offset, chunk in ((third, second), (2 * third, rest)):
        assert requests.put(api + f"/uploads/{uid}", params={"offset": offset}, data=chunk, timeout=10,
                            headers={**octet, "X-Chunk-CRC32C": _crc(chunk)}).status_code == 200
    r = requests.post(api + f"/uploads/{uid}/finalize", json={}, headers=_auth(tokens), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest() and r.json()["size"] == len(data)
    # one chunk without a CRC: then the client must declare the sha256
    uid = requests.post(api + "/cases/c2/uploads", json={"size": len(data), "message": "x"}, headers=_auth(tokens),
                        timeout=10).json()["upload_id"]
    requests.put(api + f"/uploads/{uid}", params={"offset": 0}, data=data, headers=octet, timeout=10).raise_for_status()
    r = requests.post(api + f"/uploads/{uid}/finalize", json={}, headers=_auth(tokens), timeout=30)
    assert r.status_code == 400 and "sha256" in r.json()["detail"]


def test_a_torn_chunk_is_dropped_and_the_rehash_checks_every_crc(tmp_path):
    """A server killed inside a chunk leaves bytes past the last completed chunk: the offset ignores
    them and the next PUT cuts them off.  Finalize without the running hash (a restart) reads the
    file again and checks each chunk's CRC32C: bytes changed on disk are refused, nothing stored."""
    pytest.importorskip("google_crc32c")
    project = tmp_path / "project"
    tokens = make_team_project(project)
    data = write_seg(tmp_path / "t.seg.nrrd", 8).read_bytes()
    half = len(data) // 2

    def start(server):
        api = server.url + "/api/v1"
        uid = requests.post(api + "/cases/c2/uploads", json={"size": len(data)}, headers=_auth(tokens),
                            timeout=10).json()["upload_id"]
        requests.put(api + f"/uploads/{uid}", params={"offset": 0}, data=data[:half], timeout=10,
                     headers=_auth(tokens, **{"Content-Type": "application/octet-stream",
                                              "X-Chunk-CRC32C": _crc(data[:half])})).raise_for_status()
        return api, uid, project / "uploads" / f"{uid}.part.seg.nrrd"

    server = ThreadServer(project)
    try:
        api, uid, part = start(server)
        with open(part, "ab") as fh:  # what a killed server had written of the next chunk
            fh.write(data[half:half + 100])
    finally:
        server.stop()
    server = ThreadServer(project)  # a restart: no running hash in memory
    try:
        api = server.url + "/api/v1"
        assert requests.get(api + f"/uploads/{uid}", headers=_auth(tokens), timeout=10).json()["offset"] == half
        octet = _auth(tokens, **{"Content-Type": "application/octet-stream", "X-Chunk-CRC32C": _crc(data[half:])})
        assert requests.put(api + f"/uploads/{uid}", params={"offset": half}, data=data[half:], headers=octet,
                            timeout=10).json()["offset"] == len(data)
        assert part.read_bytes() == data  # the torn tail was cut off, not kept before the new chunk
        r = requests.post(api + f"/uploads/{uid}/finalize", json={}, headers=_auth(tokens), timeout=30)
        assert r.status_code == 200 and r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    finally:
        server.stop()
    before = _snapshot(project)
    server = ThreadServer(project)
    try:
        api, uid, part = start(server)
        requests.put(api + f"/uploads/{uid}", params={"offset": half}, data=data[half:], timeout=10,
                     headers=_auth(tokens, **{"Content-Type": "application/octet-stream",
                                              "X-Chunk-CRC32C": _crc(data[half:])})).raise_for_status()
    finally:
        server.stop()
    with open(part, "r+b") as fh:  # the disk changed a byte while the server was down
        fh.seek(10)
        fh.write(bytes([data[10] ^ 1]))
    server = ThreadServer(project)
    try:
        r = requests.post(server.url + f"/api/v1/uploads/{uid}/finalize", json={}, headers=_auth(tokens), timeout=30)
        assert r.status_code == 400 and f"0..{half}" in r.json()["detail"] and "CRC32C" in r.json()["detail"]
    finally:
        server.stop()
    assert _snapshot(project) == before and not part.exists()
