"""TrainBridge export from a real project store: adjudicated (or chosen) versions, the project's ontology."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from DicomTeamAnnotateLib.cli.main import main as dicomteam
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.demo.phantom import TERMINOLOGY, make_phantom
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.store import admin, open_store
from TrainBridgeLib.export.from_store import cases_from_store

SHAPE = (12, 24, 24)
# the project's ontology: other values than the phantom's, liver matched by terminology only
PROJECT_LABELS = [{"name": "Leber", "value": 10, "terminology": TERMINOLOGY["liver"]},
                  {"name": "spleen", "value": 20}, {"name": "bone", "value": 30}]


def make_project(root):
    project = root / "project"
    admin.init_project(project, "Train", PROJECT_LABELS, blind=True)
    truth = {}
    plan = {"c1": "P1", "c2": "P1", "c3": "P2", "c4": "P3", "c5": "P4", "c6": "P5"}
    for n, (case, patient) in enumerate(plan.items()):
        ph = make_phantom(seed=n, shape=SHAPE)
        admin.add_case(project, case, ph.volume, patient)
        truth[case] = ph
    admin.add_member(project, "alice", "annotator")
    admin.add_member(project, "rev", "reviewer")
    for case in plan:
        admin.assign(project, case, "alice")
    alice, rev = open_store(project, "alice"), open_store(project, "rev")
    adjudicated = {}
    for case, ph in truth.items():
        g = ph.volume.geometry
        masks = {"liver": ph.labels == 1, "spleen": ph.labels == 2, "bone": ph.labels == 5}
        seg = Segmentation.from_masks(masks, g, terminology={"liver": TERMINOLOGY["liver"]})
        alice.push_version(case, write_seg_nrrd(seg, root / f"{case}-alice.seg.nrrd"))
        if case == "c6":
            continue  # never adjudicated: must be skipped
        if case == "c3":  # the adjudicator's file is cropped to the content (as Slicer may save it)
            crop = (slice(2, 10), slice(3, 21), slice(2, 22))
            sub = Geometry(size=(20, 18, 8), spacing=g.spacing, origin=g.index_to_world([2, 3, 2]))
            seg = Segmentation.from_masks({k: m[crop] for k, m in masks.items()}, sub,
                                          terminology={"liver": TERMINOLOGY["liver"]})
        adjudicated[case] = rev.push_version(case, write_seg_nrrd(seg, root / f"{case}-adj.seg.nrrd"),
                                             kind="adjudicated")["id"]
    return project, truth, adjudicated


def test_export_from_store_uses_adjudicated_versions_and_the_project_ontology(tmp_path):
    project, truth, adjudicated = make_project(tmp_path)
    raw = tmp_path / "raw"
    assert dicomteam(["export-nnunet", "--store", str(project), "--user", "rev", "--out", str(raw),
                      "--name", "FromStore", "--folds", "2", "--test-fraction", "0.25", "--seg-nrrd",
                      str(tmp_path / "segs"), "--coco", str(tmp_path / "coco")]) == 0
    d = raw / "Dataset500_FromStore"
    meta = json.loads((d / "dataset.json").read_text(encoding="utf-8"))
    assert meta["labels"] == {"background": 0, "Leber": 1, "spleen": 2, "bone": 3}
    cases = json.loads((d / "cases.json").read_text(encoding="utf-8"))
    assert sorted(cases) == ["c1", "c2", "c3", "c4", "c5"]  # c6 has no adjudicated version
    assert {c: r["source"]["version_id"] for c, r in cases.items()} == adjudicated
    assert cases["c1"]["patient_id"] == cases["c2"]["patient_id"] == "P1"
    assert cases["c1"]["split"] == cases["c2"]["split"]  # one patient, one side of every split
    for case, rec in cases.items():
        lab = sitk.ReadImage(str(d / rec["label"]))
        img = sitk.ReadImage(str(d / rec["images"][0]))
        ph = truth[case]
        assert np.allclose(img.GetOrigin(), ph.volume.geometry.origin, atol=1e-4)
        arr = sitk.GetArrayFromImage(lab)
        expected = np.select([ph.labels == 1, ph.labels == 2, ph.labels == 5], [1, 2, 3], 0)
        if case == "c3":  # cropped file: equal inside the crop, background outside
            inside = np.zeros(SHAPE, bool)
            inside[2:10, 3:21, 2:22] = True
            expected = np.where(inside, expected, 0)
        assert np.array_equal(arr, expected), case
    # the Slicer files and the 2D slices carry the same labels
    from DicomTeamAnnotateLib.io.segmentations import read_segmentation

    seg = read_segmentation(tmp_path / "segs" / "c1.seg.nrrd")
    assert {s.name for s in seg.segments} == {"Leber", "spleen", "bone"}
    assert np.array_equal(seg.mask("Leber"), truth["c1"].labels == 1)
    coco = json.loads((tmp_path / "coco" / "coco.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in coco["categories"]] == ["Leber", "spleen", "bone"]


def test_chosen_versions_override_the_default(tmp_path):
    project, truth, adjudicated = make_project(tmp_path)
    alice_c6 = open_store(project, "rev").list_versions("c6")[0]["id"]
    cases, labels = cases_from_store(project, "rev", versions={"c6": alice_c6}, work_dir=tmp_path / "dl")
    by_id = {c.case_id: c for c in cases}
    assert by_id["c6"].source["version_id"] == alice_c6 and by_id["c6"].source["kind"] == "annotation"
    assert by_id["c1"].source["version_id"] == adjudicated["c1"]
    assert [d["name"] for d in labels] == ["Leber", "spleen", "bone"]


def test_stratified_export_from_store_balances_sites_through_the_cli(tmp_path, capsys):
    """Sites given at add-case (and the DICOM scanner) reach the splits: both sites in the test
    set and in every fold's validation set; a missing or malformed attribute is named."""
    project = tmp_path / "project"
    admin.init_project(project, "Strata", PROJECT_LABELS[1:2])
    admin.add_member(project, "rev", "reviewer")
    rev = open_store(project, "rev")
    for n in range(8):
        ph = make_phantom(seed=n, shape=SHAPE)
        case, site = f"c{n}", "AB"[n % 2]
        assert dicomteam(["project", "add-case", str(project), "--case", case, "--image",
                          str(_write_volume(ph, tmp_path / f"{case}.nrrd")), "--patient", f"P{n}",
                          "--attr", f"site={site}"]) == 0
        assert f"site={site}" in capsys.readouterr().out
        seg = Segmentation.from_masks({"spleen": ph.labels == 2}, ph.volume.geometry)
        rev.push_version(case, write_seg_nrrd(seg, tmp_path / f"{case}.seg.nrrd"), kind="adjudicated")
    raw, pre = tmp_path / "raw", tmp_path / "pre"
    assert dicomteam(["export-nnunet", "--store", str(project), "--user", "rev", "--out", str(raw), "--name", "S",
                      "--folds", "2", "--test-fraction", "0.25", "--stratify", "site", "--preprocessed", str(pre),
                      "--seed", "5"]) == 0  # unstratified, seed 5 puts all of one site in one fold
    cases = json.loads((raw / "Dataset500_S" / "cases.json").read_text(encoding="utf-8"))
    site = {c: r["attributes"]["site"] for c, r in cases.items()}
    assert sorted(site.values()) == list("AAAABBBB")
    assert {site[c] for c, r in cases.items() if r["split"] == "test"} == {"A", "B"}
    folds = json.loads((pre / "Dataset500_S" / "splits_final.json").read_text(encoding="utf-8"))
    assert len(folds) == 2 and all({site[c] for c in f["val"]} == {"A", "B"} for f in folds)
    # an attribute no case has, and a malformed one: clear errors naming them
    assert dicomteam(["export-nnunet", "--store", str(project), "--user", "rev", "--out", str(raw), "--name", "T",
                      "--stratify", "scanner"]) == 2
    assert "no attribute 'scanner'" in capsys.readouterr().err
    assert dicomteam(["project", "add-case", str(project), "--case", "c9", "--image", str(tmp_path / "c0.nrrd"),
                      "--patient", "P9", "--attr", "site"]) == 2
    assert "--attr: expected KEY=VALUE, got 'site'" in capsys.readouterr().err
    assert dicomteam(["project", "add-case", str(project), "--case", "c9", "--image", str(tmp_path / "c0.nrrd"),
                      "--patient", "P9", "--attr", "9site=A"]) == 2
    assert "invalid case attribute name '9site'" in capsys.readouterr().err


def test_dicom_header_gives_scanner_and_institution_attributes(tmp_path):
    from DicomTeamAnnotateLib.demo.phantom import write_phantom_dicom

    ph = make_phantom(seed=0, shape=SHAPE)
    files = write_phantom_dicom(ph, tmp_path / "dicom")
    import pydicom

    for f in files:  # a site's scanner, as its headers name it
        ds = pydicom.dcmread(f)
        ds.Manufacturer, ds.ManufacturerModelName, ds.InstitutionName = "ACME", "CT 9000", "General Hospital"
        ds.save_as(f)
    project = tmp_path / "project"
    admin.init_project(project, "Hdr", PROJECT_LABELS[1:2])
    case = admin.add_case(project, "c1", tmp_path / "dicom", "P1", attributes={"site": "north"})
    assert case["attributes"] == {"manufacturer": "ACME", "scanner": "ACME CT 9000",
                                  "institution": "General Hospital", "site": "north"}


def _write_volume(ph, path):
    from DicomTeamAnnotateLib.io.volumes import write_volume

    write_volume(ph.volume, path)
    return path
