"""What every `dicomteam` command shares: the user-facing error, option helpers, opening a store."""
from __future__ import annotations

import os

from DicomTeamAnnotateLib.store.interface import open_store
from DicomTeamAnnotateLib.store.model import StoreError, StoreUnavailable


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


def add_store_arguments(parser) -> None:
    """--store, --user, --token: where the project is and who asks."""
    parser.add_argument("--store", required=True, metavar="DIR|URL", help="project folder or server URL")
    parser.add_argument("--user", required=True, metavar="U")
    parser.add_argument("--token", default=None, metavar="T", help="server token (default: $DICOMTEAM_TOKEN)")


def store_call(fn):
    """Run ``fn()`` turning store errors into one-line user errors (exit code 3: the store is unreachable)."""
    try:
        return fn()
    except StoreUnavailable as exc:
        raise CommandError(str(exc), code=3) from None
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def open_store_from_args(args):
    """The store named by ``--store/--user/--token`` (or $DICOMTEAM_TOKEN), opened through ``store_call``."""
    return store_call(lambda: open_store(args.store, args.user, args.token or os.environ.get("DICOMTEAM_TOKEN")))
