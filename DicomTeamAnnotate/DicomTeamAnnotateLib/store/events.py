"""The append-only event log of a project folder: one JSON file per event, never edited.

``events/<time>-<uuid>.json``: the unique name plus exclusive creation (an atomic link that
fails if the name exists) make several writers safe at once, on a local disk or a network
share, without locks.  Everything else (cases, members, assignments, versions, states, the
audit log) is derived by reading these records; the server's SQL index imports them too.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.store.model import new_id, now_iso

log = logging.getLogger(__name__)

EVENT_TYPES = ("case", "member", "assign", "version", "state")
_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{32})\.json$")


def event_name(record: dict) -> str:
    stamp = record["time"].replace("-", "").replace(":", "")
    return f"{stamp}-{record['id']}.json"


def event_id_of(name: str) -> str | None:
    """The event id encoded in a record's file name (None for other files, e.g. temporaries)."""
    m = _NAME.match(name)
    return m.group(2) if m else None


class EventLog:
    """The ``events/`` folder of a project; caches parsed records (they never change)."""

    def __init__(self, project_dir):
        self.dir = Path(project_dir) / "events"
        self._cache: dict[str, dict] = {}

    def append(self, type: str, actor: str, data: dict, case_id: str | None = None) -> dict:
        """Write one new event record (exclusive creation) and return it."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        record = {"id": new_id(), "type": type, "time": now_iso(), "actor": actor, "case_id": case_id,
                  "data": data}
        name = event_name(record)
        write_json_atomic(self.dir / name, record, overwrite=False, indent=1)
        self._cache[name] = record
        return record

    def names(self) -> list[str]:
        """Names of all event records (sorted, i.e. chronological)."""
        try:
            return sorted(n for n in os.listdir(self.dir) if _NAME.match(n))
        except FileNotFoundError:
            return []

    def read(self, name: str) -> dict | None:
        """One record by file name; None (and a warning) for an unreadable file."""
        record = self._cache.get(name)
        if record is not None:
            return record
        path = self.dir / name
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("id") != event_id_of(name):
                raise ValueError("the record's id does not match its file name")
        except (OSError, ValueError) as exc:
            log.warning("%s: skipping unreadable event record (%s)", path, exc)
            return None
        self._cache[name] = record
        return record

    def records(self) -> list[dict]:
        """All records in chronological order (time, then id)."""
        out = [r for r in (self.read(n) for n in self.names()) if r is not None]
        out.sort(key=lambda r: (r["time"], r["id"]))
        return out

    def mtime_ns(self) -> int:
        try:
            return os.stat(self.dir).st_mtime_ns
        except FileNotFoundError:
            return 0
