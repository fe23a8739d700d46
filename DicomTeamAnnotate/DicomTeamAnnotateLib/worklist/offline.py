"""Pushes that wait for their store: the offline queue, and the push that falls back to it.

A push that cannot reach the store is kept on disk (the file and its parameters, with the
version id fixed up front) and sent later by ``OfflineQueue.flush``; replaying is idempotent on
the server, so a push is never lost nor made twice. Location: ``$DICOMTEAM_HOME/queue``
(default ``~/.local/share/dicomteam/queue``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import atomic_path, write_json_atomic
from DicomTeamAnnotateLib.store.cache import state_root
from DicomTeamAnnotateLib.store.model import StoreError, StoreUnavailable, new_version_id, now_iso

log = logging.getLogger(__name__)


def is_offline_error(exc: BaseException) -> bool:
    """True for the errors that mean "the store cannot be reached now" (the push is queued)."""
    return isinstance(exc, StoreUnavailable)


class OfflineQueue:
    """Pushes waiting for their store, kept on disk in order (``root/<time>-<version>.json`` + file)."""

    def __init__(self, root=None):
        self.root = Path(root) if root else state_root() / "queue"
        self.failed = self.root / "failed"

    def enqueue(self, location: str, user: str, case_id: str, seg_path, *, parent=None, message="",
                kind="annotation", meta=None, version_id=None, submit=False, parent_latest=False) -> dict:
        """Keep a push for later; returns the queue item (its ``version_id`` is final).

        ``parent_latest``: the parent is "my latest version when sent" (the caller could not ask).
        """
        version_id = version_id or new_version_id()
        stamp = now_iso().replace("-", "").replace(":", "")
        name = f"{stamp}-{version_id}"
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.root / f"{name}.seg.nrrd", overwrite=False) as tmp:
            shutil.copyfile(seg_path, tmp)
        item = {"name": name, "location": location, "user": user, "case_id": case_id, "version_id": version_id,
                "parent": parent, "message": message, "kind": kind, "meta": meta or {}, "submit": bool(submit),
                "parent_latest": bool(parent_latest),
                "filename": Path(seg_path).name, "queued": now_iso()}
        write_json_atomic(self.root / f"{name}.json", item, overwrite=False)
        log.warning("store %s unreachable: push of case %s kept in the offline queue as %s", location, case_id,
                    version_id)
        return item

    def pending(self, location: str | None = None, user: str | None = None) -> list[dict]:
        """Queued items (oldest first), optionally only those for one store and user."""
        if not self.root.is_dir():
            return []
        items = []
        for path in sorted(self.root.glob("*.json")):
            try:
                item = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable queue item (%s)", path, exc)
                continue
            if (location is None or item["location"] == location) and (user is None or item["user"] == user):
                items.append(item)
        return items

    def _remove(self, item, into: Path | None = None, error: str | None = None) -> None:
        for suffix in (".seg.nrrd", ".json"):
            path = self.root / f"{item['name']}{suffix}"
            if into is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                into.mkdir(parents=True, exist_ok=True)
                os.replace(path, into / path.name)
        if into is not None and error:
            write_json_atomic(into / f"{item['name']}.error.json", {"error": error, "time": now_iso()})

    def flush(self, store) -> dict:
        """Send this store's queued pushes in order; stops at the first 'unreachable'.

        Returns {'sent': [versions], 'failed': [(item, error)], 'remaining': n}.  A push the
        store refuses (e.g. the case went into review) is moved to ``failed/``, never dropped.
        """
        sent, failed = [], []
        for item in self.pending(store.location, store.user):
            seg = self.root / f"{item['name']}.seg.nrrd"
            try:
                parent = item["parent"]
                if item.get("parent_latest"):
                    latest = store.latest_version(item["case_id"])
                    parent = latest["id"] if latest else None
                version = store.push_version(item["case_id"], seg, parent=parent, message=item["message"],
                                             kind=item["kind"], meta=item["meta"], version_id=item["version_id"])
                if item.get("submit"):
                    store.set_state(item["case_id"], "submitted")
            except StoreUnavailable:
                break
            except StoreError as exc:
                log.error("queued push %s refused by %s: %s (kept in %s)", item["version_id"], store.location, exc,
                          self.failed)
                self._remove(item, into=self.failed, error=str(exc))
                failed.append((item, str(exc)))
                continue
            self._remove(item)
            sent.append(version)
        return {"sent": sent, "failed": failed, "remaining": len(self.pending(store.location, store.user))}


def push_or_queue(store, case_id, seg_path, parent=None, message="", kind="annotation", meta=None, *,
                  queue: OfflineQueue | None = None, submit=False, progress=None) -> dict:
    """Push now, or keep the push in the offline queue when the store cannot be reached.

    Earlier queued pushes for the same store go first.  Returns the version record, or a
    record with ``queued: True`` and the version id it will have.
    """
    queue = queue if queue is not None else OfflineQueue()
    version_id = new_version_id()
    try:
        if queue.pending(store.location, store.user):
            result = queue.flush(store)
            if result["remaining"]:
                raise StoreUnavailable("earlier queued pushes are still waiting")
        version = store.push_version(case_id, seg_path, parent=parent, message=message, kind=kind, meta=meta,
                                     version_id=version_id, progress=progress)
        if submit:
            store.set_state(case_id, "submitted")
        return version
    except StoreUnavailable:
        item = queue.enqueue(store.location, store.user, case_id, seg_path, parent=parent, message=message,
                             kind=kind, meta=meta, version_id=version_id, submit=submit)
        return {"id": item["version_id"], "case_id": case_id, "author": store.user, "parent": parent,
                "message": message, "kind": kind, "queued": True}
