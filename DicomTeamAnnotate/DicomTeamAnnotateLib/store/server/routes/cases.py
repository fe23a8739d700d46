"""Routes: cases, assignments, a case's image (GET and HEAD, Range supported)."""
# No `from __future__ import annotations`: FastAPI reads the handlers' parameter types.

from DicomTeamAnnotateLib.store.server.context import Member
from DicomTeamAnnotateLib.store.server.errors import responses
from DicomTeamAnnotateLib.store.server.schemas import ID_PATTERN, AssignmentOut, CaseOut, pattern

CASE_ID = pattern(ID_PATTERN, 128)


def blob_response(found):
    """Stream the ``(path, filename, sha256)`` a service blob lookup returned (HEAD and Range work)."""
    from fastapi.responses import FileResponse

    class BlobResponse(FileResponse):
        chunk_size = 1 << 20  # fewer thread hops than the 64 KiB default when streaming large images

    path, name, sha = found
    return BlobResponse(path, filename=name, media_type="application/octet-stream",
                        headers={"X-Content-SHA256": sha})


def router(context, deps):
    from fastapi import APIRouter, Depends, Path, Query, Request

    api = APIRouter(tags=["cases"])
    Service = Depends(deps.service)
    Who = Depends(deps.member)
    CaseId = Path(description="a case id", **CASE_ID)

    @api.get("/cases", response_model=list[CaseOut], responses=responses(401),
             summary="the cases I may reach (an annotator: those assigned to them)")
    async def cases(request: Request, who: Member = Who):
        return await deps.answer(request, who, ("cases",), lambda s: s.list_cases())

    @api.get("/cases/{case_id}", response_model=CaseOut, responses=responses(400, 401, 403, 404), summary="one case")
    async def case(request: Request, case_id: str = CaseId, who: Member = Who):
        return await deps.answer(request, who, ("case", case_id), lambda s: s.get_case(case_id))

    @api.get("/assignments", response_model=list[AssignmentOut], responses=responses(400, 401, 403, 404),
             summary="(case, user) pairs; an annotator sees only their own")
    async def assignments(request: Request, case_id: str | None = Query(None, **CASE_ID), who: Member = Who):
        return await deps.answer(request, who, ("assignments", case_id), lambda s: s.assignments(case_id))

    image_responses = {200: {"content": {"application/octet-stream": {}}, "description": "the image (.nrrd)"},
                       **responses(400, 401, 403, 404)}

    @api.get("/cases/{case_id}/image", responses=image_responses, operation_id="case_image",
             summary="the case image (.nrrd); Range requests resume a download")
    @api.head("/cases/{case_id}/image", responses=image_responses,
              operation_id="case_image_head", summary="size and sha256 of the case image, without the bytes")
    def image(case_id: str = CaseId, svc=Service):
        return blob_response(svc.image_blob(case_id))

    return api

