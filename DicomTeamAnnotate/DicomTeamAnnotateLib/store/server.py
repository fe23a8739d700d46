"""The project server: FastAPI over a project folder and its SQL index.

``create_app(project_dir, db_url=None)`` builds the app; ``serve(...)`` runs it with uvicorn
(``dicomteam serve DIR [--db URL] --host H --port P``).  Every request carries
``Authorization: Bearer <token>``; the token names the member (tokens are stored hashed),
and the same rules as the folder store apply (service.ProjectService), enforced here.

Uploads are resumable: POST creates an upload session (its bytes go to ``DIR/uploads/``,
never to the blob area), PUT appends a chunk at a given offset, GET tells the offset reached,
and finalize verifies size and sha256 and the segmentation's geometry (from its header: a
large push is never decoded) before the blob and the version appear.  A chunk sent with its
CRC32C (``X-Chunk-CRC32C``) is kept only if what arrived matches, so a client that sends every
chunk that way need not hash the whole file itself (finalize's ``sha256`` is then optional: the
server computes it); without a CRC the client declares the sha256 and the server checks it.
The bytes are written once, to the upload file that becomes the blob (hashed on the way,
fsynced once, then linked into place).  Downloads are streamed from the blob files (with HTTP
Range support).

The server keeps no state in memory that matters: everything lives in the database and the
project folder, so several instances (``--workers N``, or hosts sharing the folder and a
PostgreSQL database) can run behind a load balancer.
"""
# No `from __future__ import annotations` here: FastAPI must see the real classes of the
# handlers' parameters (Request is imported inside create_app, which keeps imports cheap).

import collections
import contextlib
import hashlib
import json
import logging
import os

from DicomTeamAnnotateLib.core.hashing import BackgroundHash, crc32c_hex
from DicomTeamAnnotateLib.store.auth import hash_token
from DicomTeamAnnotateLib.store.blobs import hash_checking_chunks
from DicomTeamAnnotateLib.store.model import (
    Conflict,
    InvalidInput,
    NotFound,
    StoreError,
    Unauthorized,
    check_filename,
    check_sha256,
    check_version_id,
    new_id,
    new_version_id,
)
from DicomTeamAnnotateLib.store.service import ProjectService, read_project_file
from DicomTeamAnnotateLib.store.sqlindex import CHUNKS_SUFFIX, UPLOAD_SUFFIX, SqlIndex

log = logging.getLogger(__name__)

API = "/api/v1"
MAX_JSON_BYTES = 1 << 20
MAX_UPLOAD_BYTES = int(os.environ.get("DICOMTEAM_MAX_UPLOAD_BYTES", 32 << 30))
CRC_HEADER = "X-Chunk-CRC32C"     # a chunk's CRC32C (8 hex digits); the server keeps it only if it matches
_VERSION_FIELDS = ("parent", "kind", "message", "meta", "version_id")


def create_app(project_dir, db_url: str | None = None):
    """The FastAPI app serving one project folder (SQLite index at DIR/index.sqlite unless ``db_url``)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect


    index = SqlIndex(project_dir, db_url)
    index.purge_uploads()  # sessions abandoned for a week

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        index.close()

    app = FastAPI(title="DicomTeamAnnotate project server", version="1", lifespan=lifespan)
    app.state.index = index

    class BlobResponse(FileResponse):
        chunk_size = 1 << 20  # fewer thread hops than the 64 KiB default when streaming large images

    def blob_response(found) -> BlobResponse:
        """Stream the ``(path, filename, sha256)`` a service blob lookup returned."""
        path, name, sha = found
        return BlobResponse(path, filename=name, media_type="application/octet-stream",
                            headers={"X-Content-SHA256": sha})

    # ----- errors: one JSON shape, {"detail": "...", "error": "Kind"} ---------------------------
    @app.exception_handler(StoreError)
    async def _store_error(request, exc: StoreError):
        body = {"detail": str(exc), "error": type(exc).__name__}
        body.update(getattr(exc, "extra", {}) or {})
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts), "error": "InvalidInput"},
                            status_code=400)

    # ----- helpers --------------------------------------------------------------------------------
    def _authenticate(request) -> ProjectService:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>' "
                               "(from `dicomteam project add-member`)")
        token_hash = hash_token(token.strip())
        index.refresh()
        member = index.member_by_token(token_hash)
        if member is None:
            index.refresh(force=True)
            member = index.member_by_token(token_hash)
        if member is None:
            raise Unauthorized("unknown token")
        claimed = request.headers.get("x-dicomteam-user")
        if claimed and claimed != member["user"]:
            raise Unauthorized(f"the token belongs to {member['user']!r}, not to {claimed!r}")
        return ProjectService(index, member["user"])

    async def call(request, fn):
        """Authenticate and run ``fn(service)`` in the thread pool (database and file work block)."""
        def run():
            return fn(_authenticate(request))
        return await run_in_threadpool(run)

    def require_content_type(request, expected: str) -> None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != expected:
            raise _ContentType(f"expected Content-Type {expected}, got {ctype or 'none'!r}")

    async def json_body(request, allowed: tuple) -> dict:
        require_content_type(request, "application/json")
        raw = await request.body()
        if len(raw) > MAX_JSON_BYTES:
            raise InvalidInput(f"JSON body of {len(raw)} bytes is larger than {MAX_JSON_BYTES}")
        try:
            doc = json.loads(raw or b"{}")
        except ValueError as exc:
            raise InvalidInput(f"malformed JSON body: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidInput("the JSON body must be an object")
        unknown = sorted(set(doc) - set(allowed))
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        return doc

    def _upload_path(upload_id):
        return index.uploads_dir() / f"{upload_id}{UPLOAD_SUFFIX}"

    def _own_upload(svc, upload_id) -> dict:
        if not isinstance(upload_id, str) or len(upload_id) != 32 or not upload_id.isalnum():
            raise InvalidInput(f"invalid upload id {upload_id!r}")
        row = index.upload(upload_id)
        if row is None or row["user"] != svc.user:
            raise NotFound(f"no upload {upload_id!r} (finished, abandoned or someone else's)")
        return row

    def _chunks_path(upload_id):
        return index.uploads_dir() / f"{upload_id}{CHUNKS_SUFFIX}"

    def _chunks(upload_id) -> list:
        """The upload's completed chunks, in order: ``{start, end, crc32c}`` (crc32c None if not sent)."""
        try:
            with open(_chunks_path(upload_id), encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.endswith("\n")]  # a torn last line: not done
        except FileNotFoundError:
            return []

    def _offset(chunks: list) -> int:
        """Bytes received in completed chunks: what a client resumes from (a cut chunk's tail is dropped)."""
        return chunks[-1]["end"] if chunks else 0

    def _record_chunk(upload_id, start: int, end: int, crc) -> None:
        with open(_chunks_path(upload_id), "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"start": start, "end": end, "crc32c": crc}) + "\n")

    # ----- project, members, cases ----------------------------------------------------------------
    @app.get(API + "/health")
    async def health():
        return {"ok": True, "project": index.project().get("name")}

    @app.get(API + "/me")
    async def me(request: Request):
        return await call(request, lambda s: s.whoami())

    @app.get(API + "/project")
    async def project(request: Request):
        return await call(request, lambda s: s.project())

    @app.get(API + "/members")
    async def members(request: Request):
        return await call(request, lambda s: s.members())

    @app.get(API + "/cases")
    async def cases(request: Request):
        return await call(request, lambda s: s.list_cases())

    @app.get(API + "/cases/{case_id}")
    async def case(case_id: str, request: Request):
        return await call(request, lambda s: s.get_case(case_id))

    @app.get(API + "/assignments")
    async def assignments(request: Request, case_id: str | None = None):
        return await call(request, lambda s: s.assignments(case_id))

    @app.get(API + "/worklist")
    async def worklist(request: Request):
        return await call(request, lambda s: s.worklist())

    @app.get(API + "/audit")
    async def audit(request: Request, case_id: str | None = None):
        return await call(request, lambda s: s.audit(case_id))

    @app.get(API + "/cases/{case_id}/image")
    async def image(case_id: str, request: Request):
        return blob_response(await call(request, lambda s: s.image_blob(case_id)))

    # ----- versions and states --------------------------------------------------------------------
    @app.get(API + "/cases/{case_id}/versions")
    async def versions(case_id: str, request: Request, author: str | None = None):
        return await call(request, lambda s: s.list_versions(case_id, author=author))

    @app.get(API + "/cases/{case_id}/latest")
    async def latest(case_id: str, request: Request, author: str | None = None, kind: str | None = None):
        return {"version": await call(request, lambda s: s.latest_version(case_id, author=author, kind=kind))}

    @app.get(API + "/versions/{version_id}")
    async def version(version_id: str, request: Request):
        return await call(request, lambda s: s.get_version(version_id))

    @app.get(API + "/versions/{version_id}/content")
    async def version_content(version_id: str, request: Request):
        return blob_response(await call(request, lambda s: s.version_blob(version_id)))

    @app.get(API + "/cases/{case_id}/states")
    async def states(case_id: str, request: Request):
        return await call(request, lambda s: s.states(case_id))

    @app.post(API + "/cases/{case_id}/states")
    async def set_state(case_id: str, request: Request):
        body = await json_body(request, ("state", "annotator"))
        return await call(request, lambda s: s.set_state(case_id, body.get("state"), body.get("annotator")))

    # ----- resumable uploads ------------------------------------------------------------------------
    # Running sha256 of uploads whose chunks arrived here in order: a cache that saves re-reading
    # the file at finalize; without it (restart, another instance took a chunk) finalize re-hashes.
    hashers: collections.OrderedDict = collections.OrderedDict()

    @app.post(API + "/cases/{case_id}/uploads")
    async def create_upload(case_id: str, request: Request):
        body = await json_body(request, ("sha256", "size", "filename") + _VERSION_FIELDS)

        def run(svc):
            sha = check_sha256(body["sha256"]) if body.get("sha256") is not None else None
            size = body.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_UPLOAD_BYTES:
                raise InvalidInput(f"field 'size' must be an integer in 1..{MAX_UPLOAD_BYTES}, got {size!r}")
            filename = check_filename(body.get("filename") or "segmentation.seg.nrrd")
            params = {k: body.get(k) for k in ("parent", "kind", "message", "meta")}
            params["kind"] = params["kind"] or "annotation"
            version_id = check_version_id(body.get("version_id") or new_version_id())
            existing = svc.prepare_push(case_id, version_id=version_id, **params)
            if existing is not None:  # a retried push: the version exists already
                if (sha and existing["sha256"] != sha) or existing["author"] != svc.user \
                        or existing["case_id"] != case_id:
                    raise Conflict(f"version id {version_id!r} is already used for other content")
                return {"version": svc.get_version(version_id)}
            if sha and index.blobs.exists(sha):  # the content is here already: no upload needed
                version = svc.push_version(case_id, index.blobs.path(sha), version_id=version_id,
                                           filename=filename, sha256=sha, size=size, **params)
                return {"version": version}
            upload_id = new_id()
            _upload_path(upload_id).touch()
            index.create_upload(upload_id, case_id, svc.user, sha or "", size,
                                {**params, "version_id": version_id, "filename": filename})
            return {"upload_id": upload_id, "offset": 0, "size": size}
        return await call(request, run)

    @app.get(API + "/uploads/{upload_id}")
    async def upload_status(upload_id: str, request: Request):
        row = await call(request, lambda s: _own_upload(s, upload_id))
        return {"upload_id": upload_id, "offset": _offset(_chunks(upload_id)), "size": row["size"],
                "sha256": row["sha256"] or None}

    @app.put(API + "/uploads/{upload_id}")
    async def put_chunk(upload_id: str, request: Request, offset: int):
        row = await call(request, lambda s: _own_upload(s, upload_id))
        require_content_type(request, "application/octet-stream")
        expected_crc = request.headers.get(CRC_HEADER)
        if expected_crc is not None:
            expected_crc = expected_crc.strip().lower()
            if len(expected_crc) != 8 or any(c not in "0123456789abcdef" for c in expected_crc):
                raise InvalidInput(f"header {CRC_HEADER} must be 8 hex digits (the chunk's CRC32C), "
                                   f"got {expected_crc!r}")
        path = _upload_path(upload_id)
        current = _offset(_chunks(upload_id))
        if offset != current:
            raise _OffsetConflict(current, f"upload {upload_id}: chunk starts at {offset}, but {current} bytes "
                                           "are stored; resume from there")
        running = hashers.pop(upload_id, None)  # (bytes hashed, sha256 object) of this session
        if running is None or running[0] != current:
            running = (0, hashlib.sha256()) if current == 0 else None
        h, position = (running[1], running[0]) if running is not None else (hashlib.sha256(), current)
        fd = os.open(path, os.O_WRONLY)
        # This loop only receives; other threads write and hash each block (both release the GIL),
        # starting the disk's writeback as they go.  No fsync per chunk: the blob is fsynced once,
        # at finalize, before it is linked into place.  A crash of the machine (not of this
        # process: the page cache survives that) may lose acknowledged bytes; finalize then finds
        # the size, a chunk's CRC32C or the sha256 wrong and refuses the upload.
        keep = False
        try:
            os.ftruncate(fd, current)  # a tail past the last completed chunk (a killed server's) is dropped
            os.lseek(fd, current, os.SEEK_SET)
            sink = BackgroundHash(h, position, fd=fd, crc32c=expected_crc is not None)
            received, too_large, cut = 0, False, False
            try:
                async for piece in request.stream():
                    if current + received + len(piece) > row["size"]:
                        too_large = True
                        break
                    sink.update(piece)
                    received += len(piece)
            except ClientDisconnect:
                cut = True
                log.info("upload %s: client went away after %d bytes of this chunk", upload_id, received)
            finally:
                h = await run_in_threadpool(sink.finish)
            if too_large:
                raise InvalidInput(f"upload {upload_id}: more bytes than the declared size {row['size']}")
            crc = crc32c_hex(sink.crc) if expected_crc is not None else None
            if expected_crc is not None and cut:
                return {"upload_id": upload_id, "offset": current, "size": row["size"]}  # unverifiable: dropped
            if crc != expected_crc:
                raise _OffsetConflict(current, f"upload {upload_id}: the chunk at {current} arrived with CRC32C "
                                               f"{crc}, not {expected_crc}; it was not kept, send it again")
            _record_chunk(upload_id, current, current + sink.written, crc)
            keep = True
        except OSError as exc:
            raise StoreError(f"upload {upload_id}: the server could not store the chunk ({exc})") from None
        finally:
            if not keep:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, current)  # nothing of a refused chunk stays
            os.close(fd)
        if running is not None and sink.position == current + sink.written:  # else finalize re-hashes
            hashers[upload_id] = (sink.position, h)
            while len(hashers) > 256:  # abandoned sessions must not pile up in memory
                hashers.popitem(last=False)
        return {"upload_id": upload_id, "offset": current + sink.written, "size": row["size"]}

    @app.post(API + "/uploads/{upload_id}/finalize")
    async def finalize(upload_id: str, request: Request):
        body = await json_body(request, ("sha256",))

        def run(svc):
            row = _own_upload(svc, upload_id)
            params = dict(row["data"])
            if index.version(params["version_id"]) is not None:  # a retry after the version was made
                index.delete_upload(upload_id)
                return svc.get_version(params["version_id"])
            declared = body.get("sha256") or row["sha256"]
            chunks = _chunks(upload_id)
            every_chunk_checked = bool(chunks) and all(c["crc32c"] for c in chunks)
            if not declared and not every_chunk_checked:
                raise InvalidInput(f"field 'sha256' is required (here or when the upload was created) unless "
                                   f"every chunk was sent with {CRC_HEADER}")
            if declared:
                check_sha256(declared)
            if row["sha256"] and declared != row["sha256"]:
                raise InvalidInput(f"upload {upload_id}: sha256 {declared} differs from the one declared at the start")
            received = _offset(chunks)
            if received != row["size"]:
                raise _OffsetConflict(received, f"upload {upload_id}: {received} of {row['size']} bytes received")
            running = hashers.pop(upload_id, None)
            hashed = running[1].hexdigest() if running is not None and running[0] == received else None
            try:
                if hashed is None:  # chunks came through a restart or another instance: read them again
                    hashed = hash_checking_chunks(_upload_path(upload_id), chunks)
                if declared and hashed != declared:
                    raise InvalidInput(f"upload {upload_id}: the sha256 of the bytes is {hashed}, "
                                       f"not the declared {declared}")
                version = svc.push_version(row["case_id"], _upload_path(upload_id), move=True, sha256=hashed,
                                           size=row["size"], verified=True, **params)
            except (InvalidInput, Conflict):
                index.delete_upload(upload_id)  # bad content: nothing is kept
                raise
            index.delete_upload(upload_id)
            return version
        return await call(request, run)

    return app


class _ContentType(InvalidInput):
    status = 415


class _OffsetConflict(Conflict):
    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.extra = {"offset": offset}


def app_from_env():
    """App factory for ``uvicorn --factory`` and multi-worker runs (DICOMTEAM_PROJECT, DICOMTEAM_DB)."""
    project = os.environ.get("DICOMTEAM_PROJECT")
    if not project:
        raise RuntimeError("set DICOMTEAM_PROJECT to the project folder")
    return create_app(project, os.environ.get("DICOMTEAM_DB") or None)


def serve(project_dir, host: str = "127.0.0.1", port: int = 8765, db_url: str | None = None, *,
          workers: int = 1, log_level: str = "info") -> None:
    """Run the server (blocks).  ``workers`` > 1 starts several processes on the same port."""
    import uvicorn


    read_project_file(project_dir)  # fail early, with a clear message, on a folder that is no project
    if workers > 1:
        SqlIndex(project_dir, db_url).close()  # create the tables once, before the workers race to
        os.environ["DICOMTEAM_PROJECT"] = str(project_dir)
        os.environ["DICOMTEAM_DB"] = db_url or ""
        uvicorn.run("DicomTeamAnnotateLib.store.server:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level)
    else:
        uvicorn.run(create_app(project_dir, db_url), host=host, port=port, log_level=log_level)


class BackgroundServer:
    """The server in a thread of this process on 127.0.0.1 (demos, benchmarks, tests); ``url``, ``stop()``."""

    def __init__(self, project_dir, db_url: str | None = None, host: str = "127.0.0.1", port: int = 0):
        import socket
        import threading
        import time

        import uvicorn

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(create_app(project_dir, db_url), log_level="warning", timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the project server for {project_dir} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
