"""Models users take elsewhere (issue 13): a MONAI job exported as a MONAI Bundle and run by MONAI's own bundle
workflow (it predicts what our predictor predicts); an nnU-Net job's model copied into nnU-Net's results layout
and run by nnU-Net's own `nnUNetv2_predict_from_modelfolder` (what SlicerNNUnet runs), equal to the loop's
in-process nnU-Net prediction, which also pre-annotates a project through the store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from loop_support import ONTOLOGY, SHAPE, nnunet_job_with_model, train_small_monai_job

from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.core.geometry import resample_like
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.volumes import read_volume, write_volume
from DicomTeamAnnotateLib.store import admin, open_store
from TrainBridgeLib.loop.backends import open_model
from TrainBridgeLib.loop.preannotate import preannotate

pytest.importorskip("torch")
pytest.importorskip("monai")
pytestmark = pytest.mark.slow  # a short MONAI training, nnU-Net planning and two nnU-Net predictions (~2 minutes)


def test_monai_bundle_runs_in_monai_and_predicts_what_we_predict(tmp_path):
    import torch
    from monai.bundle import ConfigParser, verify_net_in_out

    job = train_small_monai_job(tmp_path / "monai")
    bundle = tmp_path / "bundle"
    assert dicomteam(["export-model", str(job), "--format", "bundle", "--out", str(bundle)]) == 0
    for rel in ("configs/metadata.json", "configs/inference.json", "models/model.pt", "docs/README.md"):
        assert (bundle / rel).is_file(), rel
    meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"]["1"] == "liver"
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
                      config_file=str(bundle / "configs" / "inference.json"), device="cpu", n=1)
    images = tmp_path / "images"
    volume = make_phantom(seed=40, shape=SHAPE).volume
    write_volume(volume, images / "ph40.nii.gz")
    out = tmp_path / "bundle-out"
    # as MONAI Label's bundle task runs a bundle: MONAI's ConfigParser instantiates its parts
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle), "output_dir": str(out)})
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    network.eval()
    data = parser.get_parsed_content("preprocessing")({"image": str(images / "ph40.nii.gz")})
    with torch.no_grad():
        data["pred"] = parser.get_parsed_content("inferer")(data["image"][None], network)[0]
        traced = torch.jit.load(str(bundle / "models" / "model.ts"))  # MONAI Deploy's file: the same network
        patch = torch.zeros((1, 1, *meta["network_data_format"]["inputs"]["image"]["spatial_shape"]))
        assert torch.allclose(traced(patch), network(patch), atol=1e-4)
    parser.get_parsed_content("postprocessing")(data)
    written = read_volume(next(out.glob("ph40*seg*.nii.gz")))
    theirs = resample_like(written.array.astype(np.uint8), written.geometry, volume.geometry, label=True)
    ours = open_model(job).predict(volume).labels
    assert (ours > 0).sum() > 100 and (theirs == ours).mean() > 0.995


def test_nnunet_model_in_results_layout_runs_in_nnunet_and_preannotates(tmp_path):
    pytest.importorskip("nnunetv2")
    job = nnunet_job_with_model(tmp_path / "nn")
    results = tmp_path / "results"
    assert dicomteam(["export-model", str(job), "--format", "nnunet", "--out", str(results)]) == 0
    model_dirs = list(results.glob("Dataset*/nnUNetTrainer_1epoch__nnUNetPlans__3d_fullres"))
    assert len(model_dirs) == 1 and (model_dirs[0] / "fold_0" / "checkpoint_final.pth").is_file()
    assert {p.name for p in model_dirs[0].iterdir()} >= {"dataset.json", "plans.json", "fold_0"}
    images, out = tmp_path / "in", tmp_path / "out"
    volume = make_phantom(seed=41, shape=SHAPE).volume
    write_volume(volume, images / "ph41_0000.nii.gz")
    exe = Path(sys.executable).parent / "nnUNetv2_predict_from_modelfolder"  # nnU-Net's console script
    if not exe.exists():
        pytest.fail(f"{exe}: nnU-Net's console script is missing beside this Python")
    run = subprocess.run([str(exe), "-i", str(images), "-o", str(out), "-m", str(model_dirs[0]), "-f", "0",
                                "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"],
                         capture_output=True, encoding="utf-8", errors="replace", timeout=900,
                         env={**os.environ, "nnUNet_results": str(results), "nnUNet_compile": "false"})
    assert run.returncode == 0, run.stderr[-3000:]
    theirs = read_volume(out / "ph41.nii.gz")
    assert theirs.geometry.same_grid(volume.geometry)
    # the loop's in-process nnU-Net prediction is nnU-Net's own
    model = open_model(job)
    assert model.backend == "nnunet" and model.identity()["job_id"].endswith("/job")
    assert np.array_equal(model.predict(volume).labels, theirs.array)
    # and it pre-annotates a project through the store, labels mapped to the ontology
    project = tmp_path / "project"
    admin.init_project(project, "Nn", ONTOLOGY)
    admin.add_member(project, "rev", "reviewer")
    admin.add_case(project, "ph41", volume, "P41")
    summary = preannotate(open_store(project, "rev"), model)
    assert [p["case_id"] for p in summary["pushed"]] == ["ph41"]
    version = open_store(project, "rev").get_version(summary["pushed"][0]["version"])
    assert version["meta"]["model"]["backend"] == "nnunet" and version["meta"]["labels"]["1"] == "liver"
