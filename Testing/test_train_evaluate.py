"""TrainBridge evaluation: metrics equal an independent computation; worst cases and slices; CLI files."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom
from DicomTeamAnnotateLib.io.volumes import write_volume
from TrainBridgeLib.evaluation.evaluate import evaluate_folders

SHAPE = (16, 32, 32)


def independent(gt: np.ndarray, pred: np.ndarray, spacing_kji, tol=1.0) -> dict:
    """Dice, HD95 (max of directed 95th percentiles) and NSD from scratch with scipy's exact EDT."""
    total = gt.sum() + pred.sum()
    dice = 2 * (gt & pred).sum() / total if total else 1.0
    if not gt.any() or not pred.any():
        return {"dice": dice, "hd95": 0.0 if gt.any() == pred.any() else np.inf}
    struct = ndimage.generate_binary_structure(3, 1)
    sa = pred & ~ndimage.binary_erosion(pred, struct, border_value=0)
    sb = gt & ~ndimage.binary_erosion(gt, struct, border_value=0)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing_kji)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing_kji)[sb]
    nsd = ((d_ab <= tol).sum() + (d_ba <= tol).sum()) / (d_ab.size + d_ba.size)
    return {"dice": dice, "hd95": max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)), "nsd": nsd}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Ground truth = phantoms; predictions = the truth eroded, shifted, one organ missed, one slice lost."""
    root = tmp_path_factory.mktemp("eval")
    gt_dir, pred_dir = root / "gt", root / "pred"
    data = {}
    for n in range(3):
        ph = make_phantom(seed=10 + n, shape=SHAPE, spacing=(1.2, 1.2, 2.5))
        gt = ph.labels
        pred = gt.copy()
        if n == 0:
            pred[ndimage.binary_erosion(pred == 1, iterations=1) ^ (pred == 1)] = 0  # liver boundary lost
        if n == 1:
            pred = np.roll(pred, 2, axis=2)  # shifted by 2 voxels along i
        if n == 2:
            pred[pred == 2] = 0  # spleen missed entirely
            pred[8][pred[8] == 1] = 0  # liver lost on one slice
        g = ph.volume.geometry
        write_volume(Volume(gt, g), gt_dir / f"case{n}.nii.gz")
        write_volume(Volume(pred.astype(np.uint8), g), pred_dir / f"case{n}.nii.gz")
        data[f"case{n}"] = (gt, pred, g)
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, **LABEL_VALUES}}), encoding="utf-8")
    return root, data


def test_metrics_equal_an_independent_computation(folders):
    root, data = folders
    result = evaluate_folders(root / "gt", root / "pred", labels=root / "dataset.json")
    for case, (gt, pred, g) in data.items():
        # the spacing as stored in the file (NIfTI keeps float32), read with another library
        zooms = [float(z) for z in nib.load(root / "gt" / f"{case}.nii.gz").header.get_zooms()]
        for name, value in LABEL_VALUES.items():
            ref = independent(gt == value, pred == value, zooms[::-1])
            got = result["cases"][case][name]
            assert got["dice"] == pytest.approx(ref["dice"], abs=1e-12), (case, name)
            assert got["hd95"] == pytest.approx(ref["hd95"], rel=1e-9), (case, name)
            if "nsd" in ref:
                assert got["nsd"] == pytest.approx(ref["nsd"], abs=1e-12), (case, name)
            vox = float(np.prod(g.spacing)) / 1000
            assert got["volume_gt_ml"] == pytest.approx((gt == value).sum() * vox, rel=1e-6)
    # the missed spleen: Dice 0 and HD95 infinite (the shared empty-mask policy), counted in the summary
    assert result["cases"]["case2"]["spleen"]["dice"] == 0 and result["cases"]["case2"]["spleen"]["hd95"] == np.inf
    assert result["summary"]["spleen"]["hd95"]["n_inf"] == 1
    dice_liver = [result["cases"][c]["liver"]["dice"] for c in data]
    assert result["summary"]["liver"]["dice"]["mean"] == pytest.approx(np.mean(dice_liver))
    assert result["summary"]["liver"]["dice"]["std"] == pytest.approx(np.std(dice_liver, ddof=1))


def test_worst_cases_and_worst_slices(folders):
    root, data = folders
    result = evaluate_folders(root / "gt", root / "pred", labels=root / "dataset.json")
    means = result["case_mean_dice"]
    assert [w["case"] for w in result["worst_cases"]] == sorted(means, key=means.get)
    # the lost liver slice of case2 is among the worst slices, with Dice 0 and its physical position
    hits = [s for s in result["worst_slices"] if s["case"] == "case2" and s["label"] == "liver" and s["slice"] == 8]
    assert hits and hits[0]["dice"] == 0.0 and hits[0]["axis"] == "k"
    gt, _, g = data["case2"]
    kji = np.argwhere(gt[8] == 1).mean(axis=0)
    expected = g.index_to_world([kji[1], kji[0], 8])
    assert np.allclose(hits[0]["center_lps"], expected)
    assert np.allclose(hits[0]["center_ras"], [-expected[0], -expected[1], expected[2]])


def test_prediction_on_another_grid_is_aligned_by_physical_position(tmp_path):
    ph = make_phantom(seed=3, shape=SHAPE)
    g = ph.volume.geometry
    write_volume(Volume(ph.labels, g), tmp_path / "gt" / "a.nii.gz")
    # the same labels written with the k axis flipped (a writer that stores slices the other way)
    flipped = Geometry(size=g.size, spacing=g.spacing, origin=g.index_to_world([0, 0, g.size[2] - 1]),
                       direction=(g.direction_matrix @ np.diag([1, 1, -1])).ravel())
    write_volume(Volume(ph.labels[::-1].copy(), flipped), tmp_path / "pred" / "a.nii.gz")
    result = evaluate_folders(tmp_path / "gt", tmp_path / "pred", labels={"liver": 1, "bone": 5})
    assert result["cases"]["a"]["liver"]["dice"] == 1.0 and result["cases"]["a"]["bone"]["hd95"] == 0.0
    assert result["notes"] and "resampled" in result["notes"][0]
    (tmp_path / "pred" / "a.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="no prediction for 1 case"):
        evaluate_folders(tmp_path / "gt", tmp_path / "pred")


def test_cli_writes_csv_json_and_png(folders, tmp_path):
    root, data = folders
    out = tmp_path / "ev"
    code = dicomteam(["evaluate", "--gt", str(root / "gt"), "--pred", str(root / "pred"),
                      "--labels", str(root / "dataset.json"), "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == len(data) * len(LABEL_VALUES)
    assert {r["label"] for r in rows} == set(LABEL_VALUES)
    missed = [r for r in rows if r["case"] == "case2" and r["label"] == "spleen"][0]
    assert missed["dice"] == "0" and missed["hd95_mm"] == "inf"
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["cases"]["case2"]["spleen"]["hd95"] == "inf"
    assert isinstance(metrics["cases"]["case1"]["liver"]["hd95"], float)
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dicomteam(["evaluate", "--gt", str(tmp_path / "nothing"), "--pred", str(root / "pred"),
                      "--out", str(out)]) == 2
