"""Issue 15, item 9 and "Also": what the answers reveal, revoking access, the spec, HEAD.

Against a real server on 127.0.0.1 (SQLite and PostgreSQL) and the folder store where it applies.
"""
from __future__ import annotations

import time

import pytest
from store_support import Api, backend_for, postgres_cluster, postgres_url, write_seg  # noqa: F401

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.store import Forbidden, StoreError, Unauthorized, admin
from DicomTeamAnnotateLib.store.verify import verify_project

BACKENDS = ["folder", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def team(request, tmp_path):
    with backend_for(request.param, tmp_path, request) as backend:
        yield backend


def _eventually(check, seconds: float = 3.0):
    """``check()`` until it stops failing (a server sees the folder's new events within half a second)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except (AssertionError, StoreError, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_answers_do_not_tell_an_annotator_which_cases_exist(team, tmp_path):
    bob = team.open("bob")
    va = team.open("alice").push_version("c2", write_seg(tmp_path / "a.seg.nrrd", 1))
    messages = []
    for case in ("c2", "nope"):  # c2 exists (not bob's), nope does not: the same answer
        for call in (bob.get_case, bob.list_versions, bob.states, bob.assignments, bob.audit):
            with pytest.raises(Forbidden) as caught:
                call(case)
            messages.append(str(caught.value).replace(case, "<case>"))
    assert messages[:5] == messages[5:]  # word for word, but for the id asked about
    with pytest.raises(Forbidden) as caught:
        bob.get_version(va["id"])  # a version on a case that is not his: the case is not named
    text = str(caught.value).replace(va["id"], "<version>")  # a random hex id may hold "c2" by chance
    assert "c2" not in text and "alice" not in text, text
    if team.server is not None:
        api = Api(team.server.url, team.tokens)
        assert api("GET", "/cases/c2", "bob").status_code == api("GET", "/cases/nope", "bob").status_code == 403
        assert api("GET", "/cases/nope", "rev").status_code == 404


def test_an_annotator_does_not_see_a_co_annotators_progress(team, tmp_path):
    alice, bob = team.open("alice"), team.open("bob")
    alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
    alice.set_state("c1", "submitted")
    row = next(r for r in bob.worklist() if r["case_id"] == "c1")
    assert (row["state"], row["case_state"], row["my_state"], row["n_versions"]) == ("todo", "todo", "todo", 0)
    assert bob.states("c1") == {"case_id": "c1", "state": "todo", "override": None, "annotators": {"bob": "todo"}}
    assert team.open("rev").states("c1")["annotators"] == {"alice": "submitted", "bob": "todo"}


def test_removing_a_member_or_an_assignment_takes_effect_at_once(team, tmp_path, capsys):
    bob = team.open("bob")
    assert bob.get_case("c1")["case_id"] == "c1"
    assert main(["project", "unassign", str(team.project_dir), "--case", "c1", "--user", "bob"]) == 0
    _eventually(lambda: pytest.raises(Forbidden, bob.get_case, "c1"))
    assert [r["case_id"] for r in bob.worklist()] == []
    assert team.open("rev").assignments("c1") == [{"case_id": "c1", "user": "alice"}]
    admin.assign(team.project_dir, "c1", "bob")  # assigned again: back
    _eventually(lambda: bob.get_case("c1"))
    assert main(["project", "remove-member", str(team.project_dir), "--user", "bob"]) == 0
    _eventually(lambda: pytest.raises(Unauthorized, bob.whoami))
    assert "bob" not in {m["user"] for m in team.open("rev").members()}
    assert team.open("rev").assignments("c1") == [{"case_id": "c1", "user": "alice"}]


def test_tokens_expire_and_rotate(team, capsys):
    if team.server is None:
        pytest.skip("the folder store has no tokens (it trusts the user name)")
    token = admin.add_member(team.project_dir, "temp", "reviewer", expires_days=1.5 / 86400)
    store = team.open("temp", token)
    _eventually(lambda: store.whoami())
    time.sleep(1.6)
    with pytest.raises(Unauthorized, match="expired"):
        store.whoami()
    assert main(["project", "rotate-token", str(team.project_dir), "--user", "alice"]) == 0
    new = capsys.readouterr().out.strip()
    _eventually(lambda: pytest.raises(Unauthorized, team.open("alice").whoami))
    assert team.open("alice", new).whoami() == {"user": "alice", "role": "annotator"}


def test_a_truncated_event_is_reported_by_verify(tmp_path, request):
    with backend_for("folder", tmp_path, request) as team:
        alice = team.open("alice")
        v = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
        event = next(p for p in (team.project_dir / "events").iterdir() if v["id"] in p.read_text(encoding="utf-8"))
        event.write_bytes(event.read_bytes()[:40])  # a copy that stopped halfway
        assert team.open("alice").list_versions("c1") == []  # the version is gone from the record...
        problems = verify_project(team.project_dir)
        assert any(event.name in p and "unreadable" in p for p in problems)
        assert any(v["id"] in p and "no readable event" in p for p in problems)


@pytest.mark.parametrize("kind", ["sqlite"])
def test_the_spec_documents_bodies_statuses_and_errors_and_head_works(kind, tmp_path, request):
    import requests

    with backend_for(kind, tmp_path, request) as team:
        spec = requests.get(team.server.url + "/openapi.json", timeout=10).json()
        paths = spec["paths"]
        for path, method in (("/api/v1/cases/{case_id}/uploads", "post"), ("/api/v1/cases/{case_id}/states", "post"),
                             ("/api/v1/uploads/{upload_id}/finalize", "post"), ("/api/v1/uploads/{upload_id}", "put")):
            op = paths[path][method]
            assert "requestBody" in op, (path, method)
            assert {"400", "401", "404"} <= set(op["responses"]), (path, op["responses"].keys())
            assert op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
            assert op["security"] == [{"token": []}]
        assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
        assert "security" not in paths["/api/v1/health"]["get"]
        image = team.open("alice").get_case("c1")
        api = Api(team.server.url, team.tokens)
        head = api("HEAD", "/cases/c1/image")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["Content-Length"]) == image["image_size"]
        assert head.headers["X-Content-SHA256"] == image["image_sha256"]
        assert api("HEAD", "/cases/c1/image", "bob").status_code == 200
        assert api("HEAD", "/cases/c2/image", "bob").status_code == 403
