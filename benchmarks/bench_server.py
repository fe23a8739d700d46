"""The server under a team's load: `status` (worklist) and `versions` with 50 concurrent clients.

One run measures, against the same kind of server process on the same machine:
* ours: `dicomteam serve` (one process, as a team runs it) on a project of N cases, each with
  its annotators' versions and states, polled by 50 clients at once: GET /worklist as an
  annotator (what `dicomteam status` and the worklist panel poll) and GET /cases/{id}/versions
  as a reviewer;
* the floor: a bare FastAPI app under the same uvicorn (httptools, uvloop when installed), one
  endpoint returning the same JSON document (as a FastAPI handler returns a dict), polled the
  same way.  No store, no database, no token: what the framework alone costs for that answer.
  Also printed: the same app answering the document's bytes as they are (no encoding at all),
  the strictest floor; our cached answers are bytes too.
Each figure is p95 latency and requests/s over a fixed time, best of --repeats runs, the floor
and ours interleaved so that both see the same load (the machine may be shared).  Meanwhile a
writer changes the project --writes-per-s times a second (an annotator's state moves back and
forth: each write invalidates every cached answer, as a push would), so the figure includes the
answers computed afresh after each change, not only the cached ones.

The clients are one asyncio process with hand-written keep-alive HTTP/1.1 connections: the
``requests`` library spends more CPU per request than the server does, so on 2 cores it
would measure itself.

Usage: python benchmarks/bench_server.py [--cases 100] [--clients 50] [--seconds 4] [--repeats 3]
                                        [--writes-per-s 2]
The last line prints our p95 and requests/s, the floor's, and the ratios.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing"))

FLOOR_APP = '''
import json, sys
from fastapi import FastAPI, Response
raw = open(sys.argv[1], "rb").read()
doc = json.loads(raw)
app = FastAPI()

@app.get("/floor")
async def floor():
    return doc

@app.get("/floor-bytes")
async def floor_bytes():
    return Response(raw, media_type="application/json")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def make_project(root: Path, n_cases: int) -> tuple[Path, dict]:
    """N cases; 8 annotators, 3 on each case, 2 versions each on 2 cases out of 3; states; a reviewer."""
    from store_support import make_team_project, write_seg

    from DicomTeamAnnotateLib.store import admin, open_store

    project = root / "project"
    tokens = make_team_project(project)
    annotators = [f"ann{i}" for i in range(8)]
    for user in annotators:
        tokens[user] = admin.add_member(project, user, "annotator")
    seg = write_seg(root / "s.seg.nrrd", 1)
    from store_support import synthetic_volume

    volume = synthetic_volume(seed=5)
    stores = {u: open_store(project, u) for u in annotators}
    for n in range(n_cases):
        case = f"case{n:04d}"
        admin.add_case(project, case, volume, f"P{n:04d}")
        for k in range(3):
            user = annotators[(n + k) % len(annotators)]
            admin.assign(project, case, user)
            if (n + k) % 3:
                v = stores[user].push_version(case, seg, message="first")
                stores[user].push_version(case, seg, parent=v["id"], message="second")
                if (n + k) % 3 == 2:
                    stores[user].set_state(case, "submitted")
    return project, tokens


async def _load(port: int, path: str, headers: list, clients: int, seconds: float) -> tuple[list, int]:
    """``clients`` keep-alive connections requesting ``path`` back to back, client k with headers[k % len];
    (latencies, errors)."""
    requests_ = [(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode() for h in headers]
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(request: bytes):
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(requests_[k % len(requests_)]) for k in range(clients)))
    return latencies, errors


class Writer:
    """While in a ``with`` block: ``rate`` project changes a second (an annotator's state, back and forth)."""

    def __init__(self, url: str, token: str, rate: float):
        self.url, self.token, self.rate = url, token, rate
        self.done, self.seconds = 0, 0.0
        self._stop = None

    def _run(self, stop) -> None:
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        states, n = ("in_progress", "todo"), 0
        while not stop.wait(1.0 / self.rate):
            r = session.post(f"{self.url}/cases/case0001/states", json={"state": states[n % 2]}, timeout=30)
            r.raise_for_status()
            n += 1
            self.done += 1

    def __enter__(self):
        import threading

        if self.rate > 0:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), daemon=True)
            self._started = time.perf_counter()
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            self.seconds += time.perf_counter() - self._started
            self._stop = None


def measure(port: int, path: str, headers: list, clients: int, seconds: float) -> tuple[float, float]:
    """(p95 seconds, requests per second) after a short warm-up."""
    asyncio.run(_load(port, path, headers, clients, 0.5))
    latencies, errors = asyncio.run(_load(port, path, headers, clients, seconds))
    if errors:
        raise RuntimeError(f"{errors} answers to {path} were not 200")
    latencies.sort()
    return latencies[int(0.95 * (len(latencies) - 1))], len(latencies) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--writes-per-s", type=float, default=2.0,
                        help="project changes per second during the measurement (0: none, every answer cached)")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    import requests

    root = Path(tempfile.mkdtemp(prefix="bench-server-", dir=args.workdir))
    print(f"building a project of {args.cases} cases in {root} ...", flush=True)
    project, tokens = make_project(root, args.cases)
    port, floor_port = free_port(), free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ours = subprocess.Popen([sys.executable, "-m", "DicomTeamAnnotateLib.cli", "serve", str(project), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    floor = None
    try:
        wait_up(port, ours)
        url = f"http://127.0.0.1:{port}/api/v1"
        # each client is one of the 8 annotators (status) or the reviewer or admin (versions)
        annotators = [{"Authorization": f"Bearer {tokens[f'ann{i}']}"} for i in range(8)]
        staff = [{"Authorization": f"Bearer {tokens[u]}"} for u in ("rev", "boss")]
        targets = {"status": ("/api/v1/worklist", annotators), "versions": ("/api/v1/cases/case0001/versions", staff)}
        docs = {name: requests.get(f"http://127.0.0.1:{port}{path}", headers=h[0], timeout=30).json()
                for name, (path, h) in targets.items()}
        print(f"status: {len(docs['status'])} rows, {len(json.dumps(docs['status']))} bytes; versions: "
              f"{len(docs['versions'])} rows, {len(json.dumps(docs['versions']))} bytes")
        results: dict = {}
        writer = Writer(url, tokens["ann1"], args.writes_per_s)  # ann1 is on case0001
        for name, (path, headers) in targets.items():
            doc_file = root / f"{name}.json"
            doc_file.write_text(json.dumps(docs[name]), encoding="utf-8")
            (root / "floor_app.py").write_text(FLOOR_APP, encoding="utf-8")
            floor = subprocess.Popen([sys.executable, "-c", FLOOR_APP + f"\nimport uvicorn\nuvicorn.run(app, port="
                                      f"{floor_port}, log_level='warning', http='httptools')\n", str(doc_file)],
                                     env=env)
            wait_up(floor_port, floor)
            for _ in range(args.repeats):  # interleaved
                results.setdefault(("floor", name), []).append(
                    measure(floor_port, "/floor", [{}], args.clients, args.seconds))
                results.setdefault(("bytes", name), []).append(
                    measure(floor_port, "/floor-bytes", [{}], args.clients, args.seconds))
                with writer:
                    results.setdefault(("ours", name), []).append(
                        measure(port, path, headers, args.clients, args.seconds))
            floor.terminate()
            floor.wait(10)
            floor = None
        best = {k: (min(p for p, _ in v), max(r for _, r in v)) for k, v in results.items()}
        for name in targets:
            (p_o, r_o), (p_f, r_f), (p_b, r_b) = best[("ours", name)], best[("floor", name)], best[("bytes", name)]
            print(f"{name}: ours p95 {p_o * 1000:.1f} ms, {r_o:.0f} req/s; floor p95 {p_f * 1000:.1f} ms, "
                  f"{r_f:.0f} req/s; floor answering bytes p95 {p_b * 1000:.1f} ms, {r_b:.0f} req/s "
                  f"({args.clients} clients, best of {args.repeats})")
        (p_s, r_s), (p_fs, r_fs) = best[("ours", "status")], best[("floor", "status")]
        (p_v, r_v), (p_fv, r_fv) = best[("ours", "versions")], best[("floor", "versions")]
        print(f"status p95 {p_s * 1000:.0f} ms, {r_s:.0f} req/s vs floor {p_fs * 1000:.0f} ms, {r_fs:.0f} req/s "
              f"(throughput {r_s / r_fs:.2f}x); versions p95 {p_v * 1000:.0f} ms, {r_v:.0f} req/s vs floor "
              f"{p_fv * 1000:.0f} ms, {r_fv:.0f} req/s ({r_v / r_fv:.2f}x); {args.clients} clients, {args.cases} cases, "
              f"{writer.done / max(writer.seconds, 1e-9):.1f} writes/s, "
              f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    finally:
        for proc in (ours, floor):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
