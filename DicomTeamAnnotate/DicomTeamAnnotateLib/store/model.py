"""The project model shared by every store: names, checks, errors and record builders.

Records are plain dicts (they travel as JSON between the server, the folder store and the
client); this module says what fields they carry and checks anything that comes from a user:
ids that become file names or URL parts may only use safe characters, so a case id such as
``../../etc`` is refused before it reaches a path.
"""
from __future__ import annotations

import datetime
import re
import uuid

ROLES = ("annotator", "reviewer", "admin")
# "prediction": a model's output (``dicomteam preannotate``), the starting point an annotator corrects;
# never a reading: consensus, adjudication and exports leave predictions out unless asked.
KINDS = ("annotation", "adjudicated", "prediction")
# Workflow order; a case or an annotator moves forward through it (reopening moves back).
STATES = ("todo", "in_progress", "submitted", "in_review", "adjudicated")
STATE_LABELS = {"todo": "todo", "in_progress": "in progress", "submitted": "submitted",
                "in_review": "in review", "adjudicated": "adjudicated"}
ANNOTATOR_STATES = ("todo", "in_progress", "submitted")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{5,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ +-]{0,199}$")
MAX_MESSAGE = 4000
MAX_META_BYTES = 64 * 1024
MAX_META_DEPTH = 32


# ----- errors (each maps to one HTTP status; the client maps them back) ----------------------
class StoreError(Exception):
    """Any store failure; ``status`` is the HTTP status the server answers with."""

    status = 500


class InvalidInput(StoreError, ValueError):
    """Bad input: a malformed id, field, file or a segmentation that does not fit the case."""

    status = 400


class GeometryMismatch(InvalidInput):
    """A pushed segmentation is not on the case image's voxel grid."""

    status = 422


class Unauthorized(StoreError, PermissionError):
    """No or an unknown token / user."""

    status = 401


class Forbidden(StoreError, PermissionError):
    """The user is known but may not do this (role, assignment or blinding)."""

    status = 403


class NotFound(StoreError, LookupError):
    """No such case, version, member or upload."""

    status = 404


class Conflict(StoreError):
    """The request clashes with the project's state (e.g. a version id reused for other content)."""

    status = 409


class StoreUnavailable(StoreError, ConnectionError):
    """The store cannot be reached (server down, network share gone); the push may be queued."""

    status = 503


class TooManyRequests(StoreUnavailable):
    """A member's quota is used up for now (open uploads, chunks in flight): retry later (a push is queued)."""

    status = 429


ERRORS_BY_STATUS = {400: InvalidInput, 422: GeometryMismatch, 401: Unauthorized, 403: Forbidden,
                    404: NotFound, 409: Conflict, 429: TooManyRequests, 503: StoreUnavailable}


# ----- checks -------------------------------------------------------------------------------------
def check_id(value, what: str = "id") -> str:
    """A case id / user name: 1-128 of [A-Za-z0-9._-], starting alphanumeric, never '..'."""
    if not isinstance(value, str) or not _ID.match(value) or ".." in value:
        raise InvalidInput(f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit (no '/', no '..')")
    return value


def check_version_id(value, what: str = "version id") -> str:
    if not isinstance(value, str) or not _VERSION_ID.match(value):
        raise InvalidInput(f"invalid {what} {value!r}: use 6-64 letters, digits, '_' or '-'")
    return value


def check_sha256(value, what: str = "sha256") -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise InvalidInput(f"invalid {what} {value!r}: expected 64 lowercase hex digits")
    return value


def check_filename(value, what: str = "file name") -> str:
    """A bare file name (no folder part, no '..'), as sent with an upload."""
    if not isinstance(value, str) or not _FILENAME.match(value) or ".." in value:
        raise InvalidInput(f"invalid {what} {value!r}: a bare file name without '/', '\\\\' or '..'")
    return value


def check_choice(value, choices, what: str) -> str:
    if value not in choices:
        raise InvalidInput(f"invalid {what} {value!r}: expected one of {', '.join(choices)}")
    return value


def check_message(value) -> str:
    value = "" if value is None else value
    if not isinstance(value, str) or len(value) > MAX_MESSAGE:
        raise InvalidInput(f"field 'message' must be text of at most {MAX_MESSAGE} characters")
    return value


def check_meta(value) -> dict:
    """A version's ``meta``: a JSON object of at most MAX_META_BYTES, strict JSON (no NaN/Infinity,
    which no standard reader accepts), nested at most MAX_META_DEPTH deep."""
    import json

    value = {} if value is None else value
    if not isinstance(value, dict):
        raise InvalidInput("field 'meta' must be a JSON object")
    if json_depth(value) > MAX_META_DEPTH:
        raise InvalidInput(f"field 'meta' is nested deeper than {MAX_META_DEPTH} levels")
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"field 'meta' is not strict JSON ({exc})") from None
    if size > MAX_META_BYTES:
        raise InvalidInput(f"field 'meta' is {size} bytes; at most {MAX_META_BYTES}")
    return value


def json_depth(value) -> int:
    """How deeply lists and objects nest in ``value`` (iterative: a deep value must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((c, depth + 1) for c in (item.values() if isinstance(item, dict) else item))
    return deepest


# ----- ids and times ------------------------------------------------------------------------------
def new_id() -> str:
    """A fresh random id (event, upload)."""
    return uuid.uuid4().hex


def new_version_id() -> str:
    """A fresh version id; clients may choose it up front so that a retried push is idempotent."""
    return "v" + uuid.uuid4().hex[:19]


def now_iso() -> str:
    """UTC time with microseconds; ISO strings of this form sort chronologically."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ----- records ------------------------------------------------------------------------------------
def version_record(*, version_id, case_id, author, parent, created, message, sha256, size, kind, meta,
                   filename) -> dict:
    """The stored fields of an immutable version (``conflict`` is derived when listing)."""
    return {"id": version_id, "case_id": case_id, "author": author, "parent": parent, "created": created,
            "message": message, "sha256": sha256, "size": int(size), "kind": kind, "meta": meta,
            "filename": filename}


def flag_conflicts(versions: list[dict]) -> list[dict]:
    """Copies of ``versions`` in push order with ``conflict`` set.

    A version conflicts when its author already had versions of this kind on the case and its
    parent is not the latest of them (for adjudicated versions: the case's latest adjudicated
    version, whoever wrote it).  The first version of a chain may start from anything.
    A prediction never conflicts: each is one model's output on the image, continuing nothing.
    Derived from the records, so concurrent writers never need a lock to get it right.
    """
    ordered = sorted(versions, key=lambda v: (v["created"], v["id"]))
    latest: dict = {}
    out = []
    for v in ordered:
        if v["kind"] == "prediction":
            out.append({**v, "conflict": False})
            continue
        chain = (v["case_id"], v["kind"], v["author"] if v["kind"] == "annotation" else "")
        prev = latest.get(chain)
        out.append({**v, "conflict": prev is not None and v.get("parent") != prev})
        latest[chain] = v["id"]
    return out


def check_prediction_meta(meta: dict) -> dict:
    """A prediction's ``meta`` names the model that made it: ``meta["model"]`` with a non-empty ``name``
    (and, as ``dicomteam preannotate`` writes them, job id, weights sha256 and the label mapping)."""
    model = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model["name"].strip():
        raise InvalidInput("a prediction's field 'meta' must name its model: {'model': {'name': ..., 'job_id': ..., "
                           "'weights_sha256': ...}}")
    return meta


def prediction_summary(version: dict) -> dict:
    """What a worklist row and a panel show of a prediction: id, model name, job, round, uncertainty."""
    meta = version.get("meta") or {}
    model = meta.get("model") or {}
    return {"id": version["id"], "created": version.get("created"), "model": model.get("name"),
            "job_id": model.get("job_id"), "weights_sha256": model.get("weights_sha256"),
            "round": model.get("round"), "uncertainty": (meta.get("uncertainty") or {}).get("score")}


def choose_version(versions: list[dict], kind: str = "adjudicated") -> dict | None:
    """The latest version of ``kind`` (push order), ignoring versions flagged as conflicts: what
    exports (nnU-Net, DICOM SEG) take as a case's final segmentation unless told otherwise."""
    rows = [v for v in versions if v.get("kind") == kind and not v.get("conflict")]
    return rows[-1] if rows else None
