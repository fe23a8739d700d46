"""`dicomteam consensus`: consensus, agreement and report from files or from the project store.

    dicomteam consensus --method majority|staple|multilabel-staple [--reference IMG] --out DIR FILE...
    dicomteam consensus --method staple --store DIR|URL --user U [--token T] --case ID --out DIR [--publish [FILE]]
    dicomteam consensus --method staple --store DIR|URL --user U --all-cases --out DIR

Registration imports nothing heavy; the work happens in ``run``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ConsensusReviewLib.adjudication import publish_adjudication
from ConsensusReviewLib.agreement import to_json_safe
from ConsensusReviewLib.consensus import run_consensus
from ConsensusReviewLib.inputs import check_placeable, load_annotations, read_reference_image
from ConsensusReviewLib.outputs import review_status, write_consensus_outputs
from ConsensusReviewLib.project_queue import build_project_queue
from ConsensusReviewLib.store_case import load_store_case
from DicomTeamAnnotateLib.cli.common import CommandError, open_store_from_args, store_call
from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.io.segmentations import read_segmentation

METHOD_CHOICES = ("majority", "staple", "multilabel-staple")


def register(subparsers) -> None:
    """Add `consensus` to the `dicomteam` parser."""
    p = subparsers.add_parser(
        "consensus", help="consensus of several annotators' segmentations, agreement figures and a report",
        description="Consensus (majority vote, STAPLE, multi-label STAPLE) of N annotators' segmentations of one "
                    "case, with pairwise agreement, per-annotator bias and an HTML report.  Inputs are files "
                    "(.seg.nrrd or label maps) or every annotator's latest version of a case in the store.")
    p.add_argument("files", nargs="*", metavar="FILE", help="annotators' segmentations (.seg.nrrd, .nii.gz, .nrrd)")
    p.add_argument("--method", required=True, choices=METHOD_CHOICES)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--reference", default=None, metavar="IMG",
                   help="reference image (volume file or DICOM folder): its grid is the consensus grid "
                        "(default: the first file's grid); also drawn under the report's overlays")
    p.add_argument("--names", default=None, metavar="LABELS.json",
                   help="names of plain label-map values: {\"liver\": 1, ...} or [{name, value}, ...]")
    p.add_argument("--annotators", default=None, metavar="A,B,...", help="annotator names (default: file names)")
    p.add_argument("--threshold", type=float, default=0.5, help="STAPLE: probability > threshold is in (0.5)")
    p.add_argument("--tie", default="background", choices=("background", "foreground"),
                   help="majority vote: an exact half of the votes is background (default) or foreground")
    p.add_argument("--tolerance-mm", type=float, default=1.0, help="surface Dice tolerance in mm (1.0)")
    p.add_argument("--hd-mode", default="max", choices=("max", "mean"),
                   help="HD95: max of the directed 95th percentiles (MONAI, default) or their mean (SlicerRT)")
    p.add_argument("--staple-variant", default="itk", choices=("itk", "simpleitk-2.5"),
                   help="multi-label STAPLE seeding: current ITK (default) or the ITK 5.4 code in SimpleITK 2.5")
    p.add_argument("--no-report", dest="report", action="store_false", help="skip report.html and its pictures")
    s = p.add_argument_group("project store")
    s.add_argument("--store", default=None, metavar="DIR|URL", help="project folder or server URL")
    s.add_argument("--user", default=None, metavar="U")
    s.add_argument("--token", default=None, metavar="T", help="server token (default: $DICOMTEAM_TOKEN)")
    s.add_argument("--case", default=None, metavar="ID", help="the case whose annotations to combine")
    s.add_argument("--all-cases", action="store_true", help="every case with two or more annotators, plus "
                                                            "the project report and the review queue")
    s.add_argument("--include-predictions", action="store_true",
                   help="the model's latest prediction of the case joins as one more rater, 'model' (default: "
                        "predictions are no reading and are left out)")
    s.add_argument("--include-unsubmitted", action="store_true",
                   help="also the latest version of annotators who have not submitted (default: submitted work only)")
    s.add_argument("--publish", nargs="?", const="consensus", default=None, metavar="FILE",
                   help="publish the consensus (or the reviewer's edited FILE) as the case's adjudicated "
                        "version with its audit record (reviewers only)")
    p.set_defaults(func=run)


def _names(path) -> dict | None:
    """{value: name} from a labels JSON ({name: value} or [{name, value}])."""
    if path is None:
        return None
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: cannot read label names ({exc})") from None
    doc = doc.get("labels", doc) if isinstance(doc, dict) else doc
    if isinstance(doc, dict):
        return {int(v): str(k) for k, v in doc.items()}
    return {int(e["value"]): str(e["name"]) for e in doc}


def _options(args) -> dict:
    return {"threshold": args.threshold, "tie": args.tie, "staple_variant": args.staple_variant,
            "tolerance_mm": args.tolerance_mm, "hd_mode": args.hd_mode}


def run(args) -> int:
    """Entry point of `dicomteam consensus`."""
    if args.store:
        if args.files:
            raise CommandError("give either FILEs or --store, not both")
        if not args.user:
            raise CommandError("--store needs --user")
        if bool(args.case) == bool(args.all_cases):
            raise CommandError("--store needs exactly one of --case ID or --all-cases")
        if args.publish and args.all_cases:
            raise CommandError("--publish works on one --case")
        return _run_store(args)
    if args.case or args.all_cases or args.publish:
        raise CommandError("--case, --all-cases and --publish need --store")
    if len(args.files) < 2:
        raise CommandError(f"consensus needs at least two annotation files, got {len(args.files)}")
    return _run_files(args)


def _run_files(args) -> int:

    annotators = [a.strip() for a in args.annotators.split(",")] if args.annotators else None
    if annotators is not None and len(annotators) != len(args.files):
        raise CommandError(f"--annotators names {len(annotators)} annotators for {len(args.files)} files")
    image = read_reference_image(args.reference) if args.reference else None
    reference = image.geometry if image is not None else None
    inputs = load_annotations(args.files, reference=reference, annotators=annotators, names=_names(args.names))
    result = run_consensus(inputs, args.method, **_options(args))
    case_id = Path(args.reference).name if args.reference else ""
    paths = write_consensus_outputs(result, args.out, case_id=case_id, image=image, report=args.report)
    _print_summary(result, paths)
    return 0


def _print_summary(result, paths) -> None:
    print(f"consensus ({result.method}) of {len(result.inputs.annotators)} annotators: "
          f"{', '.join(result.inputs.annotators)}")
    for label, a in result.agreement.items():
        print(f"  {label}: mean pairwise Dice {a['mean_pairwise_dice']:.3f}, "
              f"consensus {a['consensus_volume_ml']:.2f} mL")
    for note in result.inputs.notes:
        print(f"  note: {note}")
    for key in ("segmentation", "labelmap", "agreement", "report"):
        if key in paths:
            print(f"  {key}: {paths[key]}")


def _run_store(args) -> int:
    store = open_store_from_args(args)
    try:
        if args.all_cases:
            return store_call(lambda: _all_cases(store, args))
        return store_call(lambda: _one_case(store, args.case, args, Path(args.out)))
    finally:
        store.close()


def _consensus_case(store, case_id, args, out_dir: Path) -> tuple:
    """Consensus of one store case written to ``out_dir``: (result, paths, versions used)."""
    import tempfile


    with tempfile.TemporaryDirectory(prefix="dicomteam-consensus-") as tmp:
        inputs, image, versions = load_store_case(store, case_id, tmp, submitted_only=not args.include_unsubmitted,
                                                  include_predictions=args.include_predictions)
    result = run_consensus(inputs, args.method, **_options(args))
    paths = write_consensus_outputs(result, out_dir, case_id=case_id, image=image, report=args.report)
    _print_summary(result, paths)
    return result, paths, versions


def _one_case(store, case_id, args, out_dir: Path) -> int:
    result, _, versions = _consensus_case(store, case_id, args, out_dir)
    if args.publish:
        record = _publish(store, case_id, result, versions, args.publish)
        print(f"  published adjudicated version {record['id']} of case {case_id}")
    return 0


def _publish(store, case_id, result, versions, what) -> dict:
    if what == "consensus":
        return publish_adjudication(store, case_id, result.segmentation, consensus_record=result.record,
                                    versions=versions, started_from="consensus", start=result.segmentation)

    edited = read_segmentation(what)
    check_placeable(edited, result.inputs.geometry, what)
    edited = edited.resampled(result.inputs.geometry)
    return publish_adjudication(store, case_id, edited, consensus_record=result.record, versions=versions,
                                started_from="consensus", start=result.segmentation,
                                note=f"edited by the reviewer from {Path(what).name}")


def _all_cases(store, args) -> int:

    out = Path(args.out)

    def case_run(case_id, _tmp):  # each case's outputs go to OUT/<case id>
        result, _, _ = _consensus_case(store, case_id, args, out / case_id)
        return {"result": result, "status": review_status(result, case_id)}

    done = build_project_queue(store, case_run, out_dir=out)
    queue = done["queue"]
    write_json_atomic(out / "queue.json", to_json_safe({k: done[k] for k in ("queue", "bias", "skipped")}))
    for s in done["skipped"]:
        print(f"  skipped {s}")
    flagged = [q["case_id"] for q in queue if q["needs_review"]]
    print(f"{len(queue)} cases; {len(flagged)} need review: {', '.join(flagged) or 'none'}; "
          f"report {out / 'project_report.html'}")
    return 0
