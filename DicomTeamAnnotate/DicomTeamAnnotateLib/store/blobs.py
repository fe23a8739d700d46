"""Content-addressed blob storage: ``blobs/sha256/ab/abcdef...``, written once, never edited.

A blob becomes visible only by an atomic link of a complete, fsynced and hash-verified file
into place, so a reader (or a crash) never sees a partial blob.  Temporary files live in the
project's ``tmp/`` folder, on the same file system as the blobs, so the final step is a link.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import atomic_path, fsync_dir
from DicomTeamAnnotateLib.core.hashing import CHUNK, copy_hashing, crc32c_hex, crc32c_module, sha256_file
from DicomTeamAnnotateLib.store.model import InvalidInput, NotFound, check_sha256

log = logging.getLogger(__name__)


def hash_checking_chunks(path, chunks: list[dict]) -> str:
    """sha256 of a file read once, checking each ``{start, end, crc32c}`` chunk that has a CRC.

    For an upload whose running hash is not at hand (a restart, or another server instance
    took some chunks): the bytes on disk are checked again against what the client sent.
    A mismatch raises InvalidInput naming the chunk.
    """
    module = crc32c_module() if any(c.get("crc32c") for c in chunks) else None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in chunks:
            crc, remaining = 0, chunk["end"] - chunk["start"]
            while remaining:
                block = fh.read(min(CHUNK, remaining))
                if not block:
                    raise InvalidInput(f"{Path(path).name}: ends inside the chunk at {chunk['start']}")
                h.update(block)
                if module is not None and chunk.get("crc32c"):
                    crc = module.extend(crc, block)
                remaining -= len(block)
            if chunk.get("crc32c") and crc32c_hex(crc) != chunk["crc32c"]:
                raise InvalidInput(f"the chunk at bytes {chunk['start']}..{chunk['end']} no longer matches its "
                                   f"CRC32C on the server's disk; push again")
    return h.hexdigest()


class BlobStore:
    """Blobs of one project folder."""

    def __init__(self, project_dir):
        self.project_dir = Path(project_dir)
        self.root = self.project_dir / "blobs" / "sha256"
        self.tmp = self.project_dir / "tmp"

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def require(self, sha256: str) -> Path:
        """The blob's path; NotFound when it is absent."""
        path = self.path(sha256)
        if not path.is_file():
            raise NotFound(f"blob {sha256} is missing from {self.root}")
        return path

    def temp_path(self, prefix: str = "blob", suffix: str = ".tmp") -> Path:
        """A fresh, unused name in the project's tmp folder (same file system as the blobs, so it links into place)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{prefix}-{os.getpid()}-{os.urandom(8).hex()}{suffix}"

    def _publish(self, tmp: Path, sha256: str, *, keep: bool = False) -> Path:
        """Link a complete, verified file into place as blob ``sha256``; ``tmp`` is removed unless ``keep``.

        An existing blob of that name is reused only when its bytes still hash to its name (a
        blob corrupted on disk, or planted by a bug, is replaced by the verified file).
        """
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, final)  # atomic; fails if another writer published the same content first
            if not keep:
                tmp.unlink()
            os.chmod(final, 0o444)  # blobs are immutable; discourage editing in place
        except FileExistsError:
            if not os.path.samefile(tmp, final) and not self.verify(sha256):
                log.error("blob %s does not hash to its name; replacing it with verified bytes", sha256)
                if keep:
                    spare = self.temp_path()
                    os.link(tmp, spare)
                    os.replace(spare, final)
                else:
                    os.replace(tmp, final)
            if not keep:
                tmp.unlink(missing_ok=True)
        except OSError:  # file systems without hard links: rename is atomic too
            if keep:
                raise
            os.replace(tmp, final)
        fsync_dir(final.parent)
        return final

    def stage(self, src, *, in_place: bool = False, expected_sha256: str | None = None,
              expected_size: int | None = None, verified: bool = False, progress=None) -> tuple[Path, str, int]:
        """Bytes made ready to become a blob: (path, sha256, size), fsynced and checked, not yet visible.

        ``in_place``: ``src`` itself (on the blobs' file system) is what ``publish`` will link;
        otherwise a copy in the project's tmp/ (the caller removes it after publishing).
        With ``expected_sha256``/``expected_size`` a mismatch raises InvalidInput (nothing staged).
        ``verified`` (with ``in_place`` and ``expected_sha256``): the caller hashed ``src`` already.
        """
        src = Path(src)
        if in_place:
            if verified and expected_sha256:
                sha, size = expected_sha256, src.stat().st_size
            else:
                sha, size = sha256_file(src, progress)
            self._check(src, sha, size, expected_sha256, expected_size)
            with open(src, "rb+") as fh:
                os.fsync(fh.fileno())
            return src, sha, size
        tmp = self.temp_path()
        try:
            with open(tmp, "xb") as out:
                sha, size = copy_hashing(src, out, progress)
                out.flush()
                os.fsync(out.fileno())
            self._check(src, sha, size, expected_sha256, expected_size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, sha, size

    def publish(self, path, sha256: str, *, keep: bool = False) -> Path:
        """Make staged bytes visible as blob ``sha256`` (``keep``: ``path`` stays, as a second link)."""
        return self._publish(Path(path), sha256, keep=keep)

    def put_file(self, src, *, move: bool = False, keep_source: bool = False, expected_sha256: str | None = None,
                 expected_size: int | None = None, verified: bool = False, progress=None) -> tuple[str, int]:
        """Store a file's bytes; (sha256, size).  ``move`` consumes ``src`` (same file system).

        ``keep_source`` (same file system): the blob becomes a hard link to ``src``, which stays.
        See ``stage`` for the checks; this is ``stage`` then ``publish``.
        """
        in_place = move or keep_source
        path, sha, size = self.stage(src, in_place=in_place, expected_sha256=expected_sha256,
                                     expected_size=expected_size, verified=verified, progress=progress)
        try:
            self.publish(path, sha, keep=keep_source)
        finally:
            if not in_place:
                path.unlink(missing_ok=True)
        return sha, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes; (sha256, size)."""
        tmp = self.temp_path()
        try:
            with open(tmp, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            sha = hashlib.sha256(data).hexdigest()
            self._publish(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, len(data)

    @staticmethod
    def _check(src, sha, size, expected_sha256, expected_size) -> None:
        if expected_size is not None and size != int(expected_size):
            raise InvalidInput(f"{Path(src).name}: size {size} bytes does not match the declared {expected_size}")
        if expected_sha256 is not None and sha != expected_sha256:
            raise InvalidInput(f"{Path(src).name}: sha256 {sha} does not match the declared {expected_sha256}")

    def copy_to(self, sha256: str, dest, progress=None) -> Path:
        """Copy a blob to ``dest`` atomically, verifying its sha256 on the way."""
        src = self.require(sha256)
        dest = Path(dest)
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out:
                sha, _ = copy_hashing(src, out, progress)
            if sha != sha256:
                raise InvalidInput(f"blob {sha256} is corrupt on disk (reads as {sha}); not copied")
        os.chmod(dest, 0o644)
        return dest

    def verify(self, sha256: str) -> bool:
        """True when the blob exists and its bytes hash to its name."""
        path = self.path(sha256)
        return path.is_file() and sha256_file(path)[0] == sha256
