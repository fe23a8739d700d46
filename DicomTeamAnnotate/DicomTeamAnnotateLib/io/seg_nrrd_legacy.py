"""Slicer's legacy "4D spatial" ``.seg.nrrd`` (SlicerRT's Segmentations for Slicer 4.4-4.5, 2015-16).

That writer (``itk::Image<unsigned char, 4>``) stored one frame per segment on a fourth spatial
axis: ``dimension: 4``, ``space dimension: 4`` and no ``space`` field, four domain axes.  Its
numbers are Slicer's RAS (the oriented image's origin and directions copied unchanged into ITK),
and file voxel (0, 0, 0) is voxel ``Segmentation_Extent[0, 2, 4]`` of that image: a reader that
takes the file for LPS at offset 0 flips left/right and misplaces every voxel.  Today's Slicer
still reads it (``ReadBinaryLabelmapRepresentation4DSpatial``): RAS = origin + directions x
spacing x (file index + extent start), segment n = frame n (voxels cast to unsigned char, so any
non-zero voxel is inside).  ``SegmentN_Extent`` is in the image's index frame, not the file's.

Slicer drops these files' colours on read (it parses ``DefaultColor`` but never sets it); they
are kept here.
"""
from __future__ import annotations

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.io.seg_nrrd_fields import int_list, segments_from_header

LEGACY_LAYOUT = "Slicer 4.5 4D-spatial .seg.nrrd (SlicerRT)"


def is_legacy_4d(header: dict) -> bool:
    """A four-dimensional space and no named space: the layout of SlicerRT's 2015-16 writer."""
    try:
        space_dim = int(header.get("space dimension", 0))
    except (TypeError, ValueError):
        return False
    return space_dim == 4 and "space" not in header and int(header.get("dimension", 0)) == 4


def legacy_frame(path, header: dict) -> tuple:
    """(4x4 RAS matrix of the file's voxel index, (I, J, K), offset (i, j, k) into the image's index frame)."""
    sizes = [int(v) for v in np.asarray(header["sizes"]).ravel()]
    directions = np.asarray(header.get("space directions", []), dtype=float)
    origin = np.asarray(header.get("space origin", (0.0, 0.0, 0.0, 0.0)), dtype=float).ravel()
    if directions.shape != (4, 4) or origin.size != 4:
        raise ValueError(f"{path}: legacy 4D segmentation: fields 'space directions'/'space origin' must give "
                         f"4 axes of 4 numbers (got {directions.shape} and {origin.size})")
    if np.any(directions[:3, 3] != 0) or np.any(directions[3, :3] != 0):
        raise ValueError(f"{path}: legacy 4D segmentation: the fourth (segment) axis is mixed with space "
                         f"({directions.tolist()})")
    offset = int_list(path, header, "Segmentation_Extent", 6, default=(0, sizes[0] - 1, 0, sizes[1] - 1, 0,
                                                                       sizes[2] - 1))
    start = np.array(offset[0::2], dtype=float)
    extent_size = [offset[1] - offset[0] + 1, offset[3] - offset[2] + 1, offset[5] - offset[4] + 1]
    if extent_size != sizes[:3]:
        raise ValueError(f"{path}: field 'Segmentation_Extent' {' '.join(map(str, offset))} spans {extent_size} "
                         f"voxels, field 'sizes' says {sizes[:3]}")
    vectors = directions[:3, :3].T  # columns: RAS vectors of i, j, k
    matrix = np.eye(4)
    matrix[:3, :3] = vectors
    matrix[:3, 3] = origin[:3] + vectors @ start
    return matrix, tuple(sizes[:3]), tuple(int(v) for v in start)


def legacy_geometry(path, header: dict) -> Geometry:
    """The voxel grid (LPS) of a legacy 4D file, from its header."""
    matrix, size, _ = legacy_frame(path, header)
    try:
        return Geometry.from_matrix(matrix, size, space="RAS").to_lps()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_legacy_4d(path, header: dict, data: np.ndarray) -> Segmentation:
    """The Segmentation of a legacy 4D file whose payload (C order: segment, k, j, i) is ``data``."""
    _, size, start = legacy_frame(path, header)
    geometry = legacy_geometry(path, header)
    layers = np.ascontiguousarray(data != 0, dtype=np.uint8)
    segments, warnings = segments_from_header(path, header, layers.shape[0], legacy=True)
    for s in segments:  # the segment's Extent (image index frame) bounds its voxels, as in Slicer
        box = s.extra.get("extent")
        if box is None:
            continue
        lo = [box[4] - start[2], box[2] - start[1], box[0] - start[0]]  # k, j, i in the file's frame
        hi = [box[5] - start[2] + 1, box[3] - start[1] + 1, box[1] - start[0] + 1]
        keep = np.zeros(layers.shape[1:], dtype=bool)
        keep[tuple(slice(max(0, a), max(0, b)) for a, b in zip(lo, hi))] = True
        layers[s.layer][~keep] = 0
        s.extra["extent"] = [box[0] - start[0], box[1] - start[0], box[2] - start[1], box[3] - start[1],
                             box[4] - start[2], box[5] - start[2]]
    warnings.append(f"read as the legacy layout: {LEGACY_LAYOUT}")
    metadata = {"source": str(path), "reference_extent_offset": list(start), "warnings": warnings,
                "layout": LEGACY_LAYOUT}
    return Segmentation(layers, geometry, segments, metadata)
