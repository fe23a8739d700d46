"""The server plugin hook (store/server/plugins.py): a tiny plugin defined here, served for real.

Registered the way tests and entry points share: ``create_app(..., plugins={name: plugin})``.
"""
# No `from __future__ import annotations`: FastAPI must see the handlers' real parameter types.

import argparse
import types

import pytest
from store_support import Api, make_team_project

from DicomTeamAnnotateLib.store.server import BackgroundServer
from DicomTeamAnnotateLib.store.server.plugins import PluginContext, add_plugin_arguments


def _demo_plugin():
    """A plugin as another module would write it: options for `dicomteam serve`, and a router."""
    seen = {}

    def add_arguments(parser):
        parser.add_argument("--demo-greeting", default="hello")

    def create_router(context: PluginContext):
        from fastapi import APIRouter, Depends
        from pydantic import BaseModel

        seen["context"] = context
        router = APIRouter()

        class Echo(BaseModel):
            text: str

        @router.get("/cases/{case_id}/image-size")
        def image_size(case_id: str, member=Depends(context.member)):
            path = context.case_image_path(member, case_id)
            return {"user": member.user, "staff": member.is_staff, "bytes": path.stat().st_size,
                    "greeting": context.options.demo_greeting, "project": context.project()["name"]}

        @router.post("/echo")
        def echo(body: Echo, member=Depends(context.member)):
            return {"text": body.text, "user": member.user}

        return router

    return types.SimpleNamespace(add_arguments=add_arguments, create_router=create_router, seen=seen)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    tokens = make_team_project(root / "project")
    plugin = _demo_plugin()
    parser = argparse.ArgumentParser()
    add_plugin_arguments(parser, {"demo": plugin})
    options = parser.parse_args(["--demo-greeting", "salut"])
    with BackgroundServer(root / "project", plugins={"demo": plugin, "empty": types.SimpleNamespace(
            create_router=lambda context: None)}, options=options) as server:
        yield server, tokens, plugin, root


def test_a_plugin_route_uses_the_servers_members_and_case_rules(served):
    server, tokens, plugin, root = served
    api = Api(server.url, tokens)
    image = api("GET", "/cases/c1").json()
    r = api("GET", "/plugins/demo/cases/c1/image-size")
    assert r.status_code == 200, r.text
    assert r.json() == {"user": "alice", "staff": False, "bytes": image["image_size"], "greeting": "salut",
                        "project": "Team"}
    assert api("GET", "/plugins/demo/cases/c2/image-size", "bob").status_code == 403  # not his case
    nope = api("GET", "/plugins/demo/cases/nope/image-size", "bob")
    assert nope.status_code == 403 and nope.json()["error"] == "Forbidden"  # the same: no existence leak
    assert api("GET", "/plugins/demo/cases/nope/image-size", "rev").status_code == 404
    assert api("GET", "/plugins/demo/cases/c2/image-size", "rev").json()["staff"] is True
    assert api("GET", "/plugins/demo/cases/c1/image-size", None).status_code == 401
    assert api("GET", "/plugins/demo/cases/..%2Fx/image-size").status_code in (400, 404)
    context = plugin.seen["context"]
    assert context.name == "demo" and context.project_dir == root / "project"


def test_a_plugin_body_passes_the_same_guard(served):
    server, tokens, _, _ = served
    api = Api(server.url, tokens)
    assert api("POST", "/plugins/demo/echo", json={"text": "hi"}).json() == {"text": "hi", "user": "alice"}
    r = api("POST", "/plugins/demo/echo", data=b'{"text": NaN}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "InvalidInput"
    r = api("POST", "/plugins/demo/echo", json={"text": "hi", "extra": 1})
    assert r.status_code == 200  # the plugin's model decides about extra fields
    r = api("POST", "/plugins/demo/echo", json={"wrong": 1})
    assert r.status_code == 400 and "text" in r.json()["detail"]


def test_plugin_routes_are_in_the_spec(served):
    import requests

    server, _, _, _ = served
    spec = requests.get(server.url + "/openapi.json", timeout=10).json()
    op = spec["paths"]["/api/v1/plugins/demo/cases/{case_id}/image-size"]["get"]
    assert op["security"] == [{"token": []}] and "plugin demo" in op["tags"]
    assert not [p for p in spec["paths"] if "/plugins/empty" in p]
