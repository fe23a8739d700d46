"""Image geometry that travels with every array.

Conventions (the whole project uses them; see README "Data conventions"):

* Arrays are indexed ``array[k, j, i]`` (slice, row, column), exactly like
  ``SimpleITK.GetArrayFromImage`` and ``slicer.util.arrayFromVolume``.
* ``Geometry`` describes the voxel grid in (i, j, k) order: ``size`` is (I, J, K),
  ``spacing`` is mm along i, j, k, ``direction`` is a 3x3 matrix whose *columns* are the
  unit vectors of the i, j, k axes in world space, ``origin`` is the world position of the
  centre of voxel (0, 0, 0).
* ``space`` names the world frame: "LPS" (DICOM, ITK, NRRD default) or "RAS" (Slicer, NIfTI
  viewers).  ``to_lps()`` / ``to_ras()`` convert; comparisons are made in LPS.

Align by physical space, never by raw array index: ``same_grid`` and ``resample_like`` are
what modules call before comparing two arrays.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

PLANES = ("axial", "coronal", "sagittal")


def _as_tuple(values: Iterable[float], n: int, name: str) -> tuple:
    out = tuple(float(v) for v in np.asarray(values, dtype=float).ravel())
    if len(out) != n:
        raise ValueError(f"geometry field '{name}' needs {n} numbers, got {len(out)}")
    if not all(np.isfinite(out)):
        raise ValueError(f"geometry field '{name}' has a non-finite value: {out}")
    return out


@dataclass(frozen=True)
class Geometry:
    """Voxel grid in world space: size (I, J, K), spacing, origin, direction, space."""

    size: tuple
    spacing: tuple = (1.0, 1.0, 1.0)
    origin: tuple = (0.0, 0.0, 0.0)
    direction: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    space: str = "LPS"
    extra: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self):
        size = tuple(int(s) for s in self.size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"geometry field 'size' must be three positive integers, got {self.size}")
        object.__setattr__(self, "size", size)
        spacing = _as_tuple(self.spacing, 3, "spacing")
        if min(spacing) <= 0:
            raise ValueError(f"geometry field 'spacing' must be positive, got {spacing}")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _as_tuple(self.origin, 3, "origin"))
        direction = _as_tuple(self.direction, 9, "direction")
        d = np.array(direction).reshape(3, 3)
        if abs(abs(np.linalg.det(d)) - 1.0) > 1e-3:
            raise ValueError(f"geometry field 'direction' is not a rotation (det {np.linalg.det(d):.4f})")
        object.__setattr__(self, "direction", direction)
        if self.space not in ("LPS", "RAS"):
            raise ValueError(f"geometry field 'space' must be 'LPS' or 'RAS', got {self.space!r}")

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def from_matrix(cls, ijk_to_world: np.ndarray, size: Sequence[int], space: str = "LPS") -> Geometry:
        """Build from a 4x4 IJK-to-world matrix (as Slicer's IJKToRAS or NIfTI's affine)."""
        m = np.asarray(ijk_to_world, dtype=float)
        cols = m[:3, :3]
        spacing = np.linalg.norm(cols, axis=0)
        direction = cols / spacing
        return cls(size=tuple(size), spacing=spacing, origin=m[:3, 3], direction=direction.ravel(), space=space)

    @classmethod
    def from_sitk(cls, image) -> Geometry:
        """Geometry of a SimpleITK image (always LPS)."""
        return cls(size=image.GetSize(), spacing=image.GetSpacing(), origin=image.GetOrigin(),
                   direction=image.GetDirection(), space="LPS")

    # ----- views ------------------------------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        """3x3 matrix; columns are the world directions of i, j, k."""
        return np.array(self.direction, dtype=float).reshape(3, 3)

    @property
    def shape(self) -> tuple:
        """Numpy shape (K, J, I) of an array on this grid."""
        return tuple(reversed(self.size))

    def matrix(self) -> np.ndarray:
        """4x4 IJK-to-world matrix in this geometry's space."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix * np.array(self.spacing)
        m[:3, 3] = self.origin
        return m

    def to_space(self, space: str) -> Geometry:
        """The same grid expressed in another world frame ("LPS" or "RAS")."""
        if space == self.space:
            return self
        flip = _LPS_TO_RAS  # its own inverse
        return Geometry(size=self.size, spacing=self.spacing, origin=flip @ np.array(self.origin),
                        direction=(flip @ self.direction_matrix).ravel(), space=space)

    def to_lps(self) -> Geometry:
        return self.to_space("LPS")

    def to_ras(self) -> Geometry:
        return self.to_space("RAS")

    def index_to_world(self, ijk) -> np.ndarray:
        """World coordinates of continuous index (i, j, k) (N x 3 or 3)."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction_matrix * np.array(self.spacing)).T + np.array(self.origin)

    def world_to_index(self, xyz) -> np.ndarray:
        """Continuous index (i, j, k) of world point(s) in this geometry's space."""
        xyz = np.asarray(xyz, dtype=float)
        inv = np.linalg.inv(self.direction_matrix * np.array(self.spacing))
        return (xyz - np.array(self.origin)) @ inv.T

    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def plane_axis(self, plane: str) -> int:
        """Index axis (0=i, 1=j, 2=k) whose direction is closest to the plane's normal.

        axial -> the axis most aligned with S/I, coronal -> A/P, sagittal -> L/R.
        """
        world_axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
        d = np.abs(self.direction_matrix)
        return int(np.argmax(d[world_axis, :]))

    def is_oblique(self, tol: float = 1e-4) -> bool:
        d = np.abs(self.direction_matrix)
        return not np.allclose(np.sort(d, axis=0)[-1], 1.0, atol=tol)

    # ----- comparisons ------------------------------------------------------------------------
    def differences(self, other: Geometry, tol_mm: float = 1e-4, tol_dir: float = 1e-5) -> list[str]:
        """Human-readable list of fields that differ (empty when the grids are the same)."""
        a, b = self.to_lps(), other.to_lps()
        out = []
        if a.size != b.size:
            out.append(f"size {a.size} != {b.size}")
        if not np.allclose(a.spacing, b.spacing, atol=tol_mm, rtol=0):
            out.append(f"spacing {_fmt(a.spacing)} != {_fmt(b.spacing)}")
        if not np.allclose(a.origin, b.origin, atol=tol_mm, rtol=0):
            out.append(f"origin {_fmt(a.origin)} != {_fmt(b.origin)}")
        if not np.allclose(a.direction, b.direction, atol=tol_dir, rtol=0):
            out.append(f"direction {_fmt(a.direction)} != {_fmt(b.direction)}")
        return out

    def same_grid(self, other: Geometry, tol_mm: float = 1e-4, tol_dir: float = 1e-5) -> bool:
        return not self.differences(other, tol_mm, tol_dir)

    def lies_on_grid_of(self, image: Geometry, tol: float = 1e-3) -> bool:
        """True when this grid is a whole-voxel crop of ``image``'s (same spacing and axes, inside it)."""
        a, b = self.to_lps(), image.to_lps()
        if not (np.allclose(a.spacing, b.spacing, atol=1e-4) and np.allclose(a.direction, b.direction, atol=1e-5)):
            return False
        start = b.world_to_index(a.origin)
        if not np.allclose(start, np.round(start), atol=tol):
            return False
        lo = np.round(start).astype(int)
        hi = lo + np.array(a.size) - 1
        return bool(np.all(lo >= 0) and np.all(hi < np.array(b.size)))

    def to_dict(self) -> dict:
        return {"size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction), "space": self.space}

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(size=d["size"], spacing=d["spacing"], origin=d["origin"], direction=d["direction"],
                   space=d.get("space", "LPS"))


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.5g}" for v in values) + ")"


def check_array(array: np.ndarray, geometry: Geometry, what: str = "array") -> None:
    """Raise ValueError when an array's shape does not match its geometry (K, J, I)."""
    if tuple(array.shape[-3:]) != geometry.shape:
        raise ValueError(f"{what}: array shape {array.shape} does not match geometry size "
                         f"{geometry.size} (expected array shape {geometry.shape})")


# How far (in voxels of the reference) a drawn voxel centre may lie outside the reference grid
# before an annotation is refused: rounding at the border is fine, a shifted frame is not.
OUTSIDE_TOLERANCE_VOXELS = 0.51


def check_drawn_inside(drawn: np.ndarray, geometry: Geometry, reference: Geometry, source: str) -> None:
    """Raise ValueError (naming ``source``) when the drawn voxels of a mask on ``geometry`` (or, if
    nothing is drawn, its whole grid) would fall outside ``reference``: resampling would lose them."""
    mismatch = "; ".join(geometry.differences(reference))
    where = np.argwhere(drawn)  # (n, 3) in (k, j, i)
    corners = (np.array([where.min(axis=0), where.max(axis=0)]) if where.size
               else np.array([[0, 0, 0], [s - 1 for s in geometry.shape]]))
    # the 8 corners of the drawn box, as (i, j, k) indices of the reference grid
    box = np.array([[c[2], c[1], c[0]] for c in np.array(np.meshgrid(*corners.T, indexing="ij")).reshape(3, -1).T])
    ref_ijk = reference.to_lps().world_to_index(geometry.to_lps().index_to_world(box))
    low, high = -OUTSIDE_TOLERANCE_VOXELS, np.array(reference.size) - 1 + OUTSIDE_TOLERANCE_VOXELS
    if where.size:  # every drawn voxel must land inside the reference image
        outside = np.any(ref_ijk < low) or np.any(ref_ijk > high)
    else:  # nothing drawn, nothing to lose: only a grid that misses the image entirely is wrong
        outside = np.any(ref_ijk.max(axis=0) < low) or np.any(ref_ijk.min(axis=0) > high)
    if outside:
        what = "its drawn voxels" if where.size else "its grid"
        raise ValueError(
            f"{source}: cannot be placed on the reference image: {what} fall outside it "
            f"(reference index range reached {np.round(ref_ijk.min(axis=0), 1).tolist()} .. "
            f"{np.round(ref_ijk.max(axis=0), 1).tolist()}, reference size {list(reference.size)}); "
            f"geometry mismatch: {mismatch}")


def to_sitk(array: np.ndarray, geometry: Geometry):
    """SimpleITK image (LPS) from a (K, J, I) array and its geometry."""
    import SimpleITK as sitk

    check_array(array, geometry)
    g = geometry.to_lps()
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(g.spacing)
    img.SetOrigin(g.origin)
    img.SetDirection(g.direction)
    return img


def resample_like(array: np.ndarray, geometry: Geometry, reference: Geometry, *,
                  label: bool = True, default: float = 0) -> np.ndarray:
    """Resample an array from its grid onto ``reference`` by physical position.

    Labels use nearest neighbour, intensities linear interpolation.  Returns the array
    unchanged (no copy) when the grids already match.
    """
    if geometry.same_grid(reference):
        return array
    return resample_image(to_sitk(array, geometry), reference, label=label, default=default)


def resample_image(image, reference: Geometry, *, label: bool = True, default: float = 0) -> np.ndarray:
    """A (K, J, I) array of a SimpleITK image resampled onto ``reference`` (keeps the pixel type)."""
    import SimpleITK as sitk

    ref = to_sitk(np.zeros(reference.shape, dtype=np.uint8), reference)
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    out = sitk.Resample(image, ref, sitk.Transform(), interp, float(default), image.GetPixelID())
    return sitk.GetArrayFromImage(out)
