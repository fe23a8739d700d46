"""Fuzzing the server with schemathesis against its own OpenAPI spec (issue 15, "Also").

Every operation gets generated requests (valid and invalid bodies, ids, query strings), as an
annotator and as a reviewer; the server must never answer 5xx, and every answer must be what
the spec says (status code, content type, body shape).  Bounded: EXAMPLES per operation.
schemathesis is driven through hypothesis directly (its pytest plugin does not load under this
pytest), one operation at a time, failures collected and shown together.
"""
from __future__ import annotations

import pytest
from store_support import make_team_project, write_seg

from DicomTeamAnnotateLib.store import open_store
from DicomTeamAnnotateLib.store.server import BackgroundServer

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (the test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (schemathesis brings hypothesis)

EXAMPLES = 15  # per operation and role: ~25 operations, under a thousand requests in all
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    tokens = make_team_project(root / "project")
    with BackgroundServer(root / "project") as server:
        alice = open_store(server.url, "alice", tokens["alice"], cache=False)
        alice.push_version("c1", write_seg(root / "a.seg.nrrd", 1))  # something to list and download
        yield server, tokens


@pytest.fixture(scope="module")
def api_schema(served):
    server, _ = served
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def _fuzz(api_schema, served, user: str) -> list[str]:
    """EXAMPLES generated requests per operation, as ``user``; the failures, described."""
    server, tokens = served
    headers = {"Authorization": f"Bearer {tokens[user]}"}
    failures, operations = [], 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS, timeout=10)

        try:
            run()
        except Exception as exc:  # noqa: BLE001  (schemathesis's failure group, shown with its example)
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:2000]}")
    assert operations >= 20, f"only {operations} operations in the spec"  # a fuzz run that tested nothing fails
    return failures


def test_an_annotator_cannot_make_the_server_fail_or_break_its_spec(api_schema, served):
    failures = _fuzz(api_schema, served, "alice")
    assert not failures, "\n\n".join(failures)


def test_a_reviewer_cannot_make_the_server_fail_or_break_its_spec(api_schema, served):
    failures = _fuzz(api_schema, served, "rev")
    assert not failures, "\n\n".join(failures)
