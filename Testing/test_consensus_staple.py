"""STAPLE (binary and multi-label) against SimpleITK on every real LIDC nodule, and the pattern tables."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ConsensusReviewLib.lidc import format_reader_summary, load_lidc_nodule, nodule_files, reader_summary
from ConsensusReviewLib.patterns import binary_patterns, label_patterns
from ConsensusReviewLib.staple import staple_binary, staple_multilabel
from ConsensusReviewLib.voting import majority_vote_labelmap


def _sitk_staple(masks, **settings):
    flt = sitk.STAPLEImageFilter()
    flt.SetForegroundValue(1)
    for name, value in settings.items():
        getattr(flt, f"Set{name}")(value)
    out = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]))
    return out, np.array(flt.GetSensitivity()), np.array(flt.GetSpecificity()), flt.GetElapsedIterations()


def _three_class(masks):
    """Per reader: 1 = nodule, 2 = its core (two voxels in): a real nested multi-label input."""
    maps = []
    for m in masks:
        lm = m.astype(np.uint8)
        lm[ndimage.binary_erosion(m, iterations=2)] = 2
        maps.append(lm)
    return maps


def _sitk_multilabel(maps):
    flt = sitk.MultiLabelSTAPLEImageFilter()
    out = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(m) for m in maps]))
    n_labels = int(max(m.max() for m in maps)) + 1
    cms = np.array([np.reshape(flt.GetConfusionMatrix(k), (n_labels + 1, n_labels)) for k in range(len(maps))])
    return out, cms


def test_binary_staple_equals_simpleitk_on_every_lidc_nodule(lidc_dir):
    files = nodule_files(lidc_dir)
    assert len(files) >= 80
    worst = np.zeros(3)
    for path in files:
        masks, _, info = load_lidc_nodule(path)
        prob, sens, spec, iters = _sitk_staple(masks)
        ours = staple_binary(list(masks), dtype=np.float64)
        diffs = [np.abs(prob - ours.probability).max(), np.abs(sens - ours.sensitivity).max(),
                 np.abs(spec - ours.specificity).max()]
        assert max(diffs) < 1e-5, (info["case"], diffs)
        assert ours.itk_elapsed_iterations == iters, info["case"]
        assert ours.converged
        worst = np.maximum(worst, diffs)
    print(f"\nbinary STAPLE vs SimpleITK on {len(files)} nodules: max |diff| probability {worst[0]:.1e}, "
          f"sensitivity {worst[1]:.1e}, specificity {worst[2]:.1e}")


def test_binary_staple_parameters_match_simpleitk(lidc_dir):
    masks, _, _ = load_lidc_nodule(nodule_files(lidc_dir)[0])
    prob, sens, spec, iters = _sitk_staple(masks, MaximumIterations=3, ConfidenceWeight=0.7)
    ours = staple_binary(list(masks), max_iterations=3, confidence_weight=0.7, dtype=np.float64)
    assert np.abs(prob - ours.probability).max() < 1e-9
    assert np.abs(sens - ours.sensitivity).max() < 1e-9 and np.abs(spec - ours.specificity).max() < 1e-9
    assert iters == ours.itk_elapsed_iterations == 3 and not ours.converged
    record = ours.record()
    assert record["parameters"]["confidence_weight"] == 0.7 and record["iterations"] == 3
    assert "whole image" in record["region"]
    json.dumps(record)  # the record is plain JSON


def test_multilabel_staple_equals_simpleitk_on_every_lidc_nodule(lidc_dir):
    """variant "simpleitk-2.5" reproduces the ITK 5.4 code that the installed SimpleITK runs."""
    worst = 0.0
    for path in nodule_files(lidc_dir):
        masks, _, info = load_lidc_nodule(path)
        maps = _three_class(masks)
        labels, cms = _sitk_multilabel(maps)
        ours = staple_multilabel(maps, variant="simpleitk-2.5")
        diff = float(np.abs(cms - ours.confusion).max())
        assert diff < 1e-5, (info["case"], diff)
        assert np.array_equal(labels, ours.labels), info["case"]
        worst = max(worst, diff)
    print(f"\nmulti-label STAPLE (simpleitk-2.5 variant) vs SimpleITK: max |diff| confusion {worst:.1e}")


def _voxelwise_multilabel_itk(maps, threshold=1e-5):
    """Today's ITK multi-label STAPLE written voxel by voxel (no pattern table): the reference."""
    d = np.stack([m.ravel() for m in maps], axis=1).astype(np.int64)
    n_vox, n_raters = d.shape
    n_labels = int(d.max()) + 1
    votes = np.zeros((n_vox, n_labels), dtype=np.int64)
    for k in range(n_raters):
        votes[np.arange(n_vox), d[:, k]] += 1
    top = votes.max(axis=1)
    decided = (votes == top[:, None]).sum(axis=1) == 1
    voted = votes.argmax(axis=1)
    cm = np.zeros((n_raters, n_labels + 1, n_labels))
    for k in range(n_raters):
        np.add.at(cm[k], (d[decided, k], voted[decided]), 1.0)
        rows = cm[k].sum(axis=1, keepdims=True)
        cm[k] = np.divide(cm[k], rows, out=np.zeros_like(cm[k]), where=rows > 0)
    prior = np.bincount(d.ravel(), minlength=n_labels) / d.size
    while True:
        w = np.tile(prior, (n_vox, 1))
        for k in range(n_raters):
            w *= cm[k][d[:, k]]
        w /= np.where(w.sum(axis=1, keepdims=True) > 0, w.sum(axis=1, keepdims=True), 1)
        new = np.zeros_like(cm)
        for k in range(n_raters):
            np.add.at(new[k], d[:, k], w)
            cols = new[k].sum(axis=0, keepdims=True)
            new[k] = np.divide(new[k], cols, out=np.zeros_like(new[k]), where=cols > 0)
        change, cm = np.abs(new - cm).max(), new
        if change < threshold:
            return cm


def test_multilabel_staple_itk_variant_equals_voxelwise_reference(lidc_dir):
    for path in nodule_files(lidc_dir)[::10]:
        masks, _, info = load_lidc_nodule(path)
        maps = _three_class(masks)
        ours = staple_multilabel(maps)
        assert ours.parameters["variant"] == "itk"
        assert np.abs(_voxelwise_multilabel_itk(maps) - ours.confusion).max() < 1e-9, info["case"]
        posterior = sum(ours.probability(v) for v in range(3))
        decided = ours.labels != ours.undecided_label  # all-zero weights are undecided, posterior 0
        assert np.allclose(posterior[decided], 1.0, atol=1e-5)


def test_multilabel_variants_agree_without_voting_ties(lidc_dir):
    masks, _, _ = load_lidc_nodule(nodule_files(lidc_dir)[5])
    maps = [m.astype(np.uint8) for m in masks[:3]]  # 3 raters, 2 labels: a vote can never tie
    a, b = staple_multilabel(maps), staple_multilabel(maps, variant="simpleitk-2.5")
    labels, cms = _sitk_multilabel(maps)
    assert np.abs(a.confusion - b.confusion).max() < 1e-12
    assert np.abs(a.confusion - cms).max() < 1e-5 and np.array_equal(a.labels, labels)


def test_pattern_tables_round_trip():
    rng = np.random.default_rng(3)
    shape = (7, 9, 11)  # size not a multiple of 8: the byte-wise path
    masks = [rng.random(shape) < 0.3 for _ in range(10)]  # 10 raters: 16-bit codes
    table = binary_patterns(masks)
    assert table.counts.sum() == np.prod(shape)
    decoded = table.to_voxels(np.arange(len(table.counts)), np.int64)
    for n, m in enumerate(masks):
        assert np.array_equal(table.decisions[decoded, n], m)
    maps = [rng.integers(0, 6, shape).astype(np.uint8) for _ in range(12)]  # 6^12 codes: np.unique path
    ltable = label_patterns(maps, 6)
    decoded = ltable.to_voxels(np.arange(len(ltable.counts)), np.int64)
    for n, m in enumerate(maps):
        assert np.array_equal(ltable.decisions[decoded, n], m)


def test_label_voting_equals_simpleitk(lidc_dir):
    masks, _, _ = load_lidc_nodule(nodule_files(lidc_dir)[3])
    maps = _three_class(masks)
    ref = sitk.GetArrayFromImage(sitk.LabelVoting([sitk.GetImageFromArray(m) for m in maps]))
    assert np.array_equal(majority_vote_labelmap(maps, tie="undecided"), ref)
    ours = majority_vote_labelmap(maps)
    assert np.array_equal(ours, np.where(ref == 3, 0, ref))


def test_reader_summary_over_all_nodules(lidc_dir, capsys, tmp_path):
    summary = reader_summary(lidc_dir)
    assert summary["nodules"] >= 80 and len(summary["readers"]) == 4
    for r in summary["readers"]:
        # the published range for LIDC readers is ~0.77-0.91 sensitivity; a wrong axis order or a
        # broken EM would land far outside it
        assert 0.7 < r["mean_sensitivity"] < 0.95
        assert r["mean_specificity"] > 0.98
        assert 0.75 < r["mean_dice_vs_consensus"] < 0.95
    (tmp_path / "lidc_summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with capsys.disabled():
        print("\n" + format_reader_summary(summary))
