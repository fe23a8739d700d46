"""Agreement figures, voting tie policies, annotator bias flags and the review queue."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ConsensusReviewLib.agreement import label_agreement, to_json_safe
from ConsensusReviewLib.bias import BiasThresholds, annotator_bias, systematic_bias
from ConsensusReviewLib.lidc import load_lidc_nodule, nodule_files
from ConsensusReviewLib.review_queue import ReviewThresholds, build_queue, case_summary, disputed_fraction
from ConsensusReviewLib.simulate import simulate_readers
from ConsensusReviewLib.staple import staple_binary
from ConsensusReviewLib.voting import majority_vote


def _monai_hd95(a, b, spacing_ijk):
    import torch
    from monai.metrics import compute_hausdorff_distance

    def onehot(m):
        m = torch.from_numpy(np.ascontiguousarray(m)).float()[None, None]
        return torch.cat([1 - m, m], dim=1)

    return float(compute_hausdorff_distance(onehot(a), onehot(b), percentile=95, spacing=list(spacing_ijk[::-1]))[0, 0])


def test_label_agreement_equals_independent_computation(lidc_dir):
    for path in nodule_files(lidc_dir)[::20]:
        masks, geometry, info = load_lidc_nodule(path)
        consensus = staple_binary(list(masks)).mask()
        names = [f"r{n}" for n in range(len(masks))]
        a = label_agreement(list(masks), consensus, geometry.spacing, names)
        assert a["annotators"] == names
        voxel_ml = np.prod(geometry.spacing) / 1000
        for i in range(len(masks)):
            for j in range(len(masks)):
                inter = np.logical_and(masks[i], masks[j]).sum()
                assert a["pairwise"]["dice"][i][j] == pytest.approx(2 * inter / (masks[i].sum() + masks[j].sum()))
                if i < j:
                    assert a["pairwise"]["hd95"][i][j] == pytest.approx(_monai_hd95(masks[i], masks[j], geometry.spacing),
                                                                        abs=1e-4)
            row = a["per_annotator"][i]
            tp = np.logical_and(masks[i], consensus).sum()
            fn = np.logical_and(~masks[i], consensus).sum()
            fp = np.logical_and(masks[i], ~consensus).sum()
            tn = masks[i].size - tp - fn - fp
            assert row["sensitivity"] == pytest.approx(tp / (tp + fn))
            assert row["specificity"] == pytest.approx(tn / (tn + fp))
            assert row["volume_diff_ml"] == pytest.approx((masks[i].sum() - consensus.sum()) * voxel_ml)
            assert row["fp_share"] == pytest.approx(fp / (fp + fn))
            assert row["hd95"] == pytest.approx(_monai_hd95(masks[i], consensus, geometry.spacing), abs=1e-4)


def test_majority_vote_tie_policy():
    votes = np.zeros((4, 1, 1, 3), dtype=bool)  # 4 annotators, 3 voxels with 1, 2 and 3 votes
    votes[0, 0, 0, :] = True
    votes[1, 0, 0, 1:] = True
    votes[2, 0, 0, 2] = True
    assert majority_vote(votes).ravel().tolist() == [False, False, True]
    assert majority_vote(votes, tie="foreground").ravel().tolist() == [False, True, True]
    with pytest.raises(ValueError, match="tie policy"):
        majority_vote(votes, tie="undecided")


def test_annotator_bias_split_and_empty_reference():
    ref = np.zeros((3, 10, 10), dtype=bool)
    ref[1, 2:8, 2:8] = True
    big = np.zeros_like(ref)
    big[1, 1:9, 1:9] = True
    b = annotator_bias(big, ref, (1, 1, 1))
    assert b["fn_voxels"] == 0 and b["fp_voxels"] == 64 - 36 and b["tendency"] == "over"
    assert b["volume_diff_pct"] == pytest.approx(100 * (64 - 36) / 36)
    empty = annotator_bias(big, np.zeros_like(ref), (1, 1, 1))
    assert math.isnan(empty["sensitivity"]) and math.isinf(empty["volume_diff_pct"])
    assert to_json_safe(empty)["sensitivity"] is None and to_json_safe(empty)["volume_diff_pct"] == "inf"


def test_systematic_bias_flags_the_reader_who_always_over_segments():
    rows = []
    truth = np.zeros((12, 40, 40), dtype=np.uint8)
    truth[3:9, 10:30, 12:28] = 1
    for case in range(5):
        readers = simulate_readers(truth, 3, seed=case, bias_mm=0.3, wobble_mm=0.3, miss_probability=0.0)
        readers[2] = ndimage.binary_dilation(readers[2] == 1, iterations=1).astype(np.uint8)  # the generous one
        masks = [r == 1 for r in readers]
        consensus = majority_vote(masks)
        a = label_agreement(masks, consensus, (1, 1, 1), ["ann", "bob", "cat"])
        for r in a["per_annotator"]:
            rows.append({"case": f"c{case}", "label": "organ", "annotator": r["annotator"],
                         "volume_diff_pct": r["volume_diff_pct"], "dice": r["dice"]})
    flags = {f["annotator"]: f["flags"] for f in systematic_bias(rows, BiasThresholds(volume_pct=15))}
    assert flags["cat"] == ["over-segments"]
    assert flags["ann"] == [] and flags["bob"] == []
    too_few = systematic_bias(rows[:6], BiasThresholds(volume_pct=15))  # two cases: below min_cases
    assert all(f["flags"] == [] for f in too_few)


def test_review_queue_sorted_by_lowest_agreement_with_reasons():
    def agreement(mean_dice, hd, annot_dice):
        return {"mean_pairwise_dice": mean_dice, "max_pairwise_hd95": hd,
                "per_annotator": [{"dice": d} for d in annot_dice]}

    good = case_summary("good", {"liver": agreement(0.95, 3.0, [0.97, 0.96])}, {"liver": 0.05}, 2)
    bad = case_summary("bad", {"liver": agreement(0.93, 2.0, [0.95, 0.9]), "aorta": agreement(0.6, 14.0, [0.5, 0.8])},
                       {"liver": 0.1, "aorta": 0.5}, 2)
    lone = case_summary("lone", {"liver": agreement(0.9, 1.0, [0.9])}, None, 1)
    queue = build_queue([good, bad, lone], ReviewThresholds())
    assert [q["case_id"] for q in queue] == ["bad", "lone", "good"]
    assert queue[0]["needs_review"] and queue[0]["worst_label"] == "aorta"
    assert any("aorta: mean pairwise Dice 0.600" in r for r in queue[0]["reasons"])
    assert any("HD95" in r for r in queue[0]["reasons"]) and any("disputed" in r for r in queue[0]["reasons"])
    assert queue[1]["needs_review"] and "only 1 annotation" in queue[1]["reasons"][0]
    assert not queue[2]["needs_review"] and queue[2]["reasons"] == []


def test_disputed_fraction():
    masks = np.zeros((3, 1, 1, 4), dtype=bool)
    masks[:, 0, 0, 0] = True
    masks[0, 0, 0, 1] = True
    assert disputed_fraction(masks) == pytest.approx(0.5)
    assert disputed_fraction(np.zeros((2, 2, 2, 2), bool)) == 0.0


@pytest.mark.parametrize("method", ["majority", "staple", "multilabel-staple"])
def test_empty_and_partly_drawn_labels(method):
    from ConsensusReviewLib.consensus import run_consensus
    from ConsensusReviewLib.inputs import align_segmentations
    from DicomTeamAnnotateLib.core.geometry import Geometry
    from DicomTeamAnnotateLib.core.segmentation import Segmentation

    g = Geometry(size=(20, 20, 8))
    drawn = np.zeros(g.shape, dtype=bool)
    drawn[2:5, 5:10, 5:10] = True
    empty = np.zeros(g.shape, dtype=bool)
    segs = [Segmentation.from_masks({"x": drawn, "z": empty}, g), Segmentation.from_masks({"x": drawn, "z": empty}, g),
            Segmentation.from_masks({"x": empty}, g)]
    result = run_consensus(align_segmentations(segs, ["p", "q", "r"]), method)
    assert np.array_equal(result.mask("x"), drawn)      # two of three drew it
    assert not result.mask("z").any()                   # nobody drew z: never the "undecided" value
    x, z = result.agreement["x"], result.agreement["z"]
    assert z["mean_pairwise_dice"] == 1.0 and z["max_pairwise_hd95"] == 0.0      # both empty: perfect
    assert math.isinf(x["max_pairwise_hd95"]) and x["per_annotator"][2]["dice"] == 0.0  # one empty: inf, 0
    assert to_json_safe(x)["max_pairwise_hd95"] == "inf"
