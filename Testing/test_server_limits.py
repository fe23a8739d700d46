"""Issue 15, items 5 and 8: what an anonymous or greedy client can make the server spend.

Raw sockets and requests against a real server on 127.0.0.1 with short timeouts (``Limits``).
"""
from __future__ import annotations

import socket
import time

import pytest
from store_support import Api, backend_for, make_team_project, postgres_cluster, postgres_url, write_seg  # noqa: F401

from DicomTeamAnnotateLib.store.server import BackgroundServer
from DicomTeamAnnotateLib.store.server.context import Limits

LIMITS = Limits(head_timeout_s=1.0, body_idle_timeout_s=1.0, uploads_per_member=3, upload_max_age_s=0.5,
                concurrent_puts_per_member=2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    tokens = make_team_project(root / "project")
    with BackgroundServer(root / "project", limits=LIMITS) as server:
        yield server, tokens, root


def _send(port: int, head: bytes, body: bytes = b"", wait: float = 5.0) -> tuple[bytes, float]:
    """Send a request head (and part of a body) and read until the server closes; (answer, seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(head + body)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server refused before all was sent (a 2 MiB head): read what it answered, if anything
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, time.monotonic() - start


def test_no_body_is_read_before_the_token_is_checked(served):
    server, tokens, _ = served
    head = (b"POST /api/v1/cases/c1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000000\r\n\r\n")
    answer, took = _send(server.port, head)  # 60 MB announced, none sent: answered and closed at once
    assert answer.startswith(b"HTTP/1.1 401") and b"token" in answer and took < 2
    bad = head.replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer nope\r\n\r\n")
    answer, took = _send(server.port, bad)
    assert answer.startswith(b"HTTP/1.1 401") and took < 2
    good = head.replace(b"\r\n\r\n", f"\r\nAuthorization: Bearer {tokens['alice']}\r\n\r\n".encode())
    answer, took = _send(server.port, good)  # a member, but far over the JSON limit: 413 before reading
    assert answer.startswith(b"HTTP/1.1 413") and took < 2


def test_a_huge_or_slow_request_head_is_cut_off(served):
    server, tokens, _ = served
    huge = b"GET /api/v1/cases HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * (2 << 20) + b"\r\n\r\n"
    answer, _ = _send(server.port, huge)
    assert answer.startswith(b"HTTP/1.1 431") or answer == b""  # refused, connection closed
    answer, took = _send(server.port, b"GET /api/v1/cases HTTP/1.1\r\nHost: x\r\n")  # the head never ends
    assert answer == b"" and 0.8 < took < 4
    answer, took = _send(server.port, b"")  # a connection that sends nothing at all
    assert answer == b"" and took < 4


def test_a_stalled_body_is_dropped(served):
    server, tokens, _ = served
    head = (f"POST /api/v1/cases/c1/states HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {tokens['alice']}\r\nContent-Length: 100\r\n\r\n").encode()
    answer, took = _send(server.port, head, b'{"state": ')  # 10 of 100 bytes, then silence
    assert answer.startswith(b"HTTP/1.1 408") and took < 4


def test_upload_quotas_and_sessions_that_expire(served, tmp_path):
    server, tokens, _ = served
    api = Api(server.url, tokens)
    ids = [api("POST", "/cases/c1/uploads", "bob", json={"size": 100}).json()["upload_id"] for _ in range(3)]
    r = api("POST", "/cases/c1/uploads", "bob", json={"size": 100})
    assert r.status_code == 429 and r.json()["error"] == "TooManyRequests"
    assert api("POST", "/cases/c1/uploads", "alice", json={"size": 100}).status_code == 200  # per member
    r = api("POST", "/cases/c1/uploads", "bob", json={"size": 1 << 50})
    assert r.status_code == 400 and "size" in r.json()["detail"]
    app = server.app
    app.state.context.index.purge_uploads(LIMITS.upload_max_age_s)  # what the server does every few minutes
    time.sleep(0.6)
    assert app.state.context.index.purge_uploads(LIMITS.upload_max_age_s) >= 3
    assert api("GET", f"/uploads/{ids[0]}", "bob").status_code == 404
    assert api("POST", "/cases/c1/uploads", "bob", json={"size": 100}).status_code == 200


@pytest.mark.parametrize("kind", ["folder", "sqlite", "postgres"])
def test_listings_come_in_pages(kind, tmp_path, request):
    with backend_for(kind, tmp_path, request) as team:
        alice = team.open("alice")
        pushed = [alice.push_version("c2", write_seg(tmp_path / f"{i}.seg.nrrd", i))["id"] for i in range(5)]
        assert [v["id"] for v in alice.list_versions("c2")] == pushed  # the client follows the pages
        assert [e["id"] for e in alice.audit()][-5:] == [e["id"] for e in team.open("rev").audit("c2")][-5:]
        if team.server is not None:
            api = Api(team.server.url, team.tokens)
            r = api("GET", "/cases/c2/versions", params={"limit": 2})
            assert [v["id"] for v in r.json()] == pushed[:2] and r.headers["X-Next-After"] == pushed[1]
            r = api("GET", "/cases/c2/versions", params={"limit": 2, "after": pushed[3]})
            assert [v["id"] for v in r.json()] == pushed[4:] and "X-Next-After" not in r.headers
            r = api("GET", "/audit", "alice", params={"limit": 2})
            assert len(r.json()) == 2 and {e["actor"] for e in r.json()} == {"alice"}
            rest = api("GET", "/audit", "alice", params={"after": r.headers["X-Next-After"]}).json()
            assert len(rest) == 3 and rest[0]["id"] != r.json()[1]["id"]
            assert api("GET", "/cases/c2/versions", params={"limit": 100000}).status_code == 400
