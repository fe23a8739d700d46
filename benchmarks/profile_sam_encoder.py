"""Where the LiteMedSAM image encoder spends its time on this CPU (onnxruntime's own profiler).

Runs our cached ONNX encoder (exported from the shipped weights on first use) on one
preprocessed slice of the shared CT, ``--runs`` times after a warm-up, with onnxruntime's
profiler on, and prints the time per operator type, the floating-point work of the matrix
operators (Gemm, MatMul, FusedMatMul, Conv: 2 x multiply-adds, from the shapes the profiler
records) and the rate they reach.  It shows what bounds ``bench_sam.py``'s embedding figure: the
shipped encoder keeps full resolution in its first stage (a 256 x 256 x 64 feature map), so a
slice is tens of GFLOP, most of it in matrix products that already run near this CPU's rate.

    python benchmarks/profile_sam_encoder.py [--runs 5] [--threads 0]
The last line prints the time per slice, the GFLOP per slice and the GFLOP/s reached.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "DicomTeamAnnotate"), str(ROOT / "SamPrompt")]
DATA = ROOT.parent / "shared" / "data" / "ct_abdomen"
MATRIX_OPS = ("Gemm", "MatMul", "FusedMatMul", "Conv")


def _flop(op: str, inputs: list, outputs: list) -> float:
    """Floating-point operations of one matrix operator from its recorded shapes (0 if unknown)."""
    try:
        if op == "Conv":
            weight = list(inputs[1].values())[0]  # [C_out, C_in / groups, kh, kw]
            out = list(outputs[0].values())[0]
            return 2.0 * float(np.prod(out)) * float(np.prod(weight[1:]))
        a, b = (list(x.values())[0] for x in inputs[:2])
        out = list(outputs[0].values())[0]
        return 2.0 * float(np.prod(out)) * a[-1]  # every output element: K multiply-adds
    except (IndexError, ValueError, TypeError):
        return 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: onnxruntime's default (physical cores)")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume
    from SamPromptLib.backends import onnx_runtime as ox
    from SamPromptLib.backends.litemedsam import LiteMedSamBackend
    from SamPromptLib.planes import extract_slice
    from SamPromptLib.preprocess import window_to_unit

    backend = LiteMedSamBackend(runtime="onnx", threads=args.threads or None)
    ct = load_dicom_volume(DATA / "dicom")
    image = extract_slice(ct.array, "axial", ct.array.shape[0] // 2).astype(np.float32)
    model_input, _ = backend.preprocess(window_to_unit(image, 40.0, 400.0))  # soft-tissue window
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = args.threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "encoder")
        session = ort.InferenceSession(str(ox.cached_model_path(backend.name, "encoder", backend.weights_sha256)),
                                       options, providers=["CPUExecutionProvider"])
        session.run(None, {"image": model_input})
        t = time.perf_counter()
        for _ in range(args.runs):
            session.run(None, {"image": model_input})
        per_slice = (time.perf_counter() - t) / args.runs
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = args.runs + 1  # the warm-up is profiled too
    time_by_op, count_by_op, flop_by_op = collections.Counter(), collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = e["args"].get("op_name", "?")
        time_by_op[op] += e["dur"] / 1e6 / runs
        count_by_op[op] += 1 / runs
        if op in MATRIX_OPS:
            flop_by_op[op] += _flop(op, e["args"].get("input_type_shape", []),
                                    e["args"].get("output_type_shape", [])) / runs
    total = sum(time_by_op.values())
    print(f"{'operator':22s} {'ms/slice':>9s} {'share':>6s} {'nodes':>6s} {'GFLOP':>7s} {'GFLOP/s':>8s}")
    for op, seconds in time_by_op.most_common(14):
        gflop = flop_by_op[op] / 1e9
        rate = f"{gflop / seconds:8.0f}" if gflop else " " * 8
        print(f"{op:22s} {seconds * 1000:9.1f} {100 * seconds / total:5.0f}% {count_by_op[op]:6.0f} "
              f"{gflop:7.1f} {rate}")
    gflop = sum(flop_by_op.values()) / 1e9
    matrix_s = sum(time_by_op[op] for op in MATRIX_OPS)
    print(f"encoder: {per_slice:.3f} s/slice ({args.threads or 'default'} threads; kernels {total:.3f} s); "
          f"matrix operators {gflop:.1f} GFLOP/slice in {matrix_s:.3f} s = {gflop / matrix_s:.0f} GFLOP/s "
          f"({100 * matrix_s / total:.0f}% of kernel time); goal 0.5 s/slice "
          f"(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
