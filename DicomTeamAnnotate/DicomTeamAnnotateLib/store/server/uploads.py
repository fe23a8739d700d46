"""The resumable upload protocol: create a session, PUT chunks at offsets, ask the offset, finalize.

A session's bytes go to ``DIR/uploads/<id>.part.seg.nrrd`` (never to the blob area) and its
completed chunks to ``<id>.chunks.jsonl`` (start, end, CRC32C): the offset a client resumes
from is the end of the last completed chunk, so a chunk cut by a crash is dropped.

Rules that keep it honest under attack and crashes:

* One writer per session: a PUT or a finalize holds an exclusive lock on the session's file
  (``flock``: shared by every server process on the host); a second one waits a little, then
  gets 409 with the offset to resume from.  So the running sha256 kept for a session is the
  hash of the bytes on disk, and a blob is named by the hash of its bytes.
* A chunk sent with its CRC32C (``X-Chunk-CRC32C``) is kept only if what arrived matches.
* Finalize is idempotent: the upload file stays until the version's event is written (the blob
  is a hard link to it), so a crash or a full disk between the two is finished by a retry.
* Quotas: open sessions per member, chunks in flight per member, a session's age; the
  declared size bounds every chunk.  A chunk is written by at most one worker thread at a
  time while the next megabyte arrives (never two threads per PUT).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import os
import threading
import time

from DicomTeamAnnotateLib.core.hashing import WRITEBACK_EVERY, crc32c_hex, crc32c_module, start_writeback
from DicomTeamAnnotateLib.store.blobs import hash_checking_chunks
from DicomTeamAnnotateLib.store.model import (
    Conflict,
    InvalidInput,
    NotFound,
    StoreError,
    StoreUnavailable,
    TooManyRequests,
    check_filename,
    check_sha256,
    check_version_id,
    new_id,
    new_version_id,
)
from DicomTeamAnnotateLib.store.sqlindex import CHUNKS_SUFFIX, UPLOAD_SUFFIX

try:  # POSIX: a lock every process on this host sees; elsewhere only this process's threads
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

CRC_HEADER = "X-Chunk-CRC32C"
BATCH = 1 << 20          # bytes handed to the writer thread at once
LOCK_WAIT_S = 10.0       # how long a second writer of one session waits before 409
PURGE_EVERY_S = 600.0


class OffsetConflict(Conflict):
    """409 with the offset the client should resume from."""

    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.extra = {"offset": offset}


class UploadSession:
    """One upload session's files: its bytes, its completed chunks, its lock."""

    _local_locks: dict = collections.defaultdict(threading.Lock)  # where flock is missing

    def __init__(self, uploads_dir, upload_id: str):
        self.id = upload_id
        self.path = uploads_dir / f"{upload_id}{UPLOAD_SUFFIX}"
        self.chunks_path = uploads_dir / f"{upload_id}{CHUNKS_SUFFIX}"

    def chunks(self) -> list:
        """Completed chunks in order: ``{start, end, crc32c}`` (crc32c None when none was sent)."""
        try:
            with open(self.chunks_path, encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.endswith("\n")]  # a torn last line: not done
        except FileNotFoundError:
            return []

    def offset(self, chunks: list | None = None) -> int:
        """Bytes received in completed chunks: what a client resumes from."""
        chunks = self.chunks() if chunks is None else chunks
        return chunks[-1]["end"] if chunks else 0

    def record_chunk(self, start: int, end: int, crc) -> None:
        with open(self.chunks_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"start": start, "end": end, "crc32c": crc}) + "\n")

    def try_lock(self, fd: int) -> bool:
        """Take the session's writer lock without waiting; True when taken."""
        if fcntl is None:
            return self._local_locks[self.id].acquire(blocking=False)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def unlock(self, fd: int) -> None:
        if fcntl is None:
            self._local_locks[self.id].release()
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def open_locked(self) -> int:
        """The session file opened for writing with its lock held (waits up to LOCK_WAIT_S; 409 after)."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                raise NotFound(f"no upload {self.id!r} (finished or abandoned)") from None
            if self.try_lock(fd):
                return fd
            os.close(fd)
            if time.monotonic() > deadline:
                raise OffsetConflict(self.offset(), f"upload {self.id}: another request is writing it; ask its "
                                                    "offset and resume from there")
            time.sleep(0.02)

    def release(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            self.unlock(fd)
        os.close(fd)


class UploadProtocol:
    """Create, status, put and finalize for one app (sessions live in the index and DIR/uploads)."""

    def __init__(self, context):
        self.context = context
        self.index = context.index
        self.limits = context.limits
        # Running sha256 of sessions whose chunks this process wrote: saves re-reading the file at
        # finalize.  Without it (restart, another instance took a chunk) finalize re-hashes the file.
        self._hashers: collections.OrderedDict = collections.OrderedDict()
        self._in_flight: collections.Counter = collections.Counter()
        self._purged_at = 0.0
        self._lock = threading.Lock()

    def session(self, user: str, upload_id) -> tuple[UploadSession, dict]:
        """The member's own session (404 for anyone else's, as for one that does not exist)."""
        if not isinstance(upload_id, str) or len(upload_id) != 32 or not upload_id.isalnum():
            raise InvalidInput(f"invalid upload id {upload_id!r}")
        row = self.index.upload(upload_id)
        if row is None or row["user"] != user:
            raise NotFound(f"no upload {upload_id!r} (finished, abandoned or someone else's)")
        return UploadSession(self.index.uploads_dir(), upload_id), row

    # ----- create -----------------------------------------------------------------------------------
    def create(self, svc, case_id: str, body: dict) -> dict:
        """A new session (or, for a retried push whose version exists, that version)."""
        size = body["size"]
        if size > self.limits.max_upload_bytes:
            raise InvalidInput(f"field 'size' must be at most {self.limits.max_upload_bytes}, got {size}")
        sha = check_sha256(body["sha256"]) if body.get("sha256") is not None else None
        filename = check_filename(body.get("filename") or "segmentation.seg.nrrd")
        params = {"parent": body.get("parent"), "kind": body.get("kind") or "annotation",
                  "message": body.get("message") or "", "meta": body.get("meta")}
        version_id = check_version_id(body.get("version_id") or new_version_id())
        existing = svc.prepare_push(case_id, version_id=version_id, **params)
        if existing is not None:  # a retried push: the version exists already
            if (sha and existing["sha256"] != sha) or existing["author"] != svc.user \
                    or existing["case_id"] != case_id:
                raise Conflict(f"version id {version_id!r} is already used for other content")
            return {"version": svc.get_version(version_id)}
        # Never a version from bytes the caller did not send: even when a blob with this sha256
        # exists, the content is uploaded (dedup without proof of possession leaks blinded work).
        self._purge_now_and_then()
        if self.index.count_uploads(svc.user) >= self.limits.uploads_per_member:
            raise TooManyRequests(f"{svc.user!r} has {self.limits.uploads_per_member} unfinished uploads; finish "
                                  "or abandon one (they expire after a day)")
        upload_id = new_id()
        session = UploadSession(self.index.uploads_dir(), upload_id)
        session.path.touch()
        self.index.create_upload(upload_id, case_id, svc.user, sha or "", size,
                                 {**params, "version_id": version_id, "filename": filename})
        return {"upload_id": upload_id, "offset": 0, "size": size}

    def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._purged_at > PURGE_EVERY_S:
            self._purged_at = now
            n = self.index.purge_uploads(self.limits.upload_max_age_s)
            if n:
                log.info("purged %d abandoned upload session(s)", n)

    def status(self, svc, upload_id) -> dict:
        session, row = self.session(svc.user, upload_id)
        return {"upload_id": upload_id, "offset": session.offset(), "size": row["size"],
                "sha256": row["sha256"] or None}

    # ----- put ----------------------------------------------------------------------------------------
    async def put(self, member, upload_id: str, offset: int, request) -> dict:
        """Append one chunk at ``offset`` (see the module docstring); returns the new offset."""
        from starlette.concurrency import run_in_threadpool

        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/octet-stream":
            raise _ContentType(f"expected Content-Type application/octet-stream, got {ctype or 'none'!r}")
        expected_crc = request.headers.get(CRC_HEADER)
        if expected_crc is not None:
            expected_crc = expected_crc.strip().lower()
            if len(expected_crc) != 8 or any(c not in "0123456789abcdef" for c in expected_crc):
                raise InvalidInput(f"header {CRC_HEADER} must be 8 hex digits (the chunk's CRC32C), "
                                   f"got {expected_crc!r}")
        with self._lock:
            if self._in_flight[member.user] >= self.limits.concurrent_puts_per_member:
                raise TooManyRequests(f"{member.user!r} is sending {self._in_flight[member.user]} chunks at once; "
                                      "wait for one to finish")
            self._in_flight[member.user] += 1
        try:
            session, row = await run_in_threadpool(self.session, member.user, upload_id)
            fd = await self._lock_async(session)
            try:
                return await self._put_locked(session, row, fd, offset, request, expected_crc)
            finally:
                session.release(fd)
        finally:
            with self._lock:
                self._in_flight[member.user] -= 1
                if not self._in_flight[member.user]:
                    del self._in_flight[member.user]

    @staticmethod
    async def _lock_async(session: UploadSession) -> int:
        """The session's writer lock, waited for without holding a thread."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fd = os.open(session.path, os.O_RDWR)
            except FileNotFoundError:
                raise NotFound(f"no upload {session.id!r} (finished or abandoned)") from None
            if session.try_lock(fd):
                return fd
            os.close(fd)
            if time.monotonic() > deadline:
                raise OffsetConflict(session.offset(), f"upload {session.id}: another request is writing it; ask "
                                                       "its offset and resume from there")
            await asyncio.sleep(0.02)

    async def _put_locked(self, session, row, fd, offset, request, expected_crc) -> dict:
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import ClientDisconnect

        chunks = session.chunks()
        current = session.offset(chunks)
        if offset != current:
            raise OffsetConflict(current, f"upload {session.id}: chunk starts at {offset}, but {current} bytes "
                                          "are stored; resume from there")
        cached = self._hashers.pop(session.id, None)
        h = cached[1] if cached is not None and cached[0] == current else (hashlib.sha256() if current == 0 else None)
        writer = _ChunkWriter(fd, current, h, expected_crc is not None)
        keep = False
        try:
            os.ftruncate(fd, current)  # a tail past the last completed chunk (a killed server's) is dropped
            os.lseek(fd, current, os.SEEK_SET)
            cut, too_large = False, False
            try:
                async for piece in request.stream():
                    if current + writer.received + len(piece) > row["size"]:
                        too_large = True
                        break
                    await writer.add(piece, run_in_threadpool)
            except ClientDisconnect:
                cut = True
                log.info("upload %s: client went away after %d bytes of this chunk", session.id, writer.received)
            await writer.flush(run_in_threadpool)
            if too_large:
                raise InvalidInput(f"upload {session.id}: more bytes than the declared size {row['size']}")
            if cut and expected_crc is not None:  # an unverifiable part: dropped
                return {"upload_id": session.id, "offset": current, "size": row["size"]}
            crc = crc32c_hex(writer.crc) if expected_crc is not None else None
            if crc != expected_crc:
                raise OffsetConflict(current, f"upload {session.id}: the chunk at {current} arrived with CRC32C "
                                              f"{crc}, not {expected_crc}; it was not kept, send it again")
            session.record_chunk(current, current + writer.received, crc)
            keep = True
        except OSError as exc:
            raise _disk_error(session.id, exc) from None
        finally:
            if not keep:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, current)  # nothing of a refused chunk stays
        end = current + writer.received
        if writer.h is not None:
            self._hashers[session.id] = (end, writer.h)
            while len(self._hashers) > 256:  # abandoned sessions must not pile up in memory
                self._hashers.popitem(last=False)
        return {"upload_id": session.id, "offset": end, "size": row["size"]}

    # ----- finalize -----------------------------------------------------------------------------------
    def finalize(self, svc, upload_id: str, sha256: str | None) -> dict:
        """Check the bytes (size, sha256, segmentation) and make the version; idempotent across a crash."""
        session, row = self.session(svc.user, upload_id)
        params = dict(row["data"])
        fd = session.open_locked()
        try:
            existing = self.index.version(params["version_id"])
            if existing is not None:  # a retry after the version was made
                if existing["author"] != svc.user or existing["case_id"] != row["case_id"]:
                    raise Conflict(f"version id {params['version_id']!r} is already used for other content")
                self._drop(session)
                return svc.get_version(params["version_id"])
            declared = sha256 or row["sha256"] or None
            chunks = session.chunks()
            every_chunk_checked = bool(chunks) and all(c["crc32c"] for c in chunks)
            if not declared and not every_chunk_checked:
                raise InvalidInput(f"field 'sha256' is required (here or when the upload was created) unless "
                                   f"every chunk was sent with {CRC_HEADER}")
            if declared:
                check_sha256(declared)
            if row["sha256"] and declared != row["sha256"]:
                raise InvalidInput(f"upload {upload_id}: sha256 {declared} differs from the one declared at the start")
            received = session.offset(chunks)
            if received != row["size"]:
                raise OffsetConflict(received, f"upload {upload_id}: {received} of {row['size']} bytes received")
            cached = self._hashers.get(upload_id)
            try:
                if cached is not None and cached[0] == received and os.fstat(fd).st_size == received:
                    hashed = cached[1].hexdigest()
                else:  # chunks came through a restart or another instance: read them again
                    hashed = hash_checking_chunks(session.path, chunks)
                if declared and hashed != declared:
                    raise InvalidInput(f"upload {upload_id}: the sha256 of the bytes is {hashed}, "
                                       f"not the declared {declared}")
                version = svc.push_version(row["case_id"], session.path, keep_source=True, sha256=hashed,
                                           size=row["size"], verified=True, **params)
            except (InvalidInput, Conflict):
                self._drop(session)  # bad content: nothing is kept
                raise
            except OSError as exc:
                raise _disk_error(upload_id, exc) from None
            self._drop(session)
            return version
        finally:
            session.release(fd)

    def _drop(self, session: UploadSession) -> None:
        self._hashers.pop(session.id, None)
        self.index.delete_upload(session.id)


class _ChunkWriter:
    """Writes, hashes and CRCs a chunk's bytes in batches, one batch in a worker thread at a time."""

    def __init__(self, fd: int, position: int, h, crc: bool):
        self.fd, self.h, self.received, self.crc = fd, h, 0, 0
        self._crc_module = crc32c_module() if crc else None
        if crc and self._crc_module is None:
            raise StoreError("checking CRC32C needs the google-crc32c package on the server")
        self._blocks: list = []
        self._size = 0
        self._pending = None
        self._unflushed = 0

    async def add(self, piece: bytes, run_in_threadpool) -> None:
        self._blocks.append(piece)
        self._size += len(piece)
        self.received += len(piece)
        if self._size >= BATCH:
            await self._hand_over(run_in_threadpool)

    async def _hand_over(self, run_in_threadpool) -> None:
        if self._pending is not None:
            await self._pending  # one batch at a time keeps the writes in order
        blocks, self._blocks, self._size = self._blocks, [], 0
        self._pending = asyncio.ensure_future(run_in_threadpool(self._write, blocks))

    async def flush(self, run_in_threadpool) -> None:
        if self._blocks:
            await self._hand_over(run_in_threadpool)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    def _write(self, blocks: list) -> None:
        for block in blocks:
            view = memoryview(block)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            if self.h is not None:
                self.h.update(block)
            if self._crc_module is not None:
                self.crc = self._crc_module.extend(self.crc, block)
            self._unflushed += len(block)
        if self._unflushed >= WRITEBACK_EVERY:  # the disk writes while the rest arrives
            start_writeback(self.fd)
            self._unflushed = 0


class _ContentType(InvalidInput):
    status = 415


def _disk_error(upload_id: str, exc: OSError) -> StoreError:
    """A disk problem is the server's, and retryable (503): the client keeps the push and tries again."""
    return StoreUnavailable(f"upload {upload_id}: the server could not write ({exc.strerror or exc}); "
                            "retry later")
