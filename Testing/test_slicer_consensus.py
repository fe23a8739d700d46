"""The ConsensusReview panel inside the Slicer harness (Slicer 5.12's packages, real MRML, its loaders).

A reviewer clicks through the panel: a project case read through the hub module's connection, segmentation
nodes and files as inputs, the disagreement overlay, the report, adjudication and publication, the review
queue, Cancel mid-task and failing tasks; and the module's own self-test. The harness fails a run when a
Slicer, Qt or MRML call happens off the main thread; each first use of pynrrd or matplotlib must be asked
for and installed (with Slicer's packages held by a constraints file), and nothing else.
"""
from __future__ import annotations

from slicer_support import run_in_slicer

from ConsensusReviewLib.simulate import simulate_reader_segmentations
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.store import admin, open_store

LABELS = ("liver", "spleen", "kidney_left", "kidney_right")
READERS = ("a1", "a2", "a3")


def make_team_project(folder):
    """Three readers push c1 and c2 (c2 sloppier), one reader pushes c3; the files of c1's readers."""
    project = folder / "project"
    phantoms = {case: make_phantom(seed=seed, shape=(16, 48, 48), spacing=(1.5, 1.5, 3.0))
                for case, seed in (("c1", 0), ("c2", 1), ("c3", 2))}
    segments = {s.name: s for s in phantoms["c1"].segmentation().segments}
    admin.init_project(project, "Consensus", [{"name": n, "value": segments[n].label_value,
                                               "color": list(segments[n].color),
                                               "terminology": segments[n].terminology} for n in LABELS])
    for user in READERS:
        admin.add_member(project, user, "annotator")
    admin.add_member(project, "rev", "reviewer")
    files = []
    for case, phantom in phantoms.items():
        admin.add_case(project, case, phantom.volume, f"P-{case}")
        segs = simulate_reader_segmentations(phantom, 3, seed=0 if case == "c1" else 7)
        for user, seg in list(zip(READERS, segs))[: 1 if case == "c3" else 3]:
            admin.assign(project, case, user)
            path = write_seg_nrrd(seg, folder / "readers" / case / f"{user}.seg.nrrd")
            if case == "c1":
                files.append(path)
            store = open_store(project, user)
            store.push_version(case, path, message=f"{user} reads {case}")
            store.set_state(case, "submitted")
    return project, files



def first_use_installs(record, asked=True) -> list:
    """[(asked for, installed)] of the run: each pip_ensure that found something missing, and its install
    (``asked``: the user was asked first; ctest's testing mode installs without the question)."""
    out = []
    for n, entry in enumerate(record):
        if entry["call"] == "pip_ensure" and entry["missing"]:
            assert entry["constraints"] and not entry["skip_in_testing"], entry
            assert bool(entry.get("prompted")) == asked, entry
            install = record[n + 1]
            assert install["call"] == "pip_install" and install["constraints"] == entry["constraints"], install
            assert "error" not in install, install["error"]
            out.append((entry["missing"], install["requirements"]))
    return out


def test_reviewer_computes_adjudicates_publishes_and_builds_the_queue(fresh_env, tmp_path):
    project, _files = make_team_project(tmp_path)
    r = run_in_slicer(fresh_env, tmp_path, "consensus:project_review", project=project, work=tmp_path / "work")
    out = r["result"]
    # before the hub connects: nothing to refresh, and the hub's panel is not built behind the user's back
    assert out["hub_panel_built_early"] is False
    assert out["store_text_before"].startswith("Not connected") and not out["refresh_enabled_before"]
    assert not out["queue_enabled_before"] and out["module_after_open_hub"] == "DicomTeamAnnotate"
    assert out["store_text"] == f"Project {project} as rev."
    assert [c for c, _text in out["cases"]] == ["c1", "c2", "c3"] and out["cases"][2][1] == "c3 (submitted; a1)"
    # Compute: first use asks for pynrrd and matplotlib, installed with Slicer's packages held
    both = ["pynrrd>=1.0", "matplotlib>=3.7"]
    assert first_use_installs(r["installs"]) == [(both, both)]
    assert out["run_status"].startswith("staple of 3 annotators (a1, a2, a3) in ")
    assert out["review_status"].startswith("<b>Needs review</b>")
    assert [row[0] for row in out["label_rows"]] == list(LABELS) and out["annotator_rows"] == 12
    assert out["annotator_headers"][:3] == ["label", "annotator", "dice"]
    assert out["consensus_node_equal"] and out["reference_is_case_image"]
    # the overlay: the computed map over the case image; the slider changes the opacity only
    assert out["map_choices"][0] == "disagreement" and "votes:liver" in out["map_choices"]
    assert out["map_overlaid"] and out["map_equal"] and out["map_geometry_error"] < 1e-6
    assert out["map_display"] == {"colors": True, "threshold": True, "lower": 1e-3, "window": 1.0, "auto": False}
    assert out["opacity_after_drag"] == out["opacity_parameter"] == 0.35
    assert out["map_rebuilt_by_slider"] is False
    assert out["votes_reuse_node"] and out["votes_max"] == 3.0 and out["votes_opacity_kept"] == 0.35
    assert out["foreground_hidden"] is None and out["foreground_shown"]
    assert out["report_enabled"] and out["opened"] == ["file://" + out["report"]]
    assert out["report"].endswith("/c1/report.html")
    # adjudication from a2's version, edited in the Segment Editor, published after the reviewer's Yes
    assert out["starts"] == ["consensus", "annotator:a1", "annotator:a2", "annotator:a3"]
    assert out["editor_on_adjudication"] and out["editor_source_is_image"]
    assert out["module_after_start"] == "SegmentEditor" and "from a2 (version" in out["adjudication_status"]
    assert out["publish_enabled"] and out["adjudicated_after_no"] == [], "published without the reviewer's Yes"
    assert len(out["asked"]) == 2 and all("ground truth of case c1" in q for q in out["asked"])
    published = out["published"]
    assert published["count"] == 1 and published["author"] == "rev" and published["note"] == "trimmed the liver"
    assert published["liver_removed"] == out["removed"] > 0
    assert published["started_from"] == f"version {published['a2_version']}"
    assert out["publish_status"].startswith("Published as adjudicated version") and out["case_state"] == "adjudicated"
    # the review queue, lowest agreement first; c3 (one reader) skipped; c2 marked 'in review'
    assert sorted(row[0] for row in out["queue_rows"]) == ["c1", "c2"]
    dice = [float(row[2]) for row in out["queue_rows"]]
    assert dice == sorted(dice) and all(row[6] == "yes" for row in out["queue_rows"])
    assert out["queue_status"] == "2 case(s), 2 need review; 1 skipped. Marked 'in review': c2."
    assert out["queue_tooltip"].startswith("c3: ")
    assert out["states_after_queue"] == {"c1": "adjudicated", "c2": "in_review", "c3": "submitted"}
    assert out["after_double_click"]["case"] == "c2" and out["after_double_click"]["combo"] == "c2"
    assert out["after_double_click"]["status"].startswith("staple of 3 annotators")
    # Cancel mid-task keeps the last result; a failing case names the reason; no false 'Cancelling...'
    assert out["after_cancel"] == {"status": "Consensus cancelled.", "result_kept": True, "busy": False}
    assert out["failed_case"]["status"] == "Consensus not computed." and out["failed_case"]["result_kept"]
    assert len(out["failed_case"]["errors"]) == 1
    assert "case 'c3'" in out["failed_case"]["errors"][0] and "at least two annotators" in out["failed_case"]["errors"][0]
    assert out["status_messages"].count("Cancelling...") == 1, out["status_messages"]
    assert out["dialogs"] and all(not d["visible"] and not d["autoClose"] and d["canceled_slots"] == 0
                                  for d in out["dialogs"])
    assert out["segmentation_nodes"] == 3  # c1's consensus (reused by each run of c1), its adjudication, c2's consensus
    assert out["errors"] == out["failed_case"]["errors"]


def test_nodes_and_files_as_inputs_cancel_and_a_file_that_is_no_segmentation(fresh_env, tmp_path):
    _project, files = make_team_project(tmp_path)
    junk = tmp_path / "notes.seg.nrrd"
    junk.write_text("not a segmentation", encoding="utf-8")
    r = run_in_slicer(fresh_env, tmp_path, "consensus:nodes_and_files", files=files, not_a_segmentation=junk)
    out = r["result"]
    assert out["visible"] == [False, True, False]
    assert out["run_enabled_one_node"] is False and out["run_enabled_three_nodes"] is True
    assert out["tie_enabled_majority"] and not out["threshold_enabled_majority"]
    # nodes without an output folder need no package; files need pynrrd only (nothing written)
    assert out["nodes_installs"] == [] and out["nodes_status"].startswith("majority of 3 annotators (reader 1, ")
    assert out["nodes_annotators"] == ["reader 1", "reader 2", "reader 3"] and out["nodes_reference_is_phantom"]
    assert out["nodes_report_enabled"] is False
    assert first_use_installs(r["installs"]) == [(["pynrrd>=1.0"], ["pynrrd>=1.0"])]
    assert out["files_listed"] == [str(f) for f in files] and out["remove_enabled_without_selection"] is False
    assert out["files_after_remove"] == [str(files[0]), str(files[2])]
    assert out["files_annotators"] == ["a1", "a3", "a2"] and out["files_status"].startswith("majority of 3")
    assert out["files_equal_nodes"], "the readers' files and nodes were not aligned alike"
    assert out["after_cancel"] == {"status": "Consensus cancelled.", "result_kept": True}
    assert out["bad_file"]["status"] == "Consensus not computed."
    assert len(out["bad_file"]["errors"]) == 1 and f"{junk}: not a NRRD file" in out["bad_file"]["errors"][0]


def test_the_modules_own_self_test_passes_in_slicer(fresh_env, tmp_path):
    r = run_in_slicer(fresh_env, tmp_path, "consensus:self_test", testing=True)  # as ctest runs it
    assert r["result"]["passed"]
    # the panel's Compute with an output folder: pynrrd and matplotlib, installed without a question (testing)
    both = ["pynrrd>=1.0", "matplotlib>=3.7"]
    assert first_use_installs(r["installs"], asked=False) == [(both, both)]


def test_an_older_slicer_shows_which_version_the_module_needs(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "consensus:older_slicer")["result"]
    assert out["panel"] is False and out["ui"] is False
    assert len(out["labels"]) == 1 and "needs 3D Slicer 5.12 or newer (this is 5.10)" in out["labels"][0]
