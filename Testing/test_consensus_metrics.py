"""DicomTeamAnnotateLib.core.metrics against MONAI's metrics and direct numpy, on real LIDC masks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ConsensusReviewLib.lidc import load_lidc_nodule
from DicomTeamAnnotateLib.core import metrics


def _monai(a, b, spacing_ijk, tolerance):
    """HD95 (max), ASSD and NSD computed by MONAI on (K, J, I) masks."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_surface_dice

    def onehot(m):
        m = torch.from_numpy(np.ascontiguousarray(m)).float()[None, None]
        return torch.cat([1 - m, m], dim=1)

    y_pred, y = onehot(a), onehot(b)
    sp = list(spacing_ijk[::-1])
    hd = float(compute_hausdorff_distance(y_pred, y, percentile=95, spacing=sp)[0, 0])
    asd = float(compute_average_surface_distance(y_pred, y, symmetric=True, spacing=sp)[0, 0])
    nsd = float(compute_surface_dice(y_pred, y, class_thresholds=[tolerance], spacing=sp)[0, 0])
    return hd, asd, nsd


def _nodules(lidc_dir, count):
    files = sorted(lidc_dir.glob("*.npz"))
    step = max(1, len(files) // count)
    return files[::step][:count]


def test_metrics_equal_monai_on_lidc(lidc_dir):
    checked = 0
    for path in _nodules(lidc_dir, 12):
        masks, geometry, _ = load_lidc_nodule(path)
        for r in range(1, masks.shape[0]):
            a, b = masks[0], masks[r]
            if not a.any() or not b.any():
                continue
            ours = metrics.compute_metrics(a, b, geometry.spacing, tolerance_mm=1.0)
            hd, asd, nsd = _monai(a, b, geometry.spacing, 1.0)
            assert ours["hd95"] == pytest.approx(hd, abs=1e-4), path.name
            assert ours["assd"] == pytest.approx(asd, abs=1e-4), path.name
            assert ours["nsd"] == pytest.approx(nsd, abs=1e-6), path.name
            inter = np.logical_and(a, b).sum()
            assert ours["dice"] == pytest.approx(2 * inter / (a.sum() + b.sum()))
            voxel_ml = np.prod(geometry.spacing) / 1000
            assert ours["volume_a_ml"] == pytest.approx(a.sum() * voxel_ml)
            assert ours["volume_diff_ml"] == pytest.approx((a.sum() - b.sum()) * voxel_ml)
            checked += 1
    assert checked >= 20


def test_anisotropic_spacing_is_applied_in_ijk_order():
    # two slabs 3 slices apart along k: distance is 3 * spacing_k, not 3 * spacing_i
    a = np.zeros((10, 8, 8), dtype=bool)
    b = np.zeros_like(a)
    a[2, 2:6, 2:6] = True
    b[5, 2:6, 2:6] = True
    spacing_ijk = (0.5, 0.7, 2.5)
    assert metrics.hd95(a, b, spacing_ijk) == pytest.approx(3 * 2.5)
    hd, _, _ = _monai(a, b, spacing_ijk, 1.0)
    assert hd == pytest.approx(3 * 2.5)


def test_hd95_modes_max_and_mean():
    # A is a cube, B the same cube plus a far-away blob: directed percentiles differ
    a = np.zeros((40, 40, 40), dtype=bool)
    a[5:15, 5:15, 5:15] = True
    b = a.copy()
    b[30:38, 30:38, 30:38] = True
    s = (1.0, 1.0, 1.0)
    from DicomTeamAnnotateLib.core.surface import surface_distances

    d_ab, d_ba = surface_distances(a, b, s)
    p_ab, p_ba = np.percentile(d_ab, 95), np.percentile(d_ba, 95)
    assert p_ab == 0 and p_ba > 10
    assert metrics.hd95(a, b, s, mode="max") == pytest.approx(p_ba)
    assert metrics.hd95(a, b, s, mode="mean") == pytest.approx((p_ab + p_ba) / 2)
    with pytest.raises(ValueError, match="hd_mode"):
        metrics.compute_metrics(a, b, s, hd_mode="median")


def test_empty_mask_policy():
    empty = np.zeros((5, 6, 7), dtype=bool)
    full = empty.copy()
    full[1:4, 2:4, 2:5] = True
    both = metrics.compute_metrics(empty, empty, (1, 1, 1))
    assert (both["dice"], both["hd95"], both["assd"], both["nsd"]) == (1.0, 0.0, 0.0, 1.0)
    one = metrics.compute_metrics(full, empty, (1, 1, 1))
    assert one["dice"] == 0.0 and one["nsd"] == 0.0
    assert math.isinf(one["hd95"]) and math.isinf(one["assd"])
    assert one["volume_diff_ml"] == pytest.approx(18 / 1000)
    assert "inf" in metrics.EMPTY_POLICY_TEXT


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="different shapes"):
        metrics.compute_metrics(np.zeros((2, 3, 4), bool), np.zeros((2, 3, 5), bool), (1, 1, 1))


def test_pairwise_matrices_equal_pair_by_pair(lidc_dir):
    masks, geometry, _ = load_lidc_nodule(_nodules(lidc_dir, 1)[0])
    mats = metrics.pairwise_metrics(list(masks), geometry.spacing, tolerance_mm=2.0)
    for i in range(len(masks)):
        for j in range(len(masks)):
            if i == j:
                continue
            single = metrics.compute_metrics(masks[i], masks[j], geometry.spacing, tolerance_mm=2.0)
            for key in ("dice", "hd95", "assd", "nsd"):
                assert mats[key][i, j] == pytest.approx(single[key]), key
