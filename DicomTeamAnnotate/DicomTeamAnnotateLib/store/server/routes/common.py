"""What the routers share: the bearer-token dependency, the member's service, fast JSON answers."""
# No `from __future__ import annotations`: FastAPI reads the dependencies' parameter types.

import asyncio
import json

from DicomTeamAnnotateLib.store.model import StoreError
from DicomTeamAnnotateLib.store.server.context import Member


class Dependencies:
    """FastAPI dependencies of one app: ``member`` (the bearer token's member), ``service``, and
    ``answer`` (a read served from the answer cache while the index has not changed)."""

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
                found, request.state.stamp = await run_in_threadpool(context.authenticate, token,
                                                                     request.headers.get("x-dicomteam-user"))
            return found

        async def service(who: Member = Depends(member)):
            """The project's rules for this member (see service.ProjectService)."""
            return context.service(who)

        async def answer(request: Request, who: Member, key: tuple, compute, paged: bool = False):
            """``compute(service)`` as a JSON response, from the cache while the index is unchanged.

            ``paged``: ``compute`` returns (rows, response headers) (a page and its X-Next-After).
            The cached bytes were computed for this very member and arguments, after the change
            count the request was authenticated at; a hit costs no thread, no query, no encoding.
            """
            stamp = getattr(request.state, "stamp", None)
            full_key = (who.user, who.role, *key)
            hit = context.cached_answer(stamp, full_key) if stamp is not None else None
            if hit is not None:
                return bytes_answer(hit[0], headers=hit[1])
            # One computation per answer and change count: the polls that arrive meanwhile (after a
            # change, every client misses at once) wait for it instead of repeating it.
            flight = (stamp, full_key)
            running = in_flight.get(flight) if stamp is not None else None
            if running is not None:
                body, extra = await asyncio.shield(running)
                return bytes_answer(body, headers=extra)
            future = asyncio.get_running_loop().create_future()
            if stamp is not None:
                in_flight[flight] = future
            try:
                data = await run_in_threadpool(compute, context.service(who))
                body, extra = data if paged else (data, None)
                hit = (encode_json(body), extra)
                future.set_result(hit)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters re-raise it, nobody else needs to
                raise
            finally:
                in_flight.pop(flight, None)
            if stamp is not None:
                context.keep_answer(stamp, full_key, hit)
            return bytes_answer(hit[0], headers=hit[1])

        in_flight: dict = {}  # (change count, key) -> Future of the answer being computed

        self.member = member
        self.service = service
        self.answer = answer


def encode_json(data) -> bytes:
    """Strict JSON bytes (a non-finite number would be a bug upstream: the index decodes them to null)."""
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except ValueError as exc:
        raise StoreError(f"the answer could not be encoded as JSON ({exc})") from None


def bytes_answer(body: bytes, status: int = 200, headers: dict | None = None):
    from starlette.responses import Response

    return Response(body, status_code=status, media_type="application/json", headers=headers)


def json_answer(data, status: int = 200, headers: dict | None = None):
    """A JSON response from plain, already checked data (skips FastAPI's second validation pass)."""
    return bytes_answer(encode_json(data), status, headers)


def page(rows: list, limit: int, key) -> tuple[list, dict]:
    """The first ``limit`` rows and the ``X-Next-After`` header that asks for the rest (none at the end)."""
    if len(rows) <= limit:
        return rows, {}
    return rows[:limit], {"X-Next-After": key(rows[limit - 1])}
