"""Routes: a case's workflow states, and my worklist."""
# No `from __future__ import annotations`: FastAPI reads the handlers' parameter types.

from DicomTeamAnnotateLib.store.server.context import Member
from DicomTeamAnnotateLib.store.server.errors import responses
from DicomTeamAnnotateLib.store.server.routes.cases import CASE_ID
from DicomTeamAnnotateLib.store.server.routes.common import json_answer
from DicomTeamAnnotateLib.store.server.schemas import SetStateRequest, StatesOut, WorklistRow


def router(context, deps):
    from fastapi import APIRouter, Depends, Path, Request

    api = APIRouter(tags=["states"])
    Service = Depends(deps.service)
    Who = Depends(deps.member)
    CaseId = Path(description="a case id", **CASE_ID)

    @api.get("/cases/{case_id}/states", response_model=StatesOut, responses=responses(400, 401, 403, 404),
             summary="the case's state and its annotators' (an annotator sees only their own)")
    async def states(request: Request, case_id: str = CaseId, who: Member = Who):
        return await deps.answer(request, who, ("states", case_id), lambda s: s.states(case_id))

    @api.post("/cases/{case_id}/states", response_model=StatesOut,
              responses=responses(400, 401, 403, 404, 409, 413, 415),
              summary="move a case (reviewers) or my work on it to a state")
    def set_state(body: SetStateRequest, case_id: str = CaseId, svc=Service):
        return json_answer(svc.set_state(case_id, body.state, body.annotator))

    @api.get("/worklist", response_model=list[WorklistRow], responses=responses(401),
             summary="my cases with their state")
    async def worklist(request: Request, who: Member = Who):
        return await deps.answer(request, who, ("worklist",), lambda s: s.worklist())

    return api
