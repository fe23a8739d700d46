"""Effort, measured (issue 13): the tracker's active time, counts and voxel comparison, the report per round,
`dicomteam effort` on a folder project and on the server, and blinding of the records."""
from __future__ import annotations

import json

import numpy as np
import pytest
from store_support import GEOMETRY, ThreadServer, make_team_project

from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.store import Forbidden, open_store
from DicomTeamAnnotateLib.worklist.effort import EffortTracker, compare_segmentations
from DicomTeamAnnotateLib.worklist.effort_report import effort_rows, effort_table, plot_effort


def seg_of(masks: dict, terms: dict | None = None, values: dict | None = None) -> Segmentation:
    return Segmentation.from_masks(masks, GEOMETRY, terminology=terms, values=values)


def box(k0, k1, j0=4, j1=12, i0=4, i1=12):
    m = np.zeros(GEOMETRY.shape, bool)
    m[k0:k1, j0:j1, i0:i1] = True
    return m


def test_active_time_leaves_idle_gaps_out_and_counts_actions():
    t = EffortTracker(start="prediction", start_version="pabc123", idle_threshold_s=60, now=100.0)
    t.activity(110)          # 10 s of work
    t.sam_prompt(130)        # 20 s
    t.sam_propagation(150)   # 20 s
    t.editor_operation("Paint", 500)  # 350 s away: idle, not work
    t.editor_operation("Erase", 530)  # 30 s
    t.editor_operation("Paint", 520)  # out of order: nothing counted, nothing lost
    c = t.counts(540)        # 10 s
    assert c["active_s"] == pytest.approx(90.0) and c["idle_s"] == pytest.approx(350.0) and c["idle_gaps"] == 1
    assert (c["sam_prompts"], c["sam_propagations"], c["editor_operations"]) == (1, 1, 3)
    assert c["operations"] == {"Erase": 1, "Paint": 2}
    assert c["start"] == "prediction" and c["start_version"] == "pabc123" and c["wall_s"] == pytest.approx(440.0)
    with pytest.raises(ValueError, match="effort start"):
        EffortTracker(start="magic")


def test_voxels_changed_and_dice_pair_structures_by_identity_not_value():
    liver_t = "SCT^10200004^Liver"
    start = seg_of({"Liver": box(0, 8), "spleen": box(10, 14, 20, 24, 20, 24)}, terms={"Liver": liver_t},
                   values={"Liver": 1, "spleen": 2})
    # the result numbers the liver 5 and names it in German: the same structure by terminology
    result = seg_of({"Leber": box(0, 10), "kidney": box(12, 13)}, terms={"Leber": liver_t},
                    values={"Leber": 5, "kidney": 3})
    out = compare_segmentations(start, result)
    liver_before, liver_after = 8 * 64, 10 * 64
    assert out["segments"]["Leber"]["voxels_changed"] == liver_after - liver_before
    assert out["segments"]["Leber"]["dice"] == pytest.approx(2 * liver_before / (liver_before + liver_after), abs=1e-4)
    assert out["segments"]["kidney"] == {"voxels_changed": 64, "voxels": 64, "dice": 0.0}
    assert out["segments"]["spleen"]["voxels_changed"] == 64 and out["segments"]["spleen"]["voxels"] == 0
    assert out["voxels_changed"] == (liver_after - liver_before) + 64 + 64
    assert out["ml_changed"] == pytest.approx(out["voxels_changed"] * GEOMETRY.voxel_volume_ml(), abs=1e-3)
    total = liver_before + liver_after + 64 + 64
    assert out["dice_start_result"] == pytest.approx(2 * liver_before / total, abs=1e-4)
    empty = compare_segmentations(None, result)  # from nothing: every voxel of the result is new
    assert empty["voxels_changed"] == liver_after + 64 and empty["dice_start_result"] == 0.0
    assert compare_segmentations(result, result)["voxels_changed"] == 0


def _push_with_effort(store, case, path, seg, start_seg, parent, active_s, prompts, session=None):
    t = EffortTracker(start="prediction" if parent and parent.startswith("p") else "new", start_version=parent, now=0)
    for n in range(prompts):
        t.sam_prompt(active_s * (n + 1) / max(1, prompts))
    t.activity(active_s)
    record = t.record(start_seg, seg, active_s)
    if session:
        record["session"] = session
    write_seg_nrrd(seg, path)
    return store.push_version(case, path, parent=parent, meta={"effort": record})


def test_effort_per_round_and_annotator_through_the_folder_and_the_server(tmp_path):
    project = tmp_path / "project"
    tokens = make_team_project(project)
    folder = {u: open_store(project, u) for u in ("alice", "bob", "rev")}
    truth = seg_of({"liver": box(0, 8)})
    # round 1: alice on c2 from nothing; round 2: both on c1 from the model's prediction
    _push_with_effort(folder["alice"], "c2", tmp_path / "a2.seg.nrrd", truth, None, None, 600, 12)
    pred = seg_of({"liver": box(0, 6)})
    write_seg_nrrd(pred, tmp_path / "pred.seg.nrrd")
    p = folder["rev"].push_version("c1", tmp_path / "pred.seg.nrrd", kind="prediction",
                                   meta={"model": {"name": "unet", "round": 2, "weights_sha256": "a" * 64}},
                                   version_id="p0000000000000001")
    first = _push_with_effort(folder["alice"], "c1", tmp_path / "a1.seg.nrrd", truth, pred, p["id"], 90, 2, "s1")
    # the same session pushes again (save, then submit): its later record replaces the earlier one
    _push_with_effort(folder["alice"], "c1", tmp_path / "a1b.seg.nrrd", truth, pred, first["id"], 120, 3, "s1")
    _push_with_effort(folder["bob"], "c1", tmp_path / "b1.seg.nrrd", truth, pred, p["id"], 150, 4)

    rows = effort_rows(folder["rev"])
    assert [(r["round"], r["annotator"], r["case_id"]) for r in rows] == [(1, "alice", "c2"), (2, "alice", "c1"),
                                                                          (2, "bob", "c1")]
    alice_c1 = rows[1]
    assert alice_c1["active_s"] == pytest.approx(120.0) and alice_c1["sam_prompts"] == 3 and alice_c1["sessions"] == 1
    assert alice_c1["voxels_changed"] == 2 * 64 and alice_c1["dice_start_result"] == pytest.approx(12 / 14, abs=1e-4)
    assert rows[0]["voxels_changed"] == 8 * 64 and rows[0]["dice_start_result"] == 0.0
    table = {(t["round"], t["annotator"]): t for t in effort_table(rows)}
    assert table[(2, "all")]["cases"] == 2 and table[(2, "all")]["median_active_min"] == pytest.approx(2.25)
    assert table[(1, "all")]["median_active_min"] == pytest.approx(10.0)
    png = plot_effort(rows, tmp_path / "effort.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    # blinding: alice sees her own records only, never bob's; the server answers the same as the folder
    assert {r["annotator"] for r in effort_rows(folder["alice"])} == {"alice"}
    with pytest.raises(Forbidden):
        folder["alice"].get_version(rows[2]["version"])
    server = ThreadServer(project)
    try:
        http = open_store(server.url, "rev", tokens["rev"], cache=tmp_path / "cache")
        assert effort_rows(http) == rows
        assert effort_rows(open_store(server.url, "alice", tokens["alice"], cache=tmp_path / "c2")) == \
            [r for r in rows if r["annotator"] == "alice"]
    finally:
        server.stop()


def test_dicomteam_effort_prints_the_table_json_and_picture(tmp_path, capsys):
    project = tmp_path / "project"
    make_team_project(project)
    alice = open_store(project, "alice")
    _push_with_effort(alice, "c2", tmp_path / "a.seg.nrrd", seg_of({"liver": box(0, 4)}), None, None, 300, 5)
    assert dicomteam(["effort", "--store", str(project), "--user", "rev"]) == 0
    text = capsys.readouterr().out
    assert "round" in text.splitlines()[0] and "alice" in text and "5.00" in text  # 5 active minutes
    png = tmp_path / "effort.png"
    assert dicomteam(["effort", "--store", str(project), "--user", "rev", "--json", "--png", str(png)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cases"][0]["sam_prompts"] == 5 and doc["table"][0]["round"] == 1
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_segments_of_one_value_in_two_layers_are_compared_by_name():
    a = Segmentation(np.stack([box(0, 4).astype(np.uint8), box(2, 6).astype(np.uint8)]), GEOMETRY,
                     [Segment("x", 1, layer=0), Segment("y", 1, layer=1)])
    b = seg_of({"x": box(0, 4), "y": box(2, 8)})
    out = compare_segmentations(a, b)
    assert out["segments"]["x"]["voxels_changed"] == 0 and out["segments"]["y"]["voxels_changed"] == 2 * 64


def test_the_hubs_push_carries_the_effort_record(tmp_path):
    from DicomTeamAnnotateLib.worklist.cases import save_version, submit_case
    from DicomTeamAnnotateLib.worklist.offline import OfflineQueue

    project = tmp_path / "project"
    make_team_project(project)
    alice = open_store(project, "alice")
    seg = seg_of({"liver": box(0, 4)})
    path = write_seg_nrrd(seg, tmp_path / "a.seg.nrrd")
    t = EffortTracker(now=0)
    t.sam_prompt(30)
    saved = save_version(alice, "c2", path, meta={"effort": t.record(None, seg, 40)}, queue=OfflineQueue(tmp_path / "q"))
    done = submit_case(alice, "c2", path, parent=saved["id"], meta={"effort": t.record(None, seg, 90)},
                       queue=OfflineQueue(tmp_path / "q"))
    assert alice.get_version(saved["id"])["meta"]["effort"]["active_s"] == 40.0
    assert alice.get_version(done["id"])["meta"]["effort"]["active_s"] == 90.0
    assert alice.states("c2")["annotators"]["alice"] == "submitted"
    rows = effort_rows(alice)
    assert len(rows) == 1 and rows[0]["active_s"] == 90.0 and rows[0]["sessions"] == 1  # one session, its last record


def _naive_comparison(start, result) -> dict:
    """The comparison by definition, one boolean volume per segment (what compare_segmentations counts faster)."""
    per, changed, overlap, total = {}, 0, 0, 0
    for s in result.segments:
        after = result.mask(s.name)
        before = start.mask(s.name) if start is not None and s.name in {x.name for x in start.segments} else np.zeros_like(after)
        both = int(np.logical_and(after, before).sum())
        diff = int(after.sum()) + int(before.sum()) - 2 * both
        per[s.name] = diff
        changed, overlap, total = changed + diff, overlap + both, total + int(after.sum()) + int(before.sum())
    for s in start.segments if start is not None else []:
        if s.name not in per:
            per[s.name] = int(start.mask(s.name).sum())
            changed, total = changed + per[s.name], total + per[s.name]
    return {"per": per, "changed": changed, "dice": round(2.0 * overlap / total, 5) if total else None}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_layer_pair_counts_equal_the_comparison_by_definition(dtype):
    """Several layers, values above 255 (16 and 32 bit), a structure gone, one new, another layer order."""
    rng = np.random.default_rng(7)
    shape = GEOMETRY.shape
    high = 300 if dtype != np.uint8 else 3
    start = Segmentation(np.stack([rng.choice([0, 1, high, 5], shape).astype(dtype),
                                   rng.choice([0, 7], shape).astype(dtype)]), GEOMETRY,
                         [Segment("liver", 1, layer=0), Segment("spleen", high, layer=0), Segment("aorta", 7, layer=1),
                          Segment("gone", 5, layer=0)])
    result = Segmentation(np.stack([rng.choice([0, 2], shape).astype(dtype),
                                    rng.choice([0, 1, high, 9], shape).astype(dtype)]), GEOMETRY,
                          [Segment("aorta", 2, layer=0), Segment("liver", 1, layer=1), Segment("spleen", high, layer=1),
                           Segment("new", 9, layer=1)])
    out = compare_segmentations(start, result)
    want = _naive_comparison(start, result)
    assert {name: v["voxels_changed"] for name, v in out["segments"].items()} == want["per"]
    assert out["voxels_changed"] == want["changed"] and out["dice_start_result"] == want["dice"]
    assert out["segments"]["gone"]["voxels_changed"] > 0 and out["segments"]["new"]["dice"] == 0.0
    empty = compare_segmentations(None, result)
    assert empty["voxels_changed"] == empty["voxels_result"] == sum(int(result.mask(s.name).sum())
                                                                     for s in result.segments)
