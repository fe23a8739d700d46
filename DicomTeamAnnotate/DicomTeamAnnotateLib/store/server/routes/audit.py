"""Route: the append-only audit log, paged (``limit``, ``after``; ``X-Next-After`` asks for the next page)."""
# No `from __future__ import annotations`: FastAPI reads the handlers' parameter types.

from DicomTeamAnnotateLib.store.server.context import Member
from DicomTeamAnnotateLib.store.server.errors import responses
from DicomTeamAnnotateLib.store.server.routes.cases import CASE_ID
from DicomTeamAnnotateLib.store.server.routes.common import page
from DicomTeamAnnotateLib.store.server.schemas import AuditEntry, pattern

EVENT_ID = pattern(r"^[0-9a-f]{32}$", 32)


def router(context, deps):
    from fastapi import APIRouter, Depends, Query, Request

    api = APIRouter(tags=["audit"])
    Who = Depends(deps.member)
    limits = context.limits

    @api.get("/audit", response_model=list[AuditEntry], responses=responses(400, 401, 403, 404),
             summary="who did what when (an annotator sees only their own actions), oldest first")
    async def audit(request: Request, case_id: str | None = Query(None, **CASE_ID),
                    limit: int = Query(limits.page_size, ge=1, le=limits.max_page_size),
                    after: str | None = Query(None, description="the X-Next-After of the previous page", **EVENT_ID),
                    who: Member = Who):
        def compute(svc):
            return page(svc.audit(case_id, limit=limit + 1, after=after), limit, lambda e: e["id"])
        return await deps.answer(request, who, ("audit", case_id, limit, after), compute, paged=True)

    return api
