"""The TrainBridge panel inside the Slicer harness (Slicer 5.12's packages, real MRML, its loaders).

A lab's ML engineer clicks through the panel: export the project's adjudicated cases (the hub module's
connection), Cancel an export, a case that fails; train MONAI for one epoch in a detached job (torch
through the PyTorch extension, the rest installed at first use), the job's test-set evaluation, the
comparison side by side on one plane and overlaid, the views given back, the worst slice, the ONNX
export; a longer job cancelled, resumed and attached; and the module's own self-test. The harness fails
a run when a Slicer, Qt or MRML call happens off the main thread.
"""
from __future__ import annotations

from slicer_support import run_in_slicer

from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import write_volume
from DicomTeamAnnotateLib.store import admin, open_store
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.nnunet import export_nnunet

LABELS = ("liver", "spleen", "kidney_left", "kidney_right")
SIDE_BY_SIDE, CONVENTIONAL = 29, 2  # vtkMRMLLayoutNode.SlicerLayoutSideBySideView, SlicerLayoutConventionalView



def make_project(folder):
    """Four phantom cases; the reviewer adjudicated c0..c2 (c3 has no ground truth)."""
    phantoms = [make_phantom(seed=n, shape=(16, 32, 32), spacing=(1.5, 1.5, 3.0)) for n in range(4)]
    segments = {s.name: s for s in phantoms[0].segmentation().segments}
    project = folder / "project"
    admin.init_project(project, "Train", [{"name": n, "value": segments[n].label_value, "color": list(segments[n].color),
                                           "terminology": segments[n].terminology} for n in LABELS])
    admin.add_member(project, "rev", "reviewer")
    reviewer = open_store(project, "rev")
    for n, phantom in enumerate(phantoms):
        admin.add_case(project, f"c{n}", phantom.volume, f"P{n}")
        if n < 3:
            truth = Segmentation.from_masks({name: phantom.labels == phantom.label_values[name] for name in LABELS},
                                            phantom.volume.geometry,
                                            terminology={k: segments[k].terminology for k in LABELS})
            reviewer.push_version(f"c{n}", write_seg_nrrd(truth, folder / "truth" / f"c{n}.seg.nrrd"),
                                  kind="adjudicated", message="ground truth")
    return project, write_volume(phantoms[3].volume, folder / "c3.nrrd")


def installs(record) -> list:
    """[(asked for, installed)] of the run: each pip_ensure that found something missing (the user asked,
    Slicer's packages held by a constraints file), and its install."""
    out = []
    for n, entry in enumerate(record):
        if entry["call"] == "pip_ensure" and entry["missing"]:
            assert entry["constraints"] and not entry["skip_in_testing"] and entry.get("prompted"), entry
            install = record[n + 1]
            assert install["call"] == "pip_install" and install["constraints"] == entry["constraints"], install
            assert "error" not in install, install["error"]
            out.append((entry["missing"], install["requirements"]))
    return out


def test_export_train_one_epoch_evaluate_compare_and_export_the_model(fresh_env, tmp_path):
    project, image = make_project(tmp_path)
    junk = tmp_path / "junk.seg.nrrd"
    junk.write_text("not a segmentation", encoding="utf-8")
    r = run_in_slicer(fresh_env, tmp_path, "trainbridge:export_train_evaluate", project=project, work=tmp_path / "work",
                      image_file=image, junk_label=junk)
    out = r["result"]
    # first use of each feature: asked, then installed with Slicer's packages held; torch via the PyTorch extension
    monai = ["monai>=1.3", "matplotlib>=3.7", "nibabel>=5.0"]
    onnx = ["onnx>=1.15", "onnxruntime>=1.17"]
    assert installs(r["installs"]) == [(["pynrrd>=1.0"], ["pynrrd>=1.0"]), (monai, monai), (onnx, onnx)]
    assert [t["call"] for t in r["torch"]] == ["installTorch"] and r["torch"][0]["askConfirmation"]
    # before the hub connects: nothing to export, and the hub's panel is not built behind the user's back
    assert out["hub_panel_built_early"] is False and out["export_enabled_before"] is False
    assert out["store_text_before"].startswith("Not connected")
    assert out["store_text"].startswith(f"Project {project} as rev")
    # the project's adjudicated versions only (c3 has none), the project's labels in order, a MONAI datalist
    assert out["start_enabled_before_export"] is False and out["start_enabled"] is True
    assert out["export_status"].endswith("Dataset500_Team: 2 training case(s) in 2 fold(s), 1 test case(s).")
    assert out["dataset"] == {"name": "Dataset500_Team", "cases": ["c0", "c1", "c2"], "kinds": ["adjudicated"],
                              "labels": {"background": 0, **{n: k + 1 for k, n in enumerate(LABELS)}},
                              "monai_json": True, "splits": True}
    # Cancel writes nothing (the earlier dataset intact); a failing case names its file and writes nothing
    cancel = out["export_cancel"]
    assert cancel["status"] == "Export cancelled: no dataset was written."
    assert cancel["folders_after"] == cancel["folders_before"] == ["Dataset500_Team"] and cancel["dataset_kept"]
    assert out["files_visible"] == [False, True, True]
    assert out["file_cases"] == [["case_000", "PX", str(image), str(junk)]] and out["patient_cleared"] == ""
    failed = out["export_failed"]
    assert failed["status"] == "The dataset was not exported." and failed["folders"] == ["Dataset500_Team"]
    assert len(failed["errors"]) == 1 and f"{junk}: not a NRRD file" in failed["errors"][0]
    assert failed["dataset_path"].endswith("Dataset500_Team")
    assert out["remove_enabled_without_selection"] is False and out["file_cases_after_remove"] == []
    # one epoch in a detached job, followed by the panel: epochs, losses, curves, log
    assert out["attach_enabled_without_job"] is False
    assert out["running"]["cancel"] and not out["running"]["start"]
    job = out["job"]
    assert job["state"] == "finished", job["log"]
    assert job["status"].startswith("finished, epoch 1/1, loss ") and "val Dice" in job["status"]
    assert job["epoch"] == job["epochs"] == 1 and job["curves"]
    assert "step predict" in job["log"] and "step evaluate" in job["log"]
    assert not job["cancel"] and not job["resume"] and job["attach"]
    # its test-set evaluation, loaded when the job finished: one row per label of the test case, worst first
    evaluation = out["evaluation"]
    assert evaluation["folder"].endswith("job1/evaluation") and evaluation["cases"] == ["c0"]
    assert evaluation["labels"] == list(LABELS)
    assert sorted(row[1] for row in evaluation["rows"]) == sorted(LABELS)
    dice = [float(row[2]) for row in evaluation["rows"]]
    assert dice == sorted(dice) and evaluation["summary"].startswith("liver: Dice ")
    assert evaluation["worst"] and all(row[0] == "c0" for row in evaluation["worst"])
    # side by side: both views on Red's plane (Yellow was sagittal), linked, ground truth left, prediction right
    before = out["views_before"]
    assert before["layout"] == CONVENTIONAL and before["planes"] == {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}
    sbs = out["side_by_side"]
    assert sbs["layout"] == SIDE_BY_SIDE and sbs["planes"]["Yellow"] == sbs["planes"]["Red"] == "Axial"
    assert sbs["linked"] == [1] and sbs["background"]
    assert sbs["gt_in"] == ["vtkMRMLSliceNodeRed"] and sbs["pred_in"] == ["vtkMRMLSliceNodeYellow"]
    assert sbs["label"] == "liver" and out["other_label_visible"] == ["kidney_right"]
    # overlaid, and leaving the module: the views as they were, both segmentations in every view
    overlaid = out["overlaid"]
    assert {k: overlaid[k] for k in before} == before
    assert overlaid["gt_in"] == overlaid["pred_in"] == [] and overlaid["fill"] == [True, False]
    assert out["side_by_side_again"]["planes"]["Yellow"] == "Axial"
    assert {k: out["after_leaving"][k] for k in before} == before
    assert out["after_leaving"]["gt_in"] == out["after_leaving"]["pred_in"] == []
    # the worst slice: the views centred on its error; a double-click shows that row's case and label
    assert out["jump"]["to"] == out["jump"]["center"] and out["jump"]["case"] == out["jump"]["worst_case"]
    assert [out["double_click"]["case"], out["double_click"]["label"]] == out["double_click"]["want"]
    # the model as ONNX, checked against PyTorch
    assert out["model_export_enabled"] and out["model"]["manifest"] and out["model"]["onnx"]
    assert out["model"]["status"].endswith("models/manifest.json")
    assert out["errors"] == failed["errors"]
    assert any("PyTorch" in q for q in out["questions"]) and any("monai>=1.3" in q for q in out["questions"])


def test_a_long_job_is_cancelled_resumed_and_attached(fresh_env, tmp_path):
    cases = [CaseInput(f"c{p}", f"P{p}", [ph.volume], ph.segmentation())
             for p, ph in enumerate(make_phantom(seed=p, shape=(16, 24, 24)) for p in range(3))]
    labels = [{"name": n, "value": v} for n, v in LABEL_VALUES.items()]
    dataset = export_nnunet(cases, tmp_path / "raw", "Tiny", labels=labels, folds=2, test_fraction=0.0).dataset_dir
    out = run_in_slicer(fresh_env, tmp_path, "trainbridge:job_cancel_resume_attach", dataset=dataset,
                        work=tmp_path / "work")["result"]
    assert out["running"]["state"] == "running" and out["running"]["cancel"]
    assert out["running"]["status"].startswith("running, step train, epoch ") and "/200" in out["running"]["status"]
    assert out["after_no"] == {"state": "running", "alive": True}, "cancelled without the user's OK"
    cancelled = out["cancelled"]
    assert cancelled["asked"] == ["Stop the training job?"] * 2
    assert cancelled["state"] == "cancelled" and cancelled["supervisor_gone"]
    assert cancelled["resume"] and not cancelled["cancel"]
    assert out["resumed"]["state"] in ("starting", "running") and out["resumed"]["cancel"]
    assert out["attach_enabled_empty"] is False and out["attach_enabled"] is True
    assert out["attached"]["state"] in ("starting", "running")
    assert out["cancelled_again"] == "cancelled"


def test_nnunet_first_use_installs_nnunetv2_with_slicers_packages_held(fresh_env, tmp_path):
    cases = [CaseInput(f"c{p}", f"P{p}", [ph.volume], ph.segmentation())
             for p, ph in enumerate(make_phantom(seed=p, shape=(16, 24, 24)) for p in range(3))]
    labels = [{"name": n, "value": v} for n, v in LABEL_VALUES.items()]
    dataset = export_nnunet(cases, tmp_path / "raw", "Tiny", labels=labels, folds=2, test_fraction=0.0).dataset_dir
    r = run_in_slicer(fresh_env, tmp_path, "trainbridge:nnunet_first_use", dataset=dataset, work=tmp_path / "work")
    out = r["result"]
    nnunet = ["nnunetv2>=2.4", "matplotlib>=3.7", "nibabel>=5.0"]
    assert installs(r["installs"]) == [(nnunet, nnunet)]
    assert out["arch_enabled"] is False  # the network is nnU-Net's own
    assert out["started"]["state"] == "running" and out["started"]["backend"] == "nnunet", out["log"]
    assert out["started"]["steps"][:2] == ["plan", "train"]
    assert out["cancelled"] == "cancelled"
    assert any("nnunetv2>=2.4" in q for q in out["questions"]) and "Stop the training job?" in out["questions"]


def test_the_modules_own_self_test_passes_in_slicer(fresh_env, tmp_path):
    r = run_in_slicer(fresh_env, tmp_path, "trainbridge:self_test", testing=True)  # as ctest runs it
    assert r["result"]["passed"]
    assert [i for i in r["installs"] if i.get("missing")] == [], "exporting scene nodes needs no package"


def test_an_older_slicer_shows_which_version_the_module_needs(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "trainbridge:older_slicer")["result"]
    assert out["panel"] is False and out["ui"] is False
    assert len(out["labels"]) == 1 and "needs 3D Slicer 5.12 or newer (this is 5.10)" in out["labels"][0]
