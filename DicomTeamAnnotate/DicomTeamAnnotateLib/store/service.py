"""The project's rules, once: what a member may see and do, and how a push is checked and kept.

``ProjectService(catalog, user)`` answers every Store call for one user on top of a *catalog*
(the records of one project: ``folder.FolderCatalog`` reads the event files,
``sqlindex.SqlIndex`` the server's SQL index).  The folder store is this service plus file
copies; the server wraps it in HTTP.  So both stores behave the same by construction, and one
contract test suite checks both.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.hashing import sha256_file
from DicomTeamAnnotateLib.io.seg_nrrd import uploaded_seg_nrrd_geometry
from DicomTeamAnnotateLib.pacs import PacsError
from DicomTeamAnnotateLib.pacs.reference import fetch_case_image
from DicomTeamAnnotateLib.store import auth
from DicomTeamAnnotateLib.store.cache import Progress
from DicomTeamAnnotateLib.store.model import (
    ANNOTATOR_STATES,
    KINDS,
    STATES,
    Conflict,
    GeometryMismatch,
    InvalidInput,
    NotFound,
    StoreError,
    Unauthorized,
    check_choice,
    check_filename,
    check_id,
    check_message,
    check_meta,
    check_prediction_meta,
    check_version_id,
    flag_conflicts,
    new_version_id,
    now_iso,
    prediction_summary,
    version_record,
)
from DicomTeamAnnotateLib.store.states import annotator_state, case_override, case_state, later_state

log = logging.getLogger(__name__)

PROJECT_FIELDS = ("name", "labels", "blind", "window_preset")


def fresh(method):
    """Refresh the catalog first, so that every call sees what other writers added meanwhile."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.request_scoped:  # the server resolved the member for this very request
            return method(self, *args, **kwargs)
        self.catalog.refresh()
        member = self.catalog.member(self.user)
        if member is None:
            raise Unauthorized(f"{self.user!r} is no longer a member of this project")
        self.role = member["role"]  # an admin may have changed it since this store was opened
        return method(self, *args, **kwargs)

    return wrapper


def read_project_file(project_dir) -> dict:
    """The project's settings from ``project.json``; NotFound when the folder is no project."""
    path = Path(project_dir) / "project.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{project_dir}: not a DicomTeam project (no project.json; run "
                       "`dicomteam project init`)") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: unreadable project file ({exc})") from None
    return doc


def public_case(case: dict) -> dict:
    """The case fields a client sees (``reference``: the PACS location of a reference-mode case, else None;
    ``attributes``: site, scanner, ... for stratified splits, {} for cases added before they existed)."""
    keys = ("case_id", "patient_id", "image_sha256", "image_size", "image_name", "geometry", "added", "source",
            "reference")
    return {**{k: case.get(k) for k in keys}, "attributes": dict(case.get("attributes") or {})}


def fetch_reference_case_image(case: dict, dest_dir, *, cache_dir=None, progress=None) -> Path:
    """The image of a reference-mode case, fetched from its PACS into ``dest_dir`` (a StoreError on failure).

    The project holds no pixels for such a case, so every store (folder, or the HTTP client,
    since the server cannot serve them either) fetches them itself; see pacs.reference.
    """
    try:
        return fetch_case_image(case, dest_dir, cache_dir=cache_dir, progress=progress)
    except PacsError as exc:
        raise StoreError(f"case {case['case_id']}: its image lives in the PACS (reference mode) and could not be "
                         f"fetched: {exc}") from None


class ProjectService:
    """Every Store operation for one member of one project."""

    def __init__(self, catalog, user: str, role: str | None = None):
        """``role``: the member's role as the caller resolved it just now (the server, per request);
        then the catalog is not asked again during this service's short life."""
        self.catalog = catalog
        self.user = check_id(user, "user name")
        self.request_scoped = role is not None
        if role is not None:
            self.role = role
            return
        catalog.refresh()
        member = catalog.member(user)
        if member is None:
            catalog.refresh(force=True)  # added a moment ago, maybe by an admin on the folder
            member = catalog.member(user)
        if member is None:
            raise Unauthorized(f"{user!r} is not a member of this project (ask an admin: "
                               "`dicomteam project add-member`)")
        self.role = member["role"]

    # ----- project ----------------------------------------------------------------------------
    @fresh
    def project(self) -> dict:
        """Name, label ontology, blind flag and window preset."""
        doc = self.catalog.project()
        return {k: doc.get(k) for k in PROJECT_FIELDS}

    @property
    def blind(self) -> bool:
        return bool(self.catalog.project().get("blind", True))

    @fresh
    def whoami(self) -> dict:
        return {"user": self.user, "role": self.role}

    @fresh
    def members(self) -> list[dict]:
        """Members and roles (an annotator sees only themself)."""
        members = [{"user": m["user"], "role": m["role"]} for m in self.catalog.members()]
        if not auth.is_staff(self.role):
            members = [m for m in members if m["user"] == self.user]
        return sorted(members, key=lambda m: m["user"])

    # ----- cases ------------------------------------------------------------------------------
    def _case(self, case_id) -> dict:
        """A case the user may reach: Forbidden for an annotator's unassigned OR nonexistent case (the
        same answer: no existence leak), NotFound for staff asking for a nonexistent one."""
        check_id(case_id, "case id")
        staff = auth.is_staff(self.role)
        case = self.catalog.case(case_id)
        if case is None or not (staff or self.user in self._assigned(case_id)):
            self.catalog.refresh(force=True)  # added or assigned a moment ago, maybe on the folder
            case = self.catalog.case(case_id)
        if not staff:
            auth.check_case_access(self.role, self.user, case_id, self._assigned(case_id) if case else [])
        if case is None:
            raise NotFound(f"no case {case_id!r} in this project")
        return case

    def _readable_version(self, version_id, what: str = "version") -> dict:
        """A version record the user may read (NotFound when no such id; Forbidden naming nothing else)."""
        check_version_id(version_id, f"{what} id")
        version = self.catalog.version(version_id)
        if version is None:
            raise NotFound(f"no {what} {version_id!r}")
        assigned = auth.is_staff(self.role) or self.user in self._assigned(version["case_id"])
        auth.check_version_access(self.role, self.user, self.blind, version, assigned)
        return version

    def _redacted(self, case_id, rows: list[dict]) -> list[dict]:
        """``rows`` (visible to the user) without the ids and hashes of versions they may not read."""
        if auth.is_staff(self.role) or not self.blind:
            return rows
        return auth.redact_versions(self.role, self.user, True, rows, self.catalog.versions(case_id=case_id))

    def _assigned(self, case_id) -> list[str]:
        return sorted(a["user"] for a in self.catalog.assignments(case_id=case_id))

    @fresh
    def list_cases(self) -> list[dict]:
        """The cases the user may reach (an annotator: those assigned to them), by case id."""
        cases = self.catalog.cases()
        if not auth.is_staff(self.role):
            mine = {a["case_id"] for a in self.catalog.assignments(user=self.user)}
            cases = [c for c in cases if c["case_id"] in mine]
        return sorted((public_case(c) for c in cases), key=lambda c: c["case_id"])

    @fresh
    def get_case(self, case_id) -> dict:
        return public_case(self._case(case_id))

    def _own_rows(self, case_id, fetch, owner_field: str) -> list[dict]:
        """``fetch(case_id=case_id)`` after the case check; an annotator keeps only rows whose ``owner_field`` is them."""
        if case_id is not None:
            self._case(case_id)
        rows = fetch(case_id=case_id)
        if not auth.is_staff(self.role):
            rows = [r for r in rows if r[owner_field] == self.user]
        return rows

    @fresh
    def assignments(self, case_id=None) -> list[dict]:
        """(case_id, user) pairs; an annotator sees only their own."""
        rows = self._own_rows(case_id, self.catalog.assignments, "user")
        return sorted(({"case_id": a["case_id"], "user": a["user"]} for a in rows),
                      key=lambda a: (a["case_id"], a["user"]))

    @fresh
    def image_blob(self, case_id) -> tuple[Path, str, str]:
        """(blob path, download name, sha256) of a case image."""
        case = self._case(case_id)
        if case.get("reference") is not None or not case.get("image_sha256"):
            where = (case.get("reference") or {}).get("url", "its PACS")
            raise NotFound(f"case {case_id!r} is a reference to a PACS series: the project holds no pixels for it; "
                           f"fetch the series from {where} (Store.fetch_image does)")
        return self.catalog.blobs.require(case["image_sha256"]), case["image_name"], case["image_sha256"]

    # ----- versions ---------------------------------------------------------------------------
    def _flagged(self, case_id) -> list[dict]:
        return flag_conflicts(self.catalog.versions(case_id=case_id))

    def _with_conflict(self, record: dict) -> dict:
        """``record`` with its ``conflict`` flag, derived from the case's version heads (no record decoded)."""
        heads = flag_conflicts(self.catalog.version_heads(case_ids=[record["case_id"]]))
        return {**record, "conflict": next(v["conflict"] for v in heads if v["id"] == record["id"])}

    @fresh
    def list_versions(self, case_id, author=None, after=None) -> list[dict]:
        """Versions of a case in push order, with ``conflict``; blinding applied.

        ``after``: a version id; only the versions listed after it (the next page of a listing).
        """
        self._case(case_id)
        if author is not None:
            check_id(author, "author")
        if after is not None:
            check_version_id(after, "'after' version id")
        blind = self.blind
        auth.check_author_listing(self.role, self.user, blind, author)
        rows = [v for v in self._flagged(case_id)
                if auth.version_visible(self.role, self.user, blind, v) and (author is None or v["author"] == author)]
        if after is not None:
            ids = [v["id"] for v in rows]
            rows = rows[ids.index(after) + 1:] if after in ids else []
        return self._redacted(case_id, rows)

    @fresh
    def get_version(self, version_id) -> dict:
        """One version's record (Forbidden for a version the user may not read, naming nothing else)."""
        version = self._readable_version(version_id)
        return self._redacted(version["case_id"], [self._with_conflict(version)])[0]

    @fresh
    def latest_version(self, case_id, author=None, kind=None) -> dict | None:
        """The latest version by ``author`` (default: me; for ``kind`` adjudicated or prediction: anyone), or None."""
        if author is None and kind not in ("adjudicated", "prediction"):
            author = self.user
        rows = [v for v in self.list_versions(case_id, author=author) if kind is None or v["kind"] == kind]
        return rows[-1] if rows else None

    @fresh
    def version_blob(self, version_id) -> tuple[Path, str, str]:
        """(blob path, download name, sha256) of a version's .seg.nrrd."""
        v = self.get_version(version_id)
        return self.catalog.blobs.require(v["sha256"]), f"{v['case_id']}.{v['id']}.seg.nrrd", v["sha256"]

    @fresh
    def prepare_push(self, case_id, *, parent=None, kind="annotation", version_id=None, message="",
                     meta=None) -> dict | None:
        """Check a push before its content arrives; the existing version when it is a retry."""
        case = self._case(case_id)
        check_choice(kind, KINDS, "kind")
        auth.check_push_kind(self.role, kind)
        check_message(message)
        check_meta(meta)
        if kind == "prediction":
            check_prediction_meta(meta)
        if not auth.is_staff(self.role):
            override = self._override(case_id)
            if override:
                raise Conflict(f"case {case_id!r} is {override.replace('_', ' ')}; a reviewer must reopen it "
                               "before annotators push again")
        if parent is not None:
            p = self._readable_version(parent, "parent version")
            if p["case_id"] != case["case_id"]:
                raise NotFound(f"parent version {parent!r} is not a version of case {case_id!r}")
        if version_id is not None:
            check_version_id(version_id)
            existing = self.catalog.version(version_id)
            if existing is not None:
                return existing
        return None

    @fresh
    def push_version(self, case_id, seg_path, parent=None, message="", kind="annotation", meta=None, *,
                     version_id=None, filename=None, sha256=None, size=None, move=False, keep_source=False,
                     verified=False, progress=None) -> dict:
        """Check and keep a new immutable version; returns its record (with ``conflict``).

        ``version_id`` chosen by the client makes a retry idempotent: the same id with the same
        content returns the existing version, with other content it is a Conflict.  ``verified``:
        the caller has hashed the bytes already and they match ``sha256`` (the server's upload path).
        """
        seg_path = Path(seg_path)
        existing = self.prepare_push(case_id, parent=parent, kind=kind, version_id=version_id,
                                     message=message, meta=meta)
        filename = check_filename(filename or seg_path.name)
        if existing is not None:
            return self._same_version(existing, case_id, seg_path, sha256)
        case = self.catalog.case(case_id)
        check_segmentation_fits(seg_path, case, filename)
        bar = Progress(progress, seg_path.stat().st_size, filename)
        blobs, in_place = self.catalog.blobs, move or keep_source
        try:
            staged, sha, nbytes = blobs.stage(seg_path, in_place=in_place, expected_sha256=sha256, expected_size=size,
                                              verified=verified, progress=bar.add)
        finally:
            bar.close()
        try:
            record = version_record(version_id=version_id or new_version_id(), case_id=case_id, author=self.user,
                                    parent=parent, created=now_iso(), message=check_message(message), sha256=sha,
                                    size=nbytes, kind=kind, meta=check_meta(meta), filename=filename)
            # The version id is claimed atomically before the blob and the event appear: of two pushes
            # with one id (two users at once), one wins and the other gets a Conflict and leaves nothing.
            held = self.catalog.events.claim_version(record)
            if held != record:
                if held["author"] != self.user or held["case_id"] != case_id or held["sha256"] != sha:
                    raise Conflict(f"version id {record['id']!r} is already used for other content")
                record = held  # this push again, after an attempt that stopped before its event
            blobs.publish(staged, sha, keep=keep_source)
        finally:
            if not in_place:
                staged.unlink(missing_ok=True)
        if self.catalog.version(record["id"]) is not None:  # (the retry of a push that was recorded)
            return self._with_conflict(self.catalog.version(record["id"]))
        stored = self.catalog.add_version(self.user, record)
        log.info("%s pushed version %s of case %s (%d bytes)", self.user, stored["id"], case_id, nbytes)
        return self._with_conflict(stored)

    def _same_version(self, existing, case_id, seg_path, sha256) -> dict:
        sha = sha256 or sha256_file(seg_path)[0]
        if existing["case_id"] != case_id or existing["author"] != self.user or existing["sha256"] != sha:
            raise Conflict(f"version id {existing['id']!r} is already used for other content")
        return self._with_conflict(existing)

    # ----- states -----------------------------------------------------------------------------
    def _override(self, case_id):
        return case_override(self.catalog.state_events(case_id=case_id), self.catalog.versions(case_id=case_id))

    @fresh
    def states(self, case_id) -> dict:
        """{'case_id', 'state', 'override', 'annotators': {user: state}} (an annotator sees only their own;
        in a blind project the case's state is theirs too: the others' progress is not theirs to see)."""
        self._case(case_id)
        out = case_state(self.catalog.state_events(case_id=case_id), self.catalog.versions(case_id=case_id),
                         self._assigned(case_id))
        if not auth.is_staff(self.role):
            mine = out["annotators"].get(self.user, "todo")
            out["annotators"] = {self.user: mine} if self.user in out["annotators"] else {}
            if self.blind:
                out["state"] = later_state(mine, out["override"]) if out["override"] else mine
        return {"case_id": case_id, **out}

    @fresh
    def set_state(self, case_id, state, annotator=None) -> dict:
        """Move a case (reviewers: annotator=None) or an annotator's work on it to ``state``."""
        self._case(case_id)
        check_choice(state, STATES, "state")
        if auth.is_staff(self.role):
            if annotator is None and state == "submitted":
                raise InvalidInput("a case as a whole is never 'submitted'; its annotators submit")
            if annotator is not None:
                check_id(annotator, "annotator")
                check_choice(state, ANNOTATOR_STATES, "annotator state")
                if annotator not in self._assigned(case_id):
                    raise NotFound(f"{annotator!r} is not assigned to case {case_id!r}")
        else:
            if annotator not in (None, self.user):
                auth.check_staff(self.role, "change another annotator's state")
            annotator = self.user
            check_choice(state, ANNOTATOR_STATES, "annotator state")
            override = self._override(case_id)
            if override:
                raise Conflict(f"case {case_id!r} is {override.replace('_', ' ')}; only a reviewer can reopen it")
            if state == "submitted" and not any(v["author"] == self.user and v["kind"] == "annotation"
                                                for v in self.catalog.versions(case_id=case_id)):
                raise Conflict(f"nothing to submit on case {case_id!r}: push a version first")
        self.catalog.add_event("state", self.user, {"case_id": case_id, "annotator": annotator, "state": state},
                               case_id=case_id)
        return self.states(case_id)

    @fresh
    def worklist(self) -> list[dict]:
        """My cases with state: one row per reachable case, sorted by case id."""
        staff = auth.is_staff(self.role)
        # An annotator's rows need only their own cases: ask the catalog for those alone (their two
        # cases must not cost a load of the whole project), and only the fields states are made of.
        mine_only = None if staff else sorted({a["case_id"] for a in self.catalog.assignments(user=self.user)})
        by_case: dict = {}
        for key, rows in (("events", self.catalog.state_events(case_ids=mine_only)),
                          ("versions", self.catalog.version_heads(case_ids=mine_only)),
                          ("assigned", self.catalog.assignments(case_ids=mine_only))):
            for r in rows:
                by_case.setdefault(r["case_id"], {"events": [], "versions": [], "assigned": []})[key].append(r)
        empty = {"events": [], "versions": [], "assigned": []}
        rows = []
        blind = self.blind
        cases = self.catalog.cases(case_ids=mine_only)
        predictions = self._latest_predictions(mine_only)
        for case in sorted(cases, key=lambda c: c["case_id"]):
            cid = case["case_id"]
            group = by_case.get(cid, empty)
            events = group["events"]
            versions = flag_conflicts(group["versions"])
            assigned = sorted(a["user"] for a in group["assigned"])
            summary = case_state(events, versions, assigned)
            mine = [v for v in versions if v["author"] == self.user]
            row = {"case_id": cid, "patient_id": case["patient_id"], "case_state": summary["state"],
                   "my_state": annotator_state(events, versions, self.user),
                   "latest_version": mine[-1]["id"] if mine else None,
                   "n_versions": len([v for v in versions if auth.version_visible(self.role, self.user, blind, v)]),
                   "conflict": any(v["conflict"] for v in mine)}
            prediction = predictions.get(cid)
            # the model's latest prediction (what an annotator starts from) and its uncertainty: the score
            # the worklist's `uncertainty` order sorts by (see worklist.rows.order_rows)
            row["prediction"] = prediction
            row["score"] = prediction["uncertainty"] if prediction else None
            if staff:
                row["state"] = summary["state"]
                row["annotators"] = summary["annotators"]
            else:
                row["state"] = later_state(row["my_state"], summary["override"]) if summary["override"] \
                    else row["my_state"]
                if blind:  # the case's aggregate state would tell a co-annotator's progress
                    row["case_state"] = row["state"]
            rows.append(row)
        return rows

    def _latest_predictions(self, case_ids) -> dict:
        """{case id: prediction_summary of its latest prediction} (only prediction records are decoded)."""
        latest: dict = {}
        for v in sorted(self.catalog.prediction_versions(case_ids=case_ids), key=lambda v: (v["created"], v["id"])):
            latest[v["case_id"]] = prediction_summary(v)
        return latest

    @fresh
    def audit(self, case_id=None, limit=None, after=None) -> list[dict]:
        """The append-only log of who did what when (an annotator sees only their own actions), oldest first.

        ``limit``/``after`` (an event id): one page; the catalog filters and pages in its query.
        """
        if case_id is not None:
            self._case(case_id)
        actor = None if auth.is_staff(self.role) else self.user
        rows = self.catalog.audit(case_id=case_id, actor=actor, after=after, limit=limit)
        return [{"id": r["id"], "time": r["time"], "actor": r["actor"], "type": r["type"],
                 "case_id": r.get("case_id"), "data": _public_event_data(r)} for r in rows]


def _public_event_data(record: dict) -> dict:
    data = dict(record.get("data") or {})
    data.pop("token_sha256", None)  # never hand out token hashes
    return data


# ----- geometry check of a pushed segmentation --------------------------------------------------
def check_segmentation_fits(path: Path, case: dict, name: str) -> None:
    """InvalidInput unless ``path`` is a .seg.nrrd on the case image's voxel grid (header only).

    Only the header is read (a push of hundreds of MB must not be decoded to be accepted), plus
    the payload length: the voxel bytes a raw file holds, or a gzip stream's recorded length.
    A file cropped to its content (as Slicer can save it) is accepted when it lies exactly on
    the image grid (same spacing and axes, whole-voxel offset, inside the image).
    """
    try:
        geometry = uploaded_seg_nrrd_geometry(path)
    except (ValueError, OSError) as exc:
        msg = str(exc).replace(str(path), name)
        raise InvalidInput(f"{name}: not a readable segmentation ({msg})") from None
    image = Geometry.from_dict(case["geometry"])
    problems = geometry.differences(image)
    if problems and not geometry.lies_on_grid_of(image):
        raise GeometryMismatch(f"{name}: geometry does not match the image of case {case['case_id']!r}: "
                               + "; ".join(problems))
