"""Slice image -> model input (window, [0, 1], resize longest side, pad, 3 channels) and logits back.

Each model is fed as it was trained: MedSAM/LiteMedSAM saw CT slices windowed to 8 bits,
resized so the longest side is the model's input size, min-max normalised and padded at the
bottom/right; SAM saw 0..255 RGB, resized the same way, normalised by its pixel mean/std (done
by ``Sam.preprocess``).  One deliberate difference: the resize keeps the *physical* aspect
ratio (pixel spacing), so a coronal slice of 2 mm slices is not squashed to half its height;
for square pixels this is exactly the published preprocessing.  ``ResizePlan`` records the
sizes so prompts go in and masks come back on the exact slice grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from DicomTeamAnnotateLib.core.windowing import apply_window
from DicomTeamAnnotateLib.core.windowing import resolve_window as _resolve


def resolve_window(window):
    """(level, width) from a preset name, 'L/W', a (level, width) pair; None stays None (own range)."""
    if window is None:
        return None
    level, width = _resolve(window)
    return float(level), float(width)


def intensity_window(array: np.ndarray, window) -> tuple:
    """The (level, width) to use for ``array``: the given window, else the array's own min..max range."""
    lw = resolve_window(window)
    if lw is not None:
        return lw
    lo, hi = float(np.min(array)), float(np.max(array))
    return (lo + hi) / 2.0, max(hi - lo, 1e-6)


def window_to_unit(image: np.ndarray, level: float, width: float) -> np.ndarray:
    """Intensities -> float32 in [0, 1] through Slicer's display window (8-bit, as the models were trained)."""
    return apply_window(image, level, width).astype(np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class ResizePlan:
    """How a (rows, cols) slice maps onto the model's square input: resized size, then zero padding."""

    original: tuple  # (H, W) of the slice
    resized: tuple   # (h, w) after resizing, before padding (h, w <= target)
    target: int      # the model's square input side (256 LiteMedSAM, 1024 SAM)

    @property
    def scale(self) -> tuple:
        """(row scale, column scale) from slice pixels to model pixels."""
        return self.resized[0] / self.original[0], self.resized[1] / self.original[1]

    def box_to_model(self, box) -> np.ndarray:
        """(A0, B0, A1, B1) slice pixels (column, row) -> model-input pixels, float32 (4,)."""
        sy, sx = self.scale
        return np.asarray(box, dtype=np.float32).reshape(4) * np.array([sx, sy, sx, sy], dtype=np.float32)

    def points_to_model(self, points) -> np.ndarray:
        """(N, 2) slice pixels (column, row) -> model-input pixels, float32 (N, 2)."""
        sy, sx = self.scale
        return np.asarray(points, dtype=np.float32).reshape(-1, 2) * np.array([sx, sy], dtype=np.float32)


def plan_resize(shape, target: int, spacing=None) -> ResizePlan:
    """Plan resizing a (rows, cols) slice so its longest *physical* side becomes ``target`` pixels."""
    rows, cols = int(shape[0]), int(shape[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"slice shape must be positive, got {shape}")
    row_mm, col_mm = (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1]))
    height, width = rows * row_mm, cols * col_mm
    s = target / max(height, width)
    h = min(target, max(1, int(height * s + 0.5)))
    w = min(target, max(1, int(width * s + 0.5)))
    return ResizePlan((rows, cols), (h, w), int(target))


def resize_slice(image: np.ndarray, plan: ResizePlan) -> np.ndarray:
    """(H, W) float image -> float32 (h, w) of the plan: antialiased bilinear.

    Antialiased bilinear resizing stands in for the INTER_AREA / PIL resizing used in training
    (no OpenCV dependency); upsampling (small slices) is plain bilinear.
    """
    import torch
    import torch.nn.functional as F

    if image.shape != plan.original:
        raise ValueError(f"image shape {image.shape} does not match the plan {plan.original}")
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if plan.resized != plan.original:
        shrink = plan.resized[0] < plan.original[0] or plan.resized[1] < plan.original[1]
        t = F.interpolate(t, size=plan.resized, mode="bilinear", align_corners=False, antialias=shrink)
    return t[0, 0].numpy()


def resize_and_pad(image: np.ndarray, plan: ResizePlan, *, normalise: bool = True) -> np.ndarray:
    """(H, W) image in [0, 1] -> float32 (3, target, target): resized, min-max normalised, padded, 3 channels.

    The min-max normalisation and bottom/right zero padding are LiteMedSAM's.
    """
    resized = resize_slice(image, plan)
    if normalise:
        lo, hi = float(resized.min()), float(resized.max())
        resized = (resized - lo) / max(hi - lo, 1e-8)
    out = np.zeros((3, plan.target, plan.target), dtype=np.float32)
    out[:, : plan.resized[0], : plan.resized[1]] = resized
    return out


def _resize_axis(array: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Linear resampling along one axis as torch's ``interpolate(mode="bilinear", align_corners=False)``.

    Written here because a remote client (Slicer without PyTorch) rebuilds the slice logits without
    torch, and neither numpy nor scipy's zoom follows torch's half-pixel rule (scipy's grid_mode
    differs at the borders); bilinear is separable, so two passes of this are the 2D resize.
    """
    n = array.shape[axis]
    if n == size:
        return array
    # float32 arithmetic as torch's CPU kernel (area_pixel_compute_source_index), so the two agree
    scale = np.float32(n) / np.float32(size)
    src = np.maximum((np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
    lo = np.minimum(src.astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    weight = (src - lo).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = size
    weight = weight.reshape(shape)
    return np.take(array, lo, axis=axis) * (1 - weight) + np.take(array, hi, axis=axis) * weight


def _logits_to_slice_numpy(logits: np.ndarray, plan: ResizePlan) -> np.ndarray:
    for axis in (1, 2):
        logits = _resize_axis(logits, plan.target, axis)
    logits = logits[:, : plan.resized[0], : plan.resized[1]]
    for axis, size in ((1, plan.original[0]), (2, plan.original[1])):
        logits = _resize_axis(logits, size, axis)
    return np.ascontiguousarray(logits, dtype=np.float32)


def logits_to_slice(low_res_logits, plan: ResizePlan) -> np.ndarray:
    """(N, h0, w0) low-resolution logits -> float32 (N, H, W) logits on the slice grid.

    As SAM's ``postprocess_masks``: upsample to the padded input, crop the padding, resize to the slice.
    With torch (the local backends) its ``interpolate``; without (a remote client in a Slicer without
    PyTorch) the same resampling in numpy, equal to within float32 rounding.
    """
    logits = np.asarray(low_res_logits, dtype=np.float32)
    if logits.ndim == 2:
        logits = logits[None]
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return _logits_to_slice_numpy(logits, plan)

    t = torch.as_tensor(logits)[:, None]
    if t.shape[-2:] != (plan.target, plan.target):
        t = F.interpolate(t, size=(plan.target, plan.target), mode="bilinear", align_corners=False)
    t = t[..., : plan.resized[0], : plan.resized[1]]
    t = F.interpolate(t, size=plan.original, mode="bilinear", align_corners=False)
    return t[:, 0].numpy()
