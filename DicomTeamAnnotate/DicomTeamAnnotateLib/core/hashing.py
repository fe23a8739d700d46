"""Hashing files and streams: sha256 of a file, copy-while-hashing, CRC32C of chunks, and a
sha256 computed (and the blocks written) on helper threads while bytes stream in or out.

Shared by the store (blobs, uploads, downloads), SamPrompt (weights fingerprints) and
TrainBridge (model manifests).
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading

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
