"""`dicomteam project ...`, `serve`, `push`, `pull`, `versions`, `status`: the store's commands.

Registration imports nothing heavy; each command imports what it needs when it runs.
"""
from __future__ import annotations

import json
import os
import sys

from DicomTeamAnnotateLib.cli.common import (
    CommandError,
    add_store_arguments,
    key_values,
    open_store_from_args,
    store_call,
)
from DicomTeamAnnotateLib.cli.pacs import add_import_dicomweb, quiet_pacs_libraries
from DicomTeamAnnotateLib.io.segmentations import is_seg_nrrd
from DicomTeamAnnotateLib.store import server as project_server  # its names load on first use (no FastAPI yet)
from DicomTeamAnnotateLib.store.admin import (
    add_case,
    add_member,
    assign,
    init_project,
    remove_member,
    rotate_token,
    unassign,
)
from DicomTeamAnnotateLib.store.model import KINDS, ROLES, StoreError, StoreUnavailable
from DicomTeamAnnotateLib.store.server.plugins import add_plugin_arguments
from DicomTeamAnnotateLib.store.verify import verify_project
from DicomTeamAnnotateLib.worklist.cases import as_seg_nrrd
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue, push_or_queue
from DicomTeamAnnotateLib.worklist.rows import ORDERS, flush_queue, worklist_rows


def register(subparsers) -> None:
    """Add the store's subcommands to the `dicomteam` parser."""
    project = subparsers.add_parser("project", help="create and administer a project folder")
    psub = project.add_subparsers(dest="project_command", metavar="ACTION")

    p = psub.add_parser("init", help="create a project folder")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--name", required=True)
    p.add_argument("--labels", required=True, metavar="LABELS.json",
                   help="label ontology: [{name, value, color, terminology}, ...]")
    p.add_argument("--no-blind", dest="blind", action="store_false", default=None,
                   help="let annotators see each other's versions (blind is the default)")
    p.add_argument("--window-preset", default=None, help="window preset for the case images (default: soft tissue)")
    p.set_defaults(func=cmd_init)

    p = psub.add_parser("add-case", help="ingest an image (DICOM folder/ZIP or volume file) as a case")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--case", required=True, metavar="ID")
    p.add_argument("--image", required=True, metavar="PATH")
    p.add_argument("--patient", required=True, metavar="PID")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                   help="a case attribute for stratified splits, e.g. site=A (repeatable); manufacturer, scanner "
                        "and institution are read from a DICOM header")
    p.set_defaults(func=cmd_add_case)

    p = psub.add_parser("add-member", help="add a member (or change a role); prints a new token")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--user", required=True, metavar="U")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--expires-days", type=float, default=None, metavar="N",
                   help="the token stops working after N days (default: never; rotate with rotate-token)")
    p.set_defaults(func=cmd_add_member)

    p = psub.add_parser("remove-member", help="remove a member: their token stops working at once")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--user", required=True, metavar="U")
    p.set_defaults(func=cmd_remove_member)

    p = psub.add_parser("rotate-token", help="a new token for a member (same role); the old one stops working")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--user", required=True, metavar="U")
    p.add_argument("--expires-days", type=float, default=None, metavar="N")
    p.set_defaults(func=cmd_rotate_token)

    p = psub.add_parser("assign", help="assign a case to a member")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--case", required=True, metavar="ID")
    p.add_argument("--user", required=True, metavar="U")
    p.set_defaults(func=cmd_assign)

    p = psub.add_parser("unassign", help="withdraw a case from a member (they lose access at once)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--case", required=True, metavar="ID")
    p.add_argument("--user", required=True, metavar="U")
    p.set_defaults(func=cmd_unassign)

    p = psub.add_parser("verify", help="check blobs and (server) index against the event log")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--db", default=None, metavar="URL")
    p.set_defaults(func=cmd_verify)
    add_import_dicomweb(psub)
    project.set_defaults(func=lambda args: (project.print_help(), 2)[1])

    p = subparsers.add_parser("serve", help="serve a project folder over HTTP (FastAPI + uvicorn)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--db", default=None, metavar="URL",
                   help="SQLAlchemy URL of the index, e.g. postgresql://user@host/db (default: DIR/index.sqlite)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    add_plugin_arguments(p)  # options of the installed server plugins (entry points dicomteam.server_plugins)
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("push", help="push a segmentation as a new version; prints its id")
    add_store_arguments(p)
    p.add_argument("--case", required=True, metavar="ID")
    p.add_argument("--segmentation", required=True, metavar="FILE", help=".seg.nrrd (or a label map)")
    p.add_argument("--parent", default=None, metavar="V", help="the version this one continues (default: my latest)")
    p.add_argument("--message", default="", metavar="M")
    p.add_argument("--kind", default="annotation", choices=KINDS)
    p.add_argument("--submit", action="store_true", help="also mark my work on the case submitted")
    p.set_defaults(func=cmd_push)

    p = subparsers.add_parser("pull", help="download a case image and my latest version")
    add_store_arguments(p)
    p.add_argument("--case", required=True, metavar="ID")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--version", default=None, metavar="V", help="a specific version instead of my latest")
    p.set_defaults(func=cmd_pull)

    p = subparsers.add_parser("versions", help="list the versions of a case")
    add_store_arguments(p)
    p.add_argument("--case", required=True, metavar="ID")
    p.add_argument("--author", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_versions)

    p = subparsers.add_parser("status", help="my worklist: my cases with their state")
    add_store_arguments(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--order", default="first", choices=ORDERS,
                   help="first: by case id; random: a shuffle stable per user; uncertainty: the cases the model's "
                        "prediction is least sure of first (mean softmax entropy inside its predicted foreground)")
    p.set_defaults(func=cmd_status)


# ----- project administration -----------------------------------------------------------------------
def cmd_init(args) -> int:
    doc = store_call(lambda: init_project(args.dir, args.name, args.labels, blind=args.blind,
                                    window_preset=args.window_preset))
    print(f"created project '{doc['name']}' in {args.dir} ({len(doc['labels'])} labels, "
          f"{'blind' if doc['blind'] else 'not blind'})")
    return 0


def cmd_add_case(args) -> int:

    attributes = key_values(args.attr, "--attr")
    case = store_call(lambda: add_case(args.dir, args.case, args.image, args.patient, attributes=attributes))
    attrs = ", ".join(f"{k}={v}" for k, v in case["attributes"].items())
    print(f"added case {case['case_id']} (patient {case['patient_id']}, size {case['geometry']['size']}, "
          f"sha256 {case['image_sha256'][:12]}{'; ' + attrs if attrs else ''})")
    return 0


def cmd_add_member(args) -> int:
    token = store_call(lambda: add_member(args.dir, args.user, args.role, expires_days=args.expires_days))
    expiry = f", expires in {args.expires_days:g} days" if args.expires_days else ""
    print(f"{args.user} is {args.role}{expiry}; token (shown once, keep it secret):", file=sys.stderr)
    print(token)
    return 0


def cmd_remove_member(args) -> int:
    store_call(lambda: remove_member(args.dir, args.user))
    print(f"{args.user} removed; their token no longer works", file=sys.stderr)
    return 0


def cmd_rotate_token(args) -> int:
    token = store_call(lambda: rotate_token(args.dir, args.user, expires_days=args.expires_days))
    print(f"new token for {args.user} (the old one no longer works; shown once):", file=sys.stderr)
    print(token)
    return 0


def cmd_unassign(args) -> int:
    removed = store_call(lambda: unassign(args.dir, args.case, args.user))
    print(f"case {args.case} {'withdrawn from' if removed else 'was not assigned to'} {args.user}")
    return 0


def cmd_assign(args) -> int:
    added = store_call(lambda: assign(args.dir, args.case, args.user))
    print(f"case {args.case} {'assigned to' if added else 'was already assigned to'} {args.user}")
    return 0


def cmd_verify(args) -> int:
    problems = store_call(lambda: verify_project(args.dir, args.db))
    for p in problems:
        print(p)
    print("project is consistent" if not problems else f"{len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def cmd_serve(args) -> int:
    store_call(lambda: project_server.serve(args.dir, args.host, args.port, args.db, workers=args.workers, options=args))
    return 0


# ----- member commands -------------------------------------------------------------------------------
def cmd_push(args) -> int:
    import tempfile


    store = open_store_from_args(args)
    queue = OfflineQueue()
    if not os.path.isfile(args.segmentation):
        raise CommandError(f"{args.segmentation}: no such file")
    try:
        with tempfile.TemporaryDirectory(prefix="dicomteam-push-") as tmp:
            parent = args.parent
            if parent is None and args.kind == "annotation":
                latest = store.latest_version(args.case)
                parent = latest["id"] if latest else None
            seg = as_seg_nrrd(args.segmentation, store.project()["labels"], tmp)
            version = push_or_queue(store, args.case, seg, parent=parent, message=args.message, kind=args.kind,
                                    queue=queue, submit=args.submit, progress=sys.stderr.isatty())
    except StoreUnavailable as exc:  # down before the push itself: keep it, resolve "my latest" when sent
        if not is_seg_nrrd(args.segmentation):
            raise CommandError(f"{exc} (only a .seg.nrrd can be queued offline)", code=3) from None
        item = queue.enqueue(store.location, store.user, args.case, args.segmentation, parent=args.parent,
                             message=args.message, kind=args.kind, submit=args.submit,
                             parent_latest=args.parent is None and args.kind == "annotation")
        version = {"id": item["version_id"], "queued": True}
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    print(version["id"])
    if version.get("queued"):
        print("store unreachable: the push is kept in the offline queue and sent with your next push or "
              "status", file=sys.stderr)
    elif version.get("conflict"):
        print(f"warning: version {version['id']} is flagged as a conflict: its parent is not your latest "
              "version", file=sys.stderr)
    return 0


def cmd_pull(args) -> int:
    from pathlib import Path


    quiet_pacs_libraries(args)
    store = open_store_from_args(args)

    def run():
        out = Path(args.out)
        image = store.fetch_image(args.case, out, progress=sys.stderr.isatty())
        print(image)
        version = store.get_version(args.version) if args.version else store.latest_version(args.case)
        if version is None:
            print(f"no version of case {args.case} by {args.user} yet", file=sys.stderr)
            return 0
        path = store.fetch_version(version["id"], out / f"{args.case}.{version['id']}.seg.nrrd")
        print(path)
        return 0
    return store_call(run)


def cmd_versions(args) -> int:
    store = open_store_from_args(args)
    versions = store_call(lambda: store.list_versions(args.case, author=args.author))
    if args.json:
        print(json.dumps(versions, indent=2))
        return 0
    if not versions:
        print(f"no versions of case {args.case} visible to {args.user}", file=sys.stderr)
    for v in versions:
        flag = "  CONFLICT" if v["conflict"] else ""
        print(f"{v['id']}  {v['created'][:19]}  {v['author']:<12} {v['kind']:<11} parent={v['parent'] or '-'}"
              f"  {v['message']}{flag}")
    return 0


def cmd_status(args) -> int:
    store = open_store_from_args(args)
    queue = OfflineQueue()
    if queue.pending(store.location, store.user):
        try:
            result = flush_queue(store, queue)
            if result["sent"]:
                print(f"sent {len(result['sent'])} queued push(es)", file=sys.stderr)
        except StoreUnavailable:
            pass
    rows = store_call(lambda: worklist_rows(store, queue=queue, order=args.order))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'case':<20} {'patient':<16} {'state':<12} {'versions':>8}  {'latest':<20}  {'uncertainty':>11}  prediction")
    for r in rows:
        extra = "  CONFLICT" if r["conflict"] else ""
        extra += f"  ({r['queued']} queued)" if r["queued"] else ""
        pred = r.get("prediction")
        score = f"{r['score']:.3f}" if r.get("score") is not None else "-"
        model = f"{pred['model']} (round {pred['round'] or '-'})" if pred else "-"
        print(f"{r['case_id']:<20} {str(r['patient_id']):<16} {r['state_label']:<12} {r['n_versions']:>8}  "
              f"{r['latest_version'] or '-':<20}  {score:>11}  {model}{extra}")
    waiting = len(queue.pending(store.location, store.user))
    if waiting:
        print(f"{waiting} push(es) waiting in the offline queue", file=sys.stderr)
    return 0
