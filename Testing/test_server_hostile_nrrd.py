"""Issue 15 item 7 against a real server on 127.0.0.1: an annotator pushes each hostile .seg.nrrd;
the server refuses it with a 4xx naming the problem, records no version, and keeps serving."""
from __future__ import annotations

import pytest
from corpus import hostile
from store_support import Api, ThreadServer, make_team_project, write_seg

pytest.importorskip("fastapi", reason="the server extra")

CASES = {
    "data-file-absolute": ("data file", lambda valid, out, secret: hostile.data_file_outside(valid, out, str(secret))),
    "data-file-relative": ("data file", lambda valid, out, secret: hostile.data_file_outside(
        valid, out, "../../../outside/secret.raw")),
    "sizes-overflow": ("sizes", lambda valid, out, secret: hostile.overflowing_sizes(valid, out)),
    "many-layers": ("layers", lambda valid, out, secret: hostile.many_layers(valid, out)),
    "layer-missing": ("Segment0_Layer", lambda valid, out, secret: hostile.segment_in_missing_layer(valid, out)),
    "gzip-bomb": ("gzip", lambda valid, out, secret: hostile.gzip_bomb(valid, out)),
    "bzip2-bomb": ("bzip2", lambda valid, out, secret: hostile.bzip2_bomb(valid, out)),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    tokens = make_team_project(root / "project")
    server = ThreadServer(root / "project")
    yield root, Api(server.url, tokens)
    server.stop()


def test_each_hostile_segmentation_is_refused_and_the_server_goes_on(served):
    root, api = served
    secret = root / "outside" / "secret.raw"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes(bytes(range(256)) * 64)  # exactly the voxel bytes of a 32 x 32 x 16 case
    valid = write_seg(root / "valid.seg.nrrd")
    for name, (reason, build) in CASES.items():
        path = build(valid, root / f"{name}.seg.nrrd", secret)
        r = api.push("c1", path.read_bytes(), user="alice", filename=f"{name}.seg.nrrd")
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert reason in r.text, (name, r.text)
        assert str(root / "project") not in r.text, (name, r.text)  # the server's own paths never leak
    versions = api("GET", "/cases/c1/versions", user="alice")
    assert versions.status_code == 200 and _ids(versions.json()) == [], versions.text  # nothing was recorded
    r = api.push("c1", valid.read_bytes(), user="alice", filename="valid.seg.nrrd")  # an honest push still works
    assert r.status_code == 200, r.text
    assert len(_ids(api("GET", "/cases/c1/versions", user="alice").json())) == 1


def _ids(listing) -> list:
    rows = listing.get("versions", listing.get("items", [])) if isinstance(listing, dict) else listing
    return [row.get("id") for row in rows]
