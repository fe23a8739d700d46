"""What the routers share: the bearer-token dependency, the member's service, fast JSON answers."""
# No `from __future__ import annotations`: FastAPI reads the dependencies' parameter types.

import json

from DicomTeamAnnotateLib.store.model import StoreError
from DicomTeamAnnotateLib.store.server.context import Member


class Dependencies:
    """FastAPI dependencies of one app: ``member`` (the bearer token's member) and ``service``."""

    def __init__(self, context):
        from fastapi import Depends, Request
        from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
        from starlette.concurrency import run_in_threadpool

        bearer = HTTPBearer(auto_error=False, scheme_name="token",
                            description="a member's token (`dicomteam project add-member` prints it)")

        async def member(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Member:
            """The member the request's token belongs to (the request guard resolved it already)."""
            found = getattr(request.state, "member", None)
            if found is None:  # the guard did not run (an app embedded without it): resolve here
                token = credentials.credentials if credentials is not None else None
                found = await run_in_threadpool(context.authenticate, token,
                                                request.headers.get("x-dicomteam-user"))
            return found

        async def service(who: Member = Depends(member)):
            """The project's rules for this member (see service.ProjectService)."""
            return context.service(who)

        self.member = member
        self.service = service


def json_answer(data, status: int = 200, headers: dict | None = None):
    """A JSON response from plain, already checked data (skips FastAPI's second validation pass).

    Strict JSON out: a non-finite number would be a bug upstream (the index decodes them to
    null), reported as a StoreError rather than sent.
    """
    from starlette.responses import Response

    try:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except ValueError as exc:
        raise StoreError(f"the answer could not be encoded as JSON ({exc})") from None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def page(rows: list, limit: int, key) -> tuple[list, dict]:
    """The first ``limit`` rows and the ``X-Next-After`` header that asks for the rest (none at the end)."""
    if len(rows) <= limit:
        return rows, {}
    return rows[:limit], {"X-Next-After": key(rows[limit - 1])}
