"""The `dicomteam` command: one entry point, subcommands registered by each Lib.

Each module below exposes ``register(subparsers)`` that adds its subcommands with
``set_defaults(func=...)``; ``func(args)`` returns the exit code.  Registration must stay
cheap: heavy imports (torch, monai, fastapi) happen inside the command functions.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys

# (module, human name).  Order is the order of `dicomteam --help`.
COMMAND_MODULES = [
    "DicomTeamAnnotateLib.cli_ingest",     # ingest
    "DicomTeamAnnotateLib.cli_io",         # info
    "DicomTeamAnnotateLib.store.cli",      # project ..., serve, push, pull, versions, status
    "DicomTeamAnnotateLib.pacs.cli",       # export-seg, import-seg (project import-dicomweb is under project)
    "SamPromptLib.cli",                    # sam
    "ConsensusReviewLib.cli",              # consensus
    "TrainBridgeLib.cli",                  # export-nnunet, train, jobs, evaluate, export-model
]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit code 2 (or ``code``)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def key_values(items, option: str, separator: str | None = None) -> dict:
    """``["site=A", "scanner=X"]`` (or, with ``separator``, ``"site=A,scanner=X"``) as a dict; a
    CommandError names ``option`` and the item that is not KEY=VALUE."""
    if isinstance(items, str):
        items = items.split(separator) if separator else [items]
    pairs = {}
    for item in items or []:
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise CommandError(f"{option}: expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicomteam", description="DicomTeamAnnotate: team annotation of DICOM volumes")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that part of the project is not there (yet); the rest still works
                continue
            raise
        module.register(sub)
    return parser


_NEGATIVE_VALUE = re.compile(r"^-\d[\d.,eE+-]*$")


def join_negative_values(argv: list[str]) -> list[str]:
    """``--window -600,1500`` as ``--window=-600,1500``: argparse reads a value that starts with
    '-' and is not a plain number (here a comma list) as an unknown option."""
    out: list[str] = []
    for token in argv:
        if out and _NEGATIVE_VALUE.match(token) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_values(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"dicomteam {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except (FileNotFoundError, ValueError, PermissionError) as exc:
        print(f"dicomteam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dicomteam info X | head`: the reader went away, not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
