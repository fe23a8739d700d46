"""SAM on the project server: the models, case images and embeddings that every user shares.

``SamService`` is the server side of the ``remote`` backend, free of HTTP (``server_plugin``
puts it behind routes): one loaded model per backend name on the server's device, one
embedding cache bounded in bytes for all users, case images loaded once per content hash and
kept a few at a time, and one ``SamSegmenter`` per (image, window, backend) on that cache.
A prompt is answered on the slice the client names (case, plane, index, window): the client
never sends pixels.  Propagation runs as a job: it reports each slice kept and its progress
through a callback, stops when its job is cancelled, and the job belongs to the user who
started it.  ``precompute`` embeds a case's slices in the background (when a case is opened).
Model calls on one backend take turns (one lock per backend, shared by its segmenters).
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict

from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.nrrd_payload import open_nrrd
from DicomTeamAnnotateLib.io.volumes import nrrd_volume
from SamPromptLib.backends import available_backends, create_backend
from SamPromptLib.cache import EmbeddingCache
from SamPromptLib.planes import check_plane, pixel_spacing, slice_shape
from SamPromptLib.preprocess import plan_resize, resolve_window
from SamPromptLib.propagate import Prompt, PropagationCancelled
from SamPromptLib.segmenter import SamSegmenter, default_window

log = logging.getLogger(__name__)

DEFAULT_CACHE_MB = 2048
MAX_VOLUMES = 4        # case images held in memory at once (least recently used dropped)
MAX_SEGMENTERS = 16    # (image, window, backend) combinations at once


class OutOfMemory(RuntimeError):
    """The server's device ran out of memory for a request (the client may fall back to its own)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is the device (CUDA, MPS) or the host running out of memory."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def read_case_image(path) -> Volume:
    """The case image blob (a .nrrd named by its hash, without suffix) as a Volume."""
    return nrrd_volume(open_nrrd(path))


class SamService:
    """The server's SAM: models per backend name, shared embeddings, case images, propagation jobs."""

    def __init__(self, device: str = "cpu", backends=("litemedsam",), cache_mb: int = DEFAULT_CACHE_MB,
                 read_image=read_case_image):
        unknown = [b for b in backends if b not in available_backends() or b == "remote"]
        if not backends or unknown:
            raise ValueError(f"--sam-backends: unknown or unusable backend(s) {', '.join(unknown) or '(none)'}; "
                             f"known: {', '.join(b for b in available_backends() if b != 'remote')}")
        self.device = device
        self.backend_names = list(backends)
        self.cache = EmbeddingCache(int(cache_mb) * 1024 * 1024)
        self._read_image = read_image
        self._lock = threading.RLock()
        self._backends: dict = {}        # name -> (SamBackend, model lock)
        self._backend_locks = {name: threading.Lock() for name in self.backend_names}
        self._volumes: OrderedDict = OrderedDict()     # image sha256 -> Volume
        self._segmenters: OrderedDict = OrderedDict()  # (sha, window, backend) -> SamSegmenter
        self._jobs: dict = {}            # job id -> (user, threading.Event)

    # ----- models, images, segmenters --------------------------------------------------------------
    def backend(self, name: str | None):
        """(loaded backend, its model lock) for a name the server offers (the first one if None)."""
        name = name or self.backend_names[0]
        if name not in self.backend_names:
            raise ValueError(f"backend {name!r} is not served here; this server offers {', '.join(self.backend_names)}")
        with self._backend_locks[name]:  # loading takes seconds: one load per name, others wait
            if name not in self._backends:
                log.info("SAM: loading %s on %s", name, self.device)
                self._backends[name] = (create_backend(name, device=self.device), threading.Lock())
        return self._backends[name]

    def describe(self) -> dict:
        """Device, offered backends (with what each takes, once loaded) and the cache's state."""
        loaded = {name: backend.describe() for name, (backend, _) in list(self._backends.items())}
        return {"device": self.device, "backends": self.backend_names, "default_backend": self.backend_names[0],
                "loaded": {n: {k: v for k, v in d.items() if k != "checkpoint"} for n, d in loaded.items()},
                "cache": self.cache.stats()}

    def volume(self, sha256: str, path) -> Volume:
        """The case image of this content hash, read once and kept among the last ``MAX_VOLUMES``."""
        with self._lock:
            found = self._volumes.get(sha256)
            if found is not None:
                self._volumes.move_to_end(sha256)
                return found
        volume = self._read_image(path)
        with self._lock:
            self._volumes[sha256] = volume
            while len(self._volumes) > MAX_VOLUMES:
                self._volumes.popitem(last=False)
        return volume

    def resolve_window(self, volume: Volume, window) -> tuple:
        """The (level, width) a request names, or the case's default (soft tissue for CT)."""
        lw = resolve_window(window) if window is not None else None
        return tuple(lw) if lw is not None else tuple(default_window(volume))

    def segmenter(self, sha256: str, path, backend: str | None, window) -> SamSegmenter:
        """The shared segmenter of one case image, window and backend (created on first use)."""
        volume = self.volume(sha256, path)
        window = self.resolve_window(volume, window)
        model, model_lock = self.backend(backend)
        key = (sha256, window, model.name)
        with self._lock:
            seg = self._segmenters.get(key)
            if seg is not None:
                self._segmenters.move_to_end(key)
                return seg
            seg = SamSegmenter(volume, model, window=window, cache=self.cache, volume_id=sha256,
                               model_lock=model_lock)
            self._segmenters[key] = seg
            while len(self._segmenters) > MAX_SEGMENTERS:
                self._segmenters.popitem(last=False)[1].close()
        return seg

    def case_info(self, sha256: str, path) -> dict:
        """What a client needs before prompting: the image's shape and default window."""
        volume = self.volume(sha256, path)
        return {"shape": list(volume.array.shape), "window": list(default_window(volume))}

    def plan(self, seg: SamSegmenter, plane: str):
        """The ResizePlan of every slice of ``plane`` (the model input it maps onto)."""
        shape = slice_shape(seg.volume.array.shape, check_plane(plane))
        return plan_resize(shape, seg.backend.image_size, pixel_spacing(seg.volume.geometry, plane))

    # ----- requests --------------------------------------------------------------------------------
    def _guard(self, fn):
        """Run ``fn``; a device out of memory becomes OutOfMemory (with what to do)."""
        try:
            return fn()
        except Exception as exc:
            if is_out_of_memory(exc):
                log.warning("SAM on %s ran out of memory: %s", self.device, exc)
                raise OutOfMemory(f"the server's {self.device} ran out of memory ({str(exc).splitlines()[0][:200]}); "
                                  "try again later or run SAM locally") from None
            raise

    def prompt(self, seg: SamSegmenter, plane: str, index: int, prompt: Prompt, mask_input=None,
               multimask: bool = False):
        """The Prediction for a prompt on one slice (the same call a local segmenter makes)."""
        check_plane(plane)
        if not 0 <= int(index) < seg.slice_count(plane):
            raise ValueError(f"{plane} slice {index} is outside the volume (0..{seg.slice_count(plane) - 1})")
        return self._guard(lambda: seg.predict(plane, int(index), prompt, mask_input=mask_input, multimask=multimask))

    def precompute(self, seg: SamSegmenter, plane: str, indices=None) -> int:
        """Queue slices of a plane (all of them by default) for embedding in the background."""
        check_plane(plane)
        n = seg.slice_count(plane)
        indices = range(n) if indices is None else [int(i) for i in indices if 0 <= int(i) < n]
        return seg.precompute(plane, indices, replace=False)

    def start_job(self, user: str) -> tuple:
        """(job id, cancel event) of a new propagation owned by ``user``."""
        job_id, event = uuid.uuid4().hex, threading.Event()
        with self._lock:
            self._jobs[job_id] = (user, event)
        return job_id, event

    def end_job(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def cancel(self, user: str, job_id: str) -> bool:
        """Cancel one of ``user``'s running jobs; False when there is no such job (finished, or another's)."""
        with self._lock:
            found = self._jobs.get(job_id)
        if found is None or found[0] != user:
            return False
        found[1].set()
        return True

    def propagate(self, seg: SamSegmenter, plane: str, anchors: dict, direction: str, extend, *, cancel, on_result,
                  progress) -> tuple:
        """(final {slice: SliceResult}, stops); PropagationCancelled (with its partial) when ``cancel`` is set."""
        stops: list = []
        results = self._guard(lambda: seg.propagate(plane, anchors, direction, extend=extend, cancel=cancel,
                                                    progress=progress, on_result=on_result, stops=stops))
        return results, stops


__all__ = ["OutOfMemory", "PropagationCancelled", "SamService", "read_case_image"]
