"""SAM backends: one small class per model behind one interface, and a registry by name.

A backend turns a 2D slice image (float in [0, 1] or uint8, already windowed) into an
``Embedding`` (``set_image()``) and an embedding plus prompts into masks (``predict()``).  Prompts
and masks are on the slice's own pixel grid: boxes (A0, B0, A1, B1) and points (A, B) are
(column, row) pixel indices, inclusive.  Adding a model (MedSAM ViT-B, SAM-Med2D, SAM 2) is one
new file with a ``SamBackend`` subclass and one line in ``BACKENDS``.
Heavy imports (torch, onnxruntime, the model packages) happen inside the backend files.

The models:

- ``litemedsam``: LiteMedSAM (the default): MedSAM distilled onto TinyViT, box prompts, ONNX or torch.
- ``segment_anything``: Meta's Segment Anything (ViT-B/L/H) from a checkpoint file the user gives.
- ``remote``: prompts answered by the project server's SAM (`dicomteam serve` with SamPrompt's plugin).

What they share:

- ``sam_common``: what every SAM-architecture backend shares: prompt arrays, the prompt decoder, postprocessing.
- ``onnx_runtime``: ONNX export (once, cached, verified) and onnxruntime sessions for the networks.
- ``openvino_runtime``: OpenVINO as a faster CPU engine for those ONNX files, verified against onnxruntime.
- ``quantize``: an INT8 LiteMedSAM image encoder (NNCF, calibrated on CT and MR slices), cached, verified.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

# name -> "module:Class" (relative to this package), and the options each name implies.
BACKENDS = {
    # INT8 encoder where it was built and verified here (2x faster on a CPU), else fp32: see litemedsam
    "litemedsam": ("litemedsam:LiteMedSamBackend", {"runtime": "onnx", "precision": "int8"}),
    "litemedsam-fp32": ("litemedsam:LiteMedSamBackend", {"runtime": "onnx"}),
    "litemedsam-onnxruntime": ("litemedsam:LiteMedSamBackend", {"runtime": "onnx", "engine": "onnxruntime"}),
    "litemedsam-torch": ("litemedsam:LiteMedSamBackend", {"runtime": "torch"}),
    # the project server's SAM (store URL, case, user, token): see remote.py
    "remote": ("remote:RemoteBackend", {}),
    "sam-vit_b": ("segment_anything:SegmentAnythingBackend", {"model_type": "vit_b"}),
    "sam-vit_l": ("segment_anything:SegmentAnythingBackend", {"model_type": "vit_l"}),
    "sam-vit_h": ("segment_anything:SegmentAnythingBackend", {"model_type": "vit_h"}),
}
DEFAULT_BACKEND = "litemedsam"


@dataclass
class Embedding:
    """A slice's image embedding plus what is needed to map prompts in and masks out."""

    features: np.ndarray       # backend-specific, e.g. float32 (1, 256, 64, 64)
    plan: object               # preprocess.ResizePlan: slice size, resized size, model input size
    backend: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes)


@dataclass
class Prediction:
    """Masks on the slice grid with the model's quality score per mask."""

    masks: np.ndarray            # bool (N, H, W)
    scores: np.ndarray           # float32 (N,): the model's predicted IoU
    low_res_logits: np.ndarray   # float32 (N, 256, 256): feed back as ``mask_input``
    logits: np.ndarray           # float32 (N, H, W): logits on the slice grid (mask = logits > 0)

    def best(self) -> int:
        return int(np.argmax(self.scores))

    def __iter__(self):  # (masks, scores, low_res_logits), as SAM's predictor returns
        return iter((self.masks, self.scores, self.low_res_logits))


class SamBackend:
    """Interface of a SAM-like model; subclasses set the capabilities and implement the two calls."""

    name = "base"
    supports_box = True
    supports_points = False
    supports_mask_input = False
    image_size = 256  # the model's square input side

    def set_image(self, image: np.ndarray, spacing=None) -> Embedding:
        """Embed one 2D slice image ((H, W) in [0, 1] or uint8); ``spacing`` (row mm, col mm) keeps its aspect."""
        raise NotImplementedError

    def predict(self, embedding: Embedding, box=None, points=None, labels=None, mask_input=None,
                multimask: bool = False) -> Prediction:
        """Masks for prompts on the slice grid: box (A0, B0, A1, B1), points (N, 2) with labels 1/0."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What the GUI and logs show: name, capabilities, runtime, device, weights."""
        return {"name": self.name, "box": self.supports_box, "points": self.supports_points,
                "mask_input": self.supports_mask_input, "image_size": self.image_size}

    def check_prompts(self, box, points, labels) -> None:
        """Raise ValueError for prompts this model cannot take, naming the capability."""
        if box is None and points is None:
            raise ValueError(f"{self.name}: give a box or points")
        if points is not None and not self.supports_points:
            raise ValueError(f"{self.name}: this model takes box prompts only (it was trained on boxes)")
        if box is not None and not self.supports_box:
            raise ValueError(f"{self.name}: this model takes point prompts only")
        if points is not None:
            n = np.asarray(points).reshape(-1, 2).shape[0]
            if labels is None or np.asarray(labels).reshape(-1).shape[0] != n:
                raise ValueError(f"{self.name}: give one label (1 positive, 0 negative) per point")


def available_backends() -> list[str]:
    """Registered backend names (whether their packages are installed is checked on creation)."""
    return list(BACKENDS)


def register_backend(name: str, target: str, options: dict | None = None) -> None:
    """Add a backend: ``target`` is 'package.module:Class' (absolute) or 'module:Class' (in this package)."""
    BACKENDS[name] = (target, dict(options or {}))


def create_backend(name: str = DEFAULT_BACKEND, **options) -> SamBackend:
    """Build a backend by registered name; ``options`` (checkpoint, device, ...) go to its constructor."""
    if name not in BACKENDS:
        raise ValueError(f"unknown SAM backend {name!r}; known: {', '.join(BACKENDS)}")
    target, implied = BACKENDS[name]
    module_name, class_name = target.split(":")
    if "." not in module_name:
        module_name = f"{__name__}.{module_name}"
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**{**implied, **{k: v for k, v in options.items() if v is not None}})
