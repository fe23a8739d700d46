"""Project administration on the folder: label files, refusals, and the consistency check."""
from __future__ import annotations

import json
import os

import pytest
from store_support import make_team_project, write_seg

from DicomTeamAnnotateLib.store import Conflict, InvalidInput, NotFound, admin, open_store
from DicomTeamAnnotateLib.store.verify import verify_project


def test_label_files_in_all_accepted_shapes(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps([{"name": "liver", "value": 3, "color": [220, 140, 112]}]), encoding="utf-8")
    assert admin.load_labels(path)["labels"] == [
        {"name": "liver", "value": 3, "color": [0.8627, 0.549, 0.4392], "terminology": None}]
    path.write_text(json.dumps({"labels": {"spleen": 1, "liver": 5}, "colors": {"liver": "#ff0000"},
                                "terminology": {"liver": "SCT^10200004^Liver"}, "blind": False,
                                "window_preset": "liver"}), encoding="utf-8")
    spec = admin.load_labels(path)
    assert [(lab["name"], lab["value"]) for lab in spec["labels"]] == [("spleen", 1), ("liver", 5)]
    assert spec["labels"][1]["color"] == [1.0, 0.0, 0.0] and spec["labels"][1]["terminology"].startswith("SCT")
    doc = admin.init_project(tmp_path / "p", "P", path)
    assert doc["blind"] is False and doc["window_preset"] == "liver"


@pytest.mark.parametrize("labels, message", [
    ([{"name": "a", "value": 1}, {"name": "b", "value": 1}], "repeats"),
    ([{"name": "a", "value": 0}], "1..255"),
    ([{"value": 2}], "'name'"),
    ([{"name": "a", "value": 1, "color": "red"}], "'color'"),
    ([], "non-empty"),
])
def test_bad_label_files_are_refused_with_the_field_named(tmp_path, labels, message):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels), encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        admin.init_project(tmp_path / "p", "P", path)
    assert not (tmp_path / "p" / "project.json").exists()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInput, match="malformed JSON"):
        admin.load_labels(path)


def test_admin_refusals(tmp_path):
    project = tmp_path / "project"
    make_team_project(project)
    with pytest.raises(Conflict):
        admin.init_project(project, "again", [{"name": "x", "value": 1}])
    with pytest.raises(Conflict):
        admin.add_case(project, "c1", tmp_path / "whatever.nrrd", "P9")
    with pytest.raises(FileNotFoundError):
        admin.add_case(project, "c9", tmp_path / "missing.nrrd", "P9")
    with pytest.raises(InvalidInput):
        admin.add_case(project, "../c9", tmp_path / "missing.nrrd", "P9")
    with pytest.raises(InvalidInput):
        admin.add_member(project, "eve", "superuser")
    with pytest.raises(NotFound):
        admin.assign(project, "c1", "nobody")
    with pytest.raises(NotFound):
        admin.assign(project, "c9", "alice")
    assert admin.assign(project, "c1", "alice") is False  # already assigned: nothing written
    with pytest.raises(NotFound):
        admin.add_member(tmp_path / "not-a-project", "x", "annotator")
    # a new token for an existing member replaces the old one (and may change the role)
    admin.add_member(project, "bob", "reviewer")
    assert open_store(project, "bob").whoami()["role"] == "reviewer"


def test_verify_finds_a_corrupt_blob_and_a_stray_record_is_skipped(tmp_path):
    project = tmp_path / "project"
    make_team_project(project)
    alice = open_store(project, "alice")
    v = alice.push_version("c1", write_seg(tmp_path / "a.seg.nrrd", 1))
    assert verify_project(project) == []
    blob = project / "blobs" / "sha256" / v["sha256"][:2] / v["sha256"]
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    assert [p for p in verify_project(project) if v["id"] in p]
    with pytest.raises(InvalidInput, match="corrupt"):
        alice.fetch_version(v["id"], tmp_path / "out.seg.nrrd")
    assert not (tmp_path / "out.seg.nrrd").exists()
    (project / "events" / "20990101T000000.000000Z-0123456789abcdef0123456789abcdef.json").write_text("junk", encoding="utf-8")
    assert [c["case_id"] for c in open_store(project, "rev").list_cases()] == ["c1", "c2"]
