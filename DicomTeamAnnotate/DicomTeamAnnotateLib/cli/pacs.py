"""CLI for the PACS: `project import-dicomweb`, `export-seg`, `import-seg`.

``add_import_dicomweb(project_subparsers)`` is called by the store CLI's ``project`` parser;
``register(subparsers)`` adds the two top-level SEG commands.  Registration is cheap: the
network and DICOM libraries load when a command runs.
"""
from __future__ import annotations

import json
import os
import sys

from DicomTeamAnnotateLib.cli.common import CommandError
from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import read_volume
from DicomTeamAnnotateLib.pacs import PacsError
from DicomTeamAnnotateLib.pacs.dicomweb import connect, resolve_password
from DicomTeamAnnotateLib.pacs.seg_export import export_seg
from DicomTeamAnnotateLib.pacs.seg_import import read_seg
from DicomTeamAnnotateLib.store.admin import load_labels
from DicomTeamAnnotateLib.store.dicomweb_import import import_dicomweb
from DicomTeamAnnotateLib.store.interface import open_store
from DicomTeamAnnotateLib.store.model import StoreError
from DicomTeamAnnotateLib.store.seg_exchange import (
    case_geometry,
    export_case_seg,
    find_seg_series,
    import_seg_version,
    retrieve_seg_files,
)

PASSWORD_HELP = "password (default: $DICOMWEB_PASSWORD, the OS keyring, else asked for on a terminal)"


def quiet_pacs_libraries(args) -> None:
    """highdicom and dicomweb-client log every step at INFO; keep them for --verbose."""
    import logging

    if not getattr(args, "verbose", False):
        for name in ("highdicom", "dicomweb_client"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _command_error(message: str):
    return CommandError(message)


def _password(args) -> str | None:
    """--password, else $DICOMWEB_PASSWORD, else a prompt on a terminal (never echoed)."""
    password = resolve_password(args.password, getattr(args, "url", None) or getattr(args, "stow", None), args.user)
    if password is None and args.user and sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"DICOMweb password for {args.user}: ")
    return password


def _add_server_args(p, *, required_url: bool) -> None:
    p.add_argument("--url", required=required_url, help="DICOMweb root, e.g. http://localhost:8042/dicom-web")
    p.add_argument("--user", help="HTTP basic-auth user")
    p.add_argument("--password", help=PASSWORD_HELP)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each answer (default 120)")


# ----- project import-dicomweb -----------------------------------------------------------------------
def add_import_dicomweb(project_subparsers) -> None:
    """Add ``import-dicomweb`` to the ``dicomteam project`` subcommands."""
    p = project_subparsers.add_parser(
        "import-dicomweb", help="add cases from a DICOMweb server (QIDO-RS query, WADO-RS retrieve)",
        description="Query a DICOMweb server (QIDO-RS) and import each matching image series as a case through "
                    "our DICOM ingestion. Transfers resume: instances already in the local cache are skipped and "
                    "existing cases are left alone; a failure leaves no partial case. With --reference the project "
                    "records only the PACS location and pixels are fetched on demand.")
    p.add_argument("dir", help="the project folder")
    _add_server_args(p, required_url=True)
    p.add_argument("--study", help="StudyInstanceUID")
    p.add_argument("--series", help="SeriesInstanceUID")
    p.add_argument("--patient", help="PatientID")
    p.add_argument("--query", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="more QIDO-RS filters by DICOM keyword or tag, e.g. Modality=CT StudyDate=20240101-")
    p.add_argument("--reference", action="store_true", help="record the PACS location instead of copying pixels")
    p.add_argument("--cache", help="local cache folder (default $DICOMTEAM_CACHE/dicomweb or "
                                   "~/.cache/dicomteam/dicomweb)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_import_dicomweb)


def run_import_dicomweb(args) -> int:
    quiet_pacs_libraries(args)
    try:
        client = connect(args.url, args.user, _password(args), timeout=(10.0, args.timeout))
        results = import_dicomweb(args.dir, args.url, study=args.study, series=args.series, patient=args.patient,
                                  query=args.query, user=args.user, reference=args.reference, cache_dir=args.cache,
                                  progress=not args.no_progress and sys.stderr.isatty(), client=client)
    except (PacsError, LookupError) as exc:
        raise _command_error(str(exc)) from None
    except Exception as exc:
        _reraise_store_error(exc)
        raise
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['status']:7s} {r['case_id']}  {r['modality']} '{r['description']}'  "
                  f"({r['fetched']} fetched, {r['skipped']} from cache{', reference' if r['reference'] else ''})")
    return 0


def _reraise_store_error(exc: Exception) -> None:
    """A store error (Conflict, NotFound...) as a one-line CommandError."""
    if isinstance(exc, StoreError):
        raise _command_error(str(exc)) from None


# ----- export-seg / import-seg ----------------------------------------------------------------------
def register(subparsers) -> None:
    """Add ``export-seg`` and ``import-seg``."""
    p = subparsers.add_parser(
        "export-seg", help="write a segmentation as DICOM SEG (file or STOW-RS)",
        description="Build a DICOM Segmentation (highdicom) from a .seg.nrrd or label map: one segment per label "
                    "with its name, colour and terminology code, referencing the source series' instances. The "
                    "segmentation is resampled onto the source series' grid first (nearest neighbour).")
    p.add_argument("--segmentation", help=".seg.nrrd or label map (.nii.gz/.nrrd with sidecar names)")
    p.add_argument("--source", help="the source DICOM series (folder or file list) it was drawn on (with "
                                    "--store: default the PACS series the case records)")
    p.add_argument("--store", help="instead of --segmentation: a project folder or server URL (with --case)")
    p.add_argument("--case", help="the case whose version to export (with --store)")
    p.add_argument("--version", help="the version id (default: the case's latest adjudicated version)")
    p.add_argument("--store-user", help="project member who reads the store (default: --user)")
    p.add_argument("--token", help="store token (server; default $DICOMTEAM_TOKEN)")
    p.add_argument("--cache", help="where the case's source series is cached when fetched from the PACS")
    p.add_argument("--out", help="write the SEG to this file (.dcm)")
    p.add_argument("--stow", metavar="URL", help="STOW-RS the SEG to this DICOMweb root")
    p.add_argument("--user", help="HTTP basic-auth user for --stow")
    p.add_argument("--password", help=PASSWORD_HELP)
    p.add_argument("--type", dest="seg_type", choices=("binary", "fractional", "labelmap"), default=None,
                   help="binary: 1-bit frames per segment (default); fractional: 8-bit; labelmap: one DICOM Label Map "
                        "Segmentation (SOP class 1.2.840.10008.5.1.4.1.1.66.7) whose values are the label values "
                        "(needs highdicom 0.24 or newer; segments must not overlap)")
    p.add_argument("--fractional", action="store_true", help="the same as --type fractional")
    p.add_argument("--algorithm", choices=("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"), default="MANUAL",
                   help="Segment Algorithm Type (default MANUAL)")
    p.add_argument("--series-description", default="DicomTeamAnnotate segmentation")
    p.add_argument("--creator", help="Content Creator's Name (e.g. the adjudicating reviewer)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_export_seg)

    p = subparsers.add_parser(
        "import-seg", help="read a DICOM SEG into a .seg.nrrd or a project version",
        description="Read a DICOM SEG (a file, or a SEG series in a DICOMweb server) onto a reference image grid "
                    "and write it as a Slicer .seg.nrrd and/or push it to a project as an annotation version.")
    p.add_argument("seg", nargs="?", help="the SEG file (or give --url/--study/--seg-series)")
    p.add_argument("--url", help="DICOMweb root holding the SEG")
    p.add_argument("--study", help="StudyInstanceUID of the SEG (with --url)")
    p.add_argument("--seg-series", help="SeriesInstanceUID of the SEG (with --url; default: the only SEG series "
                                        "of the study)")
    p.add_argument("--user", help="HTTP basic-auth user for --url")
    p.add_argument("--password", help=PASSWORD_HELP)
    p.add_argument("--source", help="the source DICOM series: its grid is the reference")
    p.add_argument("--image", help="a volume file whose grid is the reference")
    p.add_argument("--out", help="write a Slicer .seg.nrrd here")
    p.add_argument("--store", help="project folder or server URL to push a version to (with --case)")
    p.add_argument("--store-user", help="project member who pushes (default: --user)")
    p.add_argument("--token", help="store token (server; default $DICOMTEAM_TOKEN)")
    p.add_argument("--case", help="case id (with --store): its grid is the reference")
    p.add_argument("--message", help="version message")
    p.add_argument("--reader", choices=("highdicom", "pydicom"), default="highdicom")
    p.add_argument("--labels", help="LABELS.json naming label values (default with --store: the project's labels)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_import_seg)


def run_export_seg(args) -> int:
    if not args.out and not args.stow:
        raise _command_error("give --out FILE.dcm and/or --stow URL")
    if bool(args.segmentation) == bool(args.store):
        raise _command_error("give --segmentation FILE with --source DIR, or --store with --case")
    if args.store and not args.case:
        raise _command_error("--store needs --case")
    if args.segmentation and not args.source:
        raise _command_error("--segmentation needs --source (the DICOM series it was drawn on)")
    quiet_pacs_libraries(args)
    if args.fractional and args.seg_type not in (None, "fractional"):
        raise _command_error(f"--fractional and --type {args.seg_type} contradict each other")
    seg_type = "fractional" if args.fractional else (args.seg_type or "binary")
    options = {"fractional": seg_type == "fractional", "labelmap": seg_type == "labelmap", "algorithm_type": args.algorithm,
               "series_description": args.series_description, "content_creator": args.creator}
    try:
        if args.store:
            result = _export_case(args, options)
        else:
            geometry = load_dicom_volume(args.source).geometry
            seg = read_segmentation(args.segmentation, reference=geometry)
            result = export_seg(seg, args.source, out=args.out, stow_url=args.stow, user=args.user,
                                password=_password(args) if args.stow else None, **options)
    except PacsError as exc:
        raise _command_error(str(exc)) from None
    except Exception as exc:
        _reraise_store_error(exc)
        raise
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        where = " and ".join(x for x in (result["path"] and f"wrote {result['path']}",
                                          result["stowed"] and f"stored to {args.stow}") if x)
        print(f"SEG {result['sop_instance_uid']}: {len(result['segments'])} segment(s), {result['frames']} frame(s); "
              f"{where}")
    return 0


def _export_case(args, options) -> dict:
    """export-seg --store: the case's version against its source series (a folder, or the PACS one it records)."""
    store = _open_store(args)
    # the password for the PACS (the case's series, --stow): --password, else $DICOMWEB_PASSWORD or the
    # keyring entry for that URL, looked up when the connection is made
    return export_case_seg(store, args.case, version_id=args.version, source=args.source, out=args.out,
                           stow_url=args.stow, user=args.user, password=args.password,
                           cache_dir=args.cache, **options)


def run_import_seg(args) -> int:
    quiet_pacs_libraries(args)
    try:
        return _import_seg(args)
    except PacsError as exc:
        raise _command_error(str(exc)) from None
    except Exception as exc:
        _reraise_store_error(exc)
        raise


def _import_seg(args) -> int:
    import tempfile

    if bool(args.seg) == bool(args.url):
        raise _command_error("give a SEG file, or --url with --study (and --seg-series)")
    if args.store and not args.case:
        raise _command_error("--store needs --case")
    if not args.out and not args.store:
        raise _command_error("give --out FILE.seg.nrrd and/or --store with --case")
    with tempfile.TemporaryDirectory(prefix="dicomteam-seg-") as tmp:
        seg_path = args.seg or _fetch_seg(args, tmp)
        store = _open_store(args) if args.store else None
        result = {"seg": str(seg_path)}
        if args.out:

            reference, labels = _reference_and_labels(args, store)
            seg = read_seg(seg_path, reference, reader=args.reader, labels=labels)
            result["out"] = str(write_seg_nrrd(seg, args.out))
            result["segments"] = seg.names
        if store is not None:

            version = import_seg_version(store, args.case, seg_path, reader=args.reader, message=args.message)
            result["version"] = version["id"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        if "out" in result:
            print(f"wrote {result['out']} ({len(result['segments'])} segment(s))")
        if "version" in result:
            print(result["version"])
    return 0


def _fetch_seg(args, tmp: str):
    if not args.study:
        raise _command_error("--url needs --study")
    client = connect(args.url, args.user, _password(args))
    series = args.seg_series
    if not series:
        found = find_seg_series(client, args.study)
        if len(found) != 1:
            listing = ", ".join(f"{s.series_uid} ('{s.description}')" for s in found) or "none"
            raise _command_error(f"study {args.study} has {len(found)} SEG series ({listing}); "
                                 "choose with --seg-series")
        series = found[0].series_uid
    files = retrieve_seg_files(client, args.study, series, cache_dir=tmp)
    if len(files) != 1:
        raise _command_error(f"SEG series {series} holds {len(files)} instances; export them as files and import one")
    return files[0]


def _open_store(args):
    user = args.store_user or args.user
    if not user:
        raise _command_error("--store needs --store-user (or --user)")
    return open_store(args.store, user, args.token or os.environ.get("DICOMTEAM_TOKEN"))


def _reference_and_labels(args, store):
    """The reference grid (--source / --image / the case) and label names (--labels / the project)."""
    labels = None
    if args.labels:

        labels = load_labels(args.labels)["labels"]
    if args.source:

        reference = load_dicom_volume(args.source).geometry
    elif args.image:

        reference = read_volume(args.image).geometry
    elif store is not None:

        reference = case_geometry(store, args.case)
    else:
        reference = None  # the SEG's own grid
    if labels is None and store is not None:
        labels = store.project().get("labels")
    return reference, labels
