"""My worklist: connecting to a store, my cases with their states, the offline queue's status.

The panel reads widgets, calls these functions and shows what they return; they take a
Store (``open_store``) and plain values, so they run the same in Slicer, in the CLI and in
tests.
"""
from __future__ import annotations

import logging

from DicomTeamAnnotateLib.store.interface import open_store
from DicomTeamAnnotateLib.store.model import STATE_LABELS, STATES
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue

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


def reopen_case(store, case_id: str) -> dict:
    """Take my submitted case back to 'in progress' (refused once a reviewer has it)."""
    return store.set_state(case_id, "in_progress")
