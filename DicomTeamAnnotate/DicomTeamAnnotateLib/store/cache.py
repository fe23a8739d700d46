"""The HTTP client's local cache of downloaded blobs, and the download that fills it.

``SyncCache``: blobs downloaded from a server, kept by sha256 (verified on download, resumed
from a ``.part`` file after an interruption), handed out as hard links (images) or copies
(segmentations, which users edit). Location: ``$DICOMTEAM_CACHE`` (default
``~/.cache/dicomteam``); ``state_root()`` (``$DICOMTEAM_HOME``, default
``~/.local/share/dicomteam``) is where the client keeps its state, the offline queue included.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.hashing import BackgroundHash, sha256_file
from DicomTeamAnnotateLib.store.model import (
    InvalidInput,
    check_sha256,
)

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
        path = self.path(sha256)
        if not path.is_file():
            return False
        if sha256_file(path)[0] == sha256:
            return True
        path.unlink()
        return False
