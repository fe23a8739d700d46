"""The `dicomteam` command: one entry point, one registry of subcommands.

The core's own commands are listed in ``CORE_COMMANDS``; the other modules' commands plug in
through the ``dicomteam.commands`` entry-point group (pyproject.toml), so the core never imports
a module Lib. Each registered module exposes ``register(subparsers)`` that adds its subcommands
with ``set_defaults(func=...)``; ``func(args)`` returns the exit code. Registration must stay
cheap: heavy imports (torch, monai, fastapi) happen inside the command functions.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from importlib.metadata import entry_points

from DicomTeamAnnotateLib.cli import effort, info, ingest, pacs, store
from DicomTeamAnnotateLib.cli.common import CommandError

# The core's commands, in the order of `dicomteam --help`; plug-ins follow, sorted by name.
CORE_COMMANDS = (ingest, info, store, effort, pacs)
COMMAND_GROUP = "dicomteam.commands"


def plugin_registrars() -> list:
    """``register`` functions of the installed modules' commands (entry points), sorted by name."""
    return [ep.load() for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: ep.name)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicomteam", description="DicomTeamAnnotate: team annotation of DICOM volumes")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in CORE_COMMANDS:
        module.register(sub)
    for register in plugin_registrars():
        register(sub)
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
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
