"""TrainBridge MONAI backend end to end on small phantoms, on CPU, through the ``dicomteam`` CLI:
export, a 2-epoch training job (loss goes down), test-set prediction and evaluation, then model
export (ONNX equals PyTorch on a real input) and ``infer.py`` on a new image."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom
from DicomTeamAnnotateLib.io.volumes import write_volume

SHAPE = (16, 24, 24)
pytestmark = pytest.mark.slow  # ~1-2 minutes on 2 cores: three Python processes import torch + MONAI


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("monai")
    images, labels, patients = [], [], []
    for p in range(5):
        ph = make_phantom(seed=p, shape=SHAPE)
        images.append(str(write_volume(ph.volume, root / "src" / f"img{p}.nii.gz")))
        labels.append(str(write_volume(ph.label_volume(), root / "src" / f"lab{p}.nii.gz")))
        patients.append(f"PAT{p}")
    (root / "labels.json").write_text(json.dumps(LABEL_VALUES), encoding="utf-8")
    assert dicomteam(["export-nnunet", "--images", *images, "--labels", *labels, "--patients", *patients,
                      "--label-names", str(root / "labels.json"), "--out", str(root / "raw"), "--name", "Tiny",
                      "--test-fraction", "0.2", "--folds", "2", "--monai-json",
                      "--case-attributes", *[f"site={'AB'[p % 2]},scanner=S{p}" for p in range(5)],
                      "--stratify", "site"]) == 0
    dataset = root / "raw" / "Dataset500_Tiny"
    records = json.loads((dataset / "cases.json").read_text(encoding="utf-8"))
    assert [r["attributes"] for r in records.values()][:2] == [{"site": "A", "scanner": "S0"},
                                                               {"site": "B", "scanner": "S1"}]
    job = root / "job"
    assert dicomteam(["train", "--dataset", str(dataset), "--backend", "monai", "--arch", "segresnet",
                      "--epochs", "2", "--device", "cpu", "--out", str(job), "--iterations", "6", "--threads", "2",
                      "--background"]) == 0  # returns at once; the job runs detached
    code = dicomteam(["jobs", str(job), "--wait"])
    assert code == 0, (job / "log.txt").read_text(encoding="utf-8")[-4000:]
    return root, dataset, job


def test_training_job_loss_goes_down_and_progress_is_written(trained):
    _, _, job = trained
    records = [json.loads(line) for line in (job / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and all(r["num_epochs"] == 2 for r in records)
    assert records[1]["loss"] < records[0]["loss"]
    for r in records:
        assert r["loss"] == pytest.approx(r["loss_dice"] + r["loss_ce"], rel=1e-5)
        assert 0.0 <= r["val_dice"] <= 1.0 and set(r["val_dice_per_label"]) == set(LABEL_VALUES)
    assert (job / "curves.png").read_bytes()[:4] == b"\x89PNG"
    status = json.loads((job / "job.json").read_text(encoding="utf-8"))
    assert status["state"] == "finished" and [s["name"] for s in status["steps"]] == ["train", "predict", "evaluate"]


def test_test_set_is_predicted_on_the_source_grid_and_evaluated(trained):
    _, dataset, job = trained
    cases = json.loads((dataset / "cases.json").read_text(encoding="utf-8"))
    test = sorted(c for c, r in cases.items() if r["split"] == "test")
    assert sorted(p.name for p in (job / "predictions").iterdir()) == [f"{c}.nii.gz" for c in test]
    for c in test:
        pred = sitk.ReadImage(str(job / "predictions" / f"{c}.nii.gz"))
        gt = sitk.ReadImage(str(dataset / "labelsTs" / f"{c}.nii.gz"))
        assert pred.GetSize() == gt.GetSize() and np.allclose(pred.GetOrigin(), gt.GetOrigin())
        assert np.allclose(pred.GetSpacing(), gt.GetSpacing()) and np.allclose(pred.GetDirection(), gt.GetDirection())
    metrics = json.loads((job / "evaluation" / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(metrics["cases"]) == test and set(metrics["labels"]) == set(LABEL_VALUES)
    assert (job / "evaluation" / "metrics.csv").exists() and (job / "evaluation" / "summary.png").exists()
    assert dicomteam(["jobs", str(job)]) == 0


def test_monai_datalist_has_the_same_splits(trained):
    from monai.data import load_decathlon_datalist

    _, dataset, _ = trained
    items = load_decathlon_datalist(str(dataset / "dataset_monai.json"), data_list_key="training", base_dir=str(dataset))
    splits = json.loads((dataset / "splits_final.json").read_text(encoding="utf-8"))
    for item in items:
        assert sitk.ReadImage(item["image"]) and sitk.ReadImage(item["label"])
        assert item["case_id"] in splits[item["fold"]]["val"]
    test = load_decathlon_datalist(str(dataset / "dataset_monai.json"), data_list_key="test", base_dir=str(dataset))
    assert {t["case_id"] for t in test}.isdisjoint({i["case_id"] for i in items})


def test_onnx_and_torchscript_equal_pytorch_and_infer_runs_on_a_new_image(trained, tmp_path):
    from TrainBridgeLib.models.infer import run_inference

    root, _, job = trained
    assert dicomteam(["export-model", str(job), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    assert dicomteam(["export-model", str(job), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    manifest = json.loads((tmp_path / "onnx" / "manifest.json").read_text(encoding="utf-8"))
    check = manifest["checks"]["onnx"]
    assert check["passed"] and check["max_abs_diff"] <= check["tolerance"] and check["argmax_agreement"] == 1.0
    assert "imagesTs" in check["input"] or "imagesTr" in check["input"]
    assert manifest["architecture"]["arch"] == "segresnet" and manifest["labels"]["liver"] == 1
    assert set(manifest["files"]) == {"model.pt", "model.onnx"}
    assert json.loads((tmp_path / "ts" / "manifest.json").read_text(encoding="utf-8"))["checks"]["torchscript"]["passed"]
    # a new image (another patient, another grid) through the manifest, with each runtime: same labels
    new = make_phantom(seed=77, shape=(20, 28, 28), spacing=(1.4, 1.4, 2.8))
    img = write_volume(new.volume, tmp_path / "new.nii.gz")
    via_onnx, grid, _ = run_inference(tmp_path / "onnx", [img], tmp_path / "seg_onnx.nii.gz", runtime="onnx")
    via_torch, _ = run_inference(tmp_path / "onnx", [img], runtime="pytorch")
    via_ts, _ = run_inference(tmp_path / "ts", [img], runtime="torchscript")
    assert grid.same_grid(new.volume.geometry, tol_mm=1e-3) and via_onnx.shape == new.labels.shape
    assert np.array_equal(via_onnx, via_torch) and np.array_equal(via_ts, via_torch)
    out = sitk.ReadImage(str(tmp_path / "seg_onnx.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(out), via_onnx)
    # a changed model file is refused
    with open(tmp_path / "onnx" / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ValueError, match="sha256 does not match"):
        run_inference(tmp_path / "onnx", [img], runtime="onnx")


def test_review_loads_prediction_beside_truth_one_label_at_a_time_and_worst_slices(trained):
    from TrainBridgeLib.evaluation.review import label_view, load_comparison, read_metrics, worst_cases, worst_slices

    _, dataset, job = trained
    metrics = read_metrics(job)
    case = worst_cases(job, 1)[0]["case"]
    comp = load_comparison(dataset, case, job / "predictions")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTs" / f"{case}.nii.gz")))
    assert comp.images[0].geometry.same_grid(comp.ground_truth.geometry)
    assert np.array_equal(comp.ground_truth.mask("liver"), truth == 1)
    view = label_view(comp, "liver")
    gt, pred = comp.ground_truth.mask("liver"), view["prediction"].mask("liver (model)")
    assert np.array_equal(view["ground_truth"].mask("liver (truth)"), gt)
    assert np.array_equal(view["overlay"].mask("agree"), gt & pred)
    assert np.array_equal(view["overlay"].mask("missed"), gt & ~pred)
    rows = worst_slices(metrics, case)
    assert rows and all(r["case"] == case for r in rows) and len(rows[0]["center_ras"]) == 3
    assert [r["dice"] for r in rows] == sorted(r["dice"] for r in rows)


@pytest.mark.parametrize("arch", ["segresnet", "unet", "swinunetr", "vnet"])
def test_every_architecture_takes_a_training_step_on_its_default_patch(arch):
    import torch
    from monai.losses import DiceCELoss

    from TrainBridgeLib.backends.monai.models import DIVISOR, build_network, default_patch, model_config

    patch = default_patch(arch, (16, 24, 24))
    assert all(p % DIVISOR[arch] == 0 for p in patch)
    torch.manual_seed(0)
    model = build_network(model_config(arch, 2, 4))
    x = torch.randn(2, 2, *patch)
    y = torch.randint(0, 4, (2, 1, *patch)).float()
    loss = DiceCELoss(to_onehot_y=True, softmax=True)(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    import shutil

    from TrainBridgeLib.backends.monai.trainer import main as trainer

    _, dataset, job = trained
    copy = tmp_path / "job"
    shutil.copytree(job, copy)
    before = [json.loads(line) for line in (copy / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    assert trainer(["--dataset", str(dataset), "--out", str(copy), "--epochs", "3", "--iterations", "2",
                    "--resume", "--threads", "2"]) == 0
    after = [json.loads(line) for line in (copy / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    assert after[:2] == before and [r["epoch"] for r in after] == [0, 1, 2]
