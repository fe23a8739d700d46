"""`dicomteam effort`: what the annotation took, per annotator and per round of the loop, with a picture.

Registration imports nothing heavy; the picture imports matplotlib when it is drawn.
"""
from __future__ import annotations

import json
import sys

from DicomTeamAnnotateLib.cli.common import add_store_arguments, open_store_from_args, store_call
from DicomTeamAnnotateLib.worklist.effort_report import effort_rows, effort_table, plot_effort, table_text


def register(subparsers) -> None:
    """Add `effort` to the `dicomteam` parser."""
    p = subparsers.add_parser("effort", help="annotation effort per annotator and round (time, SAM prompts, edits, "
                                             "voxels changed), from the effort records of the versions")
    add_store_arguments(p)
    p.add_argument("--case", nargs="+", default=None, metavar="ID", help="only these cases")
    p.add_argument("--json", action="store_true", help="print {'table': per round and annotator, 'cases': per case}")
    p.add_argument("--png", default=None, metavar="FILE", help="also draw time and edit size per case into FILE")
    p.set_defaults(func=cmd_effort)


def cmd_effort(args) -> int:
    store = open_store_from_args(args)
    rows = store_call(lambda: effort_rows(store, case_ids=args.case))
    table = effort_table(rows)
    if args.png:
        plot_effort(rows, args.png)
    if args.json:
        print(json.dumps({"table": table, "cases": rows}, indent=2))
    elif not rows:
        print("no effort records yet (they come with versions pushed from the DicomTeamAnnotate panel or the demo)")
    else:
        print(table_text(table))
    if args.png:
        print(f"picture: {args.png}", file=sys.stderr)
    return 0
