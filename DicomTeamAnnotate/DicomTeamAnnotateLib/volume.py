"""Scalar volumes: a (K, J, I) array with its Geometry and a metadata summary.

Reading and writing go through SimpleITK, whose NRRD and NIfTI IO convert between the
file's frame and LPS correctly (NIfTI stores RAS; ITK converts on read and write).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .geometry import Geometry, check_array, to_sitk

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


@dataclass
class Volume:
    """A scalar image: ``array[k, j, i]`` on ``geometry``, plus a metadata dict."""

    array: np.ndarray
    geometry: Geometry
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        check_array(self.array, self.geometry, "volume")

    def to_sitk(self):
        return to_sitk(self.array, self.geometry)

    @classmethod
    def from_sitk(cls, image, metadata: dict | None = None) -> "Volume":
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(f"expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components")
        return cls(sitk.GetArrayFromImage(image), Geometry.from_sitk(image), dict(metadata or {}))


def has_volume_suffix(path) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


def read_volume(path) -> Volume:
    """Read a .nrrd / .nii(.gz) / .mha volume; raise ValueError naming the file on failure."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: cannot read as a volume ({str(exc).strip().splitlines()[-1]})") from None
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    try:
        return Volume.from_sitk(image, {"source": str(path)})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def write_volume(volume: Volume, path, *, compress: bool = True) -> Path:
    """Write atomically (temporary name, fsync, rename) to .nrrd / .nii.gz / .mha."""
    import SimpleITK as sitk

    path = Path(path)
    if not has_volume_suffix(path):
        raise ValueError(f"{path}: unsupported volume file type (use one of {', '.join(VOLUME_SUFFIXES)})")
    with atomic_path(path) as tmp:
        sitk.WriteImage(volume.to_sitk(), str(tmp), compress)
    return path


def file_suffix(path) -> str:
    """'.nii.gz' aware suffix."""
    name = os.path.basename(str(path)).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else os.path.splitext(name)[1]
