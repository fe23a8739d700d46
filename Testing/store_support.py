"""Shared pieces of the store tests: a small team project, real servers, a throwaway PostgreSQL.

* ``make_team_project(dir)``: a project with two 32x32x16 cases, annotators alice and bob,
  reviewer rev, admin boss; returns the tokens.
* ``ThreadServer``: uvicorn in a thread on a free port (fast; for the contract suite).
* ``ProcessServer``: `dicomteam serve` in a subprocess (for SIGKILL and offline tests).
* ``postgres_cluster`` / ``postgres_url`` fixtures: initdb + pg_ctl in a temporary folder
  (as the ``postgres`` system user when running as root: PostgreSQL refuses root); skipped
  without PostgreSQL binaries, but FAILING when $CI is set.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

try:
    import pytest
except ImportError:  # inside the Slicer harness (Slicer's Python has no pytest): the fixtures are unused there
    class _WithoutPytest:
        @staticmethod
        def fixture(*args, **kwargs):
            return args[0] if args and callable(args[0]) else (lambda function: function)

        @staticmethod
        def fail(reason):
            raise RuntimeError(reason)

        skip = fail

    pytest = _WithoutPytest()

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.store import admin

ROOT = Path(__file__).resolve().parents[1]
GEOMETRY = Geometry(size=(32, 32, 16), spacing=(0.8, 0.8, 2.5), origin=(-12.0, -10.0, 30.0))
LABELS = [{"name": "liver", "value": 1, "color": [0.86, 0.55, 0.44], "terminology": "SCT^10200004^Liver"},
          {"name": "spleen", "value": 2, "color": "#9e5c91"}]
USERS = {"alice": "annotator", "bob": "annotator", "rev": "reviewer", "boss": "admin"}


def synthetic_volume(geometry: Geometry = GEOMETRY, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume(rng.integers(-200, 300, geometry.shape).astype(np.int16), geometry)


def write_seg(path, seed: int = 0, geometry: Geometry = GEOMETRY) -> Path:
    """A small .seg.nrrd on ``geometry`` whose content depends on ``seed`` (so bytes differ)."""
    rng = np.random.default_rng(seed)
    k, j, i = geometry.shape
    liver = np.zeros(geometry.shape, bool)
    k0, j0, i0 = rng.integers(0, k // 2), rng.integers(0, j // 2), rng.integers(0, i // 2)
    liver[k0:k0 + k // 3, j0:j0 + j // 3 + 1, i0:i0 + i // 3 + 2] = True
    liver.flat[int(rng.integers(0, liver.size))] = True
    spleen = np.zeros(geometry.shape, bool)
    spleen[-3:, -5:, -6:] = True
    seg = Segmentation.from_masks({"liver": liver, "spleen": spleen}, geometry)
    return write_seg_nrrd(seg, path)


def make_team_project(project_dir, *, blind: bool = True) -> dict:
    """Project 'Team' with cases c1 (alice, bob) and c2 (alice); returns {user: token}."""
    project_dir = Path(project_dir)
    labels = project_dir.parent / f"{project_dir.name}-labels.json"
    labels.write_text(json.dumps(LABELS), encoding="utf-8")
    admin.init_project(project_dir, "Team", labels, blind=blind)
    admin.add_case(project_dir, "c1", synthetic_volume(seed=1), "P001")
    admin.add_case(project_dir, "c2", synthetic_volume(seed=2), "P002", attributes={"site": "B", "scanner": "X 1"})
    tokens = {u: admin.add_member(project_dir, u, r) for u, r in USERS.items()}
    admin.assign(project_dir, "c1", "alice")
    admin.assign(project_dir, "c1", "bob")
    admin.assign(project_dir, "c2", "alice")
    return tokens


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all sockets held open together, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def ThreadServer(project_dir, db_url: str | None = None):
    """The real FastAPI app under a real uvicorn, in a thread, on 127.0.0.1 (``url``, ``port``, ``stop()``)."""
    from DicomTeamAnnotateLib.store.server import BackgroundServer

    return BackgroundServer(project_dir, db_url)


class ProcessServer:
    """`dicomteam serve` in a subprocess (can be SIGKILLed and restarted on the same port)."""

    def __init__(self, project_dir, port: int | None = None, db_url: str | None = None):
        self.project_dir, self.db_url = Path(project_dir), db_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = self.project_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60) -> ProcessServer:
        import requests

        # inside the Slicer harness the scenario's own interpreter has no server packages
        python = os.environ.get("DICOMTEAM_SERVER_PYTHON", sys.executable)
        cmd = [python, "-m", "DicomTeamAnnotateLib.cli", "serve", str(self.project_dir),
               "--host", "127.0.0.1", "--port", str(self.port)]
        if self.db_url:
            cmd += ["--db", self.db_url]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(encoding='utf-8')[-2000:]}")
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("server did not answer in time")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


# ----- PostgreSQL ----------------------------------------------------------------------------------
def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason} (apt-get install -y postgresql)")


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL on 127.0.0.1; yields the URL of its 'postgres' database."""
    bindir = _pg_bindir()
    if bindir is None:
        _missing("no initdb under /usr/lib/postgresql/*/bin or on PATH")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="dicomteam-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            _missing("running as root and there is no 'postgres' system user to run the server as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(base, ignore_errors=True)
            _missing("running as root without `runuser` (util-linux)")
        as_user = [runuser, "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                              "--no-sync"], check=True, capture_output=True, env=env)
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
    subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w",
                              "start"], check=True, capture_output=True, env=env)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, env=env)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster):
    """A fresh, empty database in the session's cluster."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_cluster, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_cluster.rsplit("/", 1)[0] + "/" + name


# ----- one project behind one of the three backends ------------------------------------------------
class Backend:
    """A team project served by a folder store, or by a server on SQLite or PostgreSQL."""

    def __init__(self, kind: str, root: Path, db_url: str | None = None, *, blind: bool = True):
        self.kind, self.root = kind, Path(root)
        self.project_dir = self.root / "project"
        self.tokens = make_team_project(self.project_dir, blind=blind)
        self.server = ThreadServer(self.project_dir, db_url) if kind != "folder" else None
        self.cache = self.root / "cache"

    @property
    def location(self) -> str:
        return self.server.url if self.server else str(self.project_dir)

    def open(self, user: str, token: str | None = None):
        from DicomTeamAnnotateLib.store import open_store

        if self.server is None:
            return open_store(self.project_dir, user)
        return open_store(self.server.url, user, token or self.tokens.get(user, "no-such-token"),
                          cache=self.cache, connect_window_s=0.5, retry_window_s=5)

    def close(self) -> None:
        if self.server:
            self.server.stop()


@contextlib.contextmanager
def backend_for(kind: str, root: Path, request, *, blind: bool = True):
    db_url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    b = Backend(kind, root, db_url, blind=blind)
    try:
        yield b
    finally:
        b.close()


# ----- raw HTTP as an attacker would send it ---------------------------------------------------------
class Api:
    """Raw requests to a served team project as one member: ``api("GET", "/cases", user="bob")``."""

    def __init__(self, url: str, tokens: dict):
        self.url, self.tokens = url.rstrip("/") + "/api/v1", tokens

    def headers(self, user: str | None = "alice", **extra) -> dict:
        return ({"Authorization": f"Bearer {self.tokens[user]}"} if user else {}) | extra

    def __call__(self, method: str, path: str, user: str | None = "alice", headers: dict | None = None, **kw):
        import requests

        kw.setdefault("timeout", 30)
        return requests.request(method, self.url + path, headers=self.headers(user, **(headers or {})), **kw)

    def push(self, case: str, data: bytes, user: str = "alice", **fields):
        """Create an upload, send ``data`` in one chunk, finalize; returns the finalize response."""
        import hashlib

        r = self("POST", f"/cases/{case}/uploads", user, json={"size": len(data), **fields})
        assert r.status_code == 200, r.text
        uid = r.json()["upload_id"]
        r = self("PUT", f"/uploads/{uid}", user, params={"offset": 0}, data=data,
                 headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        return self("POST", f"/uploads/{uid}/finalize", user, json={"sha256": hashlib.sha256(data).hexdigest()})


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int = 16):
    """``path`` on a tmpfs of ``size_mb`` MiB (a disk that can really fill up); skipped where mount is refused."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True, encoding="utf-8", errors="replace")
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs to fill up ({done.stderr.strip() or 'mount failed'})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path, leave: int = 0) -> Path:
    """Write a file into ``folder`` until its file system is full, then give back ``leave`` bytes; returns
    the file (delete it to free the space)."""
    filler = folder / "filler.bin"
    block = b"\0" * (1 << 16)
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
    with open(filler, "ab", buffering=0) as fh:  # the last few bytes a 64 KiB block did not fit
        try:
            while True:
                fh.write(b"\0")
        except OSError:
            pass
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    return filler


async def _poll(port: int, path: str, headers: dict, clients: int, seconds: float) -> tuple[list, list]:
    import asyncio

    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    latencies, statuses = [], []
    stop = time.perf_counter() + seconds

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                statuses.append(int(head.split(b" ", 2)[1]))
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, statuses


def poll(port: int, path: str, headers: dict, clients: int, seconds: float) -> tuple[float, list]:
    """``clients`` keep-alive connections asking ``path`` back to back for ``seconds``: (p95 seconds, statuses).

    Hand-written HTTP/1.1 over asyncio: cheap enough that the clients do not measure themselves.
    """
    import asyncio

    latencies, statuses = asyncio.run(_poll(port, path, headers, clients, seconds))
    latencies.sort()
    return latencies[int(0.95 * (len(latencies) - 1))], statuses
