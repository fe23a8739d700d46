"""The model kinds of ``loop.models``: MONAI jobs and exported models, nnU-Net jobs and model folders;
``open_model`` tells them apart by the files a folder holds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from TrainBridgeLib.backends.monai.predict import load_monai_model
from TrainBridgeLib.backends.monai.preprocessing import normalize, resample, target_geometry
from TrainBridgeLib.jobs.runner import JOB_FILE
from TrainBridgeLib.loop.model_folder import describe_model_folder
from TrainBridgeLib.loop.models import LoopModel, dataset_direction, dataset_terminology, read_json
from TrainBridgeLib.models.infer import load_forward, read_manifest


class MonaiModel(LoopModel):
    """A MONAI network (a job's checkpoint or an exported file) with the preprocessing it was trained with."""

    backend = "monai"

    def __init__(self, forward, description: dict, device: str = "cpu", **kwargs):
        self.forward, self.description, self.device = forward, description, device
        super().__init__(labels=description["labels"], spacing=description["spacing"],
                         in_channels=description["model"]["in_channels"], **kwargs)

    def _predict_array(self, array: np.ndarray, geometry):
        import torch
        from monai.inferers import sliding_window_inference

        work = target_geometry(geometry, self.description["spacing"])
        image = normalize(resample(array[np.newaxis], geometry, work, label=False), self.description["normalization"])
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(image[np.newaxis], dtype=np.float32)).to(self.device)
            logits = sliding_window_inference(x, list(self.description["patch_size"]), 2, self.forward, overlap=0.25,
                                              mode="gaussian")
            probabilities = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
        labels = probabilities.argmax(0).astype(np.uint16)
        if not work.same_grid(geometry):  # back onto the image's own grid (probabilities too: the score's grid)
            labels = resample(labels, work, geometry, label=True)
            probabilities = resample(probabilities.astype(np.float32), work, geometry, label=False)
        return labels, probabilities


def job_id_of(job_dir: Path) -> str:
    """A job's id as predictions name it: its folder with the parent ('round-2/job', 'train/job')."""
    return f"{job_dir.parent.name}/{job_dir.name}"


def monai_job_model(job_dir: Path, record: dict, checkpoint: str = "best", device: str = "cpu") -> MonaiModel:
    """A MONAI training job's checkpoint."""
    model, description = load_monai_model(job_dir, checkpoint, device)
    dataset = description.get("dataset")
    job_id = job_id_of(job_dir)
    return MonaiModel(model, description, device, name=f"{job_id} (MONAI {description['model']['arch']})",
                      source=job_dir, weights=job_dir / f"checkpoint_{checkpoint}.pt", job_id=job_id,
                      terminology=description.get("terminology") or dataset_terminology(dataset),
                      direction=description.get("direction") or dataset_direction(dataset))


def exported_model(folder: Path, device: str = "cpu", runtime: str | None = None) -> MonaiModel:
    """A model written by ``dicomteam export-model`` (manifest.json beside the file)."""
    manifest, folder = read_manifest(folder)
    forward, used = load_forward(manifest, folder, runtime, device)
    file_name = {"onnx": "model.onnx", "torchscript": "model.ts", "pytorch": "model.pt"}[used]
    labels = {n: v for n, v in manifest["labels"].items() if int(v) != 0}
    description = {"labels": labels, "spacing": manifest["spacing"], "normalization": manifest["normalization"],
                   "patch_size": manifest["patch_size"], "model": manifest["architecture"]}
    source_job = manifest.get("source_job")
    job_id = job_id_of(Path(source_job)) if source_job else None
    return MonaiModel(forward, description, "cpu" if used == "onnx" else device,
                      name=f"{folder.name} ({used} export of {job_id or 'a MONAI model'})", source=folder,
                      weights=folder / file_name, job_id=job_id, terminology=manifest.get("terminology") or {},
                      direction=manifest.get("direction"))


class NnunetModel(LoopModel):
    """An nnU-Net model folder (``Trainer__Plans__configuration`` with ``fold_K/checkpoint_*.pth``)."""

    backend = "nnunet"

    def __init__(self, model_dir: Path, fold: int = 0, checkpoint: str = "checkpoint_final.pth", device: str = "cpu",
                 *, job_id: str | None = None, dataset_dir=None):
        dataset = read_json(model_dir / "dataset.json", "nnU-Net dataset.json")
        self.model_dir, self.fold, self.checkpoint, self.device = model_dir, fold, checkpoint, device
        self._predictor = None
        plans = read_json(model_dir / "plans.json", "nnU-Net plans.json")
        config = model_dir.name.rsplit("__", 1)[-1]
        spacing_zyx = ((plans.get("configurations") or {}).get(config) or {}).get("spacing")
        labels = {n: int(v) for n, v in dataset["labels"].items() if isinstance(v, int) or str(v).isdigit()}
        super().__init__(name=f"{model_dir.parent.name}/{model_dir.name} fold {fold} (nnU-Net)", source=model_dir,
                         weights=model_dir / f"fold_{fold}" / checkpoint, labels=labels, job_id=job_id,
                         terminology=dataset_terminology(dataset_dir),
                         spacing=tuple(reversed(spacing_zyx)) if spacing_zyx else None,
                         direction=dataset_direction(dataset_dir), in_channels=len(dataset["channel_names"]))

    def predictor(self):
        """nnU-Net's own predictor, loaded once."""
        if self._predictor is None:
            import torch
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

            predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                        device=torch.device(self.device), verbose=False, allow_tqdm=False)
            predictor.initialize_from_trained_model_folder(str(self.model_dir), use_folds=(self.fold,),
                                                           checkpoint_name=self.checkpoint)
            self._predictor = predictor
        return self._predictor

    def _predict_array(self, array: np.ndarray, geometry):
        # nnU-Net reads images as SimpleITK does: (z, y, x) arrays with the spacing reversed
        props = {"spacing": [float(s) for s in reversed(geometry.spacing)]}
        labels, probabilities = self.predictor().predict_single_npy_array(array[np.newaxis], props, None, None, True)
        return np.asarray(labels).astype(np.uint16), np.asarray(probabilities, dtype=np.float32)


def nnunet_job_model(job_dir: Path, record: dict, checkpoint: str = "checkpoint_final.pth",
                     device: str = "cpu") -> NnunetModel:
    """An nnU-Net training job's model (its results folder, nnU-Net's own layout)."""
    fold_dir = Path(record["outputs"]["model_dir"])
    return NnunetModel(fold_dir.parent, int(record["params"].get("fold", 0)), checkpoint, device,
                       job_id=job_id_of(job_dir), dataset_dir=record["params"].get("dataset"))


def open_model(path, *, device: str = "cpu", checkpoint: str | None = None, fold: int = 0) -> LoopModel:
    """The model at ``path``: a training job, an exported model, an nnU-Net model folder (see loop.models),
    or a loop folder of ``dicomteam train --when-new`` (its latest finished training); what the folder
    holds is read by ``describe_model_folder``, as the panel reads it."""
    info = describe_model_folder(Path(path).expanduser().resolve())
    if info["problem"]:
        raise (FileNotFoundError if info["kind"] is None and "no such folder" in info["problem"] else ValueError)(
            info["problem"])
    folder = Path(info["folder"])
    if info["kind"] in ("job", "loop"):
        record = read_json(folder / JOB_FILE, "job record")
        if info["backend"] == "nnunet":
            return nnunet_job_model(folder, record, checkpoint or "checkpoint_final.pth", device)
        return monai_job_model(folder, record, checkpoint or "best", device)
    if info["kind"] == "export":
        return exported_model(folder, device)
    return NnunetModel(folder, fold, checkpoint or "checkpoint_final.pth", device)
