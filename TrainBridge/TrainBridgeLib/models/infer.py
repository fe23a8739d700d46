"""Run an exported model (``manifest.json`` + ONNX / TorchScript / PyTorch file) on a new image.

    python -m TrainBridgeLib.models.infer --model MODEL_DIR --image CT.nii.gz [MR_T2.nii.gz ...] --out seg.nii.gz
                                  [--runtime onnx|torchscript|pytorch] [--device cpu]

The image (a volume file or a DICOM series folder per channel) is resampled to the manifest's
spacing and normalised as in training; the label map comes back on the image's own grid.  An
output ending in ``.seg.nrrd`` is written as a Slicer segmentation with the label names.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.hashing import sha256_file
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, default_color
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from TrainBridgeLib.backends.monai.models import build_network
from TrainBridgeLib.backends.monai.predict import predict_case, write_labelmap_nifti
from TrainBridgeLib.export.cases import load_channels

RUNTIMES = ("onnx", "torchscript", "pytorch")
_FILE_OF = {"onnx": "model.onnx", "torchscript": "model.ts", "pytorch": "model.pt"}


def read_manifest(model) -> tuple:
    """(manifest dict, model folder) from a folder or a manifest.json path."""
    path = Path(model)
    path = path / "manifest.json" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest.json")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for key in ("architecture", "labels", "spacing", "normalization", "patch_size", "files"):
        if key not in manifest:
            raise ValueError(f"{path}: field '{key}' missing")
    return manifest, path.parent


def load_forward(manifest: dict, folder: Path, runtime: str | None = None, device: str = "cpu", verify: bool = True):
    """(forward(tensor) -> logits tensor, runtime used); checks the file's sha256 first."""
    import torch


    if runtime is None:  # the most portable file present
        runtime = next(r for r in RUNTIMES if _FILE_OF[r] in manifest["files"])
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    name = _FILE_OF[runtime]
    if name not in manifest["files"]:
        raise ValueError(f"{folder}: the manifest lists no {name} (files: {', '.join(manifest['files'])})")
    path = folder / name
    if verify and sha256_file(path)[0] != manifest["files"][name]["sha256"]:
        raise ValueError(f"{path}: sha256 does not match the manifest (file changed or corrupt)")
    if runtime == "onnx":
        import onnxruntime as ort

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), providers=[p for p in providers if p in ort.get_available_providers()])
        return (lambda x: torch.from_numpy(session.run(None, {"image": x.detach().cpu().numpy()})[0])), runtime
    if runtime == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated upstream, still supported
            module = torch.jit.load(str(path), map_location=device).eval()
        return module, runtime
    saved = torch.load(str(path), map_location=device, weights_only=False)
    net = build_network(saved["config"])
    net.load_state_dict(saved["state_dict"])
    return net.to(device).eval(), runtime


def run_inference(model, images: list, out_path=None, *, runtime: str | None = None, device: str = "cpu"):
    """Segment ``images`` (one path or Volume per channel); returns (label array, geometry[, written path])."""
    manifest, folder = read_manifest(model)
    n = manifest["architecture"]["in_channels"]
    if len(images) != n:
        raise ValueError(f"the model needs {n} channel(s) ({', '.join(manifest.get('channel_names', []))}), "
                         f"got {len(images)} image(s)")
    forward, used = load_forward(manifest, folder, runtime, device)
    channels = load_channels(list(images), "input")
    array = np.stack([c.array for c in channels]).astype(np.float32)
    description = {"spacing": manifest["spacing"], "normalization": manifest["normalization"],
                   "patch_size": manifest["patch_size"]}
    labels, grid = predict_case(forward, description, array, geometry=channels[0].geometry,
                                device="cpu" if used == "onnx" else device)
    if out_path is None:
        return labels, grid
    out_path = Path(out_path)
    if out_path.name.lower().endswith(".seg.nrrd"):

        segments = [Segment(name=name, label_value=v, color=default_color(v - 1))
                    for name, v in manifest["labels"].items() if int(v) != 0 and (labels == int(v)).any()]
        write_seg_nrrd(Segmentation.from_labelmap(labels, grid, segments), out_path)
    else:
        write_labelmap_nifti(labels, grid, out_path)
    return labels, grid, out_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m TrainBridgeLib.models.infer", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="folder with manifest.json (from dicomteam export-model)")
    p.add_argument("--image", required=True, nargs="+", help="one volume file or DICOM folder per channel")
    p.add_argument("--out", required=True, help="output .nii.gz / .nrrd label map, or .seg.nrrd")
    p.add_argument("--runtime", choices=RUNTIMES)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    try:
        labels, _, path = run_inference(args.model, args.image, args.out, runtime=args.runtime, device=args.device)
    except (ValueError, FileNotFoundError) as exc:
        print(f"infer: error: {exc}", file=sys.stderr)
        return 2
    found = ", ".join(str(int(v)) for v in np.unique(labels) if v) or "none"
    print(f"wrote {path} (label values present: {found})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
