"""Export a trained MONAI model: PyTorch checkpoint, TorchScript or ONNX, plus a manifest.

    OUT/model.pt          state dict + network config (always written)
    OUT/model.ts          TorchScript (traced)          -- format "torchscript"
    OUT/model.onnx        ONNX (opset 17)               -- format "onnx"
    OUT/manifest.json     architecture, labels, channel names, spacing, intensity normalisation,
                          patch size, sha256 of every file, and the check of the export against
                          PyTorch on a real (preprocessed) image patch from the dataset

``infer.py`` reads the manifest and runs the model on a new image.  The exported graphs take a
fixed patch (the training patch; batch size free): sliding-window inference only ever feeds
patches, and fixed shapes export every architecture (SwinUNETR included) reliably.
"""
from __future__ import annotations

import datetime
import json
import warnings
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path, write_json_atomic
from DicomTeamAnnotateLib.core.hashing import sha256_file
from TrainBridgeLib.backends.monai.predict import load_monai_model
from TrainBridgeLib.backends.monai.preprocessing import group_channel_files, prepare_image
from TrainBridgeLib.jobs.runner import JOB_FILE

FORMATS = ("onnx", "torchscript", "checkpoint")
ONNX_OPSET = 17
TOLERANCE = 1e-3  # max |ONNX - PyTorch| logits, relative to the logits' range


def real_input(description: dict) -> tuple:
    """(a preprocessed image patch (1, C, K, J, I) from the dataset, where it comes from)."""
    dataset = Path(description["dataset"])
    for sub in ("imagesTs", "imagesTr"):
        cases = group_channel_files(dataset / sub) if (dataset / sub).is_dir() else {}
        if cases:
            case, paths = sorted(cases.items())[0]
            arr, _, _ = prepare_image(paths, description["spacing"], description["normalization"])
            patch = description["patch_size"]
            pad = [(0, 0)] + [(0, max(0, p - s)) for p, s in zip(patch, arr.shape[1:])]
            arr = np.pad(arr, pad, mode="constant", constant_values=float(arr.min()))
            start = [(s - p) // 2 for s, p in zip(arr.shape[1:], patch)]
            crop = arr[(slice(None),) + tuple(slice(a, a + p) for a, p in zip(start, patch))]
            return np.ascontiguousarray(crop[np.newaxis], dtype=np.float32), f"{sub}/{case} (centre patch)"
    raise FileNotFoundError(f"{dataset}: no image to check the export with")


def export_model(job_dir, fmt: str, out_dir, *, checkpoint: str = "best", check: bool = True) -> Path:
    """Write the model in ``fmt`` with its manifest into ``out_dir``; returns the manifest path."""
    import torch


    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    job_dir = Path(job_dir)
    rec = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8")) if (job_dir / JOB_FILE).exists() else {}
    if rec.get("backend") == "nnunet":
        raise ValueError(f"{job_dir}: an nnU-Net job; export it with nnU-Net's own "
                         "'nnUNetv2_export_model_to_zip' (ONNX/TorchScript export covers MONAI models)")
    model, description = load_monai_model(job_dir, checkpoint, "cpu")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    with atomic_path(out / "model.pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "config": description["model"]}, str(tmp))
    files["model.pt"] = "pytorch"
    x, source = real_input(description)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        reference = model(xt).numpy()
    checks = {}
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing is deprecated in favour of torch.export; still what Slicer loads
            traced = torch.jit.trace(model, xt, check_trace=False)
        with atomic_path(out / "model.ts") as tmp:
            traced.save(str(tmp))
        files["model.ts"] = "torchscript"
        if check:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = torch.jit.load(str(out / "model.ts"))(xt).numpy()
            checks["torchscript"] = _compare(got, reference, source)
    if fmt == "onnx":
        with atomic_path(out / "model.onnx") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter: no onnxscript dependency
            torch.onnx.export(model, (xt,), str(tmp), dynamo=False, opset_version=ONNX_OPSET, input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        files["model.onnx"] = "onnx"
        if check:
            import onnxruntime as ort

            session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
            got = session.run(None, {"image": x})[0]
            checks["onnx"] = _compare(got, reference, source)
    for name, result in checks.items():
        if not result["passed"]:
            raise ValueError(f"{name} export differs from PyTorch on {source}: max |diff| {result['max_abs_diff']:.3g} "
                               f"(tolerance {result['tolerance']:.3g})")
    manifest = {
        "format_version": 1, "format": fmt, "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "architecture": description["model"], "labels": {"background": 0, **description["labels"]},
        "channel_names": description["channel_names"], "spacing": description["spacing"],
        "spacing_order": "i, j, k (mm)", "normalization": description["normalization"],
        "patch_size": description["patch_size"], "patch_order": "k, j, i (array axes)",
        "input": {"name": "image", "shape": ["batch", len(description["channel_names"])] + description["patch_size"]},
        "output": {"name": "logits", "argmax_axis": 1},
        "files": {name: _file_entry(out / name, kind) for name, kind in files.items()},
        "checks": checks, "source_job": str(job_dir.resolve()), "checkpoint": checkpoint, "versions": _versions(),
        "inference": f"python -m TrainBridgeLib.models.infer --model {out} --image IMAGE --out SEGMENTATION.nii.gz",
    }
    return write_json_atomic(out / "manifest.json", manifest)


def _file_entry(path: Path, kind: str) -> dict:
    digest, size = sha256_file(path)
    return {"kind": kind, "sha256": digest, "bytes": size}


def _compare(got: np.ndarray, reference: np.ndarray, source: str) -> dict:
    span = float(reference.max() - reference.min()) or 1.0
    diff = float(np.abs(got - reference).max())
    agree = float((got.argmax(1) == reference.argmax(1)).mean())
    return {"input": source, "max_abs_diff": diff, "tolerance": TOLERANCE * span, "argmax_agreement": agree,
            "passed": bool(diff <= TOLERANCE * span)}


def _versions() -> dict:
    out = {}
    for name in ("torch", "monai", "onnx", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out
