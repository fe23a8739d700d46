"""A simulated annotator for the demo's loop: corrects a starting segmentation slice by slice toward the truth.

No humans in `make demo`, so the work is simulated the way the interactive-segmentation literature
does it: for each structure, while its 3D Dice with the truth is below the target, the annotator
finds the axial slice with the largest error and repaints it (one Segment Editor operation).  Each
operation costs ``EDIT_BASE_S`` (find the slice, pick the tool, start) plus ``EDIT_PER_VOXEL_S`` per
voxel changed (the stroke grows with the area): stated assumptions, the same for every round, so
the rounds compare what the starting point saves, not a guess of absolute minutes.  The time goes
through an ``EffortTracker`` on a simulated clock; its record is what a real session pushes.
"""
from __future__ import annotations

import numpy as np

from DicomTeamAnnotateLib.core.segmentation import Segmentation, match_segments
from DicomTeamAnnotateLib.worklist.effort import EffortTracker

EDIT_BASE_S = 8.0
EDIT_PER_VOXEL_S = 0.01
REVIEW_S_PER_STRUCTURE = 5.0  # looking a structure over before deciding it is good enough


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


def correct_segmentation(start: Segmentation | None, truth: Segmentation, *, start_kind: str = "new",
                         start_version: str | None = None, target_dice: float = 0.9, max_edits: int = 500,
                         clock_start: float = 0.0) -> tuple[Segmentation, dict]:
    """(the corrected segmentation in the truth's segments, the effort record of the session).

    ``start`` (None: empty) is matched to ``truth`` segment by segment (terminology, then name).
    """
    tracker = EffortTracker(start=start_kind, start_version=start_version, now=clock_start)
    now = clock_start
    if start is not None and not start.geometry.same_grid(truth.geometry):
        start = start.resampled(truth.geometry)
    partners = match_segments(truth.segments, start.segments, what="start") if start is not None \
        else [None] * len(truth.segments)
    masks = {}
    for segment, partner in zip(truth.segments, partners):
        want = truth.mask(segment.name)
        have = start.mask(partner.name).copy() if partner is not None else np.zeros_like(want)
        now += REVIEW_S_PER_STRUCTURE
        tracker.activity(now)
        edits = 0
        while _dice(have, want) < target_dice and edits < max_edits:
            errors = np.logical_xor(have, want).reshape(have.shape[0], -1).sum(axis=1)
            k = int(errors.argmax())
            changed = int(errors[k])
            have[k] = want[k]
            now += EDIT_BASE_S + EDIT_PER_VOXEL_S * changed
            tracker.editor_operation("Paint", now)
            edits += 1
        masks[segment.name] = have
    result = truth.with_masks(masks)
    return result, tracker.record(start, result, now)
