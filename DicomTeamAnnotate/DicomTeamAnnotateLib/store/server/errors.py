"""One error shape for every answer that is not a success: ``{"detail": "...", "error": "Kind"}``.

Store errors carry their HTTP status (``model.StoreError.status``); FastAPI's own refusals
(validation, unknown route, wrong method) and anything unexpected are answered in the same
shape, so a client (or a fuzzer reading the OpenAPI spec) meets one format.  ``responses()``
documents the statuses a route may answer with.
"""
from __future__ import annotations

import json
import logging

from DicomTeamAnnotateLib.store.model import StoreError
from DicomTeamAnnotateLib.store.server.schemas import ErrorBody

log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "invalid input: a malformed id, field, JSON body or segmentation",
    401: "missing, unknown, expired or revoked token",
    403: "the member may not do this (role, assignment or blinding), or the case is not theirs",
    404: "no such case, version or upload",
    409: "clashes with the project's state (a reused version id, a case in review, an upload offset)",
    413: "the body is larger than allowed",
    415: "wrong Content-Type",
    422: "the segmentation is not on the case image's grid",
    429: "too many uploads at once for this member",
    503: "the server cannot complete this now (disk, database); retry later",
}


def responses(*statuses: int) -> dict:
    """FastAPI ``responses=`` for the given statuses (401 is implied for authenticated routes)."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in sorted(set(statuses))}


def error_body(status: int, detail: str, error: str, **extra) -> bytes:
    """The JSON bytes of an error answer (used by the ASGI guards, which have no FastAPI at hand)."""
    return json.dumps({"detail": detail, "error": error, **extra}).encode("utf-8")


def install_error_handlers(app) -> None:
    """Answer StoreErrors, validation errors, HTTP errors and crashes in the one shape."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(StoreError)
    async def _store_error(request, exc: StoreError):
        body = {"detail": str(exc), "error": type(exc).__name__}
        body.update(getattr(exc, "extra", {}) or {})
        return JSONResponse(body, status_code=exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts), "error": "InvalidInput"},
                            status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc):
        kind = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized", 403: "Forbidden"}.get(
            exc.status_code, "HTTPError")
        return JSONResponse({"detail": str(exc.detail), "error": kind}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request, exc):
        # Never a traceback to the client; the log has it.  A 500 is retryable for the client.
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__}); the request may be "
                                       "retried", "error": "StoreError"}, status_code=500)
