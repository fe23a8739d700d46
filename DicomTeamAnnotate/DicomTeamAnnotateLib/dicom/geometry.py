"""The geometry of a sorted stack of frames, and the regular grid it is resampled onto when the
slices are not a regular grid already.

Decisions (README "DICOM ingestion"):

* Slice spacing comes from the positions (projections of ImagePositionPatient on the normal),
  never from SliceThickness.  The grid is the first slice's plane (origin = its position,
  directions = its row/column cosines and their normal).
* Gantry tilt (slice positions drift sideways along the stack): warn and resample every slice
  onto the first slice's in-plane grid (linear interpolation), which gives an orthogonal grid in
  the same physical space; voxels shifted in from outside the field of view get the image minimum.
* Non-uniform spacing (a missing slice, variable reconstruction intervals): warn and resample
  to a uniform spacing (the median gap) by linear interpolation between neighbouring slices.
  When one gap is more than ``MAX_GAP_RATIO`` times the median, the stack is refused: that is
  two separate ranges, and interpolating across it would invent anatomy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.dicom.frames import Frame
from DicomTeamAnnotateLib.dicom.headers import float_list

UNIFORM_TOL_MM = 0.01      # slice gaps may differ from their mean by this much (or 1 %) and still be uniform
TILT_TOL_MM = 0.01         # sideways drift of slice positions tolerated before calling it a tilt
MAX_GAP_RATIO = 5.0


class RefusedStack(Exception):
    """A stack that cannot become a volume; the message says why."""


@dataclass
class StackGeometry:
    """Output geometry plus what regularising the input slices needs."""

    geometry: Geometry
    in_d: np.ndarray                      # input slice positions along the normal (mm)
    out_d: np.ndarray                     # output slice positions along the normal (mm)
    shift_ij: np.ndarray | None = None    # per input slice (j, i) shift in pixels; None: no tilt
    warnings: list[str] = field(default_factory=list)

    @property
    def needs_resampling(self) -> bool:
        return self.shift_ij is not None or len(self.in_d) != len(self.out_d) or not np.allclose(
            self.in_d, self.out_d, atol=UNIFORM_TOL_MM, rtol=0)


def _single_slice_spacing(frame: Frame) -> tuple[float, str]:
    ds = frame.file.ds
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = float_list(ds.get(keyword), 1)
        if value is not None and value[0] > 0:
            return float(value[0]), keyword
    if frame.thickness:
        return float(frame.thickness), "SliceThickness"
    return 1.0, "a default of 1 mm"


def stack_geometry(frames: list[Frame]) -> StackGeometry:
    """Geometry of frames sorted along their normal; detects tilt and non-uniform spacing."""
    first = frames[0]
    r, c, n = first.row_dir, first.col_dir, first.normal
    sy, sx = first.pixel_spacing            # between rows (along j), between columns (along i)
    positions = np.array([f.position for f in frames], dtype=float)
    d = positions @ n
    direction = np.column_stack([r, c, n]).ravel()
    size_ij = (first.cols, first.rows)
    if len(frames) == 1:
        sz, source = _single_slice_spacing(first)
        geom = Geometry(size=(*size_ij, 1), spacing=(sx, sy, sz), origin=positions[0], direction=direction)
        return StackGeometry(geom, d, d.copy(), None, [f"single slice: slice spacing {sz:g} mm taken from {source}"])
    warnings: list[str] = []
    extent = d[-1] - d[0]
    gaps = np.diff(d)
    mean_gap = extent / (len(d) - 1)

    lateral = (positions - positions[0]) - np.outer(d - d[0], n)
    drift = float(np.max(np.linalg.norm(lateral, axis=1)))
    shift_ij = None
    if drift > TILT_TOL_MM:
        shift_ij = np.column_stack([lateral @ c / sy, lateral @ r / sx])
        angle = math.degrees(math.atan2(float(np.linalg.norm(lateral[-1])), extent))
        tag = float_list(first.file.ds.get("GantryDetectorTilt"), 1)
        tag_text = f" (GantryDetectorTilt {tag[0]:g} degrees)" if tag is not None and tag[0] != 0 else ""
        warnings.append(f"gantry tilt: slice positions drift {drift:.2f} mm sideways over {extent:.1f} mm, "
                        f"about {angle:.2f} degrees{tag_text}: resampled onto an orthogonal grid "
                        "(linear interpolation)")

    out_d = d.copy()
    spacing_k = mean_gap
    if np.max(np.abs(gaps - mean_gap)) > max(UNIFORM_TOL_MM, 0.01 * mean_gap):
        median = float(np.median(gaps))
        worst = int(np.argmax(gaps))
        if gaps[worst] > MAX_GAP_RATIO * median:
            raise RefusedStack(
                f"slice gap of {gaps[worst]:.2f} mm between positions {d[worst]:.2f} and {d[worst + 1]:.2f} mm is "
                f"more than {MAX_GAP_RATIO:g} times the usual {median:.2f} mm: these are separate ranges; "
                "refusing to interpolate across the gap")
        n_out = int(round(extent / median)) + 1
        spacing_k = extent / (n_out - 1)
        out_d = d[0] + np.arange(n_out) * spacing_k
        warnings.append(f"non-uniform slice spacing ({gaps.min():.3f} to {gaps.max():.3f} mm, largest gap after "
                        f"slice {worst + 1}): resampled to {n_out} slices at {spacing_k:.4g} mm "
                        "(linear interpolation between neighbouring slices)")
    geom = Geometry(size=(*size_ij, len(out_d)), spacing=(sx, sy, spacing_k), origin=positions[0],
                    direction=direction)
    return StackGeometry(geom, d, out_d, shift_ij, warnings)


def regularize(array: np.ndarray, sg: StackGeometry) -> np.ndarray:
    """Resample a (K, J, I) stack onto ``sg.geometry`` (see the module docstring for when)."""
    if not sg.needs_resampling:
        return array
    from scipy import ndimage

    fill = float(array.min())
    work = array.astype(np.float32)
    if sg.shift_ij is not None:
        for k in range(work.shape[0]):
            if np.any(np.abs(sg.shift_ij[k]) > 1e-6):
                work[k] = ndimage.shift(work[k], sg.shift_ij[k], order=1, mode="constant", cval=fill)
    d = sg.in_d
    out = np.empty((len(sg.out_d),) + work.shape[1:], dtype=np.float32)
    for k, t in enumerate(sg.out_d):
        if len(d) == 1:
            out[k] = work[0]
            continue
        a = int(np.clip(np.searchsorted(d, t, side="right") - 1, 0, len(d) - 2))
        w = float(np.clip((t - d[a]) / (d[a + 1] - d[a]), 0.0, 1.0))
        out[k] = work[a] if w == 0.0 else (1.0 - w) * work[a] + w * work[a + 1]
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(array.dtype)
    return out.astype(array.dtype)
