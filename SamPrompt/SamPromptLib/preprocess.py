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


def logits_to_slice(low_res_logits, plan: ResizePlan) -> np.ndarray:
    """(N, h0, w0) low-resolution logits -> float32 (N, H, W) logits on the slice grid.

    As SAM's ``postprocess_masks``: upsample to the padded input, crop the padding, resize to the slice.
    """
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(low_res_logits, dtype=np.float32))
    if t.ndim == 2:
        t = t[None]
    t = t[:, None]
    if t.shape[-2:] != (plan.target, plan.target):
        t = F.interpolate(t, size=(plan.target, plan.target), mode="bilinear", align_corners=False)
    t = t[..., : plan.resized[0], : plan.resized[1]]
    t = F.interpolate(t, size=plan.original, mode="bilinear", align_corners=False)
    return t[:, 0].numpy()
