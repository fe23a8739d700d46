"""My worklist: connecting to a store, my cases with their states, the offline queue's status.

The panel reads widgets, calls these functions and shows what they return; they take a
Store (``open_store``) and plain values, so they run the same in Slicer, in the CLI and in
tests.
"""
from __future__ import annotations

import hashlib
import logging
import random

from DicomTeamAnnotateLib.store.interface import open_store
from DicomTeamAnnotateLib.store.model import STATE_LABELS, STATES
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue

log = logging.getLogger(__name__)

STATE_FILTERS = ("all",) + STATES
# Worklist orders, as MONAI Label's /activelearning/{strategy}: the store's order, a shuffle, or the
# cases the model is least sure of first (see order_rows).
ORDERS = ("first", "random", "uncertainty")


def connect(location, user: str, token: str | None = None, **options):
    """Open a store and check the credentials now (raises Unauthorized / StoreUnavailable / NotFound)."""
    store = open_store(location, user, token, **options)
    store.whoami()
    return store


def worklist_rows(store, state: str | None = None, text: str = "", queue: OfflineQueue | None = None,
                  order: str = "first", seed: int | None = None) -> list[dict]:
    """Rows for the worklist table: my cases with state, filtered by state and by text, in ``order``.

    Each row: case_id, patient_id, state, state_label, my_state, case_state, latest_version,
    n_versions, conflict, queued (pushes of this case waiting offline), prediction (the model's latest
    prediction: id, model, job_id, round, uncertainty; or None), score (its uncertainty, or None)
    (+ annotators for reviewers).
    """
    queued = _queued_by_case(store, queue)
    needle = (text or "").strip().lower()
    rows = []
    for row in store.worklist():
        if state and state != "all" and row["state"] != state:
            continue
        if needle and needle not in row["case_id"].lower() and needle not in str(row["patient_id"]).lower():
            continue
        rows.append({**row, "state_label": STATE_LABELS[row["state"]], "queued": queued.get(row["case_id"], 0),
                     "prediction": row.get("prediction"), "score": row.get("score")})
    return order_rows(rows, order, seed=store.user if seed is None else seed)


def order_rows(rows: list[dict], order: str = "first", seed=None) -> list[dict]:
    """``rows`` in a worklist order.

    * ``first``: the store's order (by case id);
    * ``random``: a shuffle that is stable for one ``seed`` (the user by default: a worklist that
      reshuffled on every refresh could not be worked through, and two annotators get different orders);
    * ``uncertainty``: the highest ``score`` first (the model's mean softmax entropy inside its predicted
      foreground, see TrainBridge's preannotation), then the cases without a prediction, by case id.
    """
    if order not in ORDERS:
        raise ValueError(f"worklist order must be one of {', '.join(ORDERS)}, got {order!r}")
    ordered = sorted(rows, key=lambda r: r["case_id"])
    if order == "random":
        digest = hashlib.sha256(str(seed).encode("utf-8")).digest()  # str seeds hash alike in every process
        random.Random(int.from_bytes(digest[:8], "big")).shuffle(ordered)
    elif order == "uncertainty":
        ordered.sort(key=lambda r: (r.get("score") is None, -(r.get("score") or 0.0)))
    return ordered


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
