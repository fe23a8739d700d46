"""What a folder holds as a model for pre-annotation (TrainBridgeLib.loop.model_folder), and so which packages
'Pre-annotate' asks for: read from the folder's small files, before anything is installed or loaded."""
from __future__ import annotations

import json

import pytest

from TrainBridgeLib.loop.model_folder import describe_model_folder
from TrainBridgeLib.requirements import (
    MONAI_PREANNOTATION,
    NNUNET_PREANNOTATION,
    ONNX_PREANNOTATION,
    preannotate_feature,
)


def _job(folder, backend="monai", state="finished"):
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"backend": backend, "state": state}), encoding="utf-8")
    return folder


def test_each_kind_of_model_folder_and_its_packages(tmp_path):
    monai = _job(tmp_path / "monai")
    nnunet = _job(tmp_path / "nnunet", "nnunet")
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "loop.json").write_text(json.dumps({"rounds": [{"job": str(monai)}, {"job": str(nnunet)}]}),
                                    encoding="utf-8")
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text("{}", encoding="utf-8")
    (export / "model.onnx").write_bytes(b"onnx")
    results = tmp_path / "results"
    results.mkdir()
    for name in ("plans.json", "dataset.json"):
        (results / name).write_text("{}", encoding="utf-8")
    cases = [(monai, "job", "monai", MONAI_PREANNOTATION), (nnunet, "job", "nnunet", NNUNET_PREANNOTATION),
             (loop, "loop", "nnunet", NNUNET_PREANNOTATION),  # the loop's latest finished job is nnU-Net's
             (export, "export", "onnx", ONNX_PREANNOTATION), (results, "nnunet", "nnunet", NNUNET_PREANNOTATION)]
    for folder, kind, backend, feature in cases:
        info = describe_model_folder(folder)
        assert (info["kind"], info["backend"], info["problem"]) == (kind, backend, None), (folder, info)
        assert preannotate_feature(folder) is feature, folder
    assert describe_model_folder(loop)["folder"] == str(nnunet)


@pytest.mark.parametrize("make, says", [
    (lambda p: None, "no such folder"),
    (lambda p: p.mkdir(), "not a model (expected job.json"),
    (lambda p: (p.mkdir(), (p / "job.json").write_text("{not json", encoding="utf-8")), "job.json: not readable"),
    (lambda p: _job(p, state="running"), "the training job is running and has no checkpoint yet"),
    (lambda p: (p.mkdir(), (p / "loop.json").write_text('{"rounds": []}', encoding="utf-8")),
     "no training of this loop has finished yet"),
])
def test_a_folder_that_cannot_preannotate_says_why_naming_it(tmp_path, make, says):
    folder = tmp_path / "model"
    make(folder)
    info = describe_model_folder(folder)
    assert info["problem"] and says in info["problem"] and str(folder) in info["problem"], info
    assert preannotate_feature(folder) is MONAI_PREANNOTATION  # no crash on the main thread; the panel is disabled
