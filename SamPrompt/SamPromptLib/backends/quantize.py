"""An INT8 LiteMedSAM image encoder: quantized once with NNCF, calibrated on CT and MR slices, cached, verified.

Why: the encoder is ~75 GFLOP a slice (TinyViT keeps a 256 x 256 x 64 map in its first stage)
and fp32 already runs near the FMA rate of two cores (benchmarks/profile_sam_encoder.py), so
the way to twice the speed is fewer bits per multiply: NNCF's post-training quantization
(transformer preset: matrix products and convolutions in INT8, softmax / layer norm / GELU
kept in float), run by OpenVINO, with bf16 for the remaining float operators where the CPU
has bf16 instructions.

Calibration (``calibration_slices``) uses only images present wherever SamPrompt runs, so the
quantized file is the same on every machine: real CT and MR slices shipped inside pydicom
(an abdominal CT, a head CT, a small CT; an abdominal MR and a small MR), each in the windows
a radiologist uses, plus crops and flips, and slices of the project's synthetic CT phantom.
Their fingerprint, the weights' sha256 and the NNCF version name the cached folder.

Verification (``verify_masks``): a quantized encoder is used only after its masks match the
fp32 encoder's on box prompts around every organ of a phantom patient that calibration never
saw (each mask Dice >= ``MIN_MASK_DICE``, mean >= ``MEAN_MASK_DICE``).  The outcome, pass or
fail, is remembered per OpenVINO version and float precision in a marker file next to it;
on failure (or without nncf/openvino) callers stay on fp32.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.core.metrics import dice
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.dicom.ingest import load_image
from SamPromptLib.backends.openvino_runtime import OpenVinoSession, is_available
from SamPromptLib.planes import bounding_box, extract_slice, pixel_spacing
from SamPromptLib.preprocess import window_to_unit

log = logging.getLogger(__name__)

CALIBRATION_VERSION = 1     # bump when the calibration images or their preparation change
MIN_MASK_DICE = 0.95        # every verification prompt: INT8 mask vs fp32 mask
MEAN_MASK_DICE = 0.98       # and on average
MIN_VERIFY_AREA = 100       # pixels of an organ on a verification slice
VERIFY_SEED = 11            # the phantom patient of the verification (calibration uses others)
CALIBRATION_SEEDS = (3, 7)
# (file inside pydicom's own test files, [(level, width) windows; None = the image's own range]).
CT_WINDOWS = [(40.0, 400.0), (-600.0, 1500.0), (400.0, 1800.0)]          # soft tissue, lung, bone
PYDICOM_IMAGES = [
    ("693_J2KI.dcm", CT_WINDOWS),                                         # abdominal CT, 512 x 512
    ("J2K_pixelrep_mismatch.dcm", [(40.0, 80.0), (400.0, 1800.0)]),       # head CT: brain, bone
    ("CT_small.dcm", [(40.0, 400.0), None]),
    ("examples_overlay.dcm", [None, "p1-99"]),                            # abdominal MR, 300 x 484
    ("MR_small.dcm", [None, "p1-99"]),
]
_BUILD_LOCK = threading.Lock()


class QuantizationUnavailable(RuntimeError):
    """The INT8 encoder cannot be had here (package missing, build failed or verification refused it)."""


def _pydicom_test_file(name: str) -> Path:
    """A file shipped inside the pydicom package itself (never downloaded, unlike pydicom-data's)."""
    import pydicom

    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    if not path.is_file():
        raise QuantizationUnavailable(f"calibration image {name} is missing from pydicom's test files ({path})")
    return path


def _window_of(image: np.ndarray, window) -> tuple:
    """(level, width): a given window, the image's full range (None) or its 1st-99th percentile ('p1-99')."""
    if window == "p1-99":
        lo, hi = (float(v) for v in np.percentile(image, [1, 99]))
    elif window is None:
        lo, hi = float(image.min()), float(image.max())
    else:
        return window
    return (lo + hi) / 2.0, max(hi - lo, 1e-6)


def _views(name: str, unit: np.ndarray, spacing: tuple) -> list:
    """The slice itself, its centre crop (a small field of view) and its mirror image."""
    rows, cols = unit.shape
    crop = unit[rows // 4: rows - rows // 4, cols // 4: cols - cols // 4]
    return [(name, unit, spacing), (f"{name} crop", np.ascontiguousarray(crop), spacing),
            (f"{name} flipped", np.ascontiguousarray(unit[:, ::-1]), spacing)]


def calibration_slices() -> list:
    """[(name, windowed slice float32 in [0, 1], (row mm, col mm))]: the CT and MR calibration set."""
    out = []
    for filename, windows in PYDICOM_IMAGES:
        volume = load_image(_pydicom_test_file(filename))
        image = extract_slice(volume.array, "axial", 0).astype(np.float32)
        spacing = pixel_spacing(volume.geometry, "axial")
        for i, window in enumerate(windows):
            unit = window_to_unit(image, *_window_of(image, window))
            label = f"{filename} window {window or 'full range'}"
            out.extend(_views(label, unit, spacing) if i == 0 else [(label, unit, spacing)])
    for seed in CALIBRATION_SEEDS:
        phantom = make_phantom(seed, shape=(16, 192, 192), spacing=(2.0, 2.0, 5.0))
        for plane, index in (("axial", 6), ("axial", 10), ("coronal", 96)):
            image = extract_slice(phantom.volume.array, plane, index).astype(np.float32)
            for window in CT_WINDOWS[:2]:
                out.append((f"phantom {seed} {plane} {index} window {window}", window_to_unit(image, *window),
                            pixel_spacing(phantom.volume.geometry, plane)))
    return out


def verification_prompts() -> list:
    """[(name, windowed slice, spacing, [boxes])]: every organ's box on three slices of an unseen phantom.

    Only organs of at least ``MIN_VERIFY_AREA`` pixels: on a 40-pixel mask a one-pixel rim
    change moves Dice by 0.05 even between fp32 runtimes, which says nothing about the model.
    """
    phantom = make_phantom(VERIFY_SEED, shape=(16, 192, 192), spacing=(2.0, 2.0, 5.0))
    out = []
    for plane, index in (("axial", 4), ("axial", 8), ("axial", 11)):
        image = extract_slice(phantom.volume.array, plane, index).astype(np.float32)
        labels = extract_slice(phantom.labels, plane, index)
        boxes = []
        for value in phantom.label_values.values():
            box = bounding_box(labels == value)
            if box is not None and (labels == value).sum() >= MIN_VERIFY_AREA:
                boxes.append(box)
        out.append((f"phantom {VERIFY_SEED} {plane} {index}", window_to_unit(image, 40.0, 400.0),
                    pixel_spacing(phantom.volume.geometry, plane), boxes))
    return out


def fingerprint(slices: list) -> str:
    """A short hash of the calibration images (content and order)."""
    digest = hashlib.blake2b(digest_size=6)
    digest.update(f"calibration v{CALIBRATION_VERSION}".encode())
    for name, unit, spacing in slices:
        digest.update(name.encode())
        digest.update(repr(spacing).encode())
        digest.update(np.ascontiguousarray(unit, dtype=np.float32).data)
    return digest.hexdigest()


def nncf_version() -> str:
    """The installed NNCF's version (QuantizationUnavailable without it); read from its metadata, because
    importing nncf takes ~3 s and is needed only to build the model."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nncf")
    except PackageNotFoundError:
        raise QuantizationUnavailable("the INT8 encoder needs the nncf package; install the 'sam' extra") from None


def int8_dir(onnx_path, calibration: str, nncf: str) -> Path:
    """The folder of the INT8 model (``encoder.xml`` + ``.bin``) of one fp32 ONNX file and calibration."""
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in nncf)
    return Path(f"{Path(onnx_path).with_suffix('')}-int8-c{calibration}-nncf{safe}")


def build_int8(onnx_path, model_inputs: list, folder: Path) -> Path:
    """Quantize ``onnx_path`` with NNCF on ``model_inputs`` into ``folder`` (atomically: a complete folder or none)."""
    import nncf
    import openvino as ov

    folder = Path(folder)
    xml = folder / "encoder.xml"
    with _BUILD_LOCK:
        if xml.exists():
            return xml
        folder.parent.mkdir(parents=True, exist_ok=True)
        log.info("quantizing %s to INT8 on %d CT/MR slices (once; cached in %s)", Path(onnx_path).name,
                 len(model_inputs), folder)
        model = ov.Core().read_model(str(onnx_path))
        quantized = nncf.quantize(model, nncf.Dataset(model_inputs), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(model_inputs))
        tmp = Path(tempfile.mkdtemp(prefix=".int8-", dir=folder.parent))
        try:
            ov.save_model(quantized, str(tmp / "encoder.xml"), compress_to_fp16=False)
            try:
                os.rename(tmp, folder)  # atomic; another process may have won the race
            except OSError:
                if not xml.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return xml


def verify_masks(encode_fp32, encode_int8, preprocess, mask_of) -> dict:
    """Dice of INT8 vs fp32 masks on ``verification_prompts()``: {'dice': [...], 'min', 'mean', 'passed'}."""
    scores = []
    for _, unit, spacing, boxes in verification_prompts():
        model_input, plan = preprocess(unit, spacing)
        exact, quick = encode_fp32(model_input), encode_int8(model_input)
        for box in boxes:
            scores.append(float(dice(mask_of(quick, plan, box), mask_of(exact, plan, box))))
    low, mean = min(scores), float(np.mean(scores))
    return {"dice": [round(s, 4) for s in scores], "min": low, "mean": mean,
            "passed": bool(low >= MIN_MASK_DICE and mean >= MEAN_MASK_DICE),
            "min_required": MIN_MASK_DICE, "mean_required": MEAN_MASK_DICE}


def marker_path(xml: Path, openvino_version: str, precision: str) -> Path:
    """The file that records the verification of ``xml`` with one OpenVINO version and float precision."""
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in openvino_version)
    return Path(f"{xml}.openvino-{safe}-{precision}.verified.json")


def int8_session(onnx_path, preprocess, encode_fp32, mask_of, threads: int | None = None):
    """(OpenVINO session of the verified INT8 encoder, verification report); QuantizationUnavailable otherwise.

    ``preprocess(unit, spacing) -> (model input, plan)``, ``encode_fp32(model input) -> features``
    and ``mask_of(features, plan, box) -> bool mask`` come from the backend.
    """
    import json


    if not is_available():
        raise QuantizationUnavailable("the INT8 encoder runs on OpenVINO, which is not installed")
    version = nncf_version()
    slices = calibration_slices()
    folder = int8_dir(onnx_path, fingerprint(slices), version)
    xml = folder / "encoder.xml"
    if not xml.exists():
        try:
            build_int8(onnx_path, [preprocess(unit, spacing)[0] for _, unit, spacing in slices], folder)
        except QuantizationUnavailable:
            raise
        except Exception as exc:  # an operator NNCF cannot handle, a full disk: stay on fp32
            raise QuantizationUnavailable(f"quantizing {Path(onnx_path).name} failed: {exc}") from exc
    # bf16 where the CPU has it, else f32; the compiled model is kept for the next process
    session = OpenVinoSession(xml, threads, precision="bf16", cache_dir=folder / "compiled")
    marker = marker_path(xml, session.version, session.precision)
    if marker.exists():
        report = json.loads(marker.read_text(encoding="utf-8"))
    else:
        report = verify_masks(encode_fp32, lambda x: session.run(None, {"image": x})[0], preprocess, mask_of)
        report.update(openvino=session.version, precision=session.precision, nncf=version)
        write_json_atomic(marker, report)
        log.info("INT8 encoder verified against fp32 on %d prompts: mask Dice min %.3f, mean %.3f (%s)",
                 len(report["dice"]), report["min"], report["mean"], "passed" if report["passed"] else "refused")
    if not report["passed"]:
        raise QuantizationUnavailable(f"the INT8 encoder's masks differ from fp32's (Dice min {report['min']:.3f} < "
                                      f"{MIN_MASK_DICE} or mean {report['mean']:.3f} < {MEAN_MASK_DICE}); "
                                      f"see {marker}")
    return session, report
