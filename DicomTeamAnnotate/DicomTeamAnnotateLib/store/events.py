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

EVENT_TYPES = ("case", "member", "assign", "unassign", "version", "state")
_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{32})\.json$")
# The fields each event type needs (a record without them is skipped by every reader, and
# `dicomteam project verify` names its file): one bad record never breaks a listing.
REQUIRED = {"case": ("case_id",), "member": ("user",), "assign": ("case_id", "user"), "unassign": ("case_id", "user"),
            "version": ("id", "case_id", "author", "created", "sha256", "size", "kind"),
            "state": ("case_id", "state")}


def loads_lenient(text):
    """JSON as written by any version of this project: NaN/Infinity (which older servers let into
    records) read as null, so a stored record never makes a later answer unencodable."""
    return json.loads(text, parse_constant=lambda _name: None)


def record_problem(record) -> str | None:
    """Why ``record`` cannot be used (None when it can)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key in ("id", "type", "time", "actor"):
        if not isinstance(record.get(key), str):
            return f"field {key!r} missing or not text"
    if record["type"] not in EVENT_TYPES:
        return f"unknown event type {record['type']!r}"
    data = record.get("data")
    if not isinstance(data, dict):
        return "field 'data' missing or not an object"
    missing = [k for k in REQUIRED[record["type"]] if data.get(k) is None]
    if missing:
        return f"a {record['type']} event without {', '.join(missing)}"
    if record["type"] == "version" and not isinstance(data["size"], int):
        return "a version event whose size is not an integer"
    return None


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
        self.claims_dir = Path(project_dir) / "claims" / "versions"
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
        """One record by file name; None (and a warning) for an unreadable or malformed file."""
        record = self._cache.get(name)
        if record is not None:
            return record
        problem = self.problem(name)
        if problem is not None:
            log.warning("%s: skipping unreadable event record (%s)", self.dir / name, problem)
            return None
        return self._cache[name]

    def problem(self, name: str) -> str | None:
        """Why the event file ``name`` cannot be read (None when it can; the record is then cached)."""
        if name in self._cache:
            return None
        try:
            record = loads_lenient((self.dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # a truncated file, a disk error
            return f"unreadable ({exc})"
        problem = record_problem(record)
        if problem is None and record.get("id") != event_id_of(name):
            problem = "the record's id does not match its file name"
        if problem is None:
            self._cache[name] = record
        return problem

    def claim_version(self, record: dict) -> dict:
        """Reserve ``record['id']`` for this version record atomically; returns the record that holds it.

        Exclusive creation of ``claims/versions/<id>.json`` (a link that fails if the name exists):
        of several pushes with one version id, at once, from any process or machine, exactly one
        gets its own record back; the others get the winner's and must refuse or reuse it.
        """
        path = self.claims_dir / f"{record['id']}.json"
        try:
            write_json_atomic(path, record, overwrite=False, indent=1)
            return record
        except FileExistsError:
            return loads_lenient(path.read_text(encoding="utf-8"))

    def claims(self) -> dict:
        """{version id: claimed record} of every claim (for `verify`)."""
        out = {}
        for path in sorted(self.claims_dir.glob("*.json")) if self.claims_dir.is_dir() else []:
            try:
                out[path.stem] = loads_lenient(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                out[path.stem] = None
        return out

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
