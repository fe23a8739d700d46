"""What the Segment Editor effect and the SamPrompt panel share inside one Slicer session.

The model settings (backend, checkpoint, device, cache size, neighbours embedded ahead) live
under ``SETTINGS_PREFIX`` + key in the application settings, written by the panel
(``write_settings``) and read by the effect and the panel (``read_settings``); ``store`` is
QSettings in Slicer, anything with ``value``/``setValue`` elsewhere.  Here they are a plain dict,
validated by ``model_settings``.  ``segmenter_for`` hands
out one ``SamSegmenter`` per (volume, window, model), all on one process-wide embedding cache
and one loaded model per (backend, checkpoint, device), so the panel's "precompute the whole
volume" fills the cache the effect then reads.  Qt-free.
"""
from __future__ import annotations

import os
import threading

from SamPromptLib.backends import DEFAULT_BACKEND, available_backends, create_backend
from SamPromptLib.backends.remote import RemoteBackend
from SamPromptLib.cache import DEFAULT_MAX_BYTES, EmbeddingCache
from SamPromptLib.segmenter import SamSegmenter, volume_fingerprint

SETTINGS_PREFIX = "SamPrompt/"
DEFAULT_SETTINGS = {"backend": DEFAULT_BACKEND, "checkpoint": "", "device": "cpu",
                    "cache_mb": DEFAULT_MAX_BYTES // (1024 * 1024), "precompute_neighbours": 2, "run_on": "local"}
RUN_ON = ("local", "server")  # this computer, or the project server the hub module is connected to
DEVICES = ("cpu", "cuda", "mps")
MAX_NEIGHBOURS = 50
MODEL_KEYS = ("backend", "checkpoint", "device", "run_on")  # a change means another model: reset()

_lock = threading.RLock()
_cache: EmbeddingCache | None = None
_backends: dict = {}
_segmenters: dict = {}
_remote: dict = {}  # (server, case, user, model) -> SamSegmenter on the project server
_fingerprints: list = []  # [(Volume, fingerprint)], newest first


def model_settings(values: dict | None = None) -> dict:
    """Defaults overlaid with ``values`` (e.g. read from QSettings as strings), validated and typed."""
    out = dict(DEFAULT_SETTINGS)
    for key, value in (values or {}).items():
        if key in out and value is not None and value != "":
            out[key] = value
    if out["backend"] not in available_backends():
        raise ValueError(f"setting 'backend': unknown SAM backend {out['backend']!r}; known: "
                         f"{', '.join(available_backends())}")
    if out["device"] not in DEVICES:
        raise ValueError(f"setting 'device' must be one of {DEVICES}, got {out['device']!r}")
    if out["run_on"] not in RUN_ON:
        raise ValueError(f"setting 'run_on' must be one of {RUN_ON}, got {out['run_on']!r}")
    for key in ("cache_mb", "precompute_neighbours"):
        try:
            out[key] = int(out[key])
        except (TypeError, ValueError):
            raise ValueError(f"setting '{key}' must be an integer, got {out[key]!r}") from None
    if out["cache_mb"] < 16:
        raise ValueError(f"setting 'cache_mb' must be at least 16 (MB), got {out['cache_mb']}")
    if not 0 <= out["precompute_neighbours"] <= MAX_NEIGHBOURS:
        raise ValueError(f"setting 'precompute_neighbours' must be in 0..{MAX_NEIGHBOURS}, "
                         f"got {out['precompute_neighbours']}")
    out["checkpoint"] = str(out["checkpoint"] or "")
    return out


def settings_problem(settings: dict) -> str:
    """What stops valid settings from loading a model (SAM without its checkpoint file), or ''."""
    if settings["backend"].startswith("sam-") and not settings["checkpoint"]:
        return f"setting 'checkpoint': backend {settings['backend']} needs Meta's checkpoint file (sam_vit_*.pth)"
    if settings["checkpoint"] and not os.path.isfile(settings["checkpoint"]):
        return f"setting 'checkpoint': no such file {settings['checkpoint']!r}"
    return ""


def read_settings(store) -> dict:
    """The saved settings (defaults where absent), validated; ValueError names a bad saved field."""
    return model_settings({key: store.value(SETTINGS_PREFIX + key) for key in DEFAULT_SETTINGS})


def write_settings(store, values: dict) -> dict:
    """Validate and save ``values`` (over the saved ones) and apply them to the shared state.

    Another model (backend, checkpoint or device) ``reset()``s the loaded models, segmenters and
    embeddings; a new cache size resizes the shared cache.  Returns the saved settings.
    """
    try:
        before = read_settings(store)
    except ValueError:  # a broken saved value is being replaced
        before = dict(DEFAULT_SETTINGS)
    settings = model_settings({**before, **values})
    for key, value in settings.items():
        store.setValue(SETTINGS_PREFIX + key, value)
    if any(settings[k] != before[k] for k in MODEL_KEYS):
        reset()
    shared_cache(settings["cache_mb"] * 1024 * 1024)
    return settings


def display_window(display_node):
    """(level, width) of a scalar volume display node (duck-typed, no Slicer import), or None."""
    if display_node is None or not hasattr(display_node, "GetWindow") or display_node.GetWindow() <= 0:
        return None
    return float(display_node.GetLevel()), float(display_node.GetWindow())


def available_devices() -> list[str]:
    """'cpu' plus 'cuda' / 'mps' where this PyTorch can use them (just 'cpu' without torch)."""
    try:
        import torch
    except ImportError:
        return ["cpu"]
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def shared_cache(max_bytes: int | None = None) -> EmbeddingCache:
    """The process-wide embedding cache (resized when ``max_bytes`` is given)."""
    global _cache
    with _lock:
        if _cache is None:
            _cache = EmbeddingCache(max_bytes or DEFAULT_MAX_BYTES)
        elif max_bytes:
            _cache.set_max_bytes(max_bytes)
        return _cache


def backend_for(settings: dict):
    """The loaded model for these settings (created once: loading/exporting takes seconds)."""
    s = model_settings(settings)
    problem = settings_problem(s)
    if problem:
        raise ValueError(problem)
    key = (s["backend"], s["checkpoint"], s["device"])
    with _lock:
        if key not in _backends:
            _backends[key] = create_backend(s["backend"], checkpoint=s["checkpoint"] or None, device=s["device"])
        return _backends[key]


def volume_id_of(volume) -> str:
    """The content fingerprint of a Volume, computed once per Volume object (the cache key of its embeddings)."""
    with _lock:
        for vol, fingerprint in _fingerprints:
            if vol is volume:
                return fingerprint
    fingerprint = volume_fingerprint(volume)
    with _lock:
        _fingerprints.insert(0, (volume, fingerprint))
        del _fingerprints[4:]
    return fingerprint


def segmenter_for(volume, volume_id: str | None = None, settings: dict | None = None, window=None):
    """The shared SamSegmenter of a volume and window (same pixels and grid = same embeddings).

    ``volume_id`` defaults to the volume's content fingerprint, so the panel and the effect,
    which get the volume from different places, share one segmenter and its embeddings when
    they pass the same window (the source volume's display window).
    """
    s = model_settings(settings)
    volume_id = volume_id or volume_id_of(volume)
    backend = backend_for(s)
    key = (volume_id, None if window is None else tuple(window), s["backend"], s["checkpoint"], s["device"])
    with _lock:
        segmenter = _segmenters.get(key)
        if segmenter is None:
            for old_key in [k for k in _segmenters if k[0] != volume_id]:  # one volume at a time holds a thread
                _segmenters.pop(old_key).close()
            segmenter = SamSegmenter(volume, backend, window=window, volume_id=volume_id,
                                     cache=shared_cache(s["cache_mb"] * 1024 * 1024),
                                     precompute_neighbours=s["precompute_neighbours"])
            _segmenters[key] = segmenter
        return segmenter


def remote_segmenter_for(volume, store, case_id: str, settings: dict | None = None, window=None):
    """The SamSegmenter of a case on the project server ``store`` (an HTTP store: its URL, user, token).

    The server embeds the case image it holds; only slice addresses and prompts travel. One per
    (server, case, user, model). Raises RemoteSamError subclasses (SamPromptLib.backends.remote) when
    the server cannot answer, ValueError when the store is not a server.
    """

    s = model_settings(settings)
    url, token = getattr(store, "location", ""), getattr(store, "token", None)
    if not str(url).startswith(("http://", "https://")):
        raise ValueError("segmenting on the project server needs a connection to a project server (not a folder)")
    model = None if s["backend"] == "remote" else s["backend"]
    key = (url, case_id, store.user, model, None if window is None else tuple(window))
    with _lock:
        segmenter = _remote.get(key)
    if segmenter is None:
        backend = RemoteBackend(store=url, case=case_id, user=store.user, token=token, model=model)
        segmenter = SamSegmenter(volume, backend, window=window)
        with _lock:
            _remote[key] = segmenter
    return segmenter


_last_answer = [""]


def answered_by(segmenter) -> str:
    """Who computes this segmenter's masks, for the panel and the effect ('this computer (cpu)', ...).

    Also remembered as ``last_answer()``: the SamPrompt panel shows who answered the effect's last prompt.
    """
    info = segmenter.backend.describe() if segmenter is not None else {}
    if info.get("runtime") == "remote":
        text = f"the project server {info.get('server', '')} ({info.get('device') or '?'}, {info.get('model') or '?'})"
    else:
        text = f"this computer ({info.get('device') or 'cpu'}, {info.get('name') or '?'})"
    _last_answer[0] = text
    return text


def last_answer() -> str:
    return _last_answer[0]


def reset() -> None:
    """Forget the loaded models, segmenters and cached embeddings (settings changed, scene closed)."""
    global _cache
    with _lock:
        for segmenter in list(_segmenters.values()) + list(_remote.values()):
            segmenter.close()
        _segmenters.clear()
        _remote.clear()
        _backends.clear()
        _fingerprints.clear()
        if _cache is not None:
            _cache.clear()
