"""Store speed: push and pull of a 200 MB case over loopback vs a plain `cp`; `status` p95 under 50 clients.

One run measures, on the same machine, disk and files, interleaved so that both see the same load:
* push: a ~200 MB .seg.nrrd (raw encoding, 2 layers on the case grid) through the server
  (resumable upload in 64 MiB chunks, each with its CRC32C checked on arrival, the server's
  sha256 of the blob, header geometry check, one fsync of the blob) vs
  `cp` of the same file to a new file on the same disk, then fsync of the copy;
* pull: the ~200 MB case image (.nrrd) from the server into a fresh cache and work folder
  (streamed, sha256-verified, fsynced, linked) vs `cp` of the same blob + fsync;
* status: p95 latency of GET /worklist with 50 concurrent clients.
Both of our paths fsync the file they write once (the server's blob; the client's cached copy),
so the baseline is `cp` (a subprocess, coreutils) followed by fsync of the copy; `cp` alone is
printed too.  The server runs in its own process (`dicomteam serve`), on 127.0.0.1.

Usage: python benchmarks/bench_store.py [--mb 200] [--repeats 5] [--workdir DIR] [--no-status]
The last line prints both figures and the ratios (best of the repeats).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (0 where unavailable)."""
    try:
        fields = open(f"/proc/{pid}/stat", encoding="utf-8").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _best(fn, repeats: int, after=None, server_pid: int | None = None) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of this process + the server in that run)."""
    runs = []
    for _ in range(repeats):
        c0, s0 = time.process_time(), _process_cpu(server_pid) if server_pid else 0.0
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
        cpu = time.process_time() - c0 + ((_process_cpu(server_pid) - s0) if server_pid else 0.0)
        runs.append((wall, cpu))
        if after:
            after()
    return min(runs)


def make_project(root: Path, mb: int):
    """A project whose case image is ~``mb`` MB uncompressed, plus a ~``mb`` MB raw .seg.nrrd."""
    import nrrd

    from DicomTeamAnnotateLib.core.geometry import Geometry
    from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
    from DicomTeamAnnotateLib.core.volume import Volume
    from DicomTeamAnnotateLib.io.seg_nrrd import seg_nrrd_header
    from DicomTeamAnnotateLib.store import admin

    n_slices = max(1, int(mb * 1e6 / (512 * 512 * 2)))
    g = Geometry(size=(512, 512, n_slices), spacing=(0.7, 0.7, 1.0), origin=(-180.0, -180.0, 0.0))
    rng = np.random.default_rng(0)
    volume = Volume(rng.integers(-1024, 2000, g.shape, dtype=np.int16), g)
    project = root / "project"
    admin.init_project(project, "bench", [{"name": "a", "value": 1}, {"name": "b", "value": 2}])
    case = admin.add_case(project, "big", volume, "P0", compress=False)
    del volume
    tokens = {"ann": admin.add_member(project, "ann", "annotator")}
    admin.assign(project, "big", "ann")
    layers = np.zeros((2,) + g.shape, np.uint8)
    layers[0, 10:n_slices - 10, 100:300, 100:300] = 1
    layers[1, 20:n_slices - 20, 200:400, 150:350] = 1
    seg = Segmentation(layers, g, [Segment("a", 1, layer=0), Segment("b", 1, layer=1)])
    header = seg_nrrd_header(seg)
    header["encoding"] = "raw"  # incompressible-size file: as many bytes on the wire as on disk
    seg_path = root / "big.seg.nrrd"
    nrrd.write(str(seg_path), np.ascontiguousarray(np.moveaxis(layers, 0, -1)), header, index_order="C")
    image_path = project / "blobs" / "sha256" / case["image_sha256"][:2] / case["image_sha256"]
    return project, tokens, seg_path, image_path


class Server:
    def __init__(self, project: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "DicomTeamAnnotateLib.cli", "serve", str(project),
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import requests

        for _ in range(600):
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def status_p95(url: str, token: str, clients: int = 50, requests_each: int = 20) -> tuple[float, float]:
    """(p50, p95) seconds of GET /worklist with ``clients`` threads issuing requests back to back."""
    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client():
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        mine = []
        start.wait()
        for _ in range(requests_each):
            t = time.perf_counter()
            r = session.get(url + "/api/v1/worklist", timeout=60)
            r.raise_for_status()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--no-status", action="store_true", help="skip the 50-client status measurement")
    args = parser.parse_args(argv)
    from DicomTeamAnnotateLib.store import open_store

    root = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.workdir))
    try:
        print(f"building a {args.mb} MB case in {root} ...", flush=True)
        project, tokens, seg_path, image_path = make_project(root, args.mb)
        seg_mb, image_mb = seg_path.stat().st_size / 1e6, image_path.stat().st_size / 1e6
        server = Server(project)
        try:
            store = open_store(server.url, "ann", tokens["ann"], cache=False)
            n = [0]

            def push():
                store.push_version("big", seg_path, message=f"bench {n[0]}")

            def change_seg():  # new content for the next push (no dedup shortcut); not timed
                n[0] += 1
                with open(seg_path, "r+b") as fh:
                    fh.seek(-n[0], os.SEEK_END)
                    fh.write(b"\x01")

            def pull():
                dest = root / f"pull-{n[0]}"
                n[0] += 1
                open_store(server.url, "ann", tokens["ann"], cache=root / f"cache-{n[0]}").fetch_image("big", dest)

            def cp(src, fsync):
                dst = root / "copy.bin"
                dst.unlink(missing_ok=True)
                t = time.perf_counter()
                subprocess.run(["cp", str(src), str(dst)], check=True)
                if fsync:
                    fd = os.open(dst, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                return time.perf_counter() - t

            pid = server.proc.pid
            runs = {k: [] for k in ("cp_seg", "cp_seg_nosync", "push", "cp_image", "cp_image_nosync", "pull")}
            for _ in range(args.repeats):  # interleaved: each figure and its baseline see the same load
                runs["cp_seg_nosync"].append((cp(seg_path, False), 0.0))
                runs["cp_seg"].append((cp(seg_path, True), 0.0))
                runs["push"].append(_best(push, 1, after=change_seg, server_pid=pid))
                runs["cp_image_nosync"].append((cp(image_path, False), 0.0))
                runs["cp_image"].append((cp(image_path, True), 0.0))
                runs["pull"].append(_best(pull, 1, server_pid=pid))
                for p in root.glob("pull-*"):
                    shutil.rmtree(p, ignore_errors=True)
                for p in root.glob("cache-*"):
                    shutil.rmtree(p, ignore_errors=True)
            (root / "copy.bin").unlink(missing_ok=True)
            best = {k: min(v) for k, v in runs.items()}
            t_push, c_push = best["push"]
            t_pull, c_pull = best["pull"]
            t_copy_seg, t_copy_image = best["cp_seg"][0], best["cp_image"][0]
            p50, p95 = (float("nan"),) * 2 if args.no_status else status_p95(server.url, tokens["ann"])
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"push {seg_mb:.0f} MB: {t_push:.3f} s ({seg_mb / t_push:.0f} MB/s, client+server CPU {c_push:.2f} s); "
          f"cp+fsync {t_copy_seg:.3f} s (cp alone {best['cp_seg_nosync'][0]:.3f} s)")
    print(f"pull {image_mb:.0f} MB: {t_pull:.3f} s ({image_mb / t_pull:.0f} MB/s, client+server CPU {c_pull:.2f} s); "
          f"cp+fsync {t_copy_image:.3f} s (cp alone {best['cp_image_nosync'][0]:.3f} s)")
    status = "status not measured" if args.no_status else f"status p95 {p95 * 1000:.0f} ms with 50 clients"
    if not args.no_status:
        print(f"status with 50 concurrent clients: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    print(f"store: push {t_push:.2f}s vs cp+fsync {t_copy_seg:.2f}s = {t_push / t_copy_seg:.1f}x; "
          f"pull {t_pull:.2f}s vs cp+fsync {t_copy_image:.2f}s = {t_pull / t_copy_image:.1f}x (goal <= 2x); "
          f"{status} (best of {args.repeats}; load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
