"""Ingest a 300-slice CT series: ours (dicom_ingest.ingest) against SimpleITK's ImageSeriesReader.

The series is built from the shared 20-slice abdominal CT: 300 new files, each a copy of one of
the 20 slices (cycled) with a new position (2 mm apart), new SOP/Series/Study UIDs and a new
InstanceNumber, into a temporary folder.  By default the slices keep their JPEG 2000 lossless
pixel data, as the real series has it (decoding is then most of the cost); ``--native`` writes
them uncompressed instead.  Both readers are timed in the same run, best of ``--repeat`` runs,
each including finding and sorting the files (SimpleITK: GetGDCMSeriesFileNames + Execute).
The last line prints both times and the ratio ours / SimpleITK (goal <= 1.0).

    python benchmarks/bench_ingest.py [--slices 300] [--repeat 3] [--native] [--workers N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_CT = ROOT.parent / "shared" / "data" / "ct_abdomen" / "dicom"


def build_series(src: Path, dest: Path, n_slices: int, native: bool) -> None:
    """Write ``n_slices`` slices 2 mm apart, cycling through the source slices' pixel data."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sources = [pydicom.dcmread(p) for p in sorted(src.iterdir())]
    sources.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    if native:
        for ds in sources:
            ds.decompress()  # pixel data re-stored as explicit VR little endian
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    x, y, z0 = (float(v) for v in sources[0].ImagePositionPatient)
    for k in range(n_slices):
        ds = sources[k % len(sources)]
        uid = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SOPInstanceUID = uid
        ds.SOPClassUID = pydicom.uid.CTImageStorage
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.ImagePositionPatient = [x, y, z0 + 2.0 * k]
        ds.SliceLocation = z0 + 2.0 * k
        ds.InstanceNumber = k + 1
        if native:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(dest / f"slice_{(k * 7919) % n_slices:05d}.dcm", enforce_file_format=True)


def best_of(fn, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--native", action="store_true", help="uncompressed slices instead of JPEG 2000")
    parser.add_argument("--workers", type=int, default=None, help="our decoding threads (default: CPUs, max 8)")
    parser.add_argument("--source", type=Path, default=SHARED_CT)
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"bench_ingest: source series not found: {args.source}", file=sys.stderr)
        return 2

    import SimpleITK as sitk

    from DicomTeamAnnotateLib.core.geometry import Geometry
    from DicomTeamAnnotateLib.dicom.ingest import ingest
    from DicomTeamAnnotateLib.dicom.pixels import available_cpus

    syntax = "uncompressed" if args.native else "JPEG 2000 lossless"
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        build_series(args.source, folder, args.slices, args.native)
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"built {args.slices} slices ({syntax}, {size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s")
        print(f"cpus available {available_cpus()} (machine {os.cpu_count()}), load average "
              f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")

        def ours():
            return ingest(folder, workers=args.workers)

        def simpleitk():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
            return reader.Execute()

        # interleave so that a change in machine load hits both alike
        t_ours, t_sitk = float("inf"), float("inf")
        result = image = None
        for _ in range(args.repeat):
            t, result = best_of(ours, 1)
            t_ours = min(t_ours, t)
            t, image = best_of(simpleitk, 1)
            t_sitk = min(t_sitk, t)
        vol = result.series[0].volume
        same = (len(result.series) == 1 and np.array_equal(vol.array, sitk.GetArrayFromImage(image))
                and vol.geometry.same_grid(Geometry.from_sitk(image), tol_mm=1e-4))
        print(f"volumes identical (voxels and geometry within 1e-4 mm): {same}")
        if not same:
            print("bench_ingest: results differ", file=sys.stderr)
            return 1
    print(f"ingest {args.slices} slices ({syntax}): ours {t_ours:.2f} s, SimpleITK {t_sitk:.2f} s, "
          f"ratio {t_ours / t_sitk:.2f} (goal <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
