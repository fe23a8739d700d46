"""The server's SQL index of a project folder (SQLite by default, PostgreSQL from a URL).

The event files in ``DIR/events`` stay the record of truth; the index holds the same records
in tables the server can query quickly and concurrently.  A write goes to an event file first
(exclusive creation), then into the index in one transaction; an event that reached the
folder but not the index (a crash in between, or `dicomteam project add-member` run while the
server is up) is imported on the next refresh: import is idempotent, keyed by event id.
So the server keeps no state outside the database and the project folder, and several
instances may share them.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from DicomTeamAnnotateLib.store.blobs import BlobStore
from DicomTeamAnnotateLib.store.events import EventLog, event_id_of, loads_lenient
from DicomTeamAnnotateLib.store.model import now_iso
from DicomTeamAnnotateLib.store.service import read_project_file

log = logging.getLogger(__name__)

REMOVED = "removed"  # the role column of a member who was removed (their token no longer works)
UPLOAD_SUFFIX = ".part.seg.nrrd"  # an upload's bytes (keeps the .nrrd suffix the segmentation reader expects)
CHUNKS_SUFFIX = ".chunks.jsonl"   # an upload's completed chunks (start, end, CRC32C): its offset

REFRESH_INTERVAL_S = 0.5   # admin edits made on the folder show up within this delay (or on a miss)
# The tables derived from the event files are rebuilt from them when this changes (2: members
# can expire or be removed, assignments can be withdrawn, events are found by actor).
SCHEMA_VERSION = "4"
DERIVED = ("events", "cases", "members", "assignments", "versions", "states", "changes")


def database_url(project_dir, url: str | None = None) -> str:
    """The SQLAlchemy URL: ``url`` (``postgresql://`` means psycopg 3) or DIR/index.sqlite."""
    if not url:
        return f"sqlite:///{Path(project_dir).resolve() / 'index.sqlite'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _tables(metadata):
    from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

    t = {}
    t["events"] = Table("events", metadata, Column("id", String(32), primary_key=True),
                        Column("time", String(32), nullable=False), Column("type", String(16), nullable=False),
                        Column("actor", String(128), nullable=False), Column("case_id", String(128)),
                        Column("data", Text, nullable=False), Index("ix_events_case", "case_id"),
                        Index("ix_events_time", "time", "id"), Index("ix_events_actor", "actor", "time"))
    t["cases"] = Table("cases", metadata, Column("case_id", String(128), primary_key=True),
                       Column("added", String(32), nullable=False), Column("data", Text, nullable=False))
    t["members"] = Table("members", metadata, Column("user", String(128), primary_key=True),
                         Column("role", String(16), nullable=False), Column("token_sha256", String(64)),
                         Column("added", String(32), nullable=False), Column("expires", String(32)),
                         Index("ix_members_token", "token_sha256"))
    t["assignments"] = Table("assignments", metadata, Column("case_id", String(128), primary_key=True),
                             Column("user", String(128), primary_key=True), Column("time", String(32), nullable=False),
                             Column("active", Boolean, nullable=False), Index("ix_assign_user", "user"))
    t["versions"] = Table("versions", metadata, Column("id", String(64), primary_key=True),
                          Column("case_id", String(128), nullable=False), Column("author", String(128), nullable=False),
                          Column("created", String(32), nullable=False), Column("sha256", String(64), nullable=False),
                          Column("size", BigInteger, nullable=False), Column("kind", String(16), nullable=False),
                          Column("parent", String(64)), Column("data", Text, nullable=False),
                          Index("ix_versions_case", "case_id"))
    t["states"] = Table("states", metadata, Column("id", String(32), primary_key=True),
                        Column("case_id", String(128), nullable=False), Column("annotator", String(128)),
                        Column("state", String(16), nullable=False), Column("actor", String(128), nullable=False),
                        Column("time", String(32), nullable=False), Index("ix_states_case", "case_id"))
    t["uploads"] = Table("uploads", metadata, Column("id", String(32), primary_key=True),
                         Column("case_id", String(128), nullable=False), Column("user", String(128), nullable=False),
                         Column("sha256", String(64), nullable=False), Column("size", BigInteger, nullable=False),
                         Column("created", String(32), nullable=False), Column("data", Text, nullable=False))
    # One row counting the events applied: any change to the index, by any server instance, bumps it
    # in the same transaction, so an answer computed at one count is valid while the count stays.
    t["changes"] = Table("changes", metadata, Column("id", Integer, primary_key=True, autoincrement=False),
                         Column("count", BigInteger, nullable=False))
    t["index_meta"] = Table("index_meta", metadata, Column("key", String(32), primary_key=True),
                            Column("value", String(64), nullable=False))
    return t


def make_engine(url: str):
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=16, max_overflow=32)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers never block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()
        return engine
    return create_engine(url, pool_size=16, max_overflow=32, pool_pre_ping=True)


class SqlIndex:
    """The catalog of a project for the server (see service.ProjectService for the interface)."""

    def __init__(self, project_dir, url: str | None = None, *, sync: bool = True):
        """Open (and create) the index; ``sync`` imports the folder's new event files now."""
        from sqlalchemy import MetaData

        self.project_dir = Path(project_dir)
        self._project = read_project_file(self.project_dir)
        self.events = EventLog(self.project_dir)
        self.blobs = BlobStore(self.project_dir)
        self.url = database_url(self.project_dir, url)
        # SQLite in WAL mode answers a one-row read in microseconds and never blocks it behind a
        # writer: such reads may run on the server's event loop (a network database's may not).
        self.local = self.url.startswith("sqlite")
        self.engine = make_engine(self.url)
        self.metadata = MetaData()
        self.t = _tables(self.metadata)
        self._migrate()
        self.metadata.create_all(self.engine)
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._bad: set[str] = set()
        self._checked_at = 0.0
        self._mtime = None
        if sync:
            self.refresh(force=True)

    def close(self) -> None:
        self.engine.dispose()

    def _migrate(self) -> None:
        """Drop the derived tables of an index built by another schema version (they are re-imported
        from the event files on the first refresh); upload sessions are kept."""
        from sqlalchemy import inspect, select

        names = set(inspect(self.engine).get_table_names())
        version = None
        if "index_meta" in names:
            with self.engine.connect() as conn:
                m = self.t["index_meta"]
                version = conn.execute(select(m.c.value).where(m.c.key == "schema")).scalar()
        if version != SCHEMA_VERSION and names & set(DERIVED):
            log.warning("index: schema %s -> %s, rebuilding it from the event files", version, SCHEMA_VERSION)
            for name in DERIVED:
                if name in names:
                    self.t[name].drop(self.engine)
        if version != SCHEMA_VERSION:
            self.metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                self._insert_ignore(conn, self.t["changes"], {"id": 1, "count": 0})
                self._upsert(conn, self.t["index_meta"], {"key": "schema", "value": SCHEMA_VERSION}, ("key",))

    def _upsert(self, conn, table, row: dict, keys: tuple) -> None:
        """INSERT, or UPDATE the row with the same ``keys``."""
        from sqlalchemy import and_, update

        if not self._insert_ignore(conn, table, row):
            conn.execute(update(table).where(and_(*(table.c[k] == row[k] for k in keys))).values(**row))

    # ----- import of the folder's event files ---------------------------------------------------
    def refresh_due(self) -> bool:
        """Whether the next ``refresh()`` would look at the event folder (it does every REFRESH_INTERVAL_S)."""
        return time.time() - self._checked_at >= REFRESH_INTERVAL_S

    def refresh(self, force: bool = False) -> int:
        """Import event files the index lacks; returns how many were imported."""
        now = time.time()
        if not force and now - self._checked_at < REFRESH_INTERVAL_S:
            return 0
        with self._lock:
            mtime = self.events.mtime_ns()
            # A directory's mtime has coarse granularity: keep listing while it changed recently.
            if not force and mtime == self._mtime and now - mtime / 1e9 > 2.0:
                self._checked_at = now
                return 0
            names = self.events.names()
            unknown = {event_id_of(n): n for n in names if event_id_of(n) not in self._known and n not in self._bad}
            if unknown:
                self._known |= self._ids_in_index(list(unknown))
            todo = []
            for event_id, name in unknown.items():
                if event_id not in self._known:
                    record = self.events.read(name)
                    if record is None:
                        self._bad.add(name)  # malformed: skipped (and named by `verify`), not re-read
                    else:
                        todo.append(record)
            todo.sort(key=lambda r: (r["time"], r["id"]))
            for record in todo:
                self.apply(record)
            self._mtime, self._checked_at = mtime, now
            if todo:
                log.info("index: imported %d event(s) from %s", len(todo), self.events.dir)
            return len(todo)

    def _ids_in_index(self, ids: list[str]) -> set[str]:
        from sqlalchemy import select

        ev = self.t["events"]
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                batch = ids[start:start + 500]
                found |= {r[0] for r in conn.execute(select(ev.c.id).where(ev.c.id.in_(batch)))}
        return found

    def _insert_ignore(self, conn, table, row) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        # RETURNING, not rowcount: with psycopg 3 the rowcount of this statement reads -1 (so a
        # member's new token or a withdrawn assignment was taken for an insert and never applied).
        key = list(table.primary_key.columns)[0]
        result = conn.execute(insert(table).values(**row).on_conflict_do_nothing().returning(key))
        return result.first() is not None

    def apply(self, record: dict) -> bool:
        """Put one event into the index (once: a known event id is a no-op)."""
        from sqlalchemy import select, update

        t = self.t
        data = record.get("data") or {}
        with self.engine.begin() as conn:
            if not self._insert_ignore(conn, t["events"], {
                    "id": record["id"], "time": record["time"], "type": record["type"], "actor": record["actor"],
                    "case_id": record.get("case_id"), "data": json.dumps(data)}):
                self._known.add(record["id"])
                return False
            conn.execute(update(t["changes"]).where(t["changes"].c.id == 1).values(count=t["changes"].c.count + 1))
            kind = record["type"]
            if kind == "case":
                self._insert_ignore(conn, t["cases"], {"case_id": data["case_id"], "added": record["time"],
                                                        "data": json.dumps({**data, "added": record["time"],
                                                                            "added_by": record["actor"]})})
            elif kind == "member":
                removed = bool(data.get("removed"))
                row = {"user": data["user"], "role": REMOVED if removed else data.get("role") or REMOVED,
                       "token_sha256": None if removed else data.get("token_sha256"),
                       "expires": data.get("expires"), "added": record["time"]}
                if not self._insert_ignore(conn, t["members"], row):
                    m = t["members"]
                    current = conn.execute(select(m.c.added).where(m.c.user == data["user"])).scalar()
                    if current is None or current <= record["time"]:  # the latest record wins
                        conn.execute(update(m).where(m.c.user == data["user"]).values(**row))
            elif kind in ("assign", "unassign"):
                row = {"case_id": data["case_id"], "user": data["user"], "time": record["time"],
                       "active": kind == "assign"}
                if not self._insert_ignore(conn, t["assignments"], row):
                    a = t["assignments"]
                    key = (a.c.case_id == data["case_id"]) & (a.c.user == data["user"])
                    current = conn.execute(select(a.c.time).where(key)).scalar()
                    if current is None or current <= record["time"]:  # the latest record wins
                        conn.execute(update(a).where(key).values(**row))
            elif kind == "version":
                self._insert_ignore(conn, t["versions"], {
                    "id": data["id"], "case_id": data["case_id"], "author": data["author"],
                    "created": data["created"], "sha256": data["sha256"], "size": data["size"],
                    "kind": data["kind"], "parent": data.get("parent"), "data": json.dumps(data)})
            elif kind == "state":
                self._insert_ignore(conn, t["states"], {
                    "id": record["id"], "case_id": data["case_id"], "annotator": data.get("annotator"),
                    "state": data["state"], "actor": record["actor"], "time": record["time"]})
        self._known.add(record["id"])
        return True

    def stamp(self) -> int:
        """How many events the index holds: a cheap exact test of "anything changed?" for caches.

        A plain DBAPI cursor on a pooled connection: this runs on every request, and SQLAlchemy's
        statement layer would cost more than the query.
        """
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute("SELECT count FROM changes WHERE id = 1")
            row = cur.fetchone()
            cur.close()
        finally:
            conn.close()
        return int(row[0]) if row else 0

    # ----- writes -------------------------------------------------------------------------------
    def add_event(self, type, actor, data, case_id=None) -> dict:
        """Write the event file (the record of truth), then index it."""
        record = self.events.append(type, actor, data, case_id=case_id)
        self.apply(record)
        return record

    def add_version(self, actor, record) -> dict:
        self.add_event("version", actor, record, case_id=record["case_id"])
        return self.version(record["id"])

    # ----- reads (the catalog interface) ------------------------------------------------------
    def _rows(self, query) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def project(self) -> dict:
        return self._project

    def member(self, user):
        from sqlalchemy import select

        m = self.t["members"]
        rows = self._rows(select(m).where(m.c.user == user, m.c.role != REMOVED))
        return dict(rows[0]._mapping) if rows else None

    def member_by_token(self, token_sha256):
        from sqlalchemy import select

        m = self.t["members"]
        rows = self._rows(select(m).where(m.c.token_sha256 == token_sha256, m.c.role != REMOVED))
        return dict(rows[0]._mapping) if rows else None

    def members(self) -> list[dict]:
        from sqlalchemy import select

        m = self.t["members"]
        return [dict(r._mapping) for r in self._rows(select(m).where(m.c.role != REMOVED))]

    def case(self, case_id):
        from sqlalchemy import select

        c = self.t["cases"]
        rows = self._rows(select(c.c.data).where(c.c.case_id == case_id))
        return loads_lenient(rows[0][0]) if rows else None

    def cases(self, case_ids=None) -> list[dict]:
        """Every case, or those whose id is in ``case_ids``."""
        from sqlalchemy import select

        c = self.t["cases"]
        q = select(c.c.data)
        if case_ids is not None:
            q = q.where(c.c.case_id.in_(list(case_ids)))
        return [loads_lenient(r[0]) for r in self._rows(q)]

    def version_heads(self, case_ids=None) -> list[dict]:
        """The versions (of the cases in ``case_ids``) as id, case_id, author, created, kind, parent only:
        what states, conflicts and counts are made of, read without decoding each record's JSON."""
        from sqlalchemy import select

        v = self.t["versions"]
        q = select(v.c.id, v.c.case_id, v.c.author, v.c.created, v.c.kind, v.c.parent)
        if case_ids is not None:
            q = q.where(v.c.case_id.in_(list(case_ids)))
        return [dict(r._mapping) for r in self._rows(q)]

    def assignments(self, case_id=None, user=None, case_ids=None) -> list[dict]:
        from sqlalchemy import select

        a = self.t["assignments"]
        q = select(a.c.case_id, a.c.user, a.c.time).where(a.c.active.is_(True))
        if case_id is not None:
            q = q.where(a.c.case_id == case_id)
        if user is not None:
            q = q.where(a.c.user == user)
        if case_ids is not None:
            q = q.where(a.c.case_id.in_(list(case_ids)))
        return [dict(r._mapping) for r in self._rows(q)]

    def versions(self, case_id=None) -> list[dict]:
        from sqlalchemy import select

        v = self.t["versions"]
        q = select(v.c.data)
        if case_id is not None:
            q = q.where(v.c.case_id == case_id)
        return [loads_lenient(r[0]) for r in self._rows(q)]

    def prediction_versions(self, case_ids=None) -> list[dict]:
        """The full records of the predictions (of the cases in ``case_ids``): the worklist decodes these alone."""
        from sqlalchemy import select

        v = self.t["versions"]
        q = select(v.c.data).where(v.c.kind == "prediction")
        if case_ids is not None:
            q = q.where(v.c.case_id.in_(list(case_ids)))
        return [loads_lenient(r[0]) for r in self._rows(q)]

    def version(self, version_id):
        from sqlalchemy import select

        v = self.t["versions"]
        rows = self._rows(select(v.c.data).where(v.c.id == version_id))
        return loads_lenient(rows[0][0]) if rows else None

    def state_events(self, case_id=None, case_ids=None) -> list[dict]:
        from sqlalchemy import select

        s = self.t["states"]
        q = select(s)
        if case_id is not None:
            q = q.where(s.c.case_id == case_id)
        if case_ids is not None:
            q = q.where(s.c.case_id.in_(list(case_ids)))
        return [dict(r._mapping) for r in self._rows(q)]

    def audit(self, case_id=None, actor=None, after=None, limit=None) -> list[dict]:
        """Events oldest first, optionally of one case and one actor, after event ``after``, at most ``limit``
        (filtered and paged in the query: an annotator's few rows never cost a load of the whole log)."""
        from sqlalchemy import and_, or_, select

        e = self.t["events"]
        q = select(e).order_by(e.c.time, e.c.id)
        if case_id is not None:
            q = q.where(e.c.case_id == case_id)
        if actor is not None:
            q = q.where(e.c.actor == actor)
        if after is not None:
            at = select(e.c.time).where(e.c.id == after).scalar_subquery()
            q = q.where(or_(e.c.time > at, and_(e.c.time == at, e.c.id > after)))
        if limit is not None:
            q = q.limit(limit)
        return [{**dict(r._mapping), "data": loads_lenient(r.data)} for r in self._rows(q)]

    # ----- upload sessions (server only) ---------------------------------------------------------
    def uploads_dir(self) -> Path:
        path = self.project_dir / "uploads"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def create_upload(self, upload_id, case_id, user, sha256, size, data: dict) -> dict:
        row = {"id": upload_id, "case_id": case_id, "user": user, "sha256": sha256, "size": int(size),
               "created": now_iso(), "data": json.dumps(data)}
        with self.engine.begin() as conn:
            conn.execute(self.t["uploads"].insert().values(**row))
        return {**row, "data": data}

    def count_uploads(self, user: str) -> int:
        """How many unfinished upload sessions ``user`` holds."""
        from sqlalchemy import func, select

        u = self.t["uploads"]
        return self._rows(select(func.count()).select_from(u).where(u.c.user == user))[0][0]

    def upload(self, upload_id):
        from sqlalchemy import select

        u = self.t["uploads"]
        rows = self._rows(select(u).where(u.c.id == upload_id))
        if not rows:
            return None
        row = dict(rows[0]._mapping)
        row["data"] = loads_lenient(row["data"])
        return row

    def purge_uploads(self, max_age_s: float = 7 * 24 * 3600) -> int:
        """Drop upload sessions (and their partial files) older than ``max_age_s``; returns how many."""
        import datetime

        from sqlalchemy import select

        cutoff = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=max_age_s))
        stamp = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        u = self.t["uploads"]
        old = [r[0] for r in self._rows(select(u.c.id).where(u.c.created < stamp))]
        for upload_id in old:
            self.delete_upload(upload_id)
        return len(old)

    def delete_upload(self, upload_id) -> None:
        from sqlalchemy import delete

        with self.engine.begin() as conn:
            conn.execute(delete(self.t["uploads"]).where(self.t["uploads"].c.id == upload_id))
        for suffix in (UPLOAD_SUFFIX, CHUNKS_SUFFIX):
            try:
                os.unlink(self.uploads_dir() / f"{upload_id}{suffix}")
            except FileNotFoundError:
                pass
