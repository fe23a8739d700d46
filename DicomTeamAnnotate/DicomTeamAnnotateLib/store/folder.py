"""The folder store: a project directory on a local disk or a shared network drive.

Layout (shared with the server, which adds its SQL index)::

    DIR/project.json                 settings, written once by `project init`
    DIR/events/<time>-<uuid>.json    the append-only event log (one file per event)
    DIR/blobs/sha256/ab/<sha256>     content-addressed images and .seg.nrrd versions
    DIR/tmp/                         temporary files (same file system, for atomic links)

No file is ever edited in place, so several writers (processes, machines on a share) are
safe at once.  The user is trusted by name (anyone who can write the folder can claim any
name); roles, assignments and blinding are still applied by the API.  Use the server when
identities must be enforced.
"""
from __future__ import annotations

from pathlib import Path

from DicomTeamAnnotateLib.store.blobs import BlobStore
from DicomTeamAnnotateLib.store.events import EventLog
from DicomTeamAnnotateLib.store.model import NotFound
from DicomTeamAnnotateLib.store.service import ProjectService, fetch_reference_case_image, read_project_file


class FolderCatalog:
    """The records of one project folder, derived from its event files (cached, refreshed on change)."""

    def __init__(self, project_dir):
        self.project_dir = Path(project_dir)
        self._project = read_project_file(self.project_dir)
        self.events = EventLog(self.project_dir)
        self.blobs = BlobStore(self.project_dir)
        self._names: list[str] | None = None
        self._rebuild([])

    # ----- derivation -----------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Re-derive the records when event files were added (by anyone)."""
        names = self.events.names()
        if names != self._names:
            self._names = names
            self._rebuild(self.events.records())

    def _rebuild(self, records: list[dict]) -> None:
        self._cases, self._members, self._assign, self._versions = {}, {}, {}, {}
        self._states, self._audit = [], records
        for r in records:
            data, kind = r.get("data") or {}, r.get("type")
            if kind == "case":
                self._cases.setdefault(data["case_id"], {**data, "added": r["time"], "added_by": r["actor"]})
            elif kind == "member":  # the latest record wins (a removal, a new token, a new role)
                self._members[data["user"]] = {**data, "added": r["time"]}
            elif kind in ("assign", "unassign"):  # the latest of assign/unassign wins
                self._assign[(data["case_id"], data["user"])] = {"case_id": data["case_id"], "user": data["user"],
                                                                 "time": r["time"], "active": kind == "assign"}
            elif kind == "version":
                self._versions.setdefault(data["id"], data)  # a reused id never replaces the first version
            elif kind == "state":
                self._states.append({**data, "id": r["id"], "time": r["time"], "actor": r["actor"]})

    # ----- the catalog interface (see service.ProjectService) ----------------------------------
    def project(self) -> dict:
        return self._project

    def member(self, user):
        m = self._members.get(user)
        return None if m is None or m.get("removed") else m

    def member_by_token(self, token_sha256):
        return next((m for m in self.members() if m.get("token_sha256") == token_sha256), None)

    def members(self) -> list[dict]:
        return [m for m in self._members.values() if not m.get("removed")]

    def case(self, case_id):
        return self._cases.get(case_id)

    def cases(self, case_ids=None) -> list[dict]:
        """Every case, or those whose id is in ``case_ids``."""
        if case_ids is None:
            return list(self._cases.values())
        return [self._cases[c] for c in case_ids if c in self._cases]

    def assignments(self, case_id=None, user=None, case_ids=None) -> list[dict]:
        wanted = None if case_ids is None else set(case_ids)
        return [a for a in self._assign.values() if a["active"]
                and (case_id is None or a["case_id"] == case_id) and (user is None or a["user"] == user)
                and (wanted is None or a["case_id"] in wanted)]

    def versions(self, case_id=None) -> list[dict]:
        return [v for v in self._versions.values() if case_id is None or v["case_id"] == case_id]

    def version_heads(self, case_ids=None) -> list[dict]:
        """The versions (of the cases in ``case_ids``) with at least id, case_id, author, created, kind, parent."""
        wanted = None if case_ids is None else set(case_ids)
        return [v for v in self._versions.values() if wanted is None or v["case_id"] in wanted]

    def prediction_versions(self, case_ids=None) -> list[dict]:
        """The full records of the predictions (of the cases in ``case_ids``)."""
        wanted = None if case_ids is None else set(case_ids)
        return [v for v in self._versions.values() if v["kind"] == "prediction"
                and (wanted is None or v["case_id"] in wanted)]

    def version(self, version_id):
        return self._versions.get(version_id)

    def state_events(self, case_id=None, case_ids=None) -> list[dict]:
        wanted = None if case_ids is None else set(case_ids)
        return [e for e in self._states if (case_id is None or e["case_id"] == case_id)
                and (wanted is None or e["case_id"] in wanted)]

    def audit(self, case_id=None, actor=None, after=None, limit=None) -> list[dict]:
        """Events oldest first, optionally of one case and one actor, after event ``after``, at most ``limit``."""
        rows = [r for r in self._audit if (case_id is None or r.get("case_id") == case_id)
                and (actor is None or r["actor"] == actor)]
        if after is not None:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1:] if after in ids else []
        return rows[:limit] if limit is not None else rows

    def add_event(self, type, actor, data, case_id=None) -> dict:
        record = self.events.append(type, actor, data, case_id=case_id)
        self.refresh()
        return record

    def add_version(self, actor, record) -> dict:
        self.add_event("version", actor, record, case_id=record["case_id"])
        return self._versions[record["id"]]


class FolderStore(ProjectService):
    """The Store interface on a project folder (see interface.Store)."""

    def __init__(self, project_dir, user: str):
        project_dir = Path(project_dir)
        if not project_dir.is_dir():
            raise NotFound(f"{project_dir}: no such project folder")
        super().__init__(FolderCatalog(project_dir), user)
        self.location = str(project_dir.resolve())

    def fetch_image(self, case_id, dest_dir, progress=None) -> Path:
        """Copy the case image (verified by sha256) into ``dest_dir``; returns its path.

        A reference-mode case's image is fetched from its PACS instead (cached locally).
        """
        case = self.get_case(case_id)
        if case.get("reference") is not None:
            return fetch_reference_case_image(case, dest_dir, progress=progress)
        blob, name, sha = self.image_blob(case_id)
        return self.catalog.blobs.copy_to(sha, Path(dest_dir) / name, progress=progress)

    def fetch_version(self, version_id, dest_path, progress=None) -> Path:
        """Copy a version's .seg.nrrd (verified by sha256) to ``dest_path`` (a file or a folder)."""
        blob, name, sha = self.version_blob(version_id)
        dest = Path(dest_path)
        if dest.is_dir():
            dest = dest / name
        return self.catalog.blobs.copy_to(sha, dest, progress=progress)

    def close(self) -> None:
        """Nothing to release (symmetry with the HTTP store)."""
