"""TrainBridge export: patient-level splits, the nnU-Net raw layout, pre-flight checks, other formats.

Real components only: phantoms and the real abdominal CT written to disk, nnU-Net's own
``nnUNetv2_plan_and_preprocess --verify_dataset_integrity``, MONAI's datalist reader, SimpleITK.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import CT_ORGANS_JSON, need

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom
from DicomTeamAnnotateLib.io.volumes import read_volume, write_volume
from TrainBridgeLib.export.cases import CaseInput
from TrainBridgeLib.export.nnunet import export_nnunet
from TrainBridgeLib.export.preflight import PreflightError, check_dataset
from TrainBridgeLib.export.splits import check_splits, make_splits

SHAPE = (12, 24, 24)


def phantom_files(root: Path, patients=6, per_patient=2, shape=SHAPE):
    """Write phantom images and label maps to files: seeds are patients, several cases each."""
    cases = []
    for p in range(patients):
        for k in range(per_patient):
            ph = make_phantom(seed=100 * p + k, shape=shape)
            img = write_volume(ph.volume, root / f"p{p}_c{k}_img.nii.gz")
            lab = write_volume(ph.label_volume(), root / f"p{p}_c{k}_lab.nrrd")
            cases.append(CaseInput(f"p{p}_c{k}", f"PAT{p}", [img], lab, attributes={"site": "AB"[p % 2]}))
    return cases


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read(path):
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), Geometry.from_sitk(img)


@pytest.fixture(scope="module")
def phantom_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    cases = phantom_files(root)
    result = export_nnunet(cases, root / "nnUNet_raw", "Phantoms", labels=LABEL_VALUES,
                           preprocessed_dir=root / "nnUNet_preprocessed", test_fraction=0.2, folds=5)
    return cases, result


@pytest.fixture(scope="module")
def ct_export(phantom_export, ct_dicom_dir, ct_organs_path):
    """The real CT exported beside the phantoms (same nnUNet_raw, next free id)."""
    _, r = phantom_export
    case = CaseInput("ct001", "TS-1", [ct_dicom_dir], ct_organs_path)
    return export_nnunet([case], r.dataset_dir.parent, "AbdomenCT", labels=need(CT_ORGANS_JSON),
                         preprocessed_dir=r.preprocessed_dir, test_fraction=0, folds=1)


# ----- splits --------------------------------------------------------------------------------------------------
def test_splits_keep_each_patient_in_one_place_and_test_out_of_every_fold():
    rng = np.random.default_rng(1)
    patient_of = {f"c{i}": f"P{int(rng.integers(0, 23))}" for i in range(80)}
    strata = {c: ("site1" if int(p[1:]) % 3 else "site2") for c, p in patient_of.items()}
    s = make_splits(patient_of, test_fraction=0.25, folds=5, seed=3, strata=strata)
    assert check_splits(s) == []
    test_patients = {patient_of[c] for c in s.test}
    assert test_patients and len(s.folds) == 5
    for fold in s.folds:
        val_p = {patient_of[c] for c in fold["val"]}
        train_p = {patient_of[c] for c in fold["train"]}
        assert not val_p & train_p and not (val_p | train_p) & test_patients
        assert set(fold["train"]) | set(fold["val"]) == set(s.train)
    # every training case is a validation case exactly once
    vals = [c for f in s.folds for c in f["val"]]
    assert sorted(vals) == s.train
    # stratification: both sites in the test set, and in every fold's validation set
    assert {strata[c] for c in s.test} == {"site1", "site2"}
    assert all({strata[c] for c in f["val"]} == {"site1", "site2"} for f in s.folds)
    # deterministic
    assert make_splits(patient_of, test_fraction=0.25, folds=5, seed=3, strata=strata).to_dict() == s.to_dict()


def test_splits_use_fewer_folds_with_fewer_patients_and_refuse_too_few():
    s = make_splits({"a1": "A", "a2": "A", "b1": "B", "c1": "C", "d1": "D"}, test_fraction=0.25, folds=5)
    assert len(s.test) == 1 and len(s.folds) == 3
    two = make_splits({"a": "A", "b": "B"}, test_fraction=0.5, folds=5)
    assert two.test == [] and len(two.folds) == 2  # two patients are kept for train/val, none for test
    with pytest.raises(ValueError, match="at least 2 training patients"):
        make_splits({"a1": "A", "a2": "A"}, test_fraction=0.2, folds=5)
    with pytest.raises(ValueError, match="patient id is empty"):
        make_splits({"a": "A", "b": ""}, folds=2)


# ----- nnU-Net layout ------------------------------------------------------------------------------------------
def test_phantom_export_layout_labels_and_splits(phantom_export):
    cases, r = phantom_export
    d = r.dataset_dir
    assert d.name == "Dataset500_Phantoms" and r.dataset_id == 500
    meta = json.loads((d / "dataset.json").read_text(encoding="utf-8"))
    assert meta["labels"] == {"background": 0, **{n: v for n, v in LABEL_VALUES.items()}}
    assert meta["channel_names"] == {"0": "CT"} and meta["file_ending"] == ".nii.gz"
    records = json.loads((d / "cases.json").read_text(encoding="utf-8"))
    train = [c for c, rec in records.items() if rec["split"] == "train"]
    test = [c for c, rec in records.items() if rec["split"] == "test"]
    assert meta["numTraining"] == len(train) == len(list((d / "imagesTr").glob("*_0000.nii.gz")))
    assert sorted(p.name for p in (d / "labelsTs").iterdir()) == sorted(f"{c}.nii.gz" for c in test)
    # no patient in two splits, per cases.json and per nnU-Net's splits_final.json (the preprocessed copy)
    splits = json.loads((r.preprocessed_dir / d.name / "splits_final.json").read_text(encoding="utf-8"))
    assert splits == json.loads((d / "splits_final.json").read_text(encoding="utf-8")) and len(splits) == 5
    test_patients = {records[c]["patient_id"] for c in test}
    for fold in splits:
        tr = {records[c]["patient_id"] for c in fold["train"]}
        va = {records[c]["patient_id"] for c in fold["val"]}
        assert not tr & va and not (tr | va) & test_patients
    assert records["p0_c0"]["source_images"] == [str(cases[0].images[0])]
    assert check_dataset(d, folds=5) == []


def test_export_keeps_geometry_and_voxels_of_the_source(phantom_export):
    cases, r = phantom_export
    records = r.cases
    for c in cases:
        rec = records[c.case_id]
        src_img, src_lab = read_volume(c.images[0]), read_volume(c.label)
        img, g = read(r.dataset_dir / rec["images"][0])
        lab, gl = read(r.dataset_dir / rec["label"])
        assert g.same_grid(src_img.geometry) and gl.same_grid(src_img.geometry), g.differences(src_img.geometry)
        assert img.dtype == src_img.array.dtype and np.array_equal(img, src_img.array)
        assert np.array_equal(lab, src_lab.array)  # phantom values are already 1..8 in ontology order


def test_free_id_taken_ids_and_existing_folder(tmp_path, phantom_export):
    cases = phantom_files(tmp_path, patients=3, per_patient=1)
    raw, pre = tmp_path / "raw", tmp_path / "pre"
    (raw / "Dataset500_Other").mkdir(parents=True)
    (pre / "Dataset501_Else").mkdir(parents=True)
    r = export_nnunet(cases, raw, "Small", labels=LABEL_VALUES, preprocessed_dir=pre, test_fraction=0, folds=2)
    assert r.dataset_id == 502
    with pytest.raises(ValueError, match="already used"):
        export_nnunet(cases, raw, "Small2", labels=LABEL_VALUES, preprocessed_dir=pre, dataset_id=500, folds=2)
    with pytest.raises(FileExistsError):
        export_nnunet(cases, raw, "Small", labels=LABEL_VALUES, preprocessed_dir=pre, dataset_id=502, folds=2)
    again = export_nnunet(cases[:2] + cases[2:], raw, "Small", labels=LABEL_VALUES, preprocessed_dir=pre,
                          dataset_id=502, folds=2, overwrite=True, seed=1)
    assert again.dataset_dir == r.dataset_dir
    assert json.loads((r.dataset_dir / "splits.json").read_text(encoding="utf-8"))["seed"] == 1
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no partial or old folder left
    assert (r.dataset_dir.stat().st_mode & 0o777) == (0o777 & ~current_umask())


def test_nonconsecutive_values_and_multichannel_on_different_grids(tmp_path):
    ph = make_phantom(seed=5, shape=SHAPE)
    g = ph.volume.geometry
    labels = np.where(ph.labels == 1, 40, np.where(ph.labels == 2, 7, 0)).astype(np.uint8)
    # a second channel on a coarser grid: resampled onto channel 0 by physical position
    coarse = Geometry(size=(12, 12, 6), spacing=(3.0, 3.0, 6.0), origin=np.array(g.origin) + [0.75, 0.75, 1.5])
    t2 = Volume(np.full(coarse.shape, 300, dtype=np.int16), coarse)
    cases = [CaseInput(f"c{i}", f"P{i}", [ph.volume, t2], Volume(labels, g)) for i in range(3)]
    r = export_nnunet(cases, tmp_path / "raw", "TwoChannel", labels={"liver": 40, "spleen": 7},
                      preprocessed_dir=tmp_path / "pre", test_fraction=0, folds=3, channel_names=["CT", "T2"])
    meta = json.loads((r.dataset_dir / "dataset.json").read_text(encoding="utf-8"))
    assert meta["labels"] == {"background": 0, "spleen": 1, "liver": 2}
    assert meta["channel_names"] == {"0": "CT", "1": "T2"}
    lab, gl = read(r.dataset_dir / "labelsTr" / "c0.nii.gz")
    assert np.array_equal(lab == 2, ph.labels == 1) and np.array_equal(lab == 1, ph.labels == 2)
    ch1, g1 = read(r.dataset_dir / "imagesTr" / "c0_0001.nii.gz")
    assert g1.same_grid(g) and ch1.shape == ph.labels.shape
    assert check_dataset(r.dataset_dir) == []


def test_export_stops_on_bad_input_naming_case_and_field(tmp_path):
    ph = make_phantom(seed=1, shape=SHAPE)
    bad = ph.volume.array.astype(np.float32)
    bad[3, 4, 5] = np.nan
    cases = [CaseInput(f"c{i}", f"P{i}", [Volume(bad if i == 2 else ph.volume.array.astype(np.float32),
                                                 ph.volume.geometry)], ph.label_volume()) for i in range(3)]
    with pytest.raises(PreflightError, match=r"case 'c2': image channel 0: 1 NaN"):
        export_nnunet(cases, tmp_path / "raw", "Bad", labels=LABEL_VALUES, preprocessed_dir=tmp_path / "pre",
                      test_fraction=0, folds=2)
    assert not (tmp_path / "raw" / "Dataset500_Bad").exists()  # nothing half-written is left
    cases[2] = CaseInput("c2", "P2", [ph.volume], ph.label_volume())
    with pytest.raises(ValueError,
                       match=r"case 'c0': field 'label': value\(s\) \[2, 3, 4, 5, 6, 7, 8\] are not in the label names"):
        export_nnunet(cases, tmp_path / "raw", "Bad", labels={"liver": 1}, preprocessed_dir=tmp_path / "pre",
                      test_fraction=0, folds=2)


def test_export_refuses_labels_that_miss_the_image_and_mixed_channel_counts(tmp_path):
    ph = make_phantom(seed=1, shape=SHAPE)
    g = ph.volume.geometry
    far = Geometry(size=g.size, spacing=g.spacing, origin=np.array(g.origin) + [0, 0, 500.0], direction=g.direction)
    cases = [CaseInput(f"c{i}", f"P{i}", [ph.volume], ph.label_volume()) for i in range(4)]
    cases[1] = CaseInput("c1", "P1", [ph.volume], Volume(ph.labels, far))  # drawn 50 cm away: would vanish
    with pytest.raises(ValueError, match=r"case 'c1': field 'label': cannot be placed on the reference image"):
        export_nnunet(cases, tmp_path / "raw", "Far", labels=LABEL_VALUES, test_fraction=0, folds=2)
    # a label on another grid of the same space (e.g. cropped by Slicer) is resampled, and said
    crop = Geometry(size=(g.size[0] - 4, g.size[1], g.size[2]), spacing=g.spacing, origin=g.index_to_world([2, 0, 0]),
                    direction=g.direction)
    cases[1] = CaseInput("c1", "P1", [ph.volume], Volume(np.ascontiguousarray(ph.labels[:, :, 2:-2]), crop))
    r = export_nnunet(cases, tmp_path / "raw", "Crop", labels=LABEL_VALUES, test_fraction=0, folds=2)
    assert any("resampled" in n for n in json.loads((r.dataset_dir / "cases.json").read_text(encoding="utf-8"))["c1"]["notes"])
    cases[1] = CaseInput("c1", "P1", [ph.volume, ph.volume], ph.label_volume())  # two channels among one
    with pytest.raises(PreflightError, match=r"case 'c1': channels: 2 channel\(s\), the dataset has 1"):
        export_nnunet(cases, tmp_path / "raw", "Chan", labels=LABEL_VALUES, test_fraction=0, folds=2)
    with pytest.raises(ValueError, match="at least 2 training patients"):
        export_nnunet(cases[:1], tmp_path / "raw", "One", labels=LABEL_VALUES, test_fraction=0, folds=2)


def test_preflight_names_case_and_field_on_a_damaged_dataset(tmp_path, phantom_export):
    _, r = phantom_export
    d = tmp_path / r.dataset_dir.name
    shutil.copytree(r.dataset_dir, d)
    lab, g = read(d / "labelsTr" / "p0_c0.nii.gz")
    lab[0, 0, 0] = 12
    write_volume(Volume(lab, g), d / "labelsTr" / "p0_c0.nii.gz")
    moved = Geometry(size=g.size, spacing=g.spacing, origin=np.array(g.origin) + [0, 0, 5.0], direction=g.direction)
    img, _ = read(d / "imagesTr" / "p1_c0_0000.nii.gz")
    write_volume(Volume(img, moved), d / "imagesTr" / "p1_c0_0000.nii.gz")
    (d / "labelsTr" / "p1_c1.nii.gz").unlink()
    problems = {(p.case, p.field) for p in check_dataset(d)}
    assert ("p0_c0", "label values") in problems
    assert ("p1_c0", "label origin") in problems
    assert ("p1_c1", "label") in problems


@pytest.mark.slow  # ~30-80 s: nnU-Net fingerprints, plans and preprocesses
def test_nnunet_verify_dataset_integrity_passes(tmp_path, phantom_export, ct_export):
    """nnU-Net's own check on what we wrote (phantoms: fingerprint, plans and preprocessing; the real
    CT: fingerprint and plans); the splits we wrote survive it."""
    _, r = phantom_export
    env = dict(os.environ, nnUNet_raw=str(r.dataset_dir.parent), nnUNet_preprocessed=str(r.preprocessed_dir),
               nnUNet_results=str(tmp_path / "results"), nnUNet_compile="false", OMP_NUM_THREADS="1")
    exe = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    for ids, extra in (([r.dataset_id], ["-c", "3d_fullres"]), ([ct_export.dataset_id], ["--no_pp"])):
        proc = subprocess.run([str(exe), "-d", *map(str, ids), "--verify_dataset_integrity", "-np", "2", "-npfp", "2",
                               *extra], env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "verify_dataset_integrity Done" in proc.stdout
        assert "Error" not in proc.stdout and "Warning" not in proc.stdout, proc.stdout[-3000:]
    pre = r.preprocessed_dir / r.dataset_dir.name
    assert (pre / "nnUNetPlans_3d_fullres").is_dir()
    assert (r.preprocessed_dir / ct_export.dataset_dir.name / "nnUNetPlans.json").exists()
    assert json.loads((pre / "splits_final.json").read_text(encoding="utf-8")) == [
        {"train": f["train"], "val": f["val"]} for f in r.splits.folds]


# ----- the real CT ---------------------------------------------------------------------------------------------
def test_real_ct_export_matches_dicom_geometry_and_organ_voxels(ct_export, ct_dicom_dir):
    from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume

    organs = json.loads(need(CT_ORGANS_JSON).read_text(encoding="utf-8"))
    r = ct_export
    meta = json.loads((r.dataset_dir / "dataset.json").read_text(encoding="utf-8"))
    ordered = sorted(organs["labels"].items(), key=lambda kv: kv[1])
    assert list(meta["labels"].items())[1:] == [(n, i) for i, (n, _) in enumerate(ordered, start=1)]
    assert meta["channel_names"] == {"0": "CT"}
    src = load_dicom_volume(ct_dicom_dir)
    img, g = read(r.dataset_dir / "imagesTr" / "ct001_0000.nii.gz")
    lab, gl = read(r.dataset_dir / "labelsTr" / "ct001.nii.gz")
    assert g.same_grid(src.geometry) and gl.same_grid(src.geometry), g.differences(src.geometry)
    assert np.array_equal(img, src.array)
    counts = np.bincount(lab.ravel(), minlength=len(ordered) + 1)
    assert {n: int(counts[i]) for i, (n, _) in enumerate(ordered, start=1)} == organs["voxels"]
    assert check_dataset(r.dataset_dir, folds=1) == []


# ----- other formats -------------------------------------------------------------------------------------------
def test_seg_nrrd_and_coco_slices_carry_labels_and_physical_positions(tmp_path, phantom_export):
    from DicomTeamAnnotateLib.io.segmentations import read_segmentation
    from TrainBridgeLib.export.other_formats import rle_decode, write_coco_slices, write_seg_nrrd_folder

    _, r = phantom_export
    written = write_seg_nrrd_folder(r.dataset_dir, tmp_path / "segs")
    assert len(written) == len(r.cases)
    lab, g = read(r.dataset_dir / r.cases["p0_c0"]["label"])
    seg = read_segmentation(tmp_path / "segs" / "p0_c0.seg.nrrd")
    assert seg.geometry.same_grid(g)
    for name, value in LABEL_VALUES.items():
        assert np.array_equal(seg.mask(name), lab == value), name
    coco = json.loads(write_coco_slices(r.dataset_dir, tmp_path / "coco").read_text(encoding="utf-8"))
    assert [c["id"] for c in coco["categories"]] == sorted(LABEL_VALUES.values())
    images = {(i["case_id"], i["slice_index"]): i for i in coco["images"]}
    assert len(images) == len(r.cases) * SHAPE[0]
    img = images[("p0_c0", 5)]
    assert img["split"] == r.cases["p0_c0"]["split"] and img["patient_id"] == "PAT0"
    assert np.allclose(img["image_position_lps"], g.index_to_world([0, 0, 5]))
    assert np.allclose(img["image_orientation_lps"], [1, 0, 0, 0, 1, 0]) and img["pixel_spacing"] == [1.5, 1.5]
    anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
    assert {a["category_id"] for a in anns} == {int(v) for v in np.unique(lab[5]) if v}
    for a in anns:
        mask = rle_decode(a["segmentation"])
        assert np.array_equal(mask, lab[5] == a["category_id"]) and a["area"] == int(mask.sum())
    png = sitk.ReadImage(str(tmp_path / "coco" / img["file_name"]))
    assert png.GetSize() == (SHAPE[2], SHAPE[1])


def test_cli_export_of_the_real_ct_takes_label_names_from_the_sidecar(tmp_path, ct_dicom_dir, ct_organs_path):
    """organs.nii.gz's names come from organs.json beside it; no --label-names needed."""
    from DicomTeamAnnotateLib.cli.main import main as dicomteam

    organs = json.loads(need(CT_ORGANS_JSON).read_text(encoding="utf-8"))["labels"]
    assert dicomteam(["export-nnunet", "--images", str(ct_dicom_dir), "--labels", str(ct_organs_path),
                      "--patients", "TS-1", "--out", str(tmp_path / "raw"), "--name", "CT", "--folds", "1",
                      "--test-fraction", "0"]) == 0
    meta = json.loads((tmp_path / "raw" / "Dataset500_CT" / "dataset.json").read_text(encoding="utf-8"))
    assert list(meta["labels"])[1:] == sorted(organs, key=organs.get)
    assert (tmp_path / "nnUNet_preprocessed" / "Dataset500_CT" / "splits_final.json").exists()
    assert dicomteam(["export-nnunet", "--images", str(ct_dicom_dir), "--labels", str(ct_organs_path), "x",
                      "--patients", "TS-1", "--out", str(tmp_path / "raw"), "--name", "CT2"]) == 2
