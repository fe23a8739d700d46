"""Routes: health (public), me, the project's settings, members."""
# No `from __future__ import annotations`: FastAPI reads the handlers' parameter types.

from DicomTeamAnnotateLib.store.server.context import Member
from DicomTeamAnnotateLib.store.server.errors import responses
from DicomTeamAnnotateLib.store.server.routes.common import json_answer
from DicomTeamAnnotateLib.store.server.schemas import Health, MemberOut, ProjectOut


def router(context, deps):
    from fastapi import APIRouter, Depends, Request

    api = APIRouter(tags=["project"])
    Who = Depends(deps.member)

    @api.get("/health", response_model=Health, summary="is the server up (no token needed)")
    async def health():
        return json_answer({"ok": True, "project": context.index.project().get("name")})

    @api.get("/me", response_model=MemberOut, responses=responses(401), summary="who my token says I am")
    async def me(request: Request, who: Member = Who):
        return await deps.answer(request, who, ("me",), lambda s: s.whoami())

    @api.get("/project", response_model=ProjectOut, responses=responses(401),
             summary="name, label ontology, blind flag, window preset")
    async def project(request: Request, who: Member = Who):
        return await deps.answer(request, who, ("project",), lambda s: s.project())

    @api.get("/members", response_model=list[MemberOut], responses=responses(401),
             summary="members and roles (an annotator sees only themself)")
    async def members(request: Request, who: Member = Who):
        return await deps.answer(request, who, ("members",), lambda s: s.members())

    return api
