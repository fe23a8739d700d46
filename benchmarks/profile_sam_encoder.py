"""Where the LiteMedSAM image encoder spends its time on this CPU, and what each speed-up step buys.

Runs our cached ONNX encoder (exported from the shipped weights on first use) on one
preprocessed slice of the shared CT, ``--runs`` times after a warm-up, with onnxruntime's
profiler on, and prints the time per operator type, the floating-point work of the matrix
operators (Gemm, MatMul, FusedMatMul, Conv: 2 x multiply-adds, from the shapes the profiler
records) and the rate they reach.  It shows what bounds ``bench_sam.py``'s embedding figure: the
shipped encoder keeps full resolution in its first stage (a 256 x 256 x 64 feature map), so a
slice is tens of GFLOP, most of it in matrix products that already run near this CPU's rate.

Then the steps, timed on the same slice in one run, interleaved (each step runs twice in a row
per round, the second run timed, so that alternating models does not time their cache misses),
best of ``--rounds``: onnxruntime fp32, OpenVINO fp32 (operator fusion), OpenVINO fp32 with bf16,
the INT8 encoder (NNCF, see SamPromptLib/backends/quantize.py) with its float operators in fp32,
then in bf16 (ours: the default ``litemedsam`` backend), then with thread pinning and denormals
flushed to zero.  The machine is shared: figures are best-of, with the load average printed.

    python benchmarks/profile_sam_encoder.py [--runs 5] [--threads 0] [--rounds 5]
The last line prints ours (INT8 + bf16), the peer (onnxruntime fp32, OpenVINO fp32) and the ratios.
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
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the steps (best kept)")
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
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
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
    return steps(backend, model_input, args.rounds)


def steps(backend, model_input, rounds: int) -> int:
    """Time each speed-up step on one input, interleaved, best of ``rounds``; print what each buys."""
    import openvino as ov

    from SamPromptLib.backends import onnx_runtime as ox
    from SamPromptLib.backends.openvino_runtime import cpu_has_bf16

    fp32 = ox.cached_model_path(backend.model_name, "encoder", backend.weights_sha256)
    int8_backend = type(backend)(precision="int8")  # builds and verifies the INT8 encoder once
    if not int8_backend.encoder_precision.startswith("int8"):
        print(f"no INT8 encoder here: {int8_backend.int8_problem}")
        return 1
    int8 = int8_backend._encoder_session.path
    core = ov.Core()

    def openvino(path, precision, **extra):
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                          "PERFORMANCE_HINT": "LATENCY", **extra})
        request = compiled.create_infer_request()
        return lambda: request.infer({0: model_input})

    session = ox.make_session(fp32)
    runs = {"onnxruntime fp32": lambda: session.run(None, {"image": model_input}),
            "OpenVINO fp32": openvino(fp32, "f32"),
            "OpenVINO fp32, bf16": openvino(fp32, "bf16"),
            "INT8, float ops fp32": openvino(int8, "f32"),
            "INT8, float ops bf16": openvino(int8, "bf16"),
            "INT8 bf16, pinned, DAZ": openvino(int8, "bf16", ENABLE_CPU_PINNING=True, CPU_DENORMALS_OPTIMIZATION=True)}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            run()
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    print(f"\nsteps (best of {rounds} interleaved rounds; bf16 instructions here: {cpu_has_bf16()}; "
          f"INT8 check: mask Dice min {int8_backend.int8_report['min']:.3f} vs fp32):")
    previous = None
    for name, seconds in best.items():
        gain = f"  {previous / seconds:4.2f}x vs the step above" if previous else ""
        print(f"  {name:24s} {seconds:6.3f} s/slice{gain}")
        previous = seconds
    ours, ort, ovf = best["INT8, float ops bf16"], best["onnxruntime fp32"], best["OpenVINO fp32"]
    print(f"ours (INT8 + bf16): {ours:.3f} s/slice | onnxruntime fp32 {ort:.3f} s, OpenVINO fp32 {ovf:.3f} s | "
          f"onnxruntime/ours {ort / ours:.2f}x, OpenVINO fp32/ours {ovf / ours:.2f}x; goal <= 0.25 s "
          f"(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} shared cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
