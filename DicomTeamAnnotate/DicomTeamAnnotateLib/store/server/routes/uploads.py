"""Routes: the resumable upload protocol (the protocol itself: ``server/uploads.py``)."""
# No `from __future__ import annotations`: FastAPI reads the handlers' parameter types.

from DicomTeamAnnotateLib.store.server.context import Member
from DicomTeamAnnotateLib.store.server.errors import responses
from DicomTeamAnnotateLib.store.server.routes.cases import CASE_ID
from DicomTeamAnnotateLib.store.server.routes.common import json_answer
from DicomTeamAnnotateLib.store.server.schemas import (
    CreateUploadRequest,
    FinalizeRequest,
    UploadOut,
    UploadStarted,
    VersionOut,
    pattern,
)
from DicomTeamAnnotateLib.store.server.uploads import CRC_HEADER, UploadProtocol

UPLOAD_ID = pattern(r"^[0-9a-f]{32}$", 32)


def router(context, deps):
    from fastapi import APIRouter, Depends, Header, Path, Query, Request

    api = APIRouter(tags=["uploads"])
    Service = Depends(deps.service)
    protocol = UploadProtocol(context)
    CaseId = Path(description="a case id", **CASE_ID)
    UploadId = Path(description="an upload id (from POST /cases/{case_id}/uploads)", **UPLOAD_ID)

    @api.post("/cases/{case_id}/uploads", response_model=UploadStarted,
              responses=responses(400, 401, 403, 404, 409, 413, 415, 429),
              summary="start a push: an upload session (or, for a retried push, the version that exists)")
    def create(body: CreateUploadRequest, case_id: str = CaseId, svc=Service):
        return json_answer(protocol.create(svc, case_id, body.model_dump()))

    @api.get("/uploads/{upload_id}", response_model=UploadOut, responses=responses(400, 401, 404),
             summary="how many bytes of an upload the server holds (where to resume)")
    def status(upload_id: str = UploadId, svc=Service):
        return json_answer(protocol.status(svc, upload_id))

    @api.put("/uploads/{upload_id}", response_model=UploadOut,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
             responses=responses(400, 401, 404, 409, 413, 415, 429, 503),
             summary="append a chunk at `offset` (409 with the offset to resume from when it is not the end)")
    async def put(request: Request, upload_id: str = UploadId,
                  offset: int = Query(ge=0, description="where this chunk starts"),
                  crc32c: str | None = Header(None, alias=CRC_HEADER, description="the chunk's CRC32C, 8 hex digits"),
                  member: Member = Depends(deps.member)):
        return json_answer(await protocol.put(member, upload_id, offset, request))

    @api.post("/uploads/{upload_id}/finalize", response_model=VersionOut,
              responses=responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
              summary="check size, sha256 and geometry, then make the version (idempotent)")
    def finalize(body: FinalizeRequest | None = None, upload_id: str = UploadId, svc=Service):
        return json_answer(protocol.finalize(svc, upload_id, body.sha256 if body else None))

    return api
