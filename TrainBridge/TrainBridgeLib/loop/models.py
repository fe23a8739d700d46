"""A trained model as the annotation loop uses it: who made it, its labels, and its prediction of one image.

``open_model(path)`` takes what a user has at hand:

* a TrainBridge training job folder (MONAI or nnU-Net: ``job.json``);
* a model exported by ``dicomteam export-model`` (``manifest.json`` + ONNX / TorchScript / PyTorch);
* an nnU-Net model folder in nnU-Net's results layout (``dataset.json``, ``plans.json``, ``fold_K/``).

Every model answers ``identity()`` (name, backend, job id, weights sha256: what a prediction
version names as its author), ``labels`` (its output values as Segments with the terminology of
the dataset it was trained on, when known), ``fit_problem(geometry)`` (why an image cannot be
predicted, or None) and ``predict(volume)`` -> ``Prediction``: the label map on the volume's own
grid and the uncertainty of the model's own output.

Uncertainty: the mean normalised entropy of the softmax, -sum p log p / log C, over the voxels
the model labels as foreground.  One forward pass gives it (test-time flips would cost several
on a CPU, and flipping left-right swaps the paired organs a model tells apart by side, so the
disagreement would measure the swap, not the doubt).  Restricted to the predicted foreground
because the background of a CT is large and certain: averaged over the whole image every case
scores near 0.  A model that finds no foreground at all scores 1 (it knows nothing of this case).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry, resample_like
from DicomTeamAnnotateLib.core.hashing import sha256_file
from DicomTeamAnnotateLib.core.segmentation import Segment, default_color

UNCERTAINTY_MEASURE = "mean normalised softmax entropy inside the predicted foreground"
MAX_SPACING_RATIO = 4.0  # a case resampled by more than this along an axis is not the data the model learnt


@dataclass
class Prediction:
    """A model's output on one image: label map (model values) on the image grid, and its uncertainty."""

    labels: np.ndarray
    geometry: Geometry
    uncertainty: dict = field(default_factory=dict)


def entropy_score(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """{'score', 'measure', 'foreground_voxels'} from softmax ``probabilities`` (C, K, J, I) and their argmax."""
    n_classes = probabilities.shape[0]
    foreground = labels > 0
    count = int(foreground.sum())
    if count == 0 or n_classes < 2:
        return {"score": 1.0, "measure": UNCERTAINTY_MEASURE, "foreground_voxels": 0}
    p = np.clip(probabilities[:, foreground].astype(np.float64), 1e-12, 1.0)
    entropy = -(p * np.log(p)).sum(axis=0) / np.log(n_classes)
    return {"score": round(float(entropy.mean()), 6), "measure": UNCERTAINTY_MEASURE, "foreground_voxels": count}


def grid_covering(geometry: Geometry, direction, spacing) -> Geometry:
    """A grid with ``direction`` (LPS, 9 numbers) and ``spacing`` covering ``geometry``'s field of view:
    how an image of another orientation is put into the orientation a model learnt, by physical position."""
    g = geometry.to_lps()
    d = np.array(direction, dtype=float).reshape(3, 3)
    corners = np.array([[i, j, k] for i in (-0.5, g.size[0] - 0.5) for j in (-0.5, g.size[1] - 0.5)
                        for k in (-0.5, g.size[2] - 0.5)])
    local = (g.index_to_world(corners) - np.array(g.origin)) @ d  # coordinates along the new axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    spacing = np.array(spacing, dtype=float)
    size = np.maximum(1, np.ceil((hi - lo) / spacing - 1e-6)).astype(int)
    origin = np.array(g.origin) + d @ (lo + spacing / 2.0)
    return Geometry(size=tuple(size), spacing=tuple(spacing), origin=tuple(origin), direction=tuple(d.ravel()))


class LoopModel:
    """What every model kind shares; subclasses implement ``_predict_array``."""

    backend = ""

    def __init__(self, *, name: str, source: Path, weights: Path, labels: dict, terminology: dict | None = None,
                 job_id: str | None = None, spacing=None, direction=None, in_channels: int = 1):
        self.name = name
        self.source = Path(source)
        self.weights = Path(weights)
        self.weights_sha256 = sha256_file(self.weights)[0]
        self.job_id = job_id
        self.spacing = tuple(float(s) for s in spacing) if spacing is not None else None
        self.direction = tuple(float(d) for d in direction) if direction is not None else None
        self.in_channels = int(in_channels)
        terminology = terminology or {}
        self.labels = [Segment(name=n, label_value=int(v), color=default_color(int(v) - 1),
                               terminology=terminology.get(n))
                       for n, v in sorted(labels.items(), key=lambda kv: int(kv[1])) if int(v) != 0]

    def identity(self) -> dict:
        """The model's name, backend, job id and weights sha256 (a prediction's ``meta["model"]``)."""
        return {"name": self.name, "backend": self.backend, "job_id": self.job_id,
                "weights_sha256": self.weights_sha256, "source": str(self.source)}

    def fit_problem(self, geometry: Geometry) -> str | None:
        """Why an image on ``geometry`` cannot be predicted by this model (None: it can)."""
        if self.in_channels != 1:
            return f"the model needs {self.in_channels} image channels; a case has one image"
        if min(geometry.size) < 2:
            return f"the image is {geometry.size[0]}x{geometry.size[1]}x{geometry.size[2]} voxels: not a 3-D volume"
        if self.spacing is not None:
            for axis, have, want in zip("ijk", geometry.spacing, self.spacing):
                ratio = max(have / want, want / have)
                if ratio > MAX_SPACING_RATIO:
                    return (f"voxel spacing {have:g} mm along {axis} is {ratio:.1f}x the model's {want:g} mm "
                            f"(more than {MAX_SPACING_RATIO:g}x: not the data it learnt)")
        return None

    def predict(self, volume) -> Prediction:
        """The label map on ``volume``'s grid and its uncertainty; images of another orientation than the
        model's training images are resampled into it by physical position, the labels back by nearest."""
        problem = self.fit_problem(volume.geometry)
        if problem:
            raise ValueError(problem)
        geometry = volume.geometry.to_lps()
        array = volume.array
        work = geometry
        if self.direction is not None and not np.allclose(geometry.direction, self.direction, atol=1e-4):
            work = grid_covering(geometry, self.direction, self.spacing or geometry.spacing)
            array = resample_like(array.astype(np.float32), geometry, work, label=False, default=float(array.min()))
        labels, probabilities = self._predict_array(np.asarray(array, dtype=np.float32), work)
        uncertainty = entropy_score(probabilities, labels)
        if not work.same_grid(geometry):
            labels = resample_like(labels, work, geometry, label=True)
        return Prediction(labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8), geometry, uncertainty)

    def _predict_array(self, array: np.ndarray, geometry: Geometry) -> tuple:
        """(label map, softmax probabilities (C, K, J, I)) of one (K, J, I) image on ``geometry``."""
        raise NotImplementedError


def read_json(path: Path, what: str) -> dict:
    """A JSON file, or a ValueError naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no {what}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable {what} ({exc})") from None


def dataset_terminology(dataset_dir) -> dict:
    """{label name: terminology} of an exported dataset (its trainbridge.json), {} when unknown."""
    path = Path(dataset_dir) / "trainbridge.json" if dataset_dir else None
    if path is None or not path.exists():
        return {}
    doc = read_json(path, "TrainBridge dataset record")
    return {d["name"]: d.get("terminology") for d in doc.get("label_source") or [] if d.get("terminology")}


def dataset_direction(dataset_dir):
    """The direction (LPS) of a dataset's first training image, or None when it cannot be read."""
    if not dataset_dir:
        return None
    images = sorted((Path(dataset_dir) / "imagesTr").glob("*_0000.nii.gz"))
    if not images:
        return None
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(images[0]))
    reader.ReadImageInformation()
    return tuple(reader.GetDirection())
