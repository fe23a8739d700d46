"""Pre-annotation through the store (issue 13): a real MONAI model, trained here on phantoms, predicts the
project's unannotated cases as versions of kind 'prediction' (folder store and server), mapped to the
project's ontology by terminology then name; resumable, cancellable, cases that do not fit skipped with
the reason; the worklist orders by the model's uncertainty; `dicomteam preannotate` and an exported model."""
from __future__ import annotations

import json

import numpy as np
import pytest
from loop_support import ONTOLOGY, SHAPE, train_small_monai_job
from store_support import ThreadServer

from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.hashing import sha256_file
from DicomTeamAnnotateLib.core.segmentation import Segment
from DicomTeamAnnotateLib.core.tasks import BackgroundTask, TaskCancelled
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.demo.phantom import TERMINOLOGY, make_phantom
from DicomTeamAnnotateLib.io.segmentations import read_segmentation
from DicomTeamAnnotateLib.store import Forbidden, admin, open_store
from DicomTeamAnnotateLib.worklist.cases import open_case
from DicomTeamAnnotateLib.worklist.rows import worklist_rows
from TrainBridgeLib.loop.backends import open_model
from TrainBridgeLib.loop.models import entropy_score, grid_covering
from TrainBridgeLib.loop.preannotate import label_mapping, preannotate, prediction_version_id

pytest.importorskip("torch")
pytest.importorskip("monai")
pytestmark = pytest.mark.slow  # ~1 minute: one short training job



@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A MONAI job trained for 96 steps on 6 small phantoms (learns the large organs)."""
    return train_small_monai_job(tmp_path_factory.mktemp("loopmodel"))


def project_with_cases(root, seeds, *, ontology=ONTOLOGY, shape=SHAPE):
    """A folder project of phantom cases assigned to alice; reviewer rev, annotator alice."""
    admin.init_project(root, "Loop", ontology)
    tokens = {u: admin.add_member(root, u, r) for u, r in (("alice", "annotator"), ("rev", "reviewer"))}
    for seed in seeds:
        admin.add_case(root, f"ph{seed}", make_phantom(seed=seed, shape=shape).volume, f"P{seed}")
        admin.assign(root, f"ph{seed}", "alice")
    return tokens


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def test_predictions_are_versions_authored_by_the_model_in_the_project_ontology(job, tmp_path):
    # the project names and numbers its labels its own way: the liver is "Leber" = 17, the spleen "Milz" = 13;
    # the model's labels map onto them by terminology, the rest by name
    ontology = [dict(d) for d in ONTOLOGY]
    ontology[0].update(name="Leber", value=17)
    ontology[1].update(name="Milz", value=13)
    ontology[2].update(value=19)
    ontology = [o for o in ontology if o["name"] != "lung_right"]  # a label the project does not have
    project = tmp_path / "project"
    project_with_cases(project, [50, 51], ontology=ontology)
    rev = open_store(project, "rev")
    model = open_model(job)
    assert model.weights_sha256 == sha256_file(job / "checkpoint_best.pt")[0]
    mapping = label_mapping(model, rev.project())
    assert {v: s.name for v, s in mapping["values"].items()}[1] == "Leber" and mapping["unmapped"] == ["lung_right"]
    summary = preannotate(rev, model)
    assert [p["case_id"] for p in summary["pushed"]] == ["ph50", "ph51"] and summary["round"] == 2
    version = rev.get_version(summary["pushed"][0]["version"])
    meta = version["meta"]
    assert version["kind"] == "prediction" and version["author"] == "rev"
    assert meta["model"]["weights_sha256"] == model.weights_sha256 and meta["model"]["job_id"] == f"{job.parent.name}/job"
    assert meta["model"]["backend"] == "monai" and meta["model"]["round"] == 2
    assert 0.0 <= meta["uncertainty"]["score"] <= 1.0 and meta["uncertainty"]["foreground_voxels"] > 0
    assert meta["unmapped_labels"] == ["lung_right"]
    # the voxels are the model's own prediction, relabelled into the project's values
    seg = read_segmentation(rev.fetch_version(version["id"], tmp_path / "p.seg.nrrd"))
    phantom = make_phantom(seed=50, shape=SHAPE)
    raw = model.predict(phantom.volume).labels
    leber = seg.segment("Leber")
    assert leber.label_value == 17 and leber.matches(Segment("any name", 1, terminology=TERMINOLOGY["liver"]))
    assert np.array_equal(seg.mask("Leber"), raw == 1) and np.array_equal(seg.mask("Milz"), raw == 2)
    assert "lung_right" not in seg.names
    assert dice(seg.mask("Leber"), phantom.labels == 1) > 0.7  # the model learnt the liver
    # the annotator starts from it; a rerun pushes nothing twice
    opened = open_case(open_store(project, "alice"), "ph50", tmp_path / "work")
    assert opened.start == "prediction" and opened.prediction["model"] == model.name
    again = preannotate(rev, model)
    assert again["pushed"] == [] and all("already pre-annotated" in s["reason"] for s in again["skipped"])
    assert version["id"] == prediction_version_id(model.weights_sha256, rev.get_case("ph50"))


def test_cases_that_do_not_fit_are_skipped_with_the_reason_and_annotated_ones_left_alone(job, tmp_path):
    project = tmp_path / "project"
    project_with_cases(project, [60, 61])
    thick = make_phantom(seed=62, shape=(4, 32, 32), spacing=(1.5, 1.5, 40.0)).volume  # 40 mm slices
    admin.add_case(project, "thick", thick, "P62")
    flat = Volume(np.zeros((1, 32, 32), np.int16), Geometry(size=(32, 32, 1), spacing=(1.5, 1.5, 3.0)))
    admin.add_case(project, "flat", flat, "P63")
    alice, rev = open_store(project, "alice"), open_store(project, "rev")
    pushed = preannotate(rev, open_model(job), cases=["ph60"])  # explicitly one
    alice.push_version("ph61", rev.fetch_version(pushed["pushed"][0]["version"], tmp_path / "x.seg.nrrd"))
    summary = preannotate(rev, open_model(job))
    reasons = {s["case_id"]: s["reason"] for s in summary["skipped"]}
    assert summary["pushed"] == [] and "ph61" not in reasons  # annotated: not a candidate
    assert "more than 4x" in reasons["thick"] and "along k" in reasons["thick"]
    assert "not a 3-D volume" in reasons["flat"] and "already pre-annotated" in reasons["ph60"]
    with pytest.raises(ValueError, match="no such case"):
        preannotate(rev, open_model(job), cases=["nope"])


@pytest.mark.parametrize("strategy", ["first", "uncertainty"])  # uncertainty without a limit pushes as it goes
def test_cancel_keeps_what_was_pushed_and_a_rerun_finishes_the_rest(job, tmp_path, strategy):
    project = tmp_path / "project"
    project_with_cases(project, [70, 71, 72])
    rev = open_store(project, "rev")
    model = open_model(job)
    seen = []

    def run(task):
        def progress(fraction, message):
            seen.append(message)
            if len(seen) == 2:  # the user presses Cancel while the second case is being predicted
                task.cancel()
            task.report(fraction, message)
        return preannotate(rev, model, strategy=strategy, progress=progress)

    task = BackgroundTask(run, "pre-annotate").start()
    with pytest.raises(TaskCancelled):
        task.result(timeout=300)
    kinds = [v["kind"] for c in ("ph70", "ph71", "ph72") for v in rev.list_versions(c)]
    assert kinds == ["prediction"]  # the first case's prediction is kept, nothing half-done
    rest = preannotate(rev, model)
    assert [p["case_id"] for p in rest["pushed"]] == ["ph71", "ph72"]


def test_cli_through_the_server_and_the_uncertainty_order(job, tmp_path, capsys):
    project = tmp_path / "project"
    tokens = project_with_cases(project, [80, 81, 82])
    # a case the model can hardly know: a phantom squeezed into a quarter of the field of view
    odd = make_phantom(seed=83, shape=(16, 32, 32), spacing=(0.5, 0.5, 1.0)).volume
    admin.add_case(project, "odd", odd, "P83")
    admin.assign(project, "odd", "alice")
    server = ThreadServer(project)
    try:
        assert dicomteam(["preannotate", "--store", server.url, "--user", "alice", "--token", tokens["alice"],
                          "--model", str(job)]) == 2  # an annotator may not push predictions
        assert "only reviewers and admins push predictions" in capsys.readouterr().err
        assert dicomteam(["preannotate", "--store", server.url, "--user", "rev", "--token", tokens["rev"],
                          "--model", str(job), "--strategy", "uncertainty", "--limit", "3", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        scores = [p["uncertainty"] for p in summary["pushed"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert [s["reason"] for s in summary["skipped"]][0].startswith("less uncertain than the ones pushed")
        assert dicomteam(["status", "--store", server.url, "--user", "alice", "--token", tokens["alice"],
                          "--order", "uncertainty", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        ranked = [r["score"] for r in rows if r["score"] is not None]
        assert ranked == scores and rows[-1]["score"] is None  # the case left without a prediction comes last
        assert rows[0]["prediction"]["model"].startswith(f"{job.parent.name}/job")
        alice = open_store(server.url, "alice", tokens["alice"], cache=tmp_path / "cache")
        assert [r["case_id"] for r in worklist_rows(alice, order="uncertainty")] == [r["case_id"] for r in rows]
    finally:
        server.stop()


def test_an_exported_model_preannotates_like_its_job(job, tmp_path):
    assert dicomteam(["export-model", str(job), "--format", "onnx", "--out", str(tmp_path / "exported")]) == 0
    exported, own = open_model(tmp_path / "exported"), open_model(job)
    assert exported.identity()["job_id"] == f"{job.parent.name}/job" and exported.weights_sha256 != own.weights_sha256
    volume = make_phantom(seed=90, shape=SHAPE).volume
    a, b = exported.predict(volume), own.predict(volume)
    assert (a.labels == b.labels).mean() > 0.999 and abs(a.uncertainty["score"] - b.uncertainty["score"]) < 1e-3
    with pytest.raises(ValueError, match="not a model"):
        open_model(tmp_path)


def test_an_image_in_another_orientation_is_predicted_by_physical_position(job):
    model = open_model(job)
    phantom = make_phantom(seed=91, shape=SHAPE)
    ref = model.predict(phantom.volume).labels
    # the same image stored with its columns reversed (i runs right to left): same anatomy, other array order
    g = phantom.volume.geometry
    d = g.direction_matrix.copy()
    d[:, 0] *= -1
    flipped_geometry = Geometry(size=g.size, spacing=g.spacing, direction=tuple(d.ravel()),
                                origin=tuple(g.index_to_world((g.size[0] - 1, 0, 0))))
    flipped = Volume(phantom.volume.array[:, :, ::-1].copy(), flipped_geometry)
    got = model.predict(flipped)
    assert got.geometry.same_grid(flipped_geometry)
    assert (got.labels[:, :, ::-1] == ref).mean() > 0.99  # left kidney still left: aligned by position
    cover = grid_covering(flipped_geometry, g.direction, g.spacing)
    assert cover.same_grid(g)


def test_entropy_score_is_inside_the_predicted_foreground():
    p = np.zeros((3, 1, 2, 2), np.float32)
    p[0] = 1.0  # background, certain
    p[:, 0, 0, 0] = [0.0, 0.5, 0.5]  # one foreground voxel, torn between two organs
    labels = p.argmax(0)
    labels[0, 0, 0] = 1
    out = entropy_score(p, labels)
    assert out["foreground_voxels"] == 1 and out["score"] == pytest.approx(np.log(2) / np.log(3), abs=1e-6)
    assert entropy_score(p, np.zeros_like(labels))["score"] == 1.0  # found nothing: knows nothing of this case


def test_an_annotator_is_refused_before_any_case_is_predicted(job, tmp_path):
    project = tmp_path / "project"
    project_with_cases(project, [75])
    calls = []
    with pytest.raises(Forbidden, match="only reviewers and admins push predictions"):
        preannotate(open_store(project, "alice"), open_model(job), progress=lambda *a: calls.append(a))
    assert calls == [] and open_store(project, "rev").list_versions("ph75") == []
