"""The sync client's local side: a cache of downloaded blobs and an offline queue of pushes.

* ``SyncCache``: blobs downloaded from a server, kept by sha256 (verified on download,
  resumed from a ``.part`` file after an interruption), handed out as hard links (images)
  or copies (segmentations, which users edit).
* ``OfflineQueue``: a push that cannot reach the store is kept on disk (the file and its
  parameters, with the version id fixed up front) and sent later by ``flush``; replaying is
  idempotent on the server, so a push is never lost nor made twice.

Locations: ``$DICOMTEAM_CACHE`` (default ``~/.cache/dicomteam``) and ``$DICOMTEAM_HOME``
(default ``~/.local/share/dicomteam``) for the queue.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from ..atomic import atomic_path, write_json_atomic
from .blobs import BackgroundHash
from .model import InvalidInput, StoreError, StoreUnavailable, check_sha256, new_version_id, now_iso

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("DICOMTEAM_CACHE") or Path.home() / ".cache" / "dicomteam")


def state_root() -> Path:
    return Path(os.environ.get("DICOMTEAM_HOME") or Path.home() / ".local" / "share" / "dicomteam")


# ----- progress ------------------------------------------------------------------------------------
class Progress:
    """``progress``: None/False (silent), True (a tqdm bar on stderr) or a callable(done, total)."""

    def __init__(self, progress, total: int, desc: str):
        self.total, self.done, self._bar, self._fn = total, 0, None, None
        if progress is True:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)
        elif callable(progress):
            self._fn = progress

    def set(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self.done)
        self.done = done
        if self._fn is not None:
            self._fn(done, self.total)

    def add(self, n: int) -> None:
        self.set(self.done + n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ----- downloads -----------------------------------------------------------------------------------
def download(open_stream, dest, sha256: str, size: int | None = None, progress=None) -> Path:
    """Download to ``dest`` via ``dest.part`` (resumed if present), verify sha256, rename into place.

    ``open_stream(offset)`` returns an iterator of byte chunks starting at ``offset`` (an HTTP
    Range request).  A mismatching result is deleted and raises InvalidInput.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    offset = 0
    if part.exists():  # resume: hash what is there, fetch the rest
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
                offset += len(block)
        if size is not None and offset > size:
            part.unlink()
            h, offset = hashlib.sha256(), 0
    bar = Progress(progress, size or 0, dest.name)
    bar.set(offset)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # This loop only receives; a second thread writes each block and hashes it meanwhile.
    sink = BackgroundHash(h, offset, fd=fd)
    try:
        try:
            if size is None or offset < size:
                for chunk in open_stream(offset):
                    sink.update(chunk)
                    bar.add(len(chunk))
        finally:
            h = sink.finish()
        os.fsync(fd)
    finally:
        os.close(fd)
        bar.close()
    if h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise InvalidInput(f"{dest.name}: downloaded bytes hash to {h.hexdigest()}, expected {sha256}; discarded")
    os.replace(part, dest)
    return dest


class SyncCache:
    """Downloaded blobs by sha256 under ``root/blobs`` (one cache may serve several stores)."""

    def __init__(self, root=None):
        self.root = Path(root) if root else cache_root()
        self.blobs = self.root / "blobs"

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.blobs / sha256[:2] / sha256

    def has(self, sha256: str, size: int | None = None) -> bool:
        path = self.path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def fetch(self, sha256: str, open_stream, size: int | None = None, progress=None) -> Path:
        """The cached blob, downloading (or resuming) it first when absent."""
        path = self.path(sha256)
        if self.has(sha256, size):
            return path
        download(open_stream, path, sha256, size, progress)
        if os.name != "nt":  # (Windows cannot delete or replace read-only files)
            os.chmod(path, 0o444)  # shared by hard links: keep it from being edited in place
        return path

    def materialize(self, sha256: str, dest, *, link: bool = True) -> Path:
        """Place the cached blob at ``dest``: a hard link when ``link`` and possible, else a copy."""
        src = self.path(sha256)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if link and os.name != "nt":  # Windows cannot replace a read-only hard-linked file later
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{os.urandom(4).hex()}.link")
            try:
                os.link(src, tmp)
                os.replace(tmp, dest)
                return dest
            except OSError:  # another file system, or no hard links there: copy instead
                tmp.unlink(missing_ok=True)
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        os.chmod(dest, 0o644)
        return dest

    def verify(self, sha256: str) -> bool:
        """Re-hash a cached blob (True when intact); a corrupt one is removed."""
        from .blobs import sha256_file

        path = self.path(sha256)
        if not path.is_file():
            return False
        if sha256_file(path)[0] == sha256:
            return True
        path.unlink()
        return False


# ----- offline queue -----------------------------------------------------------------------------
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
