"""Routes: a case's versions (paged), its latest, one version, a version's content (GET and HEAD)."""
# No `from __future__ import annotations`: FastAPI reads the handlers' parameter types.

from DicomTeamAnnotateLib.store.server.context import Member
from DicomTeamAnnotateLib.store.server.errors import responses
from DicomTeamAnnotateLib.store.server.routes.cases import CASE_ID, blob_response
from DicomTeamAnnotateLib.store.server.routes.common import page
from DicomTeamAnnotateLib.store.server.schemas import VERSION_ID_PATTERN, LatestOut, VersionOut, pattern

VERSION_ID = pattern(VERSION_ID_PATTERN, 64)


def router(context, deps):
    from fastapi import APIRouter, Depends, Path, Query, Request

    api = APIRouter(tags=["versions"])
    Service = Depends(deps.service)
    Who = Depends(deps.member)
    CaseId = Path(description="a case id", **CASE_ID)
    VersionId = Path(description="a version id", **VERSION_ID)
    limits = context.limits

    @api.get("/cases/{case_id}/versions", response_model=list[VersionOut], responses=responses(400, 401, 403, 404),
             summary="versions of a case in push order, with `conflict`; blinding applied; paged")
    async def versions(request: Request, case_id: str = CaseId, author: str | None = Query(None, **CASE_ID),
                       limit: int = Query(limits.page_size, ge=1, le=limits.max_page_size),
                       after: str | None = Query(None, description="the X-Next-After of the previous page",
                                                 **VERSION_ID),
                       who: Member = Who):
        def compute(svc):
            return page(svc.list_versions(case_id, author=author, after=after), limit, lambda v: v["id"])
        return await deps.answer(request, who, ("versions", case_id, author, limit, after), compute, paged=True)

    @api.get("/cases/{case_id}/latest", response_model=LatestOut, responses=responses(400, 401, 403, 404),
             summary="the latest version by an author (default: me; for kind=adjudicated or prediction: anyone)")
    async def latest(request: Request, case_id: str = CaseId, author: str | None = Query(None, **CASE_ID),
                     kind: str | None = Query(None, pattern="^(annotation|adjudicated|prediction)$"), who: Member = Who):
        return await deps.answer(request, who, ("latest", case_id, author, kind),
                                 lambda s: {"version": s.latest_version(case_id, author=author, kind=kind)})

    @api.get("/versions/{version_id}", response_model=VersionOut, responses=responses(400, 401, 403, 404),
             summary="one version's record")
    async def version(request: Request, version_id: str = VersionId, who: Member = Who):
        return await deps.answer(request, who, ("version", version_id), lambda s: s.get_version(version_id))

    content_responses = {200: {"content": {"application/octet-stream": {}}, "description": "the version's .seg.nrrd"},
                         **responses(400, 401, 403, 404)}

    @api.get("/versions/{version_id}/content", responses=content_responses, operation_id="version_content",
             summary="a version's .seg.nrrd; Range requests resume a download")
    @api.head("/versions/{version_id}/content", responses=content_responses, operation_id="version_content_head",
              summary="size and sha256 of a version's .seg.nrrd, without the bytes")
    def content(version_id: str = VersionId, svc=Service):
        return blob_response(svc.version_blob(version_id))

    return api
