"""The floor under `bench_store.py`'s push figure: what a 200 MB upload costs before our code runs.

On one machine, in one run, interleaved (best of ``--repeats``), for the same ~200 MB file:
* ``cp`` + fsync of the copy (the baseline of bench_store);
* uvicorn alone: the file sent in 64 MiB PUTs with ``requests`` (our client's transport, without
  hashing) to uvicorn running a bare ASGI app that reads the body and drops it: no FastAPI, no
  file, no hash.  This is the cost of getting the bytes through the HTTP server we are asked to
  use (FastAPI + uvicorn), with the client on the same cores;
* sha256 of the file with hashlib (OpenSSL), which the server must compute to address the blob.
Our push does both (the sha256 on the server; the client only computes each chunk's CRC32C),
plus writing and fsyncing the blob, so on a 2-core machine it cannot be faster than roughly the
larger of the two, and is usually near their sum.

Usage: python benchmarks/bench_upload_floor.py [--mb 200] [--repeats 5]
The last line prints the floor, cp+fsync and the ratio.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 64 << 20
PIECE = 1 << 20

_DISCARD_APP = """
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    n, more = 0, True
    while more:
        message = await receive()
        n += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(n).encode()})

uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Slice:
    """Bytes start..end of a file, read in 1 MiB pieces (as the store client sends a chunk)."""

    def __init__(self, path, start, end):
        self.path, self.start, self.end = path, start, end

    def __len__(self):
        return self.end - self.start

    def __iter__(self):
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            left = self.end - self.start
            while left:
                block = fh.read(min(PIECE, left))
                left -= len(block)
                yield block


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import requests

    root = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    src = root / "big.bin"
    size = args.mb * 1_000_000
    with open(src, "wb") as fh:  # incompressible, like the raw .seg.nrrd of bench_store
        for _ in range(0, size, CHUNK):
            fh.write(os.urandom(min(CHUNK, size - fh.tell())))
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _DISCARD_APP.replace("PORT", str(port))])
    session = requests.Session()
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            session.put(url, data=b"x", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)

    def cp_fsync():
        dst = root / "copy.bin"
        dst.unlink(missing_ok=True)
        t = time.perf_counter()
        subprocess.run(["cp", str(src), str(dst)], check=True)
        fd = os.open(dst, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return time.perf_counter() - t

    def upload():
        t = time.perf_counter()
        for start in range(0, size, CHUNK):
            end = min(start + CHUNK, size)
            r = session.put(url, data=_Slice(src, start, end), timeout=120,
                            headers={"Content-Type": "application/octet-stream"})
            r.raise_for_status()
            assert int(r.text) == end - start
        return time.perf_counter() - t

    def sha256():
        t = time.perf_counter()
        h = hashlib.sha256()
        with open(src, "rb") as fh:
            while block := fh.read(PIECE):
                h.update(block)
        return time.perf_counter() - t

    try:
        runs = {"cp": [], "upload": [], "sha": []}
        for _ in range(args.repeats):
            runs["cp"].append(cp_fsync())
            runs["upload"].append(upload())
            runs["sha"].append(sha256())
    finally:
        server.terminate()
        server.wait(timeout=30)
        for p in root.iterdir():
            p.unlink()
        root.rmdir()
    cp, up, sha = (min(runs[k]) for k in ("cp", "upload", "sha"))
    mb = size / 1e6
    print(f"cp+fsync {mb:.0f} MB: {cp:.3f} s; uvicorn receiving and dropping it (requests client, 64 MiB PUTs): "
          f"{up:.3f} s ({mb / up:.0f} MB/s); sha256: {sha:.3f} s ({mb / sha:.0f} MB/s)")
    print(f"upload floor: uvicorn {up:.2f}s = {up / cp:.1f}x cp+fsync; uvicorn + sha256 {up + sha:.2f}s = "
          f"{(up + sha) / cp:.1f}x (2x goal = {2 * cp:.2f}s; best of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
