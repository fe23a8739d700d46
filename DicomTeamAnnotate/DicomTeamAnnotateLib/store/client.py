"""The HTTP store: the Store interface over the project server (``requests``).

Every request has a timeout; idempotent requests are retried by urllib3 (connection errors,
502/503/504, with backoff).  Pushes upload in chunks to a resumable upload session and
ride out a server restart: after a failure the client asks the server how many bytes it
holds and goes on from there, for up to ``retry_window_s`` seconds; the version id is chosen
up front, so a retried push never makes two versions.  Downloads go through the local
SyncCache (verified by sha256, resumed with HTTP Range).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from DicomTeamAnnotateLib.core.hashing import BackgroundHash, crc32c_hex, crc32c_module, sha256_file
from DicomTeamAnnotateLib.store.cache import Progress, SyncCache, download
from DicomTeamAnnotateLib.store.model import (
    ERRORS_BY_STATUS,
    Conflict,
    NotFound,
    StoreError,
    StoreUnavailable,
    check_id,
    check_meta,
    check_version_id,
    new_version_id,
)
from DicomTeamAnnotateLib.store.service import fetch_reference_case_image

log = logging.getLogger(__name__)

API = "/api/v1"
CHUNK_SIZE = 64 << 20  # bytes per PUT: few requests; a resumed upload repeats at most the bytes in flight


class _FileSlice:
    """Bytes ``start..end`` of a file as an iterable with a length (so requests sends Content-Length).

    Each block read is also handed to ``hashing`` (a BackgroundHash of the file from byte 0), so
    the file is read once for sending and hashing together; bytes hashed before (a resumed
    chunk) are not hashed again.
    """

    def __init__(self, path, start: int, end: int, progress: Progress, hashing, piece: int = 1 << 20):
        self.path, self.start, self.end, self.progress, self.piece = path, start, end, progress, piece
        self.hashing = hashing

    def __len__(self):
        return self.end - self.start

    def __iter__(self):
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            pos = self.start
            while pos < self.end:
                block = fh.read(min(self.piece, self.end - pos))
                if not block:
                    raise StoreError(f"{self.path}: file shrank during the upload")
                skip = self.hashing.position - pos
                if 0 <= skip < len(block):
                    self.hashing.update(memoryview(block)[skip:] if skip else block)
                pos += len(block)
                yield block
                self.progress.add(len(block))


class _ChunkBytes:
    """One chunk held in memory, sent in pieces (progress several times per chunk) with a length."""

    def __init__(self, data: bytes, progress: Progress, piece: int):
        self.view, self.progress, self.piece = memoryview(data), progress, piece

    def __len__(self):
        return len(self.view)

    def __iter__(self):
        for start in range(0, len(self.view), self.piece):
            block = self.view[start:start + self.piece]
            yield block
            self.progress.add(len(block))


class _CheckedChunks:
    """Chunks of a file with their CRC32C, each read while the one before it is being sent."""

    def __init__(self, path, size: int, chunk_size: int, crc32c):
        from concurrent.futures import ThreadPoolExecutor

        self.path, self.size, self.chunk_size, self.crc32c = path, size, chunk_size, crc32c
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dicomteam-chunk")
        self._ahead = None  # (offset, end, future)

    def _read(self, offset: int, end: int) -> tuple:
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(end - offset)
        if len(data) != end - offset:
            raise StoreError(f"{self.path}: file shrank during the upload")
        return data, crc32c_hex(self.crc32c.value(data))

    def get(self, offset: int, end: int) -> tuple:
        """(bytes, CRC32C hex) of ``offset..end``; starts reading the next chunk."""
        ahead, self._ahead = self._ahead, None
        found = ahead[2].result() if ahead is not None and ahead[:2] == (offset, end) else self._read(offset, end)
        following = min(end + self.chunk_size, self.size)
        if end < self.size:
            self._ahead = (end, following, self._pool.submit(self._read, end, following))
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class HttpStore:
    """A project on a server (see interface.Store); ``token`` defaults to $DICOMTEAM_TOKEN."""

    def __init__(self, url: str, user: str, token: str | None = None, *, cache=None, timeout=(5.0, 120.0),
                 retry_window_s: float = 60.0, connect_window_s: float = 2.0, chunk_size: int = CHUNK_SIZE,
                 chunk_checksum: str = "auto"):
        """``chunk_checksum``: how a push proves its bytes arrived intact. 'crc32c': each chunk's
        CRC32C goes with it and the server keeps only a matching chunk (the sha256 is the
        server's); 'sha256': the client hashes the file and the server checks it at finalize;
        'auto': crc32c where google-crc32c has its hardware-backed build, else sha256."""
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.location = url.rstrip("/")
        self.user = check_id(user, "user name")
        self.token = token or os.environ.get("DICOMTEAM_TOKEN")
        self.timeout = timeout
        self.retry_window_s = retry_window_s
        self.connect_window_s = connect_window_s
        self.chunk_size = int(chunk_size)
        if chunk_checksum not in ("auto", "crc32c", "sha256"):
            raise ValueError(f"chunk_checksum must be 'auto', 'crc32c' or 'sha256', got {chunk_checksum!r}")
        self._crc32c = crc32c_module(need_fast=chunk_checksum == "auto") if chunk_checksum != "sha256" else None
        if chunk_checksum == "crc32c" and self._crc32c is None:
            raise ValueError("chunk_checksum 'crc32c' needs the google-crc32c package")
        self.cache = None if cache is False else (cache if isinstance(cache, SyncCache) else SyncCache(cache))
        self.session = requests.Session()
        retry = Retry(total=3, connect=3, read=2, status=3, backoff_factor=0.2, status_forcelist=(502, 503, 504),
                      allowed_methods=frozenset({"GET", "HEAD", "PUT", "OPTIONS"}), raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["X-DicomTeam-User"] = self.user
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    def close(self) -> None:
        self.session.close()

    def __repr__(self):
        return f"HttpStore({self.location!r}, user={self.user!r})"

    # ----- transport ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json=None, params=None, data=None, headers=None,
                 stream=False, timeout=None):
        import requests

        url = self.location + API + path
        try:
            r = self.session.request(method, url, json=json, params=params, data=data, headers=headers,
                                     stream=stream, timeout=timeout or self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise StoreUnavailable(f"cannot reach {self.location} ({type(exc).__name__}: {exc})") from None
        if r.status_code >= 400:
            try:
                body = r.json()
                detail = body.get("detail", r.text)
            except ValueError:
                body, detail = {}, r.text.strip() or r.reason
            # Any 5xx is the server's trouble (a crash, a full disk, a restart): retryable, and a push that
            # meets one is kept in the offline queue rather than lost.
            cls = ERRORS_BY_STATUS.get(r.status_code, StoreUnavailable if r.status_code >= 500 else StoreError)
            exc = cls(f"{method} {path}: {detail}")
            exc.status = r.status_code
            exc.extra = body if isinstance(body, dict) else {}
            r.close()
            raise exc
        return r

    def _json(self, method, path, **kw):
        return self._request(method, path, **kw).json()

    def _pages(self, path: str, params: dict | None = None) -> list:
        """Every row of a paged listing: follows the server's ``X-Next-After`` until the last page."""
        params = dict(params or {})
        rows = []
        while True:
            r = self._request("GET", path, params=params)
            rows.extend(r.json())
            after = r.headers.get("X-Next-After")
            if not after:
                return rows
            params["after"] = after

    def _retrying(self, fn, window: float):
        """Call ``fn`` until it stops failing with StoreUnavailable, for up to ``window`` seconds."""
        deadline = time.monotonic() + window
        delay = 0.2
        while True:
            try:
                return fn()
            except StoreUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.info("%s; retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # ----- project, cases, states -----------------------------------------------------------------
    def project(self) -> dict:
        return self._json("GET", "/project")

    def whoami(self) -> dict:
        return self._json("GET", "/me")

    def members(self) -> list[dict]:
        return self._json("GET", "/members")

    def list_cases(self) -> list[dict]:
        return self._json("GET", "/cases")

    def get_case(self, case_id) -> dict:
        return self._json("GET", f"/cases/{check_id(case_id, 'case id')}")

    def assignments(self, case_id=None) -> list[dict]:
        return self._json("GET", "/assignments", params={"case_id": case_id} if case_id else None)

    def list_versions(self, case_id, author=None) -> list[dict]:
        return self._pages(f"/cases/{check_id(case_id, 'case id')}/versions",
                           params={"author": author} if author else None)

    def get_version(self, version_id) -> dict:
        return self._json("GET", f"/versions/{check_version_id(version_id)}")

    def latest_version(self, case_id, author=None, kind=None) -> dict | None:
        params = {k: v for k, v in (("author", author), ("kind", kind)) if v}
        return self._json("GET", f"/cases/{check_id(case_id, 'case id')}/latest", params=params)["version"]

    def states(self, case_id) -> dict:
        return self._json("GET", f"/cases/{check_id(case_id, 'case id')}/states")

    def set_state(self, case_id, state, annotator=None) -> dict:
        return self._json("POST", f"/cases/{check_id(case_id, 'case id')}/states",
                          json={"state": state, "annotator": annotator})

    def worklist(self) -> list[dict]:
        return self._json("GET", "/worklist")

    def audit(self, case_id=None) -> list[dict]:
        return self._pages("/audit", params={"case_id": case_id} if case_id else None)

    # ----- downloads ------------------------------------------------------------------------------
    def _stream(self, path: str):
        def open_stream(offset: int):
            headers = {"Range": f"bytes={offset}-"} if offset else None
            r = self._request("GET", path, headers=headers, stream=True)
            if offset and r.status_code != 206:
                r.close()
                raise StoreError(f"GET {path}: the server ignored the Range request (status {r.status_code})")
            import requests

            try:
                yield from r.iter_content(chunk_size=1 << 20)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as exc:
                raise StoreUnavailable(f"download of {path} interrupted ({exc})") from None
            finally:
                r.close()
        return open_stream

    def _download(self, path, sha256, size, dest: Path, progress, link: bool) -> Path:
        if self.cache is None:
            return self._retrying(lambda: download(self._stream(path), dest, sha256, size, progress),
                                  self.retry_window_s)
        self._retrying(lambda: self.cache.fetch(sha256, self._stream(path), size, progress), self.retry_window_s)
        return self.cache.materialize(sha256, dest, link=link)

    def fetch_image(self, case_id, dest_dir, progress=None) -> Path:
        """Download the case image into ``dest_dir`` (cached, verified, resumable); returns its path.

        A reference-mode case's pixels are not on the server: this client fetches them from the
        PACS the case records (into ``<cache>/dicomweb``), with this machine's PACS credentials.
        """
        case = self.get_case(case_id)
        if case.get("reference") is not None:

            cache_dir = self.cache.root / "dicomweb" if self.cache is not None else None
            return fetch_reference_case_image(case, dest_dir, cache_dir=cache_dir, progress=progress)
        dest = Path(dest_dir) / case["image_name"]
        return self._download(f"/cases/{case_id}/image", case["image_sha256"], case["image_size"], dest,
                              progress, link=True)

    def fetch_version(self, version_id, dest_path, progress=None) -> Path:
        """Download a version's .seg.nrrd to ``dest_path`` (a file, or a folder to put it in)."""
        v = self.get_version(version_id)
        dest = Path(dest_path)
        if dest.is_dir():
            dest = dest / f"{v['case_id']}.{v['id']}.seg.nrrd"
        return self._download(f"/versions/{version_id}/content", v["sha256"], v["size"], dest, progress,
                              link=False)

    # ----- pushes -------------------------------------------------------------------------------
    def push_version(self, case_id, seg_path, parent=None, message="", kind="annotation", meta=None, *,
                     version_id=None, progress=None) -> dict:
        """Upload a .seg.nrrd as a new version (resumable, checksum-verified); returns the version.

        With CRC32C chunks (see ``chunk_checksum``) each chunk is checked on arrival and the
        server's sha256 names the blob.  Otherwise the bytes are hashed as they are read for
        sending (in a second thread: hashlib releases the GIL), and the sha256 goes with the
        finalize request; the server checks it against the hash of what it received.
        """
        seg_path = Path(seg_path)
        if not seg_path.is_file():
            raise FileNotFoundError(f"{seg_path}: no such file")
        check_id(case_id, "case id")
        check_meta(meta)  # strict JSON, bounded: refused here with the same message the server would give
        before = seg_path.stat()
        size = before.st_size
        body = {"size": size, "filename": seg_path.name, "parent": parent, "kind": kind, "message": message or "",
                "meta": meta or {}, "version_id": version_id or new_version_id()}
        start = self._retrying(lambda: self._json("POST", f"/cases/{case_id}/uploads", json=body),
                               self.connect_window_s)
        if "version" in start:  # a retried push whose version exists: same content?
            if start["version"]["sha256"] != sha256_file(seg_path)[0]:
                raise Conflict(f"version id {body['version_id']!r} is already used for other content")
            return start["version"]
        hashing = None if self._crc32c is not None else BackgroundHash()
        bar = Progress(progress, size, seg_path.name)
        try:
            self._send_chunks(start["upload_id"], seg_path, size, bar, hashing)
        finally:
            bar.close()
            h = hashing.finish() if hashing is not None else None
        after = seg_path.stat()
        if (after.st_size, after.st_mtime_ns, after.st_ino) != (size, before.st_mtime_ns, before.st_ino):
            # the bytes sent may mix the old and the new file: the upload is left unfinished
            raise StoreError(f"{seg_path}: the file changed while it was uploaded; push it again once it is saved")
        sha = None
        if hashing is not None:
            sha = h.hexdigest() if hashing.position == size else sha256_file(seg_path)[0]
        version = self._retrying(lambda: self._finalize(start["upload_id"], body["version_id"], sha),
                                 self.retry_window_s)
        if version.get("size") not in (None, size):
            raise StoreError(f"{seg_path}: the server stored {version['size']} bytes of {size}")
        return version

    def _finalize(self, upload_id, version_id, sha256) -> dict:
        try:
            return self._json("POST", f"/uploads/{upload_id}/finalize", json={"sha256": sha256} if sha256 else {})
        except NotFound:
            # The session is gone: after a lost reply the version may exist already.
            return self.get_version(version_id)

    def _send_chunks(self, upload_id, path, size, bar: Progress, hashing) -> None:
        deadline = time.monotonic() + self.retry_window_s
        offset, delay, refused = 0, 0.2, 0
        piece = max(4096, min(1 << 20, self.chunk_size // 4))  # progress several times per chunk
        # With CRC32C the header goes before the body: each chunk is read (the next one ahead,
        # while this one is sent) and its CRC computed before its PUT starts.
        reader = _CheckedChunks(path, size, self.chunk_size, self._crc32c) if self._crc32c is not None else None
        try:
            while offset < size:
                try:
                    end = min(offset + self.chunk_size, size)
                    bar.set(offset)
                    headers = {"Content-Type": "application/octet-stream"}
                    if reader is None:  # streamed from the file, hashed on the way
                        data = _FileSlice(path, offset, end, bar, hashing, piece)
                    else:
                        chunk, headers["X-Chunk-CRC32C"] = reader.get(offset, end)
                        data = _ChunkBytes(chunk, bar, piece)
                    r = self._json("PUT", f"/uploads/{upload_id}", params={"offset": offset}, data=data,
                                   headers=headers)
                    offset, delay, refused = r["offset"], 0.2, 0
                    deadline = time.monotonic() + self.retry_window_s  # progress made: a fresh window
                except Conflict as exc:  # the server holds a different number of bytes: go on from there
                    if "offset" not in getattr(exc, "extra", {}):
                        raise
                    refused = refused + 1 if int(exc.extra["offset"]) == offset else 0
                    if refused > 3:  # the same chunk refused again and again (its CRC32C never matches)
                        raise
                    offset = int(exc.extra["offset"])
                except StoreUnavailable as exc:
                    if time.monotonic() + delay > deadline:
                        raise
                    log.info("upload %s interrupted (%s); resuming in %.1f s", upload_id, exc, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    offset = self._retrying(lambda: self._json("GET", f"/uploads/{upload_id}")["offset"],
                                            max(deadline - time.monotonic(), 0.0))
        finally:
            if reader is not None:
                reader.close()
