"""Issue 15, "Also": the server keeps answering its team while it is being abused (bounded in time).

`dicomteam serve` in its own process on 127.0.0.1; 20 clients poll the worklist while, at the
same time, 150 connections send request heads that never end, 20 send bodies that stall,
anonymous clients announce 100 MB bodies, and two members push 24 MB chunks as fast as loopback
goes.  The worklist's p95 must stay within 3x of its own p95 without the abuse (and under a
second), and every poll must be answered 200.
"""
from __future__ import annotations

import socket
import threading
import time

from store_support import ProcessServer, make_team_project, poll

POLLERS, SECONDS = 20, 4.0


def _abuse(server, tokens, stop: threading.Event) -> dict:
    """Start the abusers (threads and idle sockets); returns what they saw."""
    import requests

    seen = {"anonymous": [], "chunks": [], "sockets": []}
    for _ in range(150):  # heads that never end
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /api/v1/worklist HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        seen["sockets"].append(s)
    for _ in range(20):  # bodies that stall after their head (authenticated: they get past the guard)
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall((f"POST /api/v1/cases/c1/states HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Authorization: Bearer {tokens['bob']}\r\nContent-Length: 1000\r\n\r\n{{").encode())
        seen["sockets"].append(s)

    def anonymous():
        while not stop.is_set():
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"POST /api/v1/cases/c1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000000\r\n\r\n")
            seen["anonymous"].append(s.recv(12))
            s.close()
            time.sleep(0.05)

    def pusher(user):
        api = f"{server.url}/api/v1"
        auth = {"Authorization": f"Bearer {tokens[user]}"}
        block = b"\0" * (24 << 20)
        while not stop.is_set():
            r = requests.post(api + "/cases/c1/uploads", json={"size": len(block)}, headers=auth, timeout=30)
            if r.status_code != 200:  # 429: this member's open sessions are used up
                seen["chunks"].append(r.status_code)
                time.sleep(0.1)
                continue
            uid = r.json()["upload_id"]
            r = requests.put(api + f"/uploads/{uid}", params={"offset": 0}, data=block, timeout=60,
                             headers={**auth, "Content-Type": "application/octet-stream"})
            seen["chunks"].append(r.status_code)

    threads = [threading.Thread(target=anonymous, daemon=True)]
    threads += [threading.Thread(target=pusher, args=(u,), daemon=True) for u in ("alice", "rev")]
    for t in threads:
        t.start()
    seen["threads"] = threads
    return seen


def test_the_worklist_answers_in_time_while_the_server_is_abused(tmp_path):
    tokens = make_team_project(tmp_path / "project")
    server = ProcessServer(tmp_path / "project").start()
    try:
        headers = {"Authorization": f"Bearer {tokens['alice']}"}
        poll(server.port, "/api/v1/worklist", headers, POLLERS, 0.5)  # warm up
        quiet, statuses = poll(server.port, "/api/v1/worklist", headers, POLLERS, SECONDS)
        assert set(statuses) == {200}
        stop = threading.Event()
        seen = _abuse(server, tokens, stop)
        try:
            time.sleep(0.5)
            abused, statuses = poll(server.port, "/api/v1/worklist", headers, POLLERS, SECONDS)
        finally:
            stop.set()
            for t in seen["threads"]:
                t.join(60)
            for s in seen["sockets"]:
                s.close()
        assert set(statuses) == {200} and len(statuses) > POLLERS * 10
        assert abused < max(3 * quiet, 0.05) and abused < 1.0, (quiet, abused)
        assert seen["anonymous"] and all(a.startswith(b"HTTP/1.1 401") for a in seen["anonymous"])
        assert seen["chunks"] and set(seen["chunks"]) <= {200, 429}
        print(f"worklist p95: {quiet * 1000:.1f} ms quiet, {abused * 1000:.1f} ms abused; {len(seen['chunks'])} "
              f"chunks of 24 MB, {len(seen['anonymous'])} anonymous 100 MB bodies refused")
    finally:
        server.stop()
