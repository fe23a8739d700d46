"""Shared cases for the IO tests: the four acquisition orientations and small test objects."""
from __future__ import annotations

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.core.volume import Volume


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# Direction columns = world (LPS) vectors of i, j, k, as a DICOM series of each orientation gives them.
DIRECTIONS = {
    "axial": np.eye(3),
    # sagittal slices: rows run anterior->posterior, columns superior->inferior, slices along the
    # DICOM normal row x column = left->right
    "sagittal": np.column_stack([(0, 1, 0), (0, 0, -1), (-1, 0, 0)]),
    # coronal slices: rows right->left, columns superior->inferior, slices anterior->posterior
    "coronal": np.column_stack([(1, 0, 0), (0, 0, -1), (0, 1, 0)]),
    "oblique": _rotation(np.radians(17.0), np.radians(-28.0), np.radians(41.0)),
}
ORIENTATIONS = list(DIRECTIONS)


def geometry(orientation: str, size=(23, 19, 11)) -> Geometry:
    """A non-trivial grid: unequal spacing, an origin with awkward decimals."""
    return Geometry(size=size, spacing=(0.7421875, 0.9, 2.5), origin=(-123.456789, 87.125, -301.0625),
                    direction=DIRECTIONS[orientation].ravel())


def volume(orientation: str, seed: int = 0) -> Volume:
    g = geometry(orientation)
    rng = np.random.default_rng(seed)
    return Volume(rng.integers(-1024, 2000, g.shape).astype(np.int16), g)


def segmentation(orientation: str) -> Segmentation:
    """Three segments, two overlapping (so two layers), one empty, one with a terminology code."""
    g = geometry(orientation)
    a = np.zeros(g.shape, bool)
    a[2:6, 3:10, 4:15] = True
    b = np.zeros(g.shape, bool)
    b[4:9, 6:15, 10:20] = True  # overlaps a
    c = np.zeros(g.shape, bool)
    c[9:11, 0:3, 0:2] = True
    return Segmentation.from_masks({"liver": a, "tumor": b, "empty": np.zeros(g.shape, bool), "vessel": c}, g,
                                   colors={"liver": (0.86, 0.55, 0.44), "tumor": (1.0, 0.0, 0.25)},
                                   terminology={"liver": "SCT^10200004^Liver"})
