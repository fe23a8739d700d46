"""ONNX export (once, cached, verified) and onnxruntime sessions for the backends' networks.

A network is exported from the shipped weights the first time it is needed, into the user's
cache folder under a name keyed by the weights' sha256, and kept only if onnxruntime reproduces
PyTorch's outputs within ``ATOL`` on the export's example inputs: fp32 throughout, so the
speed-up never changes a mask.  Later runs load the cached file directly.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path
from SamPromptLib.backends import openvino_runtime

log = logging.getLogger(__name__)

ATOL = 1e-4
OPSET = 17
ENGINES = ("auto", "openvino", "onnxruntime")
FORMAT_VERSION = 1  # bump when the exported graphs change, so stale cache files are not reused
_EXPORT_LOCK = threading.Lock()


def cache_dir() -> Path:
    """The user's cache folder for SamPrompt ($DICOMTEAM_CACHE_DIR, else the platform's cache folder)."""
    override = os.environ.get("DICOMTEAM_CACHE_DIR")
    if override:
        base = Path(override)
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "DicomTeamAnnotate"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "DicomTeamAnnotate"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dicomteamannotate"
    return base / "sam"


def cached_model_path(model_name: str, part: str, weights_sha256: str) -> Path:
    """Where the ONNX file of one network part of one set of weights lives."""
    return cache_dir() / f"{model_name}-{part}-{weights_sha256[:16]}-v{FORMAT_VERSION}-opset{OPSET}.onnx"


def make_session(path, threads: int | None = None):
    """An onnxruntime CPU session with all graph optimisations; ``threads`` None = one per core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or 0)  # 0: onnxruntime picks the physical core count
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No busy-waiting of idle pool threads after a run: the decoder runs between two encoder runs
    # (OpenVINO's threads, or the precompute thread) and its spinning threads would take their
    # cores (measured: prompt 69 -> 44 ms on 2 cores, encoder unchanged).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def open_session(path, example: dict, threads: int | None = None, engine: str = "auto"):
    """A CPU session of a verified ONNX file on the fastest engine that reproduces it.

    ``engine``: 'auto' (OpenVINO when installed and its output matches onnxruntime's on
    ``example`` within ``ATOL``, else onnxruntime), 'openvino' (that or an error) or
    'onnxruntime'.  The session's ``engine`` attribute, where set, names OpenVINO.
    """
    if engine not in ENGINES:
        raise ValueError(f"ONNX engine must be one of {ENGINES}, got {engine!r}")
    if engine == "onnxruntime":
        return make_session(path, threads)
    if not openvino_runtime.is_available():
        if engine == "openvino":
            raise RuntimeError("the 'openvino' engine needs the openvino package (pip install openvino)")
        return make_session(path, threads)
    session = openvino_runtime.verified_session(path, example, lambda: make_session(path, threads), threads, ATOL)
    if session is None:
        if engine == "openvino":
            raise RuntimeError(f"OpenVINO cannot run {Path(path).name} within {ATOL:g} of onnxruntime (see the log)")
        return make_session(path, threads)
    return session


def engine_of(session) -> str:
    """'openvino' or 'onnxruntime': which engine runs a session from ``open_session``."""
    return getattr(session, "engine", "onnxruntime")


def run(session, feeds: dict) -> list:
    """Run a session on named float32 inputs; returns its outputs in order."""
    return session.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})


def max_difference(a_list, b_list) -> float:
    """Largest absolute difference between two lists of arrays."""
    return max(float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)))) for a, b in zip(a_list, b_list))


def export_verified(module, example: dict, path: Path, output_names: list, dynamic_axes: dict | None = None,
                    atol: float = ATOL) -> Path:
    """Export ``module`` to ``path`` (atomically) if absent, after checking onnxruntime matches PyTorch."""
    import torch


    path = Path(path)
    with _EXPORT_LOCK:
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        inputs = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in example.values())
        with torch.no_grad():
            expected = module(*inputs)
        expected = [t.numpy() for t in (expected if isinstance(expected, (tuple, list)) else (expected,))]
        log.info("exporting %s to ONNX (once; cached in %s)", path.name, path.parent)
        with atomic_path(path) as tmp:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation/tracer chatter
                torch.onnx.export(module, inputs, str(tmp), input_names=list(example), output_names=output_names,
                                  dynamic_axes=dynamic_axes or {}, opset_version=OPSET, dynamo=False)
            got = run(make_session(tmp), example)
            diff = max_difference(expected, got)
            if diff > atol:
                raise RuntimeError(f"ONNX export of {path.name} differs from PyTorch by {diff:.2e} (> {atol:g}); "
                                   f"use the 'torch' runtime")
            log.info("ONNX export of %s verified: max difference %.2e", path.name, diff)
        return path
