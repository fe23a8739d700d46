"""Predict a folder of ``{case}_{XXXX}.nii.gz`` images with a trained model; write ``{case}.nii.gz``.

MONAI jobs: sliding-window inference on the training spacing, the label map resampled back onto
each image's own grid (nearest neighbour), so predictions align with the ground truth by
physical position.  nnU-Net jobs: nnU-Net's own predictor (``nnUNetPredictor``).

    python -m TrainBridgeLib.backends.monai.predict --job JOB_DIR --input imagesTs --out predictions
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.geometry import to_sitk
from TrainBridgeLib.backends.monai.models import build_network
from TrainBridgeLib.backends.monai.preprocessing import group_channel_files, prepare_image, resample
from TrainBridgeLib.jobs.runner import JOB_FILE

CHECKPOINTS = ("best", "final", "latest")


def load_monai_model(job_dir, checkpoint: str = "best", device: str = "cpu"):
    """(torch model in eval mode, training description) from a MONAI job folder."""
    import torch


    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
    path = Path(job_dir) / f"checkpoint_{checkpoint}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint (has the training run?)")
    ck = torch.load(str(path), map_location=device, weights_only=False)
    description = ck["config"]
    model = build_network(description["model"])
    model.load_state_dict(ck["model"])
    return model.to(device).eval(), description


def sliding_window_labels(forward, image: np.ndarray, patch, *, device: str = "cpu", overlap: float = 0.25) -> np.ndarray:
    """Label map (K, J, I) of a normalised (C, K, J, I) image; ``forward`` maps a tensor batch to logits."""
    import torch
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(image[np.newaxis], dtype=np.float32)).to(device)
        logits = sliding_window_inference(x, list(patch), 2, forward, overlap=overlap, mode="gaussian")
    return logits.argmax(1)[0].cpu().numpy().astype(np.uint8)


def predict_case(forward, description: dict, image, *, geometry=None, device: str = "cpu"):
    """(label map on the image's own grid, that grid) for channel paths or a (C, K, J, I) array + geometry."""
    arr, work, original = prepare_image(image, description["spacing"], description["normalization"], geometry)
    labels = sliding_window_labels(forward, arr, description["patch_size"], device=device)
    return resample(labels, work, original, label=True), original


def write_labelmap_nifti(labels: np.ndarray, geometry, path) -> Path:
    """Write a label map with exactly ``geometry`` (atomic)."""
    import SimpleITK as sitk

    path = Path(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(to_sitk(labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16), geometry),
                        str(tmp), True)
    return path


def predict_monai(job_dir, input_dir, out_dir, *, checkpoint: str = "best", device: str = "cpu",
                  progress=None) -> list[Path]:
    """Predict every case of ``input_dir`` with a MONAI job's model into ``out_dir/{case}.nii.gz``."""
    model, description = load_monai_model(job_dir, checkpoint, device)
    cases = group_channel_files(input_dir)
    if not cases:
        raise ValueError(f"{input_dir}: no {{case}}_{{XXXX}}.nii.gz images")
    n_channels = description["model"]["in_channels"]
    out = []
    for n, (case, paths) in enumerate(sorted(cases.items()), start=1):
        if len(paths) != n_channels:
            raise ValueError(f"case '{case}': {len(paths)} channel file(s), the model needs {n_channels}")
        labels, grid = predict_case(model, description, paths, device=device)
        out.append(write_labelmap_nifti(labels, grid, Path(out_dir) / f"{case}.nii.gz"))
        if progress:
            progress(n, len(cases), case)
    return out


def predict_nnunet(model_dir, input_dir, out_dir, *, fold: int = 0, device: str = "cpu",
                   checkpoint: str = "checkpoint_final.pth") -> list[Path]:
    """Predict with a trained nnU-Net model folder (``.../Trainer__Plans__config``) in this process."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                device=torch.device(device), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_dir), use_folds=(fold,), checkpoint_name=checkpoint)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    predictor.predict_from_files(str(input_dir), str(out_dir), save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=1, num_processes_segmentation_export=1)
    return sorted(Path(out_dir).glob("*.nii.gz"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m TrainBridgeLib.backends.monai.predict", description=__doc__.split("\n")[0])
    p.add_argument("--job", required=True, help="a MONAI job folder")
    p.add_argument("--input", required=True, help="folder of {case}_{XXXX}.nii.gz images")
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint", default="best", choices=CHECKPOINTS)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    try:
        rec = json.loads((Path(args.job) / JOB_FILE).read_text(encoding="utf-8")) if (Path(args.job) / JOB_FILE).exists() else {}
        if rec.get("backend") == "nnunet":
            written = predict_nnunet(rec["outputs"]["model_dir"].rsplit("/fold_", 1)[0], args.input, args.out,
                                     fold=int(rec["params"]["fold"]), device=args.device)
        else:
            written = predict_monai(args.job, args.input, args.out, checkpoint=args.checkpoint, device=args.device,
                                    progress=lambda n, t, c: print(f"predicted {c} ({n}/{t})", flush=True))
    except (ValueError, FileNotFoundError) as exc:
        print(f"predict: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written)} prediction(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
