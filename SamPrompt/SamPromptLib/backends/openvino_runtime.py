"""OpenVINO as a faster CPU engine for the ONNX files that ``onnx_runtime`` exports and verifies.

Why: on the reference 2-core Xeon the LiteMedSAM image encoder takes 0.50 s per slice on
onnxruntime and 0.36-0.40 s on OpenVINO (it fuses the encoder's convolution + GELU blocks and
its window-attention reshapes), with outputs equal within 3e-6.  Precision stays fp32: OpenVINO
would otherwise pick bf16 on CPUs with AMX or AVX512-BF16, which changes masks.

A compiled network is used only after it reproduced onnxruntime's output on the export's
example input within ``ATOL`` (onnxruntime itself was checked against PyTorch at export).  The
check runs once per ONNX file and OpenVINO version; a small marker file next to the ONNX file
remembers it.  If ``openvino`` is missing or the check fails, callers stay on onnxruntime.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import write_json_atomic

log = logging.getLogger(__name__)


def is_available() -> bool:
    """Whether the ``openvino`` package imports here."""
    try:
        import openvino  # noqa: F401
    except Exception:  # ImportError, or a broken native library
        return False
    return True


def cpu_has_bf16() -> bool:
    """Whether OpenVINO can run bf16 on this CPU (AVX512-BF16 or AMX)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoSession:
    """An OpenVINO CPU model with onnxruntime's ``run(None, feeds)`` call, safe from several threads.

    ``precision`` is the float precision of the operators a model leaves in float: 'f32'
    (the default, exact), or 'bf16' where the CPU has bf16 instructions (f32 elsewhere; the
    ``precision`` attribute says which one is in effect).  Only the INT8 encoder, verified as
    a whole, asks for bf16.
    """

    engine = "openvino"

    def __init__(self, path, threads: int | None = None, precision: str = "f32", cache_dir=None):
        """``cache_dir``: where OpenVINO keeps the compiled model, so that the next process loads it
        instead of compiling again (2.4 -> 0.4 s for the INT8 encoder)."""
        import openvino as ov

        if precision not in ("f32", "bf16"):
            raise ValueError(f"OpenVINO float precision must be 'f32' or 'bf16', got {precision!r}")
        if precision == "bf16" and not cpu_has_bf16():
            precision = "f32"
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.path = Path(path)
        self.version = ov.get_version()
        core = ov.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # in effect
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._local = threading.local()  # one infer request per thread (a request is not shareable)

    def run(self, output_names, feeds: dict) -> list:
        """Outputs in order (copies: a request reuses its output buffers on the next call)."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        results = request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        wanted = output_names or self.output_names
        by_name = {o.get_any_name(): results[o] for o in self.compiled.outputs}
        return [np.array(by_name[name], copy=True) for name in wanted]


def marker_path(onnx_path, version: str) -> Path:
    """The file that records a successful check of ``onnx_path`` with this OpenVINO version."""
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in version)
    return Path(f"{onnx_path}.openvino-{safe}.verified.json")


def verified_session(onnx_path, example: dict, make_reference, threads: int | None, atol: float):
    """An OpenVinoSession of ``onnx_path`` if it matches ``make_reference()``'s session on ``example``, else None."""
    try:
        session = OpenVinoSession(onnx_path, threads)
    except Exception as exc:  # an unsupported operator, a CPU it does not know: stay on onnxruntime
        log.warning("OpenVINO cannot compile %s (%s); using onnxruntime", Path(onnx_path).name, exc)
        return None
    marker = marker_path(onnx_path, session.version)
    if marker.exists():
        return session
    expected = make_reference().run(None, example)
    got = session.run(None, example)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(expected, got))
    if diff > atol:
        log.warning("OpenVINO output of %s differs from onnxruntime by %.2e (> %g); using onnxruntime",
                    Path(onnx_path).name, diff, atol)
        return None
    write_json_atomic(marker, {"onnx": Path(onnx_path).name, "openvino": session.version, "max_difference": diff,
                               "atol": atol})
    log.info("OpenVINO run of %s verified against onnxruntime: max difference %.2e", Path(onnx_path).name, diff)
    return session
