"""``create_app``: the FastAPI app of one project folder, assembled from one router per resource.

The app keeps no state in memory that matters: everything lives in the database and the
project folder, so several instances can share them behind a load balancer.  In front of the
routes sits the request guard (``guards.py``: token first, then body limits and strict JSON).
"""
from __future__ import annotations

import contextlib
import logging

from DicomTeamAnnotateLib.store.server import plugins as plugin_hook
from DicomTeamAnnotateLib.store.server.context import Limits, ServerContext
from DicomTeamAnnotateLib.store.server.errors import install_error_handlers
from DicomTeamAnnotateLib.store.server.guards import RequestGuard
from DicomTeamAnnotateLib.store.server.routes import audit, cases, project, states, uploads, versions
from DicomTeamAnnotateLib.store.server.routes.common import Dependencies
from DicomTeamAnnotateLib.store.sqlindex import SqlIndex

log = logging.getLogger(__name__)

API = "/api/v1"
ROUTERS = (project, cases, states, versions, uploads, audit)


def create_app(project_dir, db_url: str | None = None, *, plugins: dict | None = None, options=None,
               limits: Limits | None = None):
    """The FastAPI app serving one project folder (SQLite index at DIR/index.sqlite unless ``db_url``).

    ``plugins``: {name: module} of server plugins (None: the installed entry points; see
    plugins.py); ``options``: the parsed `dicomteam serve` options handed to them;
    ``limits``: the request and quota bounds (context.Limits).
    """
    from fastapi import FastAPI

    index = SqlIndex(project_dir, db_url)
    context = ServerContext(index, limits)
    index.purge_uploads(context.limits.upload_max_age_s)  # sessions abandoned meanwhile

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        index.close()

    app = FastAPI(title="DicomTeamAnnotate project server", version="1", lifespan=lifespan,
                  description="One project folder over HTTP. Every route under /api/v1 except /health needs "
                              "`Authorization: Bearer <token>`. Errors: `{detail, error}`.")
    app.state.index = index
    app.state.context = context
    install_error_handlers(app)
    deps = Dependencies(context)
    for module in ROUTERS:
        app.include_router(module.router(context, deps), prefix=API)
    mounted = plugin_hook.include_plugins(app, API, context, deps, plugins, options)
    if mounted:
        log.info("server plugins: %s", ", ".join(mounted))
    app.add_middleware(RequestGuard, context=context, api_prefix=API, public_paths=(API + "/health",))
    return app
