"""`dicomteam ingest PATH [PATH...] --out DIR`: one .nrrd per series plus ingest_report.json."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from DicomTeamAnnotateLib.cli.common import CommandError
from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.dicom.ingest import ingest, series_report
from DicomTeamAnnotateLib.io.volumes import write_volume


def register(subparsers) -> None:
    """Add the `ingest` subcommand (cheap: the ingestion modules load when it runs)."""
    p = subparsers.add_parser(
        "ingest", help="read DICOM folders, files or ZIPs; write one volume per series and a report",
        description="Read DICOM files (folders, single files, ZIP archives with nested folders), group them "
                    "into series and write DIR/<series id>.nrrd per series plus DIR/ingest_report.json "
                    "(geometry, warnings, rejected files with reasons). Exit code 0 when at least one volume "
                    "was written.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM folder, file or .zip (several allowed)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="pixel-decoding threads (default: number of CPUs, at most 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_ingest)


def output_name(series_id: str) -> str:
    """A file name for a series id (UIDs and derived ids are already safe; anything else is made so)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", series_id).strip(".") or "series"


def ingest_to_folder(paths, out_dir, *, progress: bool = False, workers: int | None = None) -> dict:
    """Ingest ``paths``; write ``out_dir/<series id>.nrrd`` per series and ``ingest_report.json``; return the report.

    Each series entry's ``output_file`` is the written path (``out_dir`` joined with the file name).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    result = ingest(paths, progress=progress, workers=workers)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    used: set[str] = set()
    for s in result.series:
        name = output_name(s.series_id)
        while name in used:  # two ids that differ only in unsafe characters
            name += "_"
        used.add(name)
        path = out / f"{name}.nrrd"
        write_volume(s.volume, path)
        entries.append(series_report(s, str(path)))
    report = {
        "inputs": [str(p) for p in paths],
        "series": entries,
        "rejected": [{"path": str(path), "reason": reason} for path, reason in result.rejected],
        "notes": list(result.notes),
    }
    write_json_atomic(out / "ingest_report.json", report)
    return report


def run_ingest(args) -> int:
    """Ingest, write the volumes and the report, print a summary; 0 when a volume was written."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: exists and is not a folder")
    if args.workers is not None and args.workers < 1:
        raise CommandError(f"--workers must be >= 1, got {args.workers}")
    report = ingest_to_folder(args.paths, out, progress=not args.no_progress, workers=args.workers)
    entries = report["series"]
    for e in entries:
        size = "x".join(str(v) for v in e["size"])
        spacing = ", ".join(f"{v:.4g}" for v in e["spacing"])
        told = "; ".join(f"{k} {v}" for k, v in (e.get("distinguished_by") or {}).items())
        print(f"{e['output_file']}: {e['modality'] or '?'} {size}, spacing {spacing} mm"
              + (f" [{told}]" if told else "")
              + (f", {len(e['warnings'])} warning(s)" if e["warnings"] else ""))
        for w in e["warnings"]:
            print(f"  warning: {w}")
    if report["rejected"]:
        print(f"{len(report['rejected'])} file(s) rejected (reasons in {out / 'ingest_report.json'})")
    print(f"report: {out / 'ingest_report.json'}")
    if not entries:
        print("dicomteam ingest: no volume could be made from the input", file=sys.stderr)
        return 1
    return 0
