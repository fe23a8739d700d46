"""Server plugins: how another module adds routes to `dicomteam serve` (the core imports none of them).

Registration
    Entry-point group ``dicomteam.server_plugins``.  The entry point's NAME is the plugin's name
    (``[a-z][a-z0-9_-]*``), its VALUE a module, e.g. in pyproject.toml::

        [project.entry-points."dicomteam.server_plugins"]
        sam = "SamPromptLib.server_plugin"

    Tests and embedders pass plugins explicitly instead, through the same code path:
    ``create_app(project_dir, plugins={"sam": module_or_object}, options=namespace)``;
    ``plugins=None`` (the default) loads the entry points, ``plugins={}`` loads none.

What the plugin provides
    ``add_arguments(parser)`` (optional): adds its options to `dicomteam serve` (an argparse
    parser or argument group); prefix them with the plugin's name (``--sam-device``).  Every
    `dicomteam` command imports the plugin module for this: keep its top-level imports light
    (FastAPI, torch and the like inside ``create_router``).
    ``create_router(context) -> fastapi.APIRouter | None``: called once per app; None adds
    nothing (e.g. the plugin's optional packages are missing: log why).  The routes are
    mounted under ``/api/v1/plugins/<name>`` (a route ``/cases/{case_id}/embedding`` becomes
    ``/api/v1/plugins/sam/cases/{case_id}/embedding``) and appear in ``/openapi.json``.

``context``: a ``PluginContext`` (below)
    ``name``, ``project_dir``, ``options`` (the parsed `dicomteam serve` options, the plugin's
    own included; an empty Namespace when the caller of create_app passed none);
    ``member``: a FastAPI dependency, ``member: Member = Depends(context.member)``: the bearer
    token's member ``(user, role)``, with the rules of every other route (401 for a missing,
    unknown, expired or revoked token; the same HTTPBearer scheme in the spec);
    ``check_case(member, case_id)``: an annotator only on the cases assigned to them, a
    reviewer/admin on any; an annotator asking for an unassigned OR a nonexistent case gets the
    same 403 (no existence leak), staff get 404 for a nonexistent one, a malformed id 400;
    ``case(member, case_id) -> dict``: the public case record after that check (geometry as an
    LPS dict for ``core.geometry.Geometry.from_dict``, image_name, image_sha256, ...);
    ``case_image_path(member, case_id) -> Path``: after that check, the local path of the case
    image blob (a read-only .nrrd named by its sha256, without suffix); NotFound (404) for a
    reference-mode case, whose pixels stay in the PACS;
    ``project() -> dict``: name, labels, blind, window_preset.
    These block (database, files): call them from a sync ``def`` route (FastAPI runs it in its
    thread pool) or through ``starlette.concurrency.run_in_threadpool``.  A router module must not
    use ``from __future__ import annotations`` when its handlers take models defined in a function
    (FastAPI then cannot resolve them).

Errors
    Raise the store's errors (``store.model``: InvalidInput 400, Unauthorized 401, Forbidden
    403, NotFound 404, Conflict 409, TooManyRequests 429, StoreUnavailable 503); they are
    answered in the server's one shape ``{"detail", "error"}``, as is anything unexpected (500).
    Every plugin route is documented in the spec with 400, 401, 403, 404, 409, 429 and 503; a plugin
    documents any other status it answers on its router (``APIRouter(responses={507: ...})``).
    The request guard runs before a plugin's routes too: the token is checked before the body
    is read, a JSON body must be an object of at most 1 MiB, strict JSON, nested at most 64 deep.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path

from DicomTeamAnnotateLib.store.server.context import Member, ServerContext
from DicomTeamAnnotateLib.store.server.errors import responses

PLUGIN_ERRORS = (400, 401, 403, 404, 409, 429, 503)  # documented on every plugin route (a plugin adds its own)
log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dicomteam.server_plugins"
PREFIX = "/plugins"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclasses.dataclass(frozen=True)
class PluginContext:
    """What the server hands a plugin's ``create_router`` (see the module docstring)."""

    name: str
    project_dir: Path
    options: argparse.Namespace
    member: Callable                                  # FastAPI dependency -> Member
    check_case: Callable[[Member, str], None]
    case: Callable[[Member, str], dict]
    case_image_path: Callable[[Member, str], Path]
    project: Callable[[], dict]


def entry_point_plugins() -> dict:
    """{name: module} of the installed ``dicomteam.server_plugins`` (a broken one is logged and skipped)."""
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not take the project server down
            log.error("server plugin %s (%s) could not be loaded: %s", ep.name, ep.value, exc)
    return found


def add_plugin_arguments(parser, plugins: dict | None = None) -> dict:
    """Let each plugin add its options to `dicomteam serve`'s parser; returns the plugins used."""
    plugins = entry_point_plugins() if plugins is None else plugins
    for name, plugin in plugins.items():
        add = getattr(plugin, "add_arguments", None)
        if add is not None:
            add(parser.add_argument_group(f"plugin {name}"))
    return plugins


def make_context(name: str, context: ServerContext, deps, options) -> PluginContext:
    """The PluginContext of one plugin on one app."""
    def check_case(member: Member, case_id: str) -> None:
        context.service(member).get_case(case_id)

    def case(member: Member, case_id: str) -> dict:
        return context.service(member).get_case(case_id)

    def case_image_path(member: Member, case_id: str) -> Path:
        return context.service(member).image_blob(case_id)[0]

    def project() -> dict:
        return {k: context.index.project().get(k) for k in ("name", "labels", "blind", "window_preset")}

    return PluginContext(name=name, project_dir=Path(context.index.project_dir), options=options or argparse.Namespace(),
                         member=deps.member, check_case=check_case, case=case, case_image_path=case_image_path,
                         project=project)


def include_plugins(app, api_prefix: str, context: ServerContext, deps, plugins: dict | None, options) -> list[str]:
    """Mount each plugin's router under ``/api/v1/plugins/<name>``; returns the names mounted."""
    plugins = entry_point_plugins() if plugins is None else plugins
    mounted = []
    for name, plugin in plugins.items():
        if not _NAME.match(name):
            raise ValueError(f"server plugin name {name!r}: use 1-40 of a-z, 0-9, '_', '-', starting with a letter")
        router = plugin.create_router(make_context(name, context, deps, options))
        if router is None:
            log.info("server plugin %s added no routes", name)
            continue
        # the errors every plugin route may answer (token, case rules, input, limits), in the spec
        app.include_router(router, prefix=f"{api_prefix}{PREFIX}/{name}", tags=[f"plugin {name}"],
                           responses=responses(*PLUGIN_ERRORS))
        mounted.append(name)
    return mounted
