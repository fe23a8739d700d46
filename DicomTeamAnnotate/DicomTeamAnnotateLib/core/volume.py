"""Scalar volumes in memory: a (K, J, I) array with its Geometry and a metadata summary.

Files are read and written by ``io.volumes``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry, check_array, to_sitk


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
    def from_sitk(cls, image, metadata: dict | None = None) -> Volume:
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(f"expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components")
        return cls(sitk.GetArrayFromImage(image), Geometry.from_sitk(image), dict(metadata or {}))
