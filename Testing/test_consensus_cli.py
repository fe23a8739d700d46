"""`dicomteam consensus` on files: the promised outputs, their content, and its user errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ConsensusReviewLib.simulate import simulate_reader_segmentations
from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_labelmap, write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import read_volume, write_volume


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    """A phantom CT and three simulated readers: two .seg.nrrd files and one label-map NIfTI."""
    folder = tmp_path_factory.mktemp("readers")
    phantom = make_phantom(seed=2, shape=(24, 64, 64), spacing=(2.0, 2.0, 4.0))
    image = write_volume(phantom.volume, folder / "ct.nrrd")
    segs = simulate_reader_segmentations(phantom, 3, seed=5)
    files = [write_seg_nrrd(segs[0], folder / "ann.seg.nrrd"), write_seg_nrrd(segs[1], folder / "bob.seg.nrrd"),
             write_labelmap(segs[2], folder / "cat.nii.gz")]
    return phantom, image, files, segs


def test_staple_outputs_and_agreement_json(readers, tmp_path, capsys):
    phantom, image, files, segs = readers
    out = tmp_path / "out"
    rc = main(["consensus", "--method", "staple", "--reference", str(image), "--out", str(out)] + [str(f) for f in files])
    assert rc == 0
    assert "consensus (staple) of 3 annotators: ann, bob, cat" in capsys.readouterr().out
    for name in ("consensus.seg.nrrd", "consensus.nii.gz", "agreement.json", "agreement.csv", "report.html",
                 "disagreement.nii.gz", "probability_liver.nii.gz", "probability_kidney_left.nii.gz",
                 "overlay_planes.png"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "agreement.json").read_text(encoding="utf-8"))
    assert doc["annotators"] == ["ann", "bob", "cat"] and doc["method"] == "staple"
    assert doc["parameters"]["threshold"] == 0.5 and doc["parameters"]["hd_mode"] == "max"
    assert "inf" in doc["metric_definitions"]["empty_mask_policy"]
    consensus = read_segmentation(out / "consensus.seg.nrrd")
    assert consensus.geometry.same_grid(phantom.volume.geometry)
    assert set(consensus.names) == set(phantom.label_values)
    for label in ("liver", "aorta"):
        entry = doc["labels"][label]
        masks = [s.mask(label) for s in segs]
        dice = np.array(entry["pairwise"]["dice"])
        assert dice.shape == (3, 3) and np.allclose(dice, dice.T) and np.allclose(np.diag(dice), 1)
        inter = np.logical_and(masks[0], masks[2]).sum()
        assert dice[0, 2] == pytest.approx(2 * inter / (masks[0].sum() + masks[2].sum()))
        assert np.array(entry["pairwise"]["hd95"]).shape == (3, 3)
        assert [r["annotator"] for r in entry["per_annotator"]] == ["ann", "bob", "cat"]
        assert len(entry["staple"]["sensitivity"]) == 3 and entry["staple"]["converged"]
        prob = read_volume(out / f"probability_{label}.nii.gz")
        assert prob.geometry.same_grid(phantom.volume.geometry)
        assert np.array_equal(prob.array > 0.5, consensus.mask(label))
        voxel_ml = np.prod(phantom.volume.geometry.spacing) / 1000
        assert entry["consensus_volume_ml"] == pytest.approx(consensus.mask(label).sum() * voxel_ml)
    labelmap = read_segmentation(out / "consensus.nii.gz")
    assert np.array_equal(labelmap.mask("spleen"), consensus.mask("spleen"))
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Empty masks" in html and "heatmap_00.png" in html and "maximum of the two directed" in html


@pytest.mark.parametrize("method", ["majority", "multilabel-staple"])
def test_other_methods(readers, tmp_path, method):
    _, _, files, segs = readers
    out = tmp_path / method
    assert main(["consensus", "--method", method, "--no-report", "--hd-mode", "mean", "--out", str(out)]
                + [str(f) for f in files]) == 0
    doc = json.loads((out / "agreement.json").read_text(encoding="utf-8"))
    consensus = read_segmentation(out / "consensus.seg.nrrd")
    if method == "majority":
        votes = sum(s.mask("liver").astype(int) for s in segs)
        assert np.array_equal(consensus.mask("liver"), votes >= 2)
        assert "tie" in doc["parameters"]["tie_policy"] and not list(out.glob("probability_*"))
    else:
        assert doc["labels"]["liver"]["staple"]["method"] == "multilabel-staple"
        assert (out / "probability_liver.nii.gz").is_file()
    assert "average of the two" in doc["metric_definitions"]["hd95"]
    assert not (out / "report.html").exists()


def test_user_errors(readers, tmp_path, capsys):
    phantom, _, files, _ = readers
    assert main(["consensus", "--method", "staple", "--out", str(tmp_path), str(files[0])]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["consensus", "--method", "staple", "--out", str(tmp_path), str(files[0]), str(tmp_path / "nope.seg.nrrd")]) == 2
    assert "nope.seg.nrrd" in capsys.readouterr().err
    from DicomTeamAnnotateLib.core.geometry import Geometry
    from DicomTeamAnnotateLib.core.segmentation import Segmentation

    g = phantom.volume.geometry
    moved = Geometry(size=g.size, spacing=g.spacing, origin=np.array(g.origin) + (0.0, 0.0, 500.0), direction=g.direction)
    far = write_seg_nrrd(Segmentation.from_masks({"liver": phantom.labels == 1}, moved), tmp_path / "far.seg.nrrd")
    assert main(["consensus", "--method", "staple", "--out", str(tmp_path / "o"), str(files[0]), str(far)]) == 2
    err = capsys.readouterr().err
    assert "far.seg.nrrd: cannot be placed" in err and "origin" in err
    assert main(["consensus", "--method", "staple", "--case", "c1", "--out", str(tmp_path), str(files[0]),
                 str(files[1])]) == 2
    assert "--store" in capsys.readouterr().err


def test_label_values_above_255_are_kept_in_the_consensus(tmp_path):
    """Annotators who label with FreeSurfer's values (1035, 2035): the consensus says 1035 and 2035 too."""
    from DicomTeamAnnotateLib.core.segmentation import Segmentation

    phantom = make_phantom(seed=3, shape=(12, 32, 32), spacing=(2.0, 2.0, 4.0))
    files = []
    for n, shift in enumerate((0, 1, 0)):
        a = np.zeros(phantom.labels.shape, bool)
        a[2:6, 4 + shift:14, 4:14] = True
        b = np.zeros(phantom.labels.shape, bool)
        b[7:10, 18:28, 18:28 + shift] = True
        seg = Segmentation.from_masks({"ctx-lh-insula": a, "Left-Cerebellum": b}, phantom.volume.geometry,
                                      values={"ctx-lh-insula": 1035, "Left-Cerebellum": 2035})
        files.append(write_seg_nrrd(seg, tmp_path / f"r{n}.seg.nrrd"))
    out = tmp_path / "out"
    assert main(["consensus", "--method", "majority", "--out", str(out)] + [str(f) for f in files]) == 0
    consensus = read_segmentation(out / "consensus.seg.nrrd")
    assert {s.name: s.label_value for s in consensus.segments} == {"ctx-lh-insula": 1035, "Left-Cerebellum": 2035}
    assert set(np.unique(read_volume(out / "consensus.nii.gz").array)) == {0, 1035, 2035}
