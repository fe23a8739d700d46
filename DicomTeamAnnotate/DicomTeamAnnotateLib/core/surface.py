"""Surface (boundary-voxel) distances between binary masks, in mm.

A mask's surface is its boundary voxels: foreground voxels with at least one 6-connected
background neighbour (``mask ^ binary_erosion(mask)``, voxels outside the image count as
background), exactly as MONAI's ``get_mask_edges`` defines it.  The distance from a boundary
voxel of A to B is the Euclidean distance in mm (real, possibly anisotropic spacing) to the
nearest boundary voxel of B, read from scipy's exact distance transform of B's boundary.

Arrays are (K, J, I); spacing is given in (i, j, k) order as ``Geometry.spacing`` gives it and
is reversed here for the distance transform.  Everything is cropped to the bounding box of the
union of the masks (plus a margin of one voxel) first: every boundary voxel lies inside that
box, so the distances are exact, and the transform touches far fewer voxels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# 6-connectivity, the structuring element of scipy's (and therefore MONAI's) default erosion.
_STRUCTURE = ndimage.generate_binary_structure(3, 1)


def spacing_kji(spacing_ijk: Sequence[float]) -> tuple:
    """Spacing in array-axis order (k, j, i) from the (i, j, k) order of ``Geometry.spacing``."""
    values = getattr(spacing_ijk, "spacing", spacing_ijk)  # a Geometry is accepted too
    s = tuple(float(v) for v in values)
    if len(s) != 3 or min(s) <= 0:
        raise ValueError(f"spacing must be three positive numbers in (i, j, k) order, got {values}")
    return s[::-1]


def union_box(masks: Sequence[np.ndarray], margin: int = 1) -> tuple | None:
    """Slices of the bounding box of the union of ``masks`` plus ``margin`` voxels; None if all empty."""
    union = np.zeros(masks[0].shape, dtype=bool)
    for m in masks:
        union |= m
    if not union.any():
        return None
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        nonzero = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(int(nonzero[0]) - margin, 0), min(int(nonzero[-1]) + 1 + margin, union.shape[axis])))
    return tuple(box)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a boolean mask (6-connected erosion, outside the array is background)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_STRUCTURE, border_value=0)


class SurfaceSet:
    """Boundary voxels and distance maps of several masks on one shared crop, each computed once.

    Pairwise distances among N masks then cost N distance transforms instead of N*(N-1).
    """

    def __init__(self, masks: Sequence[np.ndarray], spacing_ijk: Sequence[float]):
        masks = [np.asarray(m, dtype=bool) for m in masks]
        if not masks:
            raise ValueError("SurfaceSet needs at least one mask")
        shape = masks[0].shape
        for n, m in enumerate(masks):
            if m.shape != shape or m.ndim != 3:
                raise ValueError(f"mask {n} has shape {m.shape}; all masks must be 3-D with shape {shape}")
        self.sampling = spacing_kji(spacing_ijk)
        self.box = union_box(masks)
        if self.box is None:
            self.edges = [np.zeros((0, 0, 0), dtype=bool) for _ in masks]
        else:
            self.edges = [boundary(m[self.box]) for m in masks]
        self.counts = [int(e.sum()) for e in self.edges]
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.edges)

    def distance_map(self, n: int) -> np.ndarray:
        """Distance (mm) from every voxel of the crop to the nearest boundary voxel of mask ``n``."""
        if n not in self._maps:
            if self.counts[n] == 0:
                raise ValueError(f"mask {n} is empty: it has no surface to measure distances to")
            self._maps[n] = ndimage.distance_transform_edt(~self.edges[n], sampling=self.sampling)
        return self._maps[n]

    def distances(self, a: int, b: int) -> np.ndarray:
        """Distances (mm) from each boundary voxel of mask ``a`` to the surface of mask ``b``.

        Empty ``a``: an empty array.  Non-empty ``a`` and empty ``b``: all infinite.
        """
        if self.counts[a] == 0:
            return np.zeros(0)
        if self.counts[b] == 0:
            return np.full(self.counts[a], np.inf)
        return self.distance_map(b)[self.edges[a]]


    def all_distances(self) -> dict:
        """{(a, b): distances from a's surface to b's} for every ordered pair a != b.

        Each distance map is computed once and dropped after use, so memory stays at one map
        (a 200x512x512 liver crop is ~100 MB of float64 per map).
        """
        out = {}
        n = len(self.edges)
        for b in range(n):
            for a in range(n):
                if a != b and (self.counts[a] == 0 or self.counts[b] == 0):
                    out[a, b] = self.distances(a, b)
            if self.counts[b] == 0 or n < 2:
                continue
            cached = b in self._maps
            dmap = self.distance_map(b)
            for a in range(n):
                if a != b and self.counts[a]:
                    out[a, b] = dmap[self.edges[a]]
            if not cached:
                del self._maps[b]
        return out


def surface_distances(a: np.ndarray, b: np.ndarray, spacing_ijk: Sequence[float]) -> tuple:
    """(distances from A's surface to B's, distances from B's surface to A's), in mm."""
    surfaces = SurfaceSet([a, b], spacing_ijk)
    return surfaces.distances(0, 1), surfaces.distances(1, 0)
