"""3D propagation: prompted slices (anchors) seed their neighbours, slice after slice.

Each step prompts the next slice with the previous slice's mask: its bounding box grown by a
margin (``max(margin_px, margin_fraction * box size)``: a fixed few voxels are too tight for a
large organ whose outline moves between slices, and too loose for a small vessel), plus the
previous low-resolution logits as a mask prompt where the model was trained for that (SAM; not
LiteMedSAM, whose mask branch is untrained).  A chain stops when the mask vanishes, when the
model's own quality score drops below ``min_score``, when the area jumps (a leak) or rebounds
after shrinking (the organ ended and the model moved on to its neighbour), or when the mean
windowed intensity under the mask drifts from the prompted slice's by more than
``max_intensity_drift`` (a fraction of the window: the mask slid onto another tissue).  Between
two anchors both ends propagate towards each other and the two predictions are reconciled by
a distance-weighted average of their logits, so a correction prompt on a bad slice fixes the
slices around it from both sides.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SamPromptLib.planes import bounding_box

DIRECTIONS = ("up", "down", "both")


class PropagationCancelled(Exception):
    """The user cancelled; ``partial`` holds the slices finished so far."""

    def __init__(self, partial: dict):
        super().__init__("propagation cancelled")
        self.partial = partial


@dataclass
class Prompt:
    """A prompt on one slice: a box (A0, B0, A1, B1) and/or points [(A, B)] with labels (1 +, 0 -)."""

    box: tuple | None = None
    points: list | None = None
    labels: list | None = None

    def __post_init__(self):
        if self.box is not None:
            a0, b0, a1, b1 = (float(v) for v in self.box)
            self.box = (min(a0, a1), min(b0, b1), max(a0, a1), max(b0, b1))
        if self.points is not None and len(self.points) == 0:
            self.points, self.labels = None, None
        if self.points is not None:
            self.points = [tuple(float(v) for v in p) for p in self.points]
            self.labels = [int(v) for v in (self.labels if self.labels is not None else [1] * len(self.points))]
            if len(self.labels) != len(self.points):
                raise ValueError(f"{len(self.points)} points but {len(self.labels)} labels")
        if self.box is None and self.points is None:
            raise ValueError("a prompt needs a box or at least one point")


@dataclass
class PropagationSettings:
    """Knobs of the propagation; the defaults were chosen on the shared abdominal CT (see the tests)."""

    margin_px: float = 3.0
    margin_fraction: float = 0.1
    min_score: float = 0.5
    min_area_px: int = 4
    max_growth: float = 3.0
    rebound_below: float = 0.5     # area fraction of the chain's largest mask under which ...
    rebound_growth: float = 1.3    # ... a regrowth by this factor means the organ ended
    max_intensity_drift: float = 0.2
    use_mask_prompt: bool = True


@dataclass
class SliceResult:
    """One slice's outcome: logits on the slice grid (mask = logits > 0) and the model's score."""

    index: int
    logits: np.ndarray
    score: float
    low_res_logits: np.ndarray
    source: str  # "prompt", "propagated" or "reconciled"
    extra: dict = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return self.logits > 0.0


def grow_box(box, margin_px: float, margin_fraction: float, shape) -> tuple:
    """A box grown on every side by max(margin_px, margin_fraction * its longer side), clipped to the slice."""
    a0, b0, a1, b1 = box
    m = max(float(margin_px), float(margin_fraction) * max(a1 - a0, b1 - b0))
    rows, cols = shape
    return (max(0.0, a0 - m), max(0.0, b0 - m), min(cols - 1.0, a1 + m), min(rows - 1.0, b1 + m))


def _as_result(index: int, prediction, source: str) -> SliceResult:
    best = prediction.best()
    return SliceResult(index, prediction.logits[best], float(prediction.scores[best]),
                       prediction.low_res_logits[best], source)


class Propagator:
    """Runs prompts and propagation over the slices of one plane through ``predict(index, prompt, mask_input)``."""

    def __init__(self, predict, n_slices: int, *, mask_prompts: bool = False,
                 settings: PropagationSettings | None = None, progress=None, cancel=None, slice_image=None,
                 on_result=None):
        self._predict = predict
        self._on_result = on_result  # SliceResult -> None, for each slice kept (the server streams them)
        self._slice_image = slice_image  # index -> windowed slice in [0, 1]; enables the intensity rule
        self.n_slices = int(n_slices)
        self.settings = settings or PropagationSettings()
        self.mask_prompts = bool(mask_prompts) and self.settings.use_mask_prompt
        self._progress = progress
        self._cancel = cancel
        self._done = 0
        self._total = 1
        self._results: dict = {}
        self.stops: list = []  # (slice, reason) where chains stopped

    def _step(self) -> None:
        self._done += 1
        cancelled = self._cancel is not None and (self._cancel.is_set() if hasattr(self._cancel, "is_set")
                                                  else self._cancel())
        if cancelled:
            raise PropagationCancelled(dict(self._results))
        if self._progress is not None:
            self._progress(min(self._done, self._total), self._total)

    def prompt(self, index: int, prompt: Prompt) -> SliceResult:
        """The mask of one prompted slice."""
        result = _as_result(index, self._predict(index, prompt, None), "prompt")
        self._keep(result)
        self._step()
        return result

    def _keep(self, result: SliceResult) -> None:
        self._results[result.index] = result
        if self._on_result is not None:
            self._on_result(result)

    def _mean_intensity(self, result: SliceResult):
        if self._slice_image is None:
            return None
        mask = result.mask
        return float(self._slice_image(result.index)[mask].mean()) if mask.any() else None

    def stop_reason(self, result: SliceResult, prev_area: int, max_area: int, reference) -> str | None:
        """Why the chain must stop at ``result`` (None: keep it and go on)."""
        s = self.settings
        area = int(result.mask.sum())
        if area < s.min_area_px:
            return "mask vanished"
        if result.score < s.min_score:
            return f"quality score {result.score:.2f} < {s.min_score:g}"
        if area > s.max_growth * max(prev_area, 1):
            return "area jumped (leak)"
        if prev_area < s.rebound_below * max_area and area > s.rebound_growth * prev_area:
            return "area regrew after shrinking (organ ended)"
        if reference is not None:
            mean = self._mean_intensity(result)
            if mean is not None and abs(mean - reference) > s.max_intensity_drift:
                return "intensity under the mask drifted (another tissue)"
        return None

    def chain(self, start: SliceResult, indices) -> dict:
        """Propagate from ``start`` through ``indices`` in order until a stop rule fires."""
        s = self.settings
        out, prev = {}, start
        prev_area = max_area = int(prev.mask.sum())
        reference = start.extra.get("mean_intensity")
        if reference is None:
            reference = start.extra["mean_intensity"] = self._mean_intensity(start)
        for k in indices:
            box = bounding_box(prev.mask)
            if box is None:
                break
            prompt = Prompt(box=grow_box(box, s.margin_px, s.margin_fraction, prev.logits.shape))
            prediction = self._predict(k, prompt, prev.low_res_logits if self.mask_prompts else None)
            result = _as_result(k, prediction, "propagated")
            self._step()
            reason = self.stop_reason(result, prev_area, max_area, reference)
            if reason:
                self.stops.append((k, reason))
                break
            out[k] = result
            self._keep(result)
            prev, prev_area = result, int(result.mask.sum())
            max_area = max(max_area, prev_area)
        return out

    def run(self, anchors: dict, direction: str = "both", anchor_results: dict | None = None,
            extend: tuple | None = None) -> dict:
        """{slice: SliceResult} for the anchors, the gaps between them, and beyond them per ``direction``.

        ``anchor_results`` reuses masks already computed for some anchors (the previewed slice);
        ``extend`` = (up, down) overrides whether to go beyond the outermost anchors.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if not anchors:
            raise ValueError("propagation needs at least one prompted slice")
        order = sorted(int(k) for k in anchors)
        for k in order:
            if not 0 <= k < self.n_slices:
                raise ValueError(f"prompted slice {k} is outside the volume (0..{self.n_slices - 1})")
        up, down = extend if extend is not None else (direction in ("up", "both"), direction in ("down", "both"))
        gaps = [(a, b) for a, b in zip(order, order[1:]) if b - a > 1]
        self._total = (len(order) + 2 * sum(b - a - 1 for a, b in gaps)
                       + (self.n_slices - 1 - order[-1] if up else 0) + (order[0] if down else 0))
        self._done = 0
        known = dict(anchor_results or {})
        results = {}
        for k in order:
            if k in known:
                results[k] = known[k]
                self._keep(known[k])
            else:
                results[k] = self.prompt(k, anchors[k])
        for a, b in gaps:
            forward = self.chain(results[a], range(a + 1, b))
            backward = self.chain(results[b], range(b - 1, a, -1))
            for k, merged in reconcile(a, b, forward, backward).items():
                results[k] = merged
                if merged.source == "reconciled":
                    self._keep(merged)
        if up:
            results.update(self.chain(results[order[-1]], range(order[-1] + 1, self.n_slices)))
        if down:
            results.update(self.chain(results[order[0]], range(order[0] - 1, -1, -1)))
        return results


def reconcile(a: int, b: int, forward: dict, backward: dict) -> dict:
    """Merge the chains from anchor ``a`` (forward) and ``b`` (backward): logits weighted by nearness."""
    out = {}
    for k in range(a + 1, b):
        f, g = forward.get(k), backward.get(k)
        if f is None and g is None:
            continue
        if f is None or g is None:
            out[k] = f or g
            continue
        wf = (b - k) / (b - a)
        wg = 1.0 - wf
        out[k] = SliceResult(k, wf * f.logits + wg * g.logits, wf * f.score + wg * g.score,
                             wf * f.low_res_logits + wg * g.low_res_logits, "reconciled")
    return out
