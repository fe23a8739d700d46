"""The project server: FastAPI over a project folder and its SQL index (needs the `server` extra).

``dicomteam serve DIR [--db URL] --host H --port P`` runs it.  Every request under ``/api/v1``
(``/health`` aside) carries ``Authorization: Bearer <token>``; the token names the member
(tokens are stored hashed) and the same rules as the folder store apply (service.ProjectService).

Files, in the order a request meets them:

- ``runner``: ``serve()``, ``BackgroundServer``, ``app_from_env()``: uvicorn with bounded heads.
- ``transport``: request heads bounded in size and time.
- ``guards``: token first, then body limits and strict JSON (before any body is read).
- ``app``: ``create_app()``: assembles the routers (``routes/``, one per resource) and plugins.
- ``routes``: one APIRouter per resource (project, cases, states, versions, uploads, audit).
- ``context``: the shared ``ServerContext`` (index, limits, token lookup), ``Member``, ``Limits``.
- ``schemas``: pydantic models of every body (what ``/openapi.json`` documents).
- ``errors``: the one error shape ``{"detail", "error"}`` and the statuses routes document.
- ``uploads``: the resumable upload protocol (``UploadSession``, ``UploadProtocol``).
- ``plugins``: the hook other modules use to add routes (entry points ``dicomteam.server_plugins``).

The server keeps no state in memory that matters: several instances (``--workers N``, or hosts
sharing the folder and a PostgreSQL database) can run behind a load balancer.
"""
import importlib

# Loaded on first use (PEP 562): `dicomteam` commands other than `serve` import this package (for
# the plugin options) and must run without FastAPI and pydantic, the `server` extra.
_EXPORTS = {"API": "app", "create_app": "app", "serve": "runner", "BackgroundServer": "runner",
            "app_from_env": "runner"}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
