"""The request guard: who is asking, and how big and well-formed the body is, before it is read.

An ASGI middleware in front of every route (plugins' included), because FastAPI reads and
parses a body before it resolves a route's dependencies: a token check written as a
dependency would come after an anonymous client had made the server read its body.  Here:

1. Authenticate first: an API request without a valid token is answered 401 and its
   connection closed before a byte of its body is read (``/health`` and the spec are public).
2. Bound the body: ``Content-Length`` over the limit is refused (413) at once; a JSON body is
   read up to 1 MiB (chunked ones too) and must be strict JSON (no NaN/Infinity, which Python's
   ``json`` accepts and no standard JSON reader does), an object, nested at most 64 deep.
   Upload chunks (``PUT /uploads/{id}``) stream on to their route, which bounds them by the
   upload's declared size.
3. A POST/PATCH body must be ``application/json`` (415 otherwise).

Timeouts for slow heads and stalled bodies live in the transport (``transport.py``).
"""
from __future__ import annotations

import asyncio
import json

from DicomTeamAnnotateLib.store.model import StoreError, Unauthorized
from DicomTeamAnnotateLib.store.server.errors import error_body

JSON_METHODS = ("POST", "PATCH", "DELETE")


class BodyStalled(StoreError):
    """The client stopped sending its body (408; the connection is closed)."""

    status = 408
    headers = {"connection": "close"}


class BadJson(ValueError):
    """A JSON body this server refuses (message says why)."""


def _reject_constant(name):
    raise BadJson(f"{name} is not JSON (send null or a string instead)")


def parse_strict_json(raw: bytes, max_depth: int):
    """The document in ``raw``; BadJson for malformed, non-standard or too deeply nested JSON."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise BadJson(f"nested deeper than {max_depth} levels") from None
    except BadJson:
        raise
    except ValueError as exc:
        raise BadJson(f"malformed JSON body: {exc}") from None
    stack = [(doc, 1)]
    while stack:  # iterative: a deep document must not exhaust the stack here either
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > max_depth:
                raise BadJson(f"nested deeper than {max_depth} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return doc


class RequestGuard:
    """ASGI middleware: authenticate, then bound and check the body (see the module docstring)."""

    def __init__(self, app, context, api_prefix: str, public_paths=()):
        from anyio import to_thread

        self.app, self.context, self.api = app, context, api_prefix
        self.public = frozenset(public_paths)
        self.upload_prefix = api_prefix + "/uploads/"
        self._to_thread = to_thread.run_sync

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        headers = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        limits = self.context.limits
        if path.startswith(self.api) and path not in self.public and method != "OPTIONS":
            scheme, _, token = headers.get("authorization", "").partition(" ")
            try:
                if scheme.lower() != "bearer":
                    raise Unauthorized("missing token: send 'Authorization: Bearer <token>' "
                                       "(from `dicomteam project add-member`)")
                claimed = headers.get("x-dicomteam-user")
                found = self.context.cached_member(token, claimed)  # no thread for a token seen at this count
                member, stamp = found if found is not None else await self._to_thread(
                    self.context.authenticate, token, claimed)
            except Unauthorized as exc:
                return await _reply(send, 401, str(exc), "Unauthorized", {"www-authenticate": "Bearer"})
            state = scope.setdefault("state", {})
            state["member"], state["stamp"] = member, stamp
        receive = _timed(receive, limits.body_idle_timeout_s)
        upload_chunk = method == "PUT" and path.startswith(self.upload_prefix)
        limit = limits.max_upload_bytes if upload_chunk else limits.max_json_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return await _reply(send, 400, f"invalid Content-Length {length!r}", "InvalidInput")
            if int(length) > limit:
                return await _reply(send, 413, f"a body of {length} bytes is larger than the {limit} allowed here",
                                    "PayloadTooLarge")
        has_body = (length is not None and int(length) > 0) or "chunked" in headers.get("transfer-encoding", "")
        if upload_chunk or not has_body or method not in JSON_METHODS + ("PUT",):
            return await self.app(scope, receive, send)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return await _reply(send, 415, f"expected Content-Type application/json, got {ctype or 'none'!r}",
                                "InvalidInput")
        raw, more = bytearray(), True
        while more:
            try:
                message = await receive()
            except BodyStalled as exc:
                return await _reply(send, 408, str(exc), "BodyStalled")
            if message["type"] == "http.disconnect":
                return None
            raw += message.get("body", b"")
            more = message.get("more_body", False)
            if len(raw) > limit:
                return await _reply(send, 413, f"a JSON body larger than {limit} bytes", "PayloadTooLarge")
        try:
            doc = parse_strict_json(bytes(raw), limits.max_json_depth)
        except BadJson as exc:
            return await _reply(send, 400, str(exc), "InvalidInput")
        if not isinstance(doc, dict):
            return await _reply(send, 400, "the JSON body must be an object", "InvalidInput")
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(raw), "more_body": False}

        return await self.app(scope, replay, send)


def _timed(receive, idle_s: float):
    """``receive`` that gives up (BodyStalled) when a body's next part takes longer than ``idle_s``.

    Only while the body is incomplete: afterwards the app's receive calls (a response waiting
    for a disconnect while it streams a large file) wait as long as they like.
    """
    done = False

    async def timed():
        nonlocal done
        if done:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), idle_s)
        except asyncio.TimeoutError:
            raise BodyStalled(f"no part of the request body arrived for {idle_s:.0f} s; the request was dropped") \
                from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
        return message

    return timed


async def _reply(send, status: int, detail: str, error: str, headers: dict | None = None) -> None:
    """Answer at once and close the connection (its unread body is not worth reading)."""
    body = error_body(status, detail, error)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
