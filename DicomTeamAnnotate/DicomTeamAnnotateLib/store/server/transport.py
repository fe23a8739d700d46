"""The HTTP transport's guards: a request head must be small and arrive in time.

uvicorn's httptools protocol (the fast one) has no bound on a request head: a client may send
64 MiB of header, or one byte a minute, and the server keeps reading and waiting.  The
``GuardedHttpToolsProtocol`` subclass counts the bytes of each head (431 past
``Limits.max_header_bytes``) and closes a connection whose head has not arrived within
``Limits.head_timeout_s`` (from the connection's start, or from a request's first byte).  A
stalled *body* is cut off by the request guard (``guards.py``); idle keep-alive connections by
uvicorn's ``timeout_keep_alive``.

Pass ``PROTOCOL`` (an import string: uvicorn workers in other processes import it) as
uvicorn's ``http``; the limits travel on the uvicorn Config as ``dicomteam_limits``.  The
class is built on first use (PEP 562 ``__getattr__``), so importing this module needs no uvicorn.
"""
from __future__ import annotations

import functools

from DicomTeamAnnotateLib.store.server.context import Limits

PROTOCOL = "DicomTeamAnnotateLib.store.server.transport:GuardedHttpToolsProtocol"


def protocol_setting() -> str:
    """uvicorn's ``http`` setting: the guarded httptools protocol, or h11 (bounded by uvicorn) without httptools."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return PROTOCOL


@functools.lru_cache(maxsize=1)
def _build():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a bounded, timed request head (see the module docstring)."""

        def __init__(self, config, *args, **kwargs):
            super().__init__(config, *args, **kwargs)
            self._limits = getattr(config, "dicomteam_limits", None) or Limits()
            self._head_timer = None
            self._head_bytes = 0

        def _start_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_bytes = 0
                self._head_timer = self.loop.call_later(self._limits.head_timeout_s, self._head_too_slow)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.logger.info("closing a connection whose request head did not arrive within %.0f s",
                                 self._limits.head_timeout_s)
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._start_head_timer()

        def connection_lost(self, exc) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._head_timer is not None:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._head_timer is not None and self._head_bytes > self._limits.max_header_bytes \
                    and not self.transport.is_closing():
                self._stop_head_timer()
                self._refuse_head()

        def _refuse_head(self) -> None:
            msg = b'{"detail": "request head too large", "error": "HeaderTooLarge"}'
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                                 b"content-length: " + str(len(msg)).encode() + b"\r\nconnection: close\r\n\r\n" + msg)
            self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._start_head_timer()

        def on_headers_complete(self) -> None:
            self._stop_head_timer()
            super().on_headers_complete()

    return GuardedHttpToolsProtocol


def __getattr__(name):
    if name == "GuardedHttpToolsProtocol":
        return _build()
    raise AttributeError(name)
