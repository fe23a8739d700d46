"""A MONAI job's model as a MONAI Bundle: what MONAI Label, MONAI Deploy and `python -m monai.bundle run` load.

    OUT/configs/metadata.json     MONAI's bundle metadata (versions, task, network_data_format, labels)
    OUT/configs/inference.json    network_def, preprocessing, inferer, postprocessing, evaluator ("run")
    OUT/configs/trainbridge.json  the training description (spacing, normalisation, labels, terminology)
    OUT/models/model.pt           the network's state dict (MONAI Label: network_def + this)
    OUT/models/model.ts           the network traced as TorchScript (MONAI Deploy's bundle operator loads it)
    OUT/docs/README.md            what it segments and how to run it

The bundle's preprocessing is ours written in MONAI transforms, so MONAI's own workflow predicts
what our predictor predicts: the NIfTI image (read by nibabel, a core dependency of MONAI's
readers, no ITK needed) is transposed from its stored (i, j, k) order into the (C, K, J, I) order the
network learnt, resampled to the training spacing (``Spacingd``), clipped and z-scored with the
training statistics (``ct``) or per image (``zscore``); sliding-window inference on the training
patch; softmax, argmax, the preprocessing inverted (back onto the image's grid), written as NIfTI.

    python -m monai.bundle run --config_file OUT/configs/inference.json --bundle_root OUT \\
        --dataset_dir IMAGES_DIR --output_dir OUT_DIR

(``run``'s evaluator is MONAI's ignite-based ``SupervisedEvaluator``, as in MONAI's model zoo: it needs
pytorch-ignite; MONAI Label and MONAI Deploy use the network, pre/postprocessing and inferer directly.)
"""
from __future__ import annotations

import datetime
import warnings
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import atomic_path, write_json_atomic
from TrainBridgeLib.backends.monai.predict import load_monai_model

_NETS = {"segresnet": "SegResNet", "unet": "UNet", "swinunetr": "SwinUNETR", "vnet": "VNet"}


def _intensity_transforms(normalization: list) -> list:
    if len(normalization) != 1:
        raise ValueError(f"a bundle is exported for single-channel models; this one has {len(normalization)} channels")
    spec = normalization[0]
    if spec["scheme"] == "ct":
        lo, hi = spec["clip"]
        return [{"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": lo, "a_max": hi, "b_min": lo,
                 "b_max": hi, "clip": True},
                {"_target_": "NormalizeIntensityd", "keys": "image", "subtrahend": spec["mean"],
                 "divisor": spec["std"]}]
    return [{"_target_": "NormalizeIntensityd", "keys": "image"}]


def inference_config(description: dict) -> dict:
    """The bundle's inference.json for a training description (see the module docstring)."""
    model = description["model"]
    network = {"_target_": _NETS[model["arch"]], "spatial_dims": 3, "in_channels": model["in_channels"],
               "out_channels": model["out_channels"], **model["kwargs"]}
    preprocessing = [
        {"_target_": "LoadImaged", "keys": "image", "reader": "NibabelReader", "image_only": False},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        # a NIfTI's array is stored (i, j, k): the spacing in that order
        {"_target_": "Spacingd", "keys": "image", "pixdim": list(description["spacing"]), "mode": "bilinear"},
        *_intensity_transforms(description["normalization"]),
        {"_target_": "Transposed", "keys": "image", "indices": [0, 3, 2, 1]},  # -> (C, K, J, I) as trained
        {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
    ]
    postprocessing = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
         "nearest_interp": True, "to_tensor": True},
        {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
         "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": False},
    ]
    return {
        "imports": ["$import glob", "$import numpy", "$import torch"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "$@bundle_root + '/data'",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/*.nii.gz') + glob.glob(@dataset_dir + '/*.nii')))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": network,
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]",
                    "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
                       "num_workers": 0},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": list(description["patch_size"]),
                    "sw_batch_size": 2, "overlap": 0.25, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": postprocessing},
        "handlers": [{"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                      "load_dict": {"model": "@network"}, "map_location": "@device"}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers", "amp": False},
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
    }


def metadata(description: dict, job_dir: Path) -> dict:
    """The bundle's metadata.json (MONAI's schema fields)."""
    import monai
    import nibabel
    import numpy
    import torch

    labels = {"0": "background", **{str(v): n for n, v in sorted(description["labels"].items(), key=lambda kv: kv[1])}}
    ct = description["normalization"][0]["scheme"] == "ct"
    patch = list(description["patch_size"])
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                  "meta_schema_20220324.json",
        "version": "0.1.0", "changelog": {"0.1.0": f"exported by DicomTeamAnnotate TrainBridge from {job_dir.name}"},
        "monai_version": monai.__version__, "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__, "required_packages_version": {"nibabel": nibabel.__version__},
        "name": f"TrainBridge {description['model']['arch']} ({job_dir.parent.name}/{job_dir.name})",
        "task": "3D segmentation", "description": f"{len(labels) - 1} structures: " + ", ".join(list(labels.values())[1:]),
        "authors": "DicomTeamAnnotate TrainBridge", "copyright": "the project that trained it",
        "data_source": str(description.get("dataset", "")), "data_type": "nifti",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield" if ct else "magnitude",
                                 "modality": "CT" if ct else "MR", "num_channels": 1, "spatial_shape": patch,
                                 "dtype": "float32", "value_range": [], "is_patch_data": True,
                                 "channel_def": {"0": "image"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": len(labels),
                                 "spatial_shape": patch, "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": True, "channel_def": labels}},
        },
    }


def export_bundle(job_dir, out_dir, *, checkpoint: str = "best") -> Path:
    """Write the job's model as a MONAI Bundle into ``out_dir``; returns the bundle folder."""
    import torch

    job_dir, out = Path(job_dir).resolve(), Path(out_dir)
    model, description = load_monai_model(job_dir, checkpoint, "cpu")
    (out / "models").mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "models" / "model.pt") as tmp:
        torch.save(model.state_dict(), str(tmp))
    example = torch.zeros((1, description["model"]["in_channels"], *description["patch_size"]))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing is deprecated upstream; still what MONAI Deploy loads
        traced = torch.jit.trace(model, example, check_trace=False)
    with atomic_path(out / "models" / "model.ts") as tmp:
        traced.save(str(tmp))
    write_json_atomic(out / "configs" / "inference.json", inference_config(description))
    write_json_atomic(out / "configs" / "metadata.json", metadata(description, job_dir))
    write_json_atomic(out / "configs" / "trainbridge.json", {**description, "source_job": str(job_dir),
                                                             "checkpoint": checkpoint})
    labels = ", ".join(n for n, _ in sorted(description["labels"].items(), key=lambda kv: kv[1]))
    readme = (f"# TrainBridge model ({description['model']['arch']})\n\nSegments: {labels}.\n"
              f"Trained by DicomTeamAnnotate TrainBridge ({job_dir}, checkpoint {checkpoint}), exported "
              f"{datetime.date.today().isoformat()}.\n\nRun on a folder of NIfTI images:\n\n"
              "    python -m monai.bundle run --config_file configs/inference.json --bundle_root . "
              "--dataset_dir IMAGES --output_dir OUT\n")
    with atomic_path(out / "docs" / "README.md") as tmp:
        Path(tmp).write_text(readme, encoding="utf-8")
    return out
