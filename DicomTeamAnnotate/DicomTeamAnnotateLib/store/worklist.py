"""The worklist logic behind the DicomTeamAnnotate panel (and `dicomteam status/pull/push`), Qt-free.

The panel reads widgets, calls these functions and shows what they return; they take a
Store (``open_store``) and plain values, so they run the same in Slicer, in the CLI and in
tests.  Long calls (``open_case``, ``submit_case``) accept a ``progress(done, total)``
callable and belong in a background thread in the GUI.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .interface import open_store
from .model import STATE_LABELS, STATES, StoreUnavailable, check_id
from .sync import OfflineQueue, push_or_queue

log = logging.getLogger(__name__)

STATE_FILTERS = ("all",) + STATES


def connect(location, user: str, token: str | None = None, **options):
    """Open a store and check the credentials now (raises Unauthorized / StoreUnavailable / NotFound)."""
    store = open_store(location, user, token, **options)
    store.whoami()
    return store


def worklist_rows(store, state: str | None = None, text: str = "", queue: OfflineQueue | None = None) -> list[dict]:
    """Rows for the worklist table: my cases with state, filtered by state and by text.

    Each row: case_id, patient_id, state, state_label, my_state, case_state, latest_version,
    n_versions, conflict, queued (pushes of this case waiting offline) (+ annotators for reviewers).
    """
    queued = _queued_by_case(store, queue)
    needle = (text or "").strip().lower()
    rows = []
    for row in store.worklist():
        if state and state != "all" and row["state"] != state:
            continue
        if needle and needle not in row["case_id"].lower() and needle not in str(row["patient_id"]).lower():
            continue
        rows.append({**row, "state_label": STATE_LABELS[row["state"]], "queued": queued.get(row["case_id"], 0)})
    return rows


def _queued_by_case(store, queue) -> dict:
    counts: dict = {}
    for item in (queue or OfflineQueue()).pending(store.location, store.user):
        counts[item["case_id"]] = counts.get(item["case_id"], 0) + 1
    return counts


def offline_status(store, queue: OfflineQueue | None = None) -> dict:
    """{'queued': n, 'items': [...]}: what the offline banner shows."""
    items = (queue or OfflineQueue()).pending(store.location, store.user)
    return {"queued": len(items), "items": items}


def flush_queue(store, queue: OfflineQueue | None = None) -> dict:
    """Send queued pushes now (e.g. when the server is back); see OfflineQueue.flush."""
    return (queue or OfflineQueue()).flush(store)


def work_folder(work_dir, store, case_id: str) -> Path:
    """Where a case's files live locally: ``work_dir/<user>/<case_id>/``."""
    return Path(work_dir) / check_id(store.user, "user name") / check_id(case_id, "case id")


def draft_path(work_dir, store, case_id: str) -> Path:
    """The autosave draft of my segmentation of a case (local only until submitted)."""
    return work_folder(work_dir, store, case_id) / "draft.seg.nrrd"


def open_case(store, case_id: str, work_dir, progress=None) -> dict:
    """Download a case for work: the image, my latest version, the draft if any, and the project settings.

    Returns {'case', 'image_path', 'segmentation_path' (my latest version, or None), 'version' (its
    record, the parent of my next push), 'draft_path' (existing draft or None), 'labels',
    'window_preset', 'versions' (all versions I may see: a reviewer sees every annotator's)}.
    """
    folder = work_folder(work_dir, store, case_id)
    case = store.get_case(case_id)
    image = store.fetch_image(case_id, folder, progress=progress)
    mine = store.latest_version(case_id)
    seg = store.fetch_version(mine["id"], folder / f"{case_id}.{mine['id']}.seg.nrrd") if mine else None
    project = store.project()
    draft = draft_path(work_dir, store, case_id)
    if mine and mine.get("conflict"):
        log.warning("your latest version %s of %s is flagged as a conflict", mine["id"], case_id)
    return {"case": case, "image_path": image, "segmentation_path": seg, "version": mine,
            "draft_path": draft if draft.exists() else None, "labels": project["labels"],
            "window_preset": project.get("window_preset"), "versions": store.list_versions(case_id)}


def fetch_all_versions(store, case_id: str, dest_dir, latest_only: bool = True) -> list[tuple[dict, Path]]:
    """(version, path) of every version I may see (a reviewer: all annotators'), latest per author by default."""
    versions = store.list_versions(case_id)
    if latest_only:
        by_author = {}
        for v in versions:
            by_author[(v["author"], v["kind"])] = v
        versions = list(by_author.values())
    return [(v, store.fetch_version(v["id"], Path(dest_dir) / f"{case_id}.{v['author']}.{v['id']}.seg.nrrd"))
            for v in versions]


def as_seg_nrrd(path, labels: list[dict], work_dir) -> Path:
    """``path`` if it is a .seg.nrrd, else a label map converted to one.

    Label names come from the file's sidecar JSON when it has one, else from the project's
    label ontology (with its colours and terminology).
    """
    from ..segio import is_seg_nrrd, read_sidecar, segmentation_from_labelmap, write_seg_nrrd
    from ..volume import read_volume

    path = Path(path)
    if is_seg_nrrd(path):
        return path
    names, colors, terms = read_sidecar(path)
    if not names:
        names = {int(lab["value"]): lab["name"] for lab in labels}
        colors = {lab["name"]: tuple(lab["color"]) for lab in labels}
        terms = {lab["name"]: lab["terminology"] for lab in labels if lab.get("terminology")}
    try:
        seg = segmentation_from_labelmap(read_volume(path), names, colors=colors, terminology=terms)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    out = Path(work_dir) / (path.name.split(".")[0] + ".seg.nrrd")
    write_seg_nrrd(seg, out)
    return out


def save_version(store, case_id: str, seg_path, parent=None, message: str = "", *, queue=None, progress=None) -> dict:
    """Push my work as a new version without submitting (queued when the store is unreachable)."""
    return push_or_queue(store, case_id, seg_path, parent=parent, message=message, queue=queue, progress=progress)


def submit_case(store, case_id: str, seg_path, parent=None, message: str = "submitted", *, queue=None,
                progress=None) -> dict:
    """Push my segmentation and mark my work on the case submitted (both queued when offline)."""
    return push_or_queue(store, case_id, seg_path, parent=parent, message=message, queue=queue, submit=True,
                         progress=progress)


def reopen_case(store, case_id: str) -> dict:
    """Take my submitted case back to 'in progress' (refused once a reviewer has it)."""
    return store.set_state(case_id, "in_progress")


def is_offline_error(exc: BaseException) -> bool:
    return isinstance(exc, StoreUnavailable)
