"""Content-addressed blob storage: ``blobs/sha256/ab/abcdef...``, written once, never edited.

A blob becomes visible only by an atomic link of a complete, fsynced and hash-verified file
into place, so a reader (or a crash) never sees a partial blob.  Temporary files live in the
project's ``tmp/`` folder, on the same file system as the blobs, so the final step is a link.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path

from ..atomic import _fsync_dir
from .model import InvalidInput, NotFound, check_sha256

CHUNK = 1 << 20
WRITEBACK_EVERY = 16 << 20  # bytes written between two start_writeback calls of a streamed file
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of dirty pages, do not wait
_sync_file_range = None


def start_writeback(fd: int) -> None:
    """Start writing a file's dirty pages to disk now, without waiting (Linux ``sync_file_range``).

    A large upload or download calls this as it goes, so the disk works while bytes still
    arrive and the one fsync at the end has little left to flush.  Durability still comes
    from that fsync alone.  Elsewhere (no such call) this does nothing.
    """
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        if hasattr(os, "posix_fadvise"):  # Linux and other POSIX systems; the call itself is Linux-only
            import ctypes

            try:
                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
                _sync_file_range = fn
            except (AttributeError, OSError):
                pass
    if _sync_file_range:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # a failure only means no head start


def crc32c_module(need_fast: bool = False):
    """The ``google_crc32c`` module, or None; ``need_fast``: only its hardware-backed C build.

    CRC32C checks each chunk of an upload (S3 and GCS do the same): at ~5 GB/s it costs a
    push almost nothing, where a second sha256 on the client cost as much as the server's.
    """
    try:
        import google_crc32c
    except ImportError:
        return None
    if need_fast and getattr(google_crc32c, "implementation", "") != "c":
        return None
    return google_crc32c


def crc32c_hex(value: int) -> str:
    return f"{value & 0xFFFFFFFF:08x}"


class BackgroundHash:
    """A running sha256 updated by a second thread (and, with ``fd``, the blocks written by a third).

    The thread that receives or sends bytes only hands blocks over; hashing and writing (with
    ``start_writeback`` as it goes) happen meanwhile in their own threads, so that the longest
    of the three, not their sum, sets the pace: hashlib and os.write release the GIL.  Blocks
    travel in batches of about ``batch`` bytes: small enough to be hashed while still in the CPU
    cache (4 MiB batches measured slower), large enough for few thread wake-ups.  ``position``:
    the bytes handed in so far; ``written``: the bytes written to ``fd``; ``crc``: with ``crc32c``,
    the CRC32C of the bytes written.  ``finish()`` waits for both queues to drain and raises the
    OSError a write met, if any.
    """

    def __init__(self, h=None, position: int = 0, *, fd: int | None = None, batch: int = 1 << 20,
                 crc32c: bool = False):
        self.h = h if h is not None else hashlib.sha256()
        self.position = position
        self.fd, self.written, self.error = fd, 0, None
        # CRC32C of the blocks handed in (``crc32c=True`` with ``fd``): the writer thread computes it
        self.crc = 0
        self._crc_module = crc32c_module() if crc32c else None
        if crc32c and self._crc_module is None:
            raise RuntimeError("checking CRC32C needs the google-crc32c package")
        self.batch = batch
        self._pending: list = []
        self._pending_bytes = 0
        # bounded queues: a few MiB held in memory at most
        self._queues = [queue.Queue(maxsize=8)] + ([queue.Queue(maxsize=8)] if fd is not None else [])
        self._threads = [threading.Thread(target=self._hash_blocks, args=(self._queues[0],), daemon=True)]
        if fd is not None:
            self._threads.append(threading.Thread(target=self._write_blocks, args=(self._queues[1],), daemon=True))
        for thread in self._threads:
            thread.start()

    def _hash_blocks(self, source: queue.Queue):
        while (blocks := source.get()) is not None:
            for block in blocks:
                self.h.update(block)

    def _write_blocks(self, source: queue.Queue):
        unflushed = 0
        while (blocks := source.get()) is not None:
            if self.error is not None:
                continue  # after a failed write: drain, write nothing more
            for block in blocks:
                try:
                    view = memoryview(block)
                    while view:
                        n = os.write(self.fd, view)
                        view = view[n:]
                        self.written += n
                except OSError as exc:
                    self.error = exc
                    break
                if self._crc_module is not None:
                    self.crc = self._crc_module.extend(self.crc, block)  # bytes, as the server receives them
                unflushed += len(block)
                if unflushed >= WRITEBACK_EVERY:  # the disk writes while the rest arrives
                    start_writeback(self.fd)
                    unflushed = 0

    def _hand_over(self):
        for q in self._queues:
            q.put(self._pending)
        self._pending, self._pending_bytes = [], 0

    def update(self, block) -> None:
        self._pending.append(block)
        self._pending_bytes += len(block)
        self.position += len(block)
        if self._pending_bytes >= self.batch:
            self._hand_over()

    def finish(self):
        """The hash object once every block handed in is hashed (and written)."""
        if self._threads[0].is_alive():
            if self._pending:
                self._hand_over()
            for q in self._queues:
                q.put(None)
            for thread in self._threads:
                thread.join()
        if self.error is not None:
            raise self.error
        return self.h


def sha256_file(path, progress=None) -> tuple[str, int]:
    """(hex sha256, size) of a file, read in 1 MiB chunks; ``progress(n_bytes)`` after each."""
    return copy_hashing(path, None, progress)


def copy_hashing(src, dst_fh, progress=None) -> tuple[str, int]:
    """Copy ``src`` into the open binary file ``dst_fh`` (None: only hash) while hashing; (sha256, size)."""
    h = hashlib.sha256()
    size = 0
    with open(src, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            if dst_fh is not None:
                dst_fh.write(view[:n])
            size += n
            if progress:
                progress(n)
    return h.hexdigest(), size


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

    def _publish(self, tmp: Path, sha256: str) -> Path:
        """Link a complete, verified temporary file into place (a no-op if the blob exists); ``tmp`` is removed."""
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, final)  # atomic; fails if another writer published the same content first
            tmp.unlink()
            os.chmod(final, 0o444)  # blobs are immutable; discourage editing in place
        except FileExistsError:
            tmp.unlink(missing_ok=True)
        except OSError:  # file systems without hard links: rename is atomic too
            os.replace(tmp, final)
        _fsync_dir(final.parent)
        return final

    def put_file(self, src, *, move: bool = False, expected_sha256: str | None = None,
                 expected_size: int | None = None, verified: bool = False, progress=None) -> tuple[str, int]:
        """Store a file's bytes; (sha256, size).  ``move`` consumes ``src`` (same file system).

        With ``expected_sha256``/``expected_size`` a mismatch raises InvalidInput and stores nothing.
        ``verified`` (with ``move`` and ``expected_sha256``): the caller hashed ``src`` already.
        """
        src = Path(src)
        if expected_sha256 and src.resolve() == self.path(expected_sha256).resolve():
            size = src.stat().st_size  # already this very blob (a retry, or identical content)
            self._check(src, expected_sha256, size, expected_sha256, expected_size)
            return expected_sha256, size
        if move:
            if verified and expected_sha256:
                sha, size = expected_sha256, src.stat().st_size
            else:
                sha, size = sha256_file(src, progress)
            self._check(src, sha, size, expected_sha256, expected_size)
            with open(src, "rb+") as fh:
                os.fsync(fh.fileno())
            self._publish(src, sha)
            return sha, size
        tmp = self.temp_path()
        try:
            with open(tmp, "xb") as out:
                sha, size = copy_hashing(src, out, progress)
                out.flush()
                os.fsync(out.fileno())
            self._check(src, sha, size, expected_sha256, expected_size)
            self._publish(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
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
        from ..atomic import atomic_path

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
