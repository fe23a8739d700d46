"""``dicomteam`` subcommands of TrainBridge: export-nnunet, train, jobs, evaluate, export-model, preannotate.

Registration is cheap: every heavy import (torch, monai, nnunetv2) happens inside the commands.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from DicomTeamAnnotateLib.cli.common import CommandError, key_values, store_call
from DicomTeamAnnotateLib.store import open_store
from TrainBridgeLib.backends.registry import BACKENDS, build_training_job
from TrainBridgeLib.evaluation.evaluate import evaluate_folders, summary_text
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.from_store import cases_from_store
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.export.other_formats import write_coco_slices, write_monai_datalist, write_seg_nrrd_folder
from TrainBridgeLib.jobs.runner import JOB_FILE, Job
from TrainBridgeLib.loop.backends import open_model
from TrainBridgeLib.loop.models import UNCERTAINTY_MEASURE
from TrainBridgeLib.loop.preannotate import STRATEGIES, preannotate
from TrainBridgeLib.loop.retrain import retrain_if_new
from TrainBridgeLib.models.bundle import export_bundle
from TrainBridgeLib.models.export import export_model
from TrainBridgeLib.models.nnunet_results import export_nnunet_results


def _error(message: str):
    return CommandError(message)


def register(subparsers) -> None:
    """Add the TrainBridge subcommands to the ``dicomteam`` parser."""
    p = subparsers.add_parser("export-nnunet", help="export cases to nnU-Net v2's raw layout with patient splits")
    src = p.add_argument_group("source (one of)")
    src.add_argument("--store", help="project store: a folder or an http(s) URL (adjudicated versions)")
    src.add_argument("--user", help="store user name")
    src.add_argument("--token", help="store access token")
    src.add_argument("--images", nargs="+", metavar="IMG",
                     help="one per case: a volume file or DICOM folder; several channels joined with ','")
    src.add_argument("--labels", nargs="+", metavar="LBL", help="one label map or .seg.nrrd per case")
    src.add_argument("--patients", nargs="+", metavar="P", help="one patient id per case")
    src.add_argument("--case-attributes", nargs="+", metavar="K=V[,K=V]",
                     help="one per case: its attributes for --stratify, e.g. site=A,scanner=X")
    p.add_argument("--case-ids", nargs="+", metavar="ID", help="case ids (default case_000, case_001, ...)")
    p.add_argument("--label-names", metavar="JSON", help="ontology: {name: value}, organs.json, dataset.json or project.json")
    p.add_argument("--out", required=True, metavar="RAW_DIR", help="nnUNet_raw folder")
    p.add_argument("--dataset-id", type=int, metavar="N", help="dataset id (default: the first free one from 500)")
    p.add_argument("--name", required=True, help="dataset name (DatasetXXX_NAME)")
    p.add_argument("--test-fraction", type=float, default=0.2, metavar="F", help="share of patients held out (0.2)")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (5; fewer if fewer patients)")
    p.add_argument("--preprocessed", metavar="DIR", help="nnUNet_preprocessed folder for splits_final.json")
    p.add_argument("--channel-names", help="comma-separated channel names (default: CT or image)")
    p.add_argument("--stratify", metavar="ATTR",
                   help="case attribute to stratify the splits by, e.g. site or scanner (store cases: "
                        "'project add-case --attr', or read from DICOM; files: --case-attributes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--version-kind", default="adjudicated", help="store: which versions to export (adjudicated)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder of that name")
    p.add_argument("--monai-json", action="store_true", help="also write dataset_monai.json")
    p.add_argument("--seg-nrrd", metavar="DIR", help="also write each label as a Slicer .seg.nrrd into DIR")
    p.add_argument("--coco", metavar="DIR", help="also write axial slices as PNG + COCO JSON into DIR")
    p.set_defaults(func=cmd_export_nnunet)

    p = subparsers.add_parser("train", help="train on an exported dataset (nnU-Net or MONAI), as a background job; "
                                            "or on a project's adjudicated cases when N new ones came in (--store)")
    p.add_argument("--dataset", metavar="RAW_DIR/DatasetXXX_Name", help="an exported dataset (or give --store)")
    p.add_argument("--backend", required=True, choices=BACKENDS)
    p.add_argument("--arch", default="segresnet", choices=("segresnet", "unet", "swinunetr", "vnet"), help="MONAI network")
    p.add_argument("--epochs", type=int, help="MONAI: any; nnU-Net: 1, 5, 10, 20, 50, 100, 250, ... (default 1000)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    p.add_argument("--out", required=True, metavar="JOB_DIR")
    p.add_argument("--background", action="store_true", help="return at once; follow with 'dicomteam jobs JOB_DIR'")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads for the job")
    p.add_argument("--configuration", default="3d_fullres", help="nnU-Net configuration (3d_fullres, 2d, ...)")
    p.add_argument("--iterations", type=int, help="MONAI: iterations per epoch")
    p.add_argument("--no-test", action="store_true", help="skip predicting and evaluating the test set")
    p.add_argument("--model-kwargs", default=None, metavar="JSON", help="MONAI: the network's arguments, e.g. "
                   "'{\"channels\": [8, 16, 32, 64], \"strides\": [2, 2, 2]}'")
    add_store_training_arguments(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("jobs", help="status of a training job (also --cancel, --resume, --wait)")
    p.add_argument("job_dir", metavar="JOB_DIR")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--cancel", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--log", type=int, default=0, metavar="N", help="also print the last N log lines")
    p.set_defaults(func=cmd_jobs)

    p = subparsers.add_parser("evaluate", help="Dice, HD95, NSD of predictions against ground truth")
    p.add_argument("--gt", required=True, metavar="DIR")
    p.add_argument("--pred", required=True, metavar="DIR")
    p.add_argument("--labels", metavar="dataset.json")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--tolerance-mm", type=float, default=1.0, help="NSD tolerance (1 mm)")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("export-model", help="export a job's model: MONAI as ONNX / TorchScript + manifest or "
                                                   "as a MONAI Bundle; nnU-Net into nnU-Net's results layout")
    p.add_argument("job_dir", metavar="JOB_DIR")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "bundle", "nnunet"),
                   help="bundle: MONAI Bundle (MONAI Label, MONAI Deploy); nnunet: OUT becomes an nnUNet_results root")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--checkpoint", default="best", choices=("best", "final", "latest"))
    p.set_defaults(func=cmd_export_model)

    register_preannotate(subparsers)


# ----- export ---------------------------------------------------------------------------------------------
def _file_cases(args) -> list:
    n = len(args.images or [])
    if not n:
        raise _error("give --store, or --images with --labels and --patients")
    for flag, values in (("--labels", args.labels), ("--patients", args.patients)):
        if not values or len(values) != n:
            raise _error(f"{flag}: need one value per image ({n}), got {len(values or [])}")
    for flag, values in (("--case-ids", args.case_ids), ("--case-attributes", args.case_attributes)):
        if values and len(values) != n:
            raise _error(f"{flag}: need one per image ({n}), got {len(values)}")
    ids = args.case_ids or [f"case_{i:03d}" for i in range(n)]
    attributes = [key_values(a, "--case-attributes", ",") for a in args.case_attributes or [""] * n]
    cases = []
    for cid, img, lbl, pat, attrs in zip(ids, args.images, args.labels, args.patients, attributes):
        channels = [s for s in img.split(",") if s]
        for path in channels + [lbl]:
            if not Path(path).exists():
                raise _error(f"case '{cid}': {path}: no such file or folder")
        cases.append(CaseInput(cid, pat, channels, lbl, attributes=attrs))
    return cases


def cmd_export_nnunet(args) -> int:
    if args.store and args.images:
        raise _error("give either --store or --images/--labels/--patients, not both")
    labels = args.label_names
    channel_names = [c.strip() for c in args.channel_names.split(",")] if args.channel_names else None
    options = dict(dataset_id=args.dataset_id, test_fraction=args.test_fraction, folds=args.folds, seed=args.seed,
                   stratify_by=args.stratify, channel_names=channel_names, preprocessed_dir=args.preprocessed,
                   overwrite=args.overwrite,
                   progress=lambda n, t, c: print(f"  exported {c} ({n}/{t})", file=sys.stderr))
    if args.store:
        import tempfile


        Path(args.out).mkdir(parents=True, exist_ok=True)
        # downloads are only needed until they are written as NIfTI; same disk as the output
        with tempfile.TemporaryDirectory(prefix=".store-download-", dir=args.out) as tmp:
            cases, project_labels = cases_from_store(args.store, args.user, token=args.token, kind=args.version_kind,
                                                     work_dir=tmp)
            result = export_nnunet(cases, args.out, args.name, labels=labels or project_labels, **options)
    else:
        result = export_nnunet(_file_cases(args), args.out, args.name, labels=labels, **options)
    if args.monai_json:
        print(f"MONAI datalist: {write_monai_datalist(result.dataset_dir)}")
    if args.seg_nrrd:
        print(f".seg.nrrd files: {len(write_seg_nrrd_folder(result.dataset_dir, args.seg_nrrd))} in {args.seg_nrrd}")
    if args.coco:
        print(f"COCO slices: {write_coco_slices(result.dataset_dir, args.coco)}")
    n_test = len(result.splits.test)
    print(f"{result.dataset_dir}  (id {result.dataset_id}; {len(result.cases) - n_test} training case(s) in "
          f"{len(result.splits.folds)} fold(s), {n_test} test case(s); splits: {result.splits_final_path})")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


# ----- training / jobs --------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    kwargs = {}
    if args.backend == "nnunet":
        kwargs["configuration"] = args.configuration
        if args.no_test:
            kwargs["predict_test"] = False
    else:
        extra = []
        if args.iterations:
            extra += ["--iterations", args.iterations]
        if args.model_kwargs:
            try:
                json.loads(args.model_kwargs)
            except ValueError as exc:
                raise _error(f"--model-kwargs: not JSON ({exc})") from None
            extra += ["--model-kwargs", args.model_kwargs]
        if extra:
            kwargs["extra_args"] = extra
        if args.no_test:
            kwargs["predict_test"] = False
    if args.store:
        return cmd_train_from_store(args, dict(arch=args.arch, epochs=args.epochs, device=args.device,
                                               threads=args.threads, **kwargs), _follow)
    if not args.dataset:
        raise _error("give --dataset (an exported dataset) or --store (train on the project's adjudicated cases)")
    job = build_training_job(args.dataset, args.out, backend=args.backend, arch=args.arch, epochs=args.epochs,
                             device=args.device, fold=args.fold, threads=args.threads, **kwargs).start()
    print(f"job started: {job.dir} (pid {job.record['pid']}); status: dicomteam jobs {job.dir}")
    if args.background:
        return 0
    return _follow(job)


def _follow(job) -> int:
    """Print progress until the job ends; Ctrl-C cancels it."""
    seen, step = 0, None
    try:
        while True:
            st = job.status()
            if st["step"] != step and st["step"]:
                step = st["step"]
                print(f"step: {step}")
            records = job.progress()
            for r in records[seen:]:
                print("  " + _record_text(r))
            seen = len(records)
            if st["state"] in ("finished", "failed", "cancelled", "lost"):
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("cancelling...", file=sys.stderr)
        job.cancel()
        return 130
    print(_status_text(job.status()))
    if st["state"] != "finished":
        print(job.log_tail(20), file=sys.stderr)
        return 1
    return 0


def _record_text(r: dict) -> str:
    parts = [f"epoch {r.get('epoch', 0) + 1}" + (f"/{r['num_epochs']}" if r.get("num_epochs") else "")]
    for key, label in (("loss", "loss"), ("loss_dice", "dice loss"), ("loss_ce", "ce loss"), ("val_loss", "val loss"),
                       ("val_dice", "val Dice")):
        if r.get(key) is not None:
            parts.append(f"{label} {r[key]:.4f}")
    return ", ".join(parts)


def _status_text(st: dict) -> str:
    lines = [f"job {st['job_dir']}: {st['state']} (backend {st['backend']})"]
    for s in st["steps"]:
        code = "" if s["returncode"] is None else f" (exit {s['returncode']})"
        lines.append(f"  step {s['name']:9s} {s['state']}{code}")
    if st.get("latest"):
        lines.append("  latest: " + _record_text(st["latest"]))
    if st.get("curves_png"):
        lines.append(f"  curves: {st['curves_png']}")
    ev = Path(st["outputs"].get("evaluation", "")) / "metrics.json" if st.get("outputs") else None
    if ev and ev.exists():
        lines.append(f"  evaluation: {ev}")
    return "\n".join(lines)


def cmd_jobs(args) -> int:
    try:
        job = Job(args.job_dir)
    except FileNotFoundError as exc:
        raise _error(str(exc)) from None
    if args.cancel:
        print(f"cancelled: {job.cancel()}")
    if args.resume:
        job.resume()
        print(f"resumed (pid {job.record['pid']})")
    if args.wait:
        return _follow(job)
    st = job.status()
    print(json.dumps(st, indent=2) if args.json else _status_text(st))
    if args.log:
        print(job.log_tail(args.log))
    return 0


# ----- evaluation / model export --------------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    result = evaluate_folders(args.gt, args.pred, args.out, labels=args.labels, tolerance_mm=args.tolerance_mm)
    print(summary_text(result))
    print(f"wrote {Path(args.out) / 'metrics.csv'}, metrics.json, summary.png")
    return 0


def cmd_export_model(args) -> int:
    if not (Path(args.job_dir) / f"checkpoint_{args.checkpoint}.pt").exists() and \
            not (Path(args.job_dir) / JOB_FILE).exists():
        raise _error(f"{args.job_dir}: not a training job folder")
    if args.format == "nnunet":
        try:
            folder = export_nnunet_results(args.job_dir, args.out)
        except (ValueError, FileNotFoundError) as exc:
            raise _error(str(exc)) from None
        print(f"wrote {folder} (nnUNet_results={args.out}; nnUNetv2_predict_from_modelfolder -m {folder})")
        return 0
    if args.format == "bundle":
        bundle = export_bundle(args.job_dir, args.out, checkpoint=args.checkpoint)
        print(f"wrote {bundle} (python -m monai.bundle run --config_file {bundle}/configs/inference.json "
              f"--bundle_root {bundle} --dataset_dir IMAGES --output_dir OUT)")
        return 0
    manifest = export_model(args.job_dir, args.format, args.out, checkpoint=args.checkpoint)
    checks = json.loads(Path(manifest).read_text(encoding="utf-8"))["checks"]
    for name, c in checks.items():
        print(f"{name} vs PyTorch on {c['input']}: max |diff| {c['max_abs_diff']:.3g} (tolerance {c['tolerance']:.3g})")
    print(f"wrote {manifest}")
    return 0


# ----- the annotation loop: preannotate, train --store --when-new ------------------------------------------

def register_preannotate(subparsers) -> None:
    """Add ``preannotate`` to the ``dicomteam`` parser."""
    p = subparsers.add_parser("preannotate", help="a trained model pre-annotates the project's cases not yet annotated "
                                                  "(versions of kind 'prediction'); resumable")
    p.add_argument("--store", required=True, metavar="DIR|URL", help="project folder or server URL")
    p.add_argument("--user", required=True, metavar="U", help="a reviewer or admin of the project")
    p.add_argument("--token", default=None, metavar="T", help="server token (default: $DICOMTEAM_TOKEN)")
    p.add_argument("--model", required=True, metavar="JOB_OR_MODEL",
                   help="a training job folder (MONAI or nnU-Net), a model from export-model, an nnU-Net model "
                        "folder, or the loop folder of `train --when-new` (its latest model)")
    p.add_argument("--cases", nargs="+", default=None, metavar="ID",
                   help="these cases (default: every case without an annotation or adjudicated version)")
    p.add_argument("--strategy", default="first", choices=STRATEGIES,
                   help="which cases first: by case id, shuffled, or the most uncertain (predicts all, then pushes "
                        "the --limit most uncertain)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="push at most N predictions")
    p.add_argument("--seed", type=int, default=0, help="for --strategy random")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None, help="MONAI: best, final or latest; nnU-Net: checkpoint file name")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_preannotate)


def add_store_training_arguments(parser) -> None:
    """``train``'s options for training from a project store (the loop)."""
    group = parser.add_argument_group("training from the project store (the annotation loop)")
    group.add_argument("--store", metavar="DIR|URL", help="train on the project's adjudicated cases (instead of "
                                                        "--dataset); --out is then the loop folder")
    group.add_argument("--user", metavar="U")
    group.add_argument("--token", metavar="T", help="server token (default: $DICOMTEAM_TOKEN)")
    group.add_argument("--when-new", type=int, default=1, metavar="N",
                       help="start only when N adjudicated cases are new since the loop's last training (default 1)")
    group.add_argument("--name", default="Loop", help="dataset name of the export (DatasetXXX_NAME)")


def cmd_preannotate(args) -> int:
    token = args.token or os.environ.get("DICOMTEAM_TOKEN")
    try:
        model = open_model(args.model, device=args.device, checkpoint=args.checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    store = store_call(lambda: open_store(args.store, args.user, token))

    def progress(fraction, message):
        print(f"  [{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    print(f"model: {model.name} (weights sha256 {model.weights_sha256[:12]}...)", file=sys.stderr)
    try:
        summary = store_call(lambda: preannotate(store, model, cases=args.cases, strategy=args.strategy,
                                                 limit=args.limit, seed=args.seed, progress=progress))
    except KeyboardInterrupt:
        print("cancelled: the predictions pushed so far are kept; run the same command again to go on",
              file=sys.stderr)
        return 130
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    for row in summary["pushed"]:
        print(f"{row['case_id']}  {row['version']}  uncertainty {row['uncertainty']:.3f}")
    for row in summary["skipped"]:
        print(f"{row['case_id']}  skipped: {row['reason']}", file=sys.stderr)
    if summary["unmapped"]:
        print(f"model labels not in the project's ontology (left out): {', '.join(summary['unmapped'])}",
              file=sys.stderr)
    print(f"round {summary['round']}: {len(summary['pushed'])} prediction(s) pushed, {len(summary['skipped'])} "
          f"skipped; uncertainty = {UNCERTAINTY_MEASURE}", file=sys.stderr)
    return 0


def cmd_train_from_store(args, job_options: dict, follow) -> int:
    """``dicomteam train --store ... --when-new N``: export and train when enough is new (see loop.retrain)."""
    if args.dataset:
        raise CommandError("give either --dataset or --store, not both")
    if not args.user:
        raise CommandError("--store needs --user (a member who may read the adjudicated versions)")
    token = args.token or os.environ.get("DICOMTEAM_TOKEN")
    result = store_call(lambda: retrain_if_new(args.store, args.user, args.out, when_new=args.when_new, token=token,
                                               backend=args.backend, name=args.name, fold=args.fold,
                                               log=lambda m: print(m, file=sys.stderr), **job_options))
    if not result["started"]:
        print(f"no training started: {result['reason']}")
        return 0
    job = result["job"]
    print(f"round {result['round']}: job started: {job.dir} (pid {job.record['pid']}); status: dicomteam jobs {job.dir}")
    return 0 if args.background else follow(job)
