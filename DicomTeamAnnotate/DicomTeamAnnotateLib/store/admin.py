"""Project administration on the project folder: init, add a case, members (add, remove, rotate a
token, expiry), assign and unassign, verify.

These work on the folder directly (an admin with access to it), for the folder store and the
server alike: a running server imports the new event records on its next refresh.
"""
from __future__ import annotations

import datetime
import getpass
import json
import logging
import re
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.core.segmentation import default_color
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.core.windowing import DEFAULT_PRESET, resolve_window
from DicomTeamAnnotateLib.dicom.ingest import load_image
from DicomTeamAnnotateLib.io.volumes import has_volume_suffix, write_volume
from DicomTeamAnnotateLib.pacs import PacsError
from DicomTeamAnnotateLib.pacs.reference import PacsReference
from DicomTeamAnnotateLib.store.auth import hash_token, new_token
from DicomTeamAnnotateLib.store.events import EventLog
from DicomTeamAnnotateLib.store.folder import FolderCatalog
from DicomTeamAnnotateLib.store.model import ROLES, Conflict, InvalidInput, NotFound, check_choice, check_id, now_iso

log = logging.getLogger(__name__)

PROJECT_FORMAT = 1
_PATIENT = re.compile(r"^[^\x00-\x1f\\/]{1,64}$")


def _actor() -> str:
    try:
        return f"admin@{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "admin"


# ----- labels -------------------------------------------------------------------------------------
def load_labels(path) -> dict:
    """Read LABELS.json: a list of {name, value, color, terminology}, or {"labels": ...}.

    ``labels`` may also map names to values ({"liver": 1, ...}, as organs.json does) with
    optional "colors" and "terminology" maps.  Returns {"labels": [...], plus any "blind" /
    "window_preset" the file sets}.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such labels file") from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: malformed JSON ({exc})") from None
    extra = {}
    if isinstance(doc, dict):
        extra = {k: doc[k] for k in ("blind", "window_preset") if k in doc}
        labels = doc.get("labels")
        if isinstance(labels, dict):
            colors, terms = doc.get("colors") or {}, doc.get("terminology") or {}
            labels = [{"name": n, "value": v, "color": colors.get(n), "terminology": terms.get(n)}
                      for n, v in labels.items()]
    else:
        labels = doc
    if not isinstance(labels, list) or not labels:
        raise InvalidInput(f"{path}: field 'labels' must be a non-empty list of {{name, value, color, terminology}}")
    return {"labels": normalise_labels(labels, str(path)), **extra}


def normalise_labels(labels: list, where: str = "labels") -> list[dict]:
    """Checked label entries: unique names, unique values 1..255, colours as RGB in 0..1."""
    out, names, values = [], set(), set()
    for n, entry in enumerate(labels):
        if not isinstance(entry, dict):
            raise InvalidInput(f"{where}: label {n} must be an object with 'name' and 'value'")
        name = str(entry.get("name") or "").strip()
        if not name:
            raise InvalidInput(f"{where}: label {n}: field 'name' is missing or empty")
        try:
            value = int(entry.get("value", n + 1))
        except (TypeError, ValueError):
            raise InvalidInput(f"{where}: label '{name}': field 'value' must be an integer") from None
        if not 1 <= value <= 255:
            raise InvalidInput(f"{where}: label '{name}': field 'value' must be in 1..255, got {value}")
        if name in names or value in values:
            raise InvalidInput(f"{where}: label '{name}' (value {value}) repeats a name or a value")
        names.add(name)
        values.add(value)
        term = entry.get("terminology")
        out.append({"name": name, "value": value, "color": _color(entry.get("color"), default_color(n), where, name),
                    "terminology": str(term) if term else None})
    return out


def _color(value, default, where, name) -> list:
    if value is None:
        return [round(float(c), 4) for c in default]
    if isinstance(value, str) and re.fullmatch(r"#?[0-9a-fA-F]{6}", value):
        h = value.lstrip("#")
        return [round(int(h[i:i + 2], 16) / 255.0, 4) for i in (0, 2, 4)]
    try:
        rgb = [float(c) for c in value]
    except (TypeError, ValueError):
        rgb = []
    if len(rgb) != 3 or min(rgb) < 0:
        raise InvalidInput(f"{where}: label '{name}': field 'color' must be [r, g, b] or '#rrggbb', got {value!r}")
    if max(rgb) > 1.0:  # 0..255 colours
        rgb = [c / 255.0 for c in rgb]
    return [round(c, 4) for c in rgb]


# ----- operations ------------------------------------------------------------------------------
def init_project(project_dir, name: str, labels, *, blind: bool | None = None,
                 window_preset: str | None = None) -> dict:
    """Create a project folder (refuses a folder that already holds a project).

    ``labels``: a LABELS.json path or a list of label dicts.
    """
    project_dir = Path(project_dir)
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("project name must not be empty")
    spec = load_labels(labels) if isinstance(labels, (str, Path)) else {"labels": normalise_labels(list(labels))}
    blind = spec.get("blind", True) if blind is None else blind
    preset = window_preset or spec.get("window_preset") or _default_preset()
    _check_preset(preset)
    project_dir.mkdir(parents=True, exist_ok=True)
    doc = {"format": PROJECT_FORMAT, "name": name.strip(), "labels": spec["labels"], "blind": bool(blind),
           "window_preset": preset, "created": now_iso(), "created_by": _actor()}
    try:
        write_json_atomic(project_dir / "project.json", doc, overwrite=False)
    except FileExistsError:
        raise Conflict(f"{project_dir}: already a project (project.json exists); nothing changed") from None
    for sub in ("events", "blobs", "tmp"):
        (project_dir / sub).mkdir(exist_ok=True)
    log.info("created project %r in %s", name, project_dir)
    return doc


def _default_preset() -> str | None:
    return DEFAULT_PRESET


def _check_preset(preset) -> None:
    if preset is None:
        return
    try:
        resolve_window(preset)
    except ValueError as exc:
        raise InvalidInput(f"window preset: {exc}") from None


def load_case_volume(image_path):
    """A Volume from a DICOM folder/ZIP (through our ingestion) or a volume file."""
    path = Path(image_path)
    single_file = path.is_file() and path.suffix.lower() != ".zip" and not has_volume_suffix(path)
    try:
        return load_image(path)
    except (ValueError, ImportError) as exc:
        if not single_file:
            raise
        # a single file that is neither a volume nor DICOM (a single DICOM file, e.g. multi-frame, loads)
        raise InvalidInput(f"{path}: neither a DICOM folder/ZIP nor a volume file ({exc})") from None


_ATTRIBUTE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_ATTRIBUTE_VALUE = re.compile(r"^[^\x00-\x1f]{1,128}$")


def case_attributes(metadata: dict | None, given: dict | None = None) -> dict:
    """A case's attributes (for stratified splits): from the DICOM header, then ``given`` on top.

    From the header: ``manufacturer``, ``scanner`` (manufacturer and model) and ``institution``
    where present.  Keys are 1-64 of [A-Za-z0-9_.-] starting with a letter; values 1-128
    printable characters; anything else is refused with the key or value named.
    """
    metadata = metadata or {}
    found = {"manufacturer": metadata.get("manufacturer"), "institution": metadata.get("institution"),
             "scanner": " ".join(v for v in (metadata.get("manufacturer"), metadata.get("manufacturer_model")) if v)}
    attrs = {k: str(v).strip() for k, v in found.items() if v and str(v).strip()}
    for key, value in (given or {}).items():
        if not isinstance(key, str) or not _ATTRIBUTE_KEY.match(key):
            raise InvalidInput(f"invalid case attribute name {key!r}: 1-64 letters, digits, '_', '.', '-', "
                               f"starting with a letter")
        if not isinstance(value, str) or not _ATTRIBUTE_VALUE.match(value):
            raise InvalidInput(f"invalid value {value!r} of case attribute {key!r}: 1-128 printable characters")
        attrs[key] = value
    return attrs


def add_case(project_dir, case_id: str, image_path, patient_id: str, *, compress: bool = True,
             reference: dict | None = None, attributes: dict | None = None) -> dict:
    """Ingest an image as a new case (stored as a .nrrd blob); returns the case record.

    ``attributes`` (e.g. ``{"site": "A"}``) join those read from a DICOM header (see
    ``case_attributes``); exports can stratify their splits by any of them.

    ``image_path``: a DICOM folder or ZIP (our ingestion), a volume file, or a ``Volume``.
    ``reference`` (reference mode): ``{kind: "dicomweb", url, study_uid, series_uid, user}``, where
    the series lives in a PACS.  Then no pixels enter the project (``image_sha256`` is None): the
    case keeps that location and the image's geometry (from the volume given), and
    ``Store.fetch_image`` fetches the series from the PACS on demand.  Never a password.
    """
    project_dir = Path(project_dir)
    check_id(case_id, "case id")
    if not isinstance(patient_id, str) or not _PATIENT.match(patient_id):
        raise InvalidInput(f"invalid patient id {patient_id!r}: 1-64 printable characters, no '/' or '\\\\'")
    ref = check_reference(reference) if reference is not None else None
    catalog = FolderCatalog(project_dir)
    catalog.refresh()
    if catalog.case(case_id) is not None:
        raise Conflict(f"case {case_id!r} already exists; cases are never replaced")
    if isinstance(image_path, Volume):
        volume, source = image_path, image_path.metadata.get("source", "volume")
    else:
        volume, source = load_case_volume(image_path), Path(image_path).name
    data = {"case_id": case_id, "patient_id": patient_id, "image_sha256": None, "image_size": None,
            "image_name": f"{case_id}.nrrd", "geometry": volume.geometry.to_lps().to_dict(), "source": str(source),
            "attributes": case_attributes(volume.metadata, attributes)}
    if ref is not None:
        data["reference"] = ref
        catalog.events.append("case", _actor(), data, case_id=case_id)
        log.info("added case %s as a reference to %s", case_id, ref["url"])
        return data
    blobs = catalog.blobs
    tmp = blobs.temp_path("case", ".nrrd")
    try:
        write_volume(volume, tmp, compress=compress)
        sha, size = blobs.put_file(tmp, move=True)
    finally:
        tmp.unlink(missing_ok=True)
    data.update(image_sha256=sha, image_size=size)
    catalog.events.append("case", _actor(), data, case_id=case_id)
    log.info("added case %s (%d bytes, sha256 %s)", case_id, size, sha[:12])
    return data


def check_reference(reference) -> dict:
    """A case's PACS reference, checked and normalised (``PacsReference.to_dict``); InvalidInput if bad."""
    if isinstance(reference, dict) and any("password" in str(k).lower() for k in reference):
        raise InvalidInput("reference: a project never stores a PACS password (use $DICOMWEB_PASSWORD or the "
                           "OS keyring)")
    try:
        return PacsReference.from_dict(reference).to_dict()
    except PacsError as exc:
        raise InvalidInput(f"reference: {exc}") from None


def add_member(project_dir, user: str, role: str, *, expires_days: float | None = None) -> str:
    """Add a member (or change their role); returns a NEW token, shown once and stored hashed.

    The member's previous token stops working (the latest member record wins): adding a member
    again is how a token is rotated.  ``expires_days``: the token is refused after that many days.
    """
    check_id(user, "user name")
    check_choice(role, ROLES, "role")
    FolderCatalog(project_dir)  # NotFound when the folder is no project
    token = new_token()
    data = {"user": user, "role": role, "token_sha256": hash_token(token)}
    if expires_days is not None:
        if not 0 < float(expires_days) <= 3650:
            raise InvalidInput(f"expiry must be in (0, 3650] days, got {expires_days}")
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=float(expires_days))
        data["expires"] = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    EventLog(project_dir).append("member", _actor(), data)
    return token


def rotate_token(project_dir, user: str, *, expires_days: float | None = None) -> str:
    """A new token for an existing member (same role); the old one stops working at once."""
    catalog = FolderCatalog(project_dir)
    catalog.refresh()
    member = catalog.member(check_id(user, "user name"))
    if member is None:
        raise NotFound(f"{user!r} is not a member of {project_dir}")
    return add_member(project_dir, user, member["role"], expires_days=expires_days)


def remove_member(project_dir, user: str) -> None:
    """Remove a member: their token stops working on the server's next refresh (within a second).

    Their versions, states and audit entries stay (the record is append-only); their
    assignments are withdrawn so that worklists and case states no longer count them.
    """
    catalog = FolderCatalog(project_dir)
    catalog.refresh()
    if catalog.member(check_id(user, "user name")) is None:
        raise NotFound(f"{user!r} is not a member of {project_dir}")
    log_ = EventLog(project_dir)
    log_.append("member", _actor(), {"user": user, "removed": True})
    for a in catalog.assignments(user=user):
        log_.append("unassign", _actor(), {"case_id": a["case_id"], "user": user}, case_id=a["case_id"])


def unassign(project_dir, case_id: str, user: str) -> bool:
    """Withdraw a case from a member (they lose access at once); False when it was not assigned."""
    check_id(case_id, "case id")
    check_id(user, "user name")
    catalog = FolderCatalog(project_dir)
    catalog.refresh()
    if catalog.case(case_id) is None:
        raise NotFound(f"no case {case_id!r} in {project_dir}")
    if not catalog.assignments(case_id=case_id, user=user):
        return False
    EventLog(project_dir).append("unassign", _actor(), {"case_id": case_id, "user": user}, case_id=case_id)
    return True


def assign(project_dir, case_id: str, user: str) -> bool:
    """Assign a case to a member; False when it already was."""
    check_id(case_id, "case id")
    check_id(user, "user name")
    catalog = FolderCatalog(project_dir)
    catalog.refresh()
    if catalog.case(case_id) is None:
        raise NotFound(f"no case {case_id!r} in {project_dir}")
    if catalog.member(user) is None:
        raise NotFound(f"{user!r} is not a member of {project_dir} (add them first: `dicomteam project add-member`)")
    if catalog.assignments(case_id=case_id, user=user):
        return False
    EventLog(project_dir).append("assign", _actor(), {"case_id": case_id, "user": user}, case_id=case_id)
    return True
