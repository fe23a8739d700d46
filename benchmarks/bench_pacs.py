"""WADO-RS retrieval of one series from a real Orthanc: ours vs a plain one-request download.

Ours (``dicomweb.retrieve_series``) lists the instances (QIDO-RS), streams the series, checks
each instance (UID, complete pixel data), writes it atomically and fsyncs every file before the
completion marker: what makes the cache resumable and trustworthy.  The peer is what a short
script does with dicomweb-client: one multipart request, each dataset saved with pydicom.

    python benchmarks/bench_pacs.py [--slices 120] [--size 256] [--repeat 3]

Needs Orthanc with the DICOMweb plugin (apt-get install orthanc orthanc-dicomweb).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=120)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    import pydicom
    from pacs_orthanc import find_orthanc, start_orthanc

    from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
    from DicomTeamAnnotateLib.pacs import dicomweb as dw

    if find_orthanc()[0] is None:
        print(f"bench_pacs: {find_orthanc()[1]}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-pacs-") as tmp:
        tmp = Path(tmp)
        server = start_orthanc(tmp / "orthanc")
        try:
            ph = make_phantom(seed=7, shape=(args.slices, args.size, args.size))
            files = write_phantom_dicom(ph, tmp / "series")
            client = server.client()
            dw.stow(client, [pydicom.dcmread(f) for f in files])
            first = pydicom.dcmread(files[0], stop_before_pixels=True)
            study, series = first.StudyInstanceUID, first.SeriesInstanceUID
            megabytes = sum(f.stat().st_size for f in files) / 1e6

            def ours(run):
                return dw.retrieve_series(client, study, series, tmp / f"ours-{run}").files

            def peer(run):
                out = tmp / f"peer-{run}"
                out.mkdir()
                paths = []
                for ds in client.retrieve_series(study, series, media_types=(("application/dicom", "*"),)):
                    path = out / f"{ds.SOPInstanceUID}.dcm"
                    ds.save_as(path, enforce_file_format=True)
                    paths.append(path)
                return paths

            t_ours = t_peer = float("inf")
            for run in range(args.repeat):  # interleaved, so that a change in load hits both alike
                t0 = time.perf_counter()
                got = ours(run)
                t_ours = min(t_ours, time.perf_counter() - t0)
                t0 = time.perf_counter()
                got_peer = peer(run)
                t_peer = min(t_peer, time.perf_counter() - t0)
                if len(got) != len(files) or len(got_peer) != len(files):
                    print("bench_pacs: incomplete retrieval", file=sys.stderr)
                    return 1
                shutil.rmtree(tmp / f"ours-{run}")
                shutil.rmtree(tmp / f"peer-{run}")
        finally:
            server.stop()
    print(f"series: {len(files)} instances of {args.size}x{args.size}, {megabytes:.1f} MB, Orthanc on loopback")
    print(f"WADO-RS retrieve: ours (listed, streamed, checked, atomic, fsynced) {t_ours:.2f} s "
          f"({megabytes / t_ours:.0f} MB/s), dicomweb-client one request {t_peer:.2f} s "
          f"({megabytes / t_peer:.0f} MB/s), ratio {t_ours / t_peer:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
