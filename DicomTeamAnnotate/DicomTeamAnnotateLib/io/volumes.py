"""Volume files: .nrrd / .nhdr / .nii(.gz) / .mha / .mhd read and written through SimpleITK.

SimpleITK's NRRD and NIfTI IO convert between the file's frame and LPS correctly (NIfTI stores
RAS; ITK converts on read and write).
"""
from __future__ import annotations

import os
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.volume import Volume

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


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
