"""Slices of a (K, J, I) volume along its three voxel planes, and masks put back.

A plane is named by the voxel axes it spans (the house convention, whatever the patient
orientation): axial = the (i, j) plane at a fixed k, coronal = (i, k) at a fixed j, sagittal =
(j, k) at a fixed i.  A slice comes out as a 2D image whose rows run along the plane's second
axis and whose columns run along its first, so a point (A, B) given in the plane's in-plane
voxel indices in increasing axis order (axial: i, j; coronal: i, k; sagittal: j, k) is pixel
column A, row B: exactly the (x, y) convention of SAM's prompts.
"""
from __future__ import annotations

import numpy as np

from DicomTeamAnnotateLib.core.geometry import PLANES, Geometry

# In-plane voxel axes (0 = i, 1 = j, 2 = k) as (column axis, row axis), and the normal axis.
IN_PLANE_AXES = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}
NORMAL_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}
# The same axes in numpy order of a (K, J, I) array: i is numpy axis 2, j is 1, k is 0.
_NUMPY_AXIS = {0: 2, 1: 1, 2: 0}


def check_plane(plane: str) -> str:
    """Return ``plane`` or raise ValueError naming the three valid planes."""
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {', '.join(PLANES)}, got {plane!r}")
    return plane


def slice_count(shape_kji, plane: str) -> int:
    """Number of slices of a (K, J, I) array along ``plane``'s normal axis."""
    return int(shape_kji[_NUMPY_AXIS[NORMAL_AXIS[check_plane(plane)]]])


def slice_shape(shape_kji, plane: str) -> tuple:
    """(rows, columns) of a slice of a (K, J, I) array in ``plane``."""
    col_axis, row_axis = IN_PLANE_AXES[check_plane(plane)]
    return int(shape_kji[_NUMPY_AXIS[row_axis]]), int(shape_kji[_NUMPY_AXIS[col_axis]])


def _check_index(shape_kji, plane: str, index: int) -> int:
    n = slice_count(shape_kji, plane)
    if not 0 <= int(index) < n:
        raise ValueError(f"{plane} slice {index} is outside the volume (0..{n - 1})")
    return int(index)


def extract_slice(array_kji: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D image (rows = second in-plane axis, columns = first) of ``plane`` at ``index`` (a view)."""
    index = _check_index(array_kji.shape, plane, index)
    if plane == "axial":
        return array_kji[index, :, :]  # rows j, columns i
    if plane == "coronal":
        return array_kji[:, index, :]  # rows k, columns i
    return array_kji[:, :, index]      # rows k, columns j


def insert_slice(array_kji: np.ndarray, plane: str, index: int, image: np.ndarray) -> None:
    """Write a 2D image (as ``extract_slice`` returns it) into ``array_kji`` in place."""
    target = extract_slice(array_kji, plane, index)
    if image.shape != target.shape:
        raise ValueError(f"{plane} slice {index}: image shape {image.shape} does not match the slice {target.shape}")
    target[...] = image


def pixel_spacing(geometry: Geometry, plane: str) -> tuple:
    """(row spacing, column spacing) in mm of a slice in ``plane``: keeps the physical aspect ratio."""
    col_axis, row_axis = IN_PLANE_AXES[check_plane(plane)]
    return float(geometry.spacing[row_axis]), float(geometry.spacing[col_axis])


def parse_box(text: str) -> tuple:
    """'A0,B0,A1,B1' -> (A0, B0, A1, B1) as ints, corners sorted (inclusive voxel indices)."""
    try:
        a0, b0, a1, b1 = (int(round(float(v))) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"box must be four numbers A0,B0,A1,B1, got {text!r}") from None
    return min(a0, a1), min(b0, b1), max(a0, a1), max(b0, b1)


def parse_point(text: str) -> tuple:
    """'A,B,+' or 'A,B,-' -> ((A, B), 1 or 0)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3 or parts[2] not in ("+", "-", "1", "0"):
        raise ValueError(f"point must be A,B,+ or A,B,- (a positive or negative click), got {text!r}")
    try:
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"point coordinates must be numbers, got {text!r}") from None
    return (a, b), (1 if parts[2] in ("+", "1") else 0)


def check_box_inside(box, shape_2d, what: str = "box") -> tuple:
    """Raise ValueError when a box (A0, B0, A1, B1) lies outside a (rows, columns) slice; else return it."""
    rows, cols = shape_2d
    a0, b0, a1, b1 = box
    if a1 < 0 or b1 < 0 or a0 > cols - 1 or b0 > rows - 1:
        raise ValueError(f"{what} {tuple(box)} lies outside the slice (A 0..{cols - 1}, B 0..{rows - 1})")
    return box


def bounding_box(mask2d: np.ndarray):
    """(A0, B0, A1, B1) of a 2D mask's foreground (inclusive), or None when it is empty."""
    rows = np.flatnonzero(mask2d.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask2d.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def bounding_box_of_points(points) -> tuple:
    """(A0, B0, A1, B1) spanned by points [(A, B), ...]."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())
