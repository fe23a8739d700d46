"""The facade that the Segment Editor effect, the CLI and the tests use: one volume, one model.

``SamSegmenter`` holds a volume (array + Geometry), a backend, the display window and the
embedding cache; it answers a prompt on a slice of any plane with a mask on that slice's exact
grid, and propagates through the volume.  With the ``remote`` backend the same calls go to the
project server, which holds the case image, its embeddings and the model: the segmenter then
sends slice addresses (plane, index, window) and prompts, never pixels.  ``PromptSession`` is
what the effect keeps while the user works on one segment: the prompted slices (anchors), their previews, the propagated slices,
and corrections (one more prompt on a bad slice, then propagate again from there).
Inputs and outputs cross this boundary with their Geometry (``Volume``); no Qt, no Slicer.
"""
from __future__ import annotations

import hashlib
import logging
import threading

import numpy as np

from DicomTeamAnnotateLib.core.volume import Volume
from SamPromptLib import planes
from SamPromptLib.backends import DEFAULT_BACKEND, SamBackend, create_backend
from SamPromptLib.cache import EmbeddingCache, Precomputer
from SamPromptLib.planes import check_plane, extract_slice, insert_slice, pixel_spacing, slice_count, slice_shape
from SamPromptLib.preprocess import intensity_window, window_to_unit
from SamPromptLib.propagate import DIRECTIONS, Prompt, PropagationSettings, Propagator, SliceResult

log = logging.getLogger(__name__)

CT_SOFT_TISSUE = (40.0, 400.0)


def volume_fingerprint(volume: Volume) -> str:
    """A short content hash of a volume (pixels + grid): the cache key of its embeddings."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(np.ascontiguousarray(volume.array).data)
    digest.update(repr(volume.geometry.to_dict()).encode())
    return digest.hexdigest()


def default_window(volume: Volume) -> tuple:
    """Soft tissue (40/400) for CT in Hounsfield units, else the volume's own intensity range."""
    modality = str(volume.metadata.get("modality", volume.metadata.get("Modality", ""))).upper()
    if modality == "CT" or (not modality and float(np.min(volume.array)) <= -500):
        return CT_SOFT_TISSUE
    return intensity_window(volume.array, None)


class SamSegmenter:
    """Prompts -> masks on one volume with one backend; embeddings cached and computed ahead."""

    def __init__(self, volume: Volume | None, backend: str | SamBackend = DEFAULT_BACKEND, *, window=None,
                 checkpoint=None, device: str = "cpu", cache: EmbeddingCache | None = None,
                 cache_bytes: int | None = None, volume_id: str | None = None, precompute_neighbours: int = 0,
                 settings: PropagationSettings | None = None, model_lock=None, **backend_options):
        """``volume`` may be None with the remote backend (the server's case image is used);
        ``model_lock`` lets segmenters that share one backend take turns on it (the server)."""
        if volume is not None and not isinstance(volume, Volume):
            raise TypeError(f"volume must be a DicomTeamAnnotateLib.core.volume.Volume, got {type(volume).__name__}")
        self.backend = backend if isinstance(backend, SamBackend) else create_backend(
            backend, checkpoint=checkpoint, device=device, **backend_options)
        self.remote = bool(getattr(self.backend, "addresses_slices", False))
        if self.remote:  # the server's image: a local volume must be on its grid
            volume, window = self.backend.case_volume(volume), self.backend.resolve_window(window)
        elif volume is None:
            raise TypeError("volume is required (only the remote backend works from the server's case image)")
        self.volume = volume
        self.window = tuple(default_window(volume) if window is None else intensity_window(volume.array, window))
        self.volume_id = volume_id or (self.backend.volume_id if self.remote else volume_fingerprint(volume))
        self.cache = cache if cache is not None else EmbeddingCache(**({"max_bytes": cache_bytes} if cache_bytes else {}))
        self.settings = settings or PropagationSettings()
        self.precompute_neighbours = int(precompute_neighbours)
        # one model call at a time: 2 cores gain nothing from two
        self._model_lock = model_lock if model_lock is not None else threading.Lock()
        self._precomputer: Precomputer | None = None
        self._backend_key = f"{self.backend.name}:{getattr(self.backend, 'weights_sha256', '') or ''}"
        self.last_stops: list = []  # (slice, reason) where the last propagation stopped

    # ----- embeddings ------------------------------------------------------------------------------
    def key(self, plane: str, index: int) -> tuple:
        """The cache key of one slice's embedding."""
        return (self.volume_id, check_plane(plane), int(index), self.window, self._backend_key)

    def slice_count(self, plane: str) -> int:
        return slice_count(self.volume.array.shape, plane)

    def slice_image(self, plane: str, index: int) -> np.ndarray:
        """The windowed slice, float32 in [0, 1], rows/columns as ``planes.extract_slice``."""
        if self.remote and not self.backend.has_pixels:
            raise RuntimeError("remote SAM: the slice pixels stay on the server (give the local volume to see them)")
        return window_to_unit(extract_slice(self.volume.array, plane, index), *self.window)

    def embedding(self, plane: str, index: int):
        """The slice's embedding, from the cache or computed now (and cached)."""
        if self.remote:
            raise RuntimeError("remote SAM: embeddings stay on the server (use predict / segment_slice)")
        key = self.key(plane, index)
        found = self.cache.get(key)
        if found is not None:
            return found
        image = self.slice_image(plane, index)
        with self._model_lock:
            found = self.cache.get(key)  # the precompute thread may have just made it
            if found is None:
                found = self.backend.set_image(image, spacing=pixel_spacing(self.volume.geometry, plane))
                self.cache.put(key, found)
        return found

    def _compute_key(self, key) -> None:
        _, plane, index, _, _ = key
        self.embedding(plane, index)

    def precompute(self, plane: str, indices=None, *, around: int | None = None, wait: bool = False,
                   replace: bool = True) -> int:
        """Embed slices in the background (all of the plane, ``indices``, or the neighbours of ``around``).

        Returns the number queued; ``wait`` blocks until the queue is empty.
        """
        n = self.slice_count(plane)
        if indices is None and around is not None:
            reach = max(1, self.precompute_neighbours)
            indices = [around + d * s for d in range(1, reach + 1) for s in (1, -1) if 0 <= around + d * s < n]
        elif indices is None:
            indices = range(n)
        if self.remote:
            return self.backend.precompute(plane, self.window, [int(i) for i in indices])
        if self._precomputer is None:
            self._precomputer = Precomputer(self.cache, self._compute_key)
        keys = [self.key(plane, i) for i in indices]
        self._precomputer.request(keys, replace=replace)
        if wait:
            self._precomputer.wait_idle()
        return len(keys)

    def precompute_pending(self) -> int:
        """Slices still queued or being embedded in the background."""
        return 0 if self._precomputer is None else self._precomputer.pending

    def close(self) -> None:
        """Stop the background thread (the cache is kept)."""
        if self._precomputer is not None:
            self._precomputer.stop()
            self._precomputer = None

    # ----- prompts -----------------------------------------------------------------------------------
    def adapt_prompt(self, prompt: Prompt, shape) -> tuple:
        """(prompt the backend can take, notes): a box-only model gets + clicks as box growth, - clicks dropped."""
        notes = []
        if prompt.points is None or self.backend.supports_points:
            return prompt, notes
        positives = [p for p, lab in zip(prompt.points, prompt.labels) if lab == 1]
        if len(positives) < len(prompt.points):
            notes.append(f"{self.backend.name} takes boxes only: negative clicks are ignored")
        if prompt.box is None:
            if len(positives) < 2:
                raise ValueError(f"{self.backend.name} takes box prompts only: drag a box "
                                 f"(or click two opposite corners as positive points)")
            box = planes.bounding_box_of_points(positives)
        else:
            box = prompt.box
        if positives:
            xs = [box[0], box[2]] + [p[0] for p in positives]
            ys = [box[1], box[3]] + [p[1] for p in positives]
            box = (min(xs), min(ys), max(xs), max(ys))
            notes.append(f"{self.backend.name} takes boxes only: the box was grown to include the positive clicks")
        rows, cols = shape
        box = (max(0.0, box[0]), max(0.0, box[1]), min(cols - 1.0, box[2]), min(rows - 1.0, box[3]))
        return Prompt(box=box), notes

    def predict(self, plane: str, index: int, prompt: Prompt, mask_input=None, multimask: bool = False):
        """The backend's Prediction for a prompt on one slice (embedding cached)."""
        if self.remote:
            return self.backend.predict_slice(plane, index, self.window, prompt, mask_input=mask_input,
                                              multimask=multimask)
        embedding = self.embedding(plane, index)
        prompt, notes = self.adapt_prompt(prompt, embedding.plan.original)
        for note in notes:
            log.info(note)
        with self._model_lock:
            return self.backend.predict(embedding, box=prompt.box, points=prompt.points, labels=prompt.labels,
                                        mask_input=mask_input, multimask=multimask)

    def segment_slice(self, plane: str, index: int, box=None, points=None, labels=None,
                      multimask: bool = False) -> SliceResult:
        """The mask of one prompted slice (best of the multimask outputs when ``multimask``)."""
        prompt = Prompt(box=box, points=points, labels=labels)
        if prompt.box is not None:
            planes.check_box_inside(prompt.box, slice_shape(self.volume.array.shape, plane))
        prediction = self.predict(plane, index, prompt, multimask=multimask)
        best = prediction.best()
        if self.precompute_neighbours:
            self.precompute(plane, around=index)
        return SliceResult(index, prediction.logits[best], float(prediction.scores[best]),
                           prediction.low_res_logits[best], "prompt")

    def propagate(self, plane: str, anchors: dict, direction: str = "both", *, progress=None, cancel=None,
                  anchor_results: dict | None = None, extend: tuple | None = None, on_result=None,
                  stops: list | None = None) -> dict:
        """{slice: SliceResult}: the anchors' masks, the gaps between anchors, and beyond per ``direction``.

        ``on_result(SliceResult)`` sees each slice as it is kept (a reconciled one again at the end);
        ``stops`` receives this run's (slice, reason) stops (``last_stops`` is shared by all callers).
        """
        check_plane(plane)
        anchors = {int(k): (v if isinstance(v, Prompt) else Prompt(**v)) for k, v in anchors.items()}
        if self.remote:  # the server propagates (prompted slices again: the same masks, its embeddings)
            results, self.last_stops = self.backend.propagate(plane, self.window, anchors, direction, extend=extend,
                                                              progress=progress, cancel=cancel)
            return results
        propagator = Propagator(lambda k, p, m: self.predict(plane, k, p, mask_input=m), self.slice_count(plane),
                                mask_prompts=self.backend.supports_mask_input, settings=self.settings,
                                progress=progress, cancel=cancel, on_result=on_result,
                                slice_image=lambda k: self.slice_image(plane, k))
        if stops is not None:
            propagator.stops = stops
        self.last_stops = propagator.stops
        return propagator.run(anchors, direction, anchor_results, extend)

    def to_volume(self, plane: str, results: dict) -> Volume:
        """A uint8 0/1 label map on the volume's exact grid from per-slice results."""
        out = np.zeros(self.volume.array.shape, dtype=np.uint8)
        for index, result in results.items():
            insert_slice(out, plane, index, result.mask.astype(np.uint8))
        return Volume(out, self.volume.geometry, {"sam_backend": self.backend.name, "sam_plane": plane,
                                                  "sam_slices": sorted(int(k) for k in results)})

    def segment(self, plane: str, index: int, box=None, points=None, labels=None, *, propagate=False,
                progress=None, cancel=None) -> Volume:
        """Headless one-shot: prompt one slice, optionally propagate ('both' if True), return the label map."""
        prompt = Prompt(box=box, points=points, labels=labels)
        result = self.segment_slice(plane, index, box=box, points=points, labels=labels)
        results = {index: result}
        if propagate:
            direction = "both" if propagate is True else propagate
            if direction not in DIRECTIONS:
                raise ValueError(f"propagate must be True or one of {DIRECTIONS}, got {propagate!r}")
            results = self.propagate(plane, {index: prompt}, direction, progress=progress, cancel=cancel,
                                     anchor_results=results)
        return self.to_volume(plane, results)


class PromptSession:
    """The effect's working state for one segment in one plane: anchors, previews, propagated slices."""

    def __init__(self, segmenter: SamSegmenter, plane: str):
        self.segmenter = segmenter
        self.plane = check_plane(plane)
        self.anchors: dict = {}   # slice -> Prompt
        self.results: dict = {}   # slice -> SliceResult (prompted, propagated or reconciled)
        self.last_prompted: int | None = None

    def fork(self) -> PromptSession:
        """A copy to work on (a worker thread): the original is unchanged until the caller adopts the copy,
        so a stopped or failed prompt or propagation leaves what the user sees as it was."""
        copy = PromptSession(self.segmenter, self.plane)
        copy.anchors, copy.results, copy.last_prompted = dict(self.anchors), dict(self.results), self.last_prompted
        return copy

    def prompt(self, index: int, box=None, points=None, labels=None) -> SliceResult:
        """Set (replace) the prompt of one slice and return its preview mask; the slice becomes an anchor."""
        prompt = Prompt(box=box, points=points, labels=labels)
        result = self.segmenter.segment_slice(self.plane, index, box=prompt.box, points=prompt.points,
                                              labels=prompt.labels)
        self.anchors[int(index)] = prompt
        self.results[int(index)] = result
        self.last_prompted = int(index)
        return result

    def add_point(self, index: int, point, positive: bool = True) -> SliceResult:
        """Add a +/- click to a slice's prompt (keeping its box and earlier clicks) and re-predict."""
        old = self.anchors.get(int(index))
        points = list(old.points or []) if old else []
        labels = list(old.labels or []) if old else []
        points.append(tuple(point))
        labels.append(1 if positive else 0)
        return self.prompt(index, box=old.box if old else None, points=points, labels=labels)

    def remove_anchor(self, index: int) -> None:
        """Forget a slice's prompt and its mask."""
        self.anchors.pop(int(index), None)
        self.results.pop(int(index), None)

    def propagate(self, direction: str = "both", *, start: int | None = None, progress=None, cancel=None) -> dict:
        """Propagate from the anchors; ``start`` limits it to one anchor (a corrected slice) and its side.

        Slices not reached keep their earlier result, so a correction re-propagates only from
        the corrected slice to the next anchor (reconciled from both ends) or to the end.
        """
        if not self.anchors:
            raise ValueError("prompt a slice first (drag a box)")
        anchors, extend = dict(self.anchors), None
        if start is not None:
            if int(start) not in anchors:
                raise ValueError(f"slice {start} has no prompt to propagate from")
            order = sorted(anchors)
            i = order.index(int(start))
            keep, up, down = {int(start)}, direction in ("up", "both"), direction in ("down", "both")
            # Towards a neighbouring anchor: fill the gap (both ends, reconciled) and stop there.
            if up and i + 1 < len(order):
                keep.add(order[i + 1])
                up = False
            if down and i > 0:
                keep.add(order[i - 1])
                down = False
            anchors, extend = {k: anchors[k] for k in keep}, (up, down)
        known = {k: self.results[k] for k in anchors if k in self.results and self.results[k].source == "prompt"}
        new = self.segmenter.propagate(self.plane, anchors, direction, progress=progress, cancel=cancel,
                                       anchor_results=known, extend=extend)
        self.results.update(new)
        return new

    def mask_volume(self) -> Volume:
        """Everything so far as a uint8 0/1 label map on the volume's grid."""
        return self.segmenter.to_volume(self.plane, self.results)

    def clear(self) -> None:
        self.anchors.clear()
        self.results.clear()
        self.last_prompted = None
