"""Compress N annotators' per-voxel decisions into a table of distinct decision patterns.

STAPLE's EM iterations depend on the volume only through how many voxels show each distinct
pattern of annotator decisions, so they can run on a table of a few dozen rows instead of
millions of voxels.  Here a voxel's pattern is one integer code (binary: N bits; labels: a
base-L number), counted with ``bincount``; the per-pattern result is mapped back to voxels with
one table lookup.  Both passes go slab by slab so the temporaries stay small (cache-sized) and
the whole volume is never copied into a wide integer type.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_SLAB_VOXELS = 1 << 20          # voxels per slab in the encode / lookup passes
_MAX_BINCOUNT_CODES = 1 << 22   # beyond this many possible codes, use np.unique instead


@dataclass
class PatternTable:
    """Distinct decision patterns: ``decisions`` (P, N), ``counts`` (P,), per-voxel ``codes``."""

    decisions: np.ndarray      # (P, N): bool (binary) or integer labels
    counts: np.ndarray         # (P,) float64 voxel counts, all > 0
    codes: np.ndarray          # (K, J, I) integer code of each voxel's pattern
    code_of_row: np.ndarray    # (P,) the code of each row (to map results back)

    @property
    def n_voxels(self) -> int:
        return int(self.counts.sum())

    def to_voxels(self, values: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Per-pattern ``values`` (P,) -> a (K, J, I) array by table lookup."""
        values = np.asarray(values, dtype=dtype)
        out = np.empty(self.codes.shape, dtype=dtype)
        flat_codes, flat_out = self.codes.reshape(-1), out.reshape(-1)
        dense = int(self.code_of_row.max()) < _MAX_BINCOUNT_CODES
        if dense:  # a direct lookup table indexed by code
            lookup = np.zeros(int(self.code_of_row.max()) + 1, dtype=dtype)
            lookup[self.code_of_row] = values
        for start in range(0, flat_codes.size, _SLAB_VOXELS):
            stop = start + _SLAB_VOXELS
            if dense:
                np.take(lookup, flat_codes[start:stop], out=flat_out[start:stop])
            else:  # sparse codes (many annotators x labels): find each code's row
                rows = np.searchsorted(self.code_of_row, flat_codes[start:stop])
                np.take(values, rows, out=flat_out[start:stop])
        return out


def _stack(arrays) -> list:
    arrays = [np.asarray(a) for a in arrays] if not isinstance(arrays, np.ndarray) else list(arrays)
    if len(arrays) < 1:
        raise ValueError("no annotations given")
    shape = arrays[0].shape
    for n, a in enumerate(arrays):
        if a.shape != shape:
            raise ValueError(f"annotation {n} has shape {a.shape}, annotation 0 has {shape}: "
                             "bring them onto one grid first")
    return arrays


def _code_dtype(n_codes: int):
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_codes <= np.iinfo(dt).max + 1:
            return dt
    return np.uint64


def _count(codes: np.ndarray, n_codes: int) -> tuple:
    """(codes present, their voxel counts)."""
    flat = codes.reshape(-1)
    if n_codes <= _MAX_BINCOUNT_CODES:
        counts = np.zeros(n_codes, dtype=np.int64)
        for start in range(0, flat.size, _SLAB_VOXELS):
            counts += np.bincount(flat[start:start + _SLAB_VOXELS], minlength=n_codes)
        present = np.flatnonzero(counts)
        return present, counts[present]
    present, counts = np.unique(flat, return_counts=True)
    return present, counts


def binary_patterns(masks: Sequence[np.ndarray]) -> PatternTable:
    """Pattern table of N binary masks (bit n of a code = annotator n said foreground)."""
    masks = _stack(masks)
    n = len(masks)
    if n > 63:
        raise ValueError(f"at most 63 annotators are supported, got {n}")
    dtype = _code_dtype(1 << n)
    codes = np.zeros(masks[0].shape, dtype=dtype)
    flat_masks = [(m if m.dtype == np.bool_ else m != 0) for m in masks]
    flat_masks = [np.ascontiguousarray(m).reshape(-1).view(np.uint8) for m in flat_masks]
    flat_codes = codes.reshape(-1)
    if dtype == np.uint8 and flat_codes.size % 8 == 0:
        # Up to 8 annotators: each voxel's 0/1 byte is shifted within its own byte, so 8 voxels
        # can go through one 64-bit word operation (8x fewer element operations).
        flat_codes = flat_codes.view(np.uint64)
        flat_masks = [m.view(np.uint64) for m in flat_masks]
    slab = max(1, _SLAB_VOXELS // flat_codes.itemsize)
    tmp = np.empty(min(slab, flat_codes.size), dtype=flat_codes.dtype)
    for start in range(0, flat_codes.size, slab):
        stop = min(start + slab, flat_codes.size)
        out, t = flat_codes[start:stop], tmp[: stop - start]
        for bit, m in enumerate(flat_masks):
            np.left_shift(m[start:stop], bit, out=t, dtype=t.dtype, casting="unsafe")
            np.bitwise_or(out, t, out=out)
    present, counts = _count(codes, 1 << n)
    decisions = ((present[:, None].astype(np.uint64) >> np.arange(n, dtype=np.uint64)) & 1).astype(bool)
    return PatternTable(decisions, counts.astype(np.float64), codes, present)


def label_patterns(labelmaps: Sequence[np.ndarray], n_labels: int) -> PatternTable:
    """Pattern table of N label maps with values 0..n_labels-1 (code = base-n_labels number)."""
    maps = _stack(labelmaps)
    n = len(maps)
    n_codes = n_labels ** n
    if n_codes > np.iinfo(np.uint64).max:
        raise ValueError(f"{n} annotators with {n_labels} labels are too many decision patterns")
    dtype = _code_dtype(n_codes)
    codes = np.zeros(maps[0].shape, dtype=dtype)
    flat_codes = codes.reshape(-1)
    flat_maps = [np.ascontiguousarray(m).reshape(-1) for m in maps]
    for start in range(0, flat_codes.size, _SLAB_VOXELS):
        out = flat_codes[start:start + _SLAB_VOXELS]
        for k in reversed(range(n)):  # Horner: code = l_0 + L * (l_1 + L * (...))
            out *= dtype(n_labels)
            out += flat_maps[k][start:start + _SLAB_VOXELS].astype(dtype)
    present, counts = _count(codes, n_codes)
    digits = np.empty((present.size, n), dtype=np.int64)
    rest = present.astype(np.uint64)
    for k in range(n):
        digits[:, k] = (rest % np.uint64(n_labels)).astype(np.int64)
        rest //= np.uint64(n_labels)
    return PatternTable(digits, counts.astype(np.float64), codes, present)
