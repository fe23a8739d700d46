"""The demo's annotation loop on a phantom project: cases, simulated annotators, adjudication, all through the store.

``make_phantom_project`` creates a folder project of phantom patients (each case remembers its
phantom seed as a case attribute, so the truth can be rebuilt); ``annotate_round`` lets simulated
annotators open their cases as the panel does (``worklist.cases.open_case``: from the model's
prediction when there is one, else from nothing), correct them (``demo.simulated_annotator``),
push with the effort record in ``meta["effort"]`` and submit; the reviewer then adjudicates each
case (the submitted reading, as the adjudicated version).  TrainBridge's demo steps train on round 1
and pre-annotate round 2 between the two calls.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from DicomTeamAnnotateLib.demo.phantom import COLORS, LABEL_VALUES, TERMINOLOGY, make_phantom
from DicomTeamAnnotateLib.demo.simulated_annotator import correct_segmentation
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import write_volume
from DicomTeamAnnotateLib.store import admin
from DicomTeamAnnotateLib.store.interface import open_store
from DicomTeamAnnotateLib.worklist.cases import open_case

ANNOTATORS = ("ann1", "ann2")
REVIEWER = "rev"
SEED_ATTRIBUTE = "phantom_seed"


def phantom_labels() -> list[dict]:
    """The phantom's label list as a project ontology (names, values, colours, SNOMED CT terminology)."""
    return [{"name": n, "value": v, "color": list(COLORS[n]), "terminology": TERMINOLOGY[n]}
            for n, v in LABEL_VALUES.items()]


def make_phantom_project(project_dir, name: str = "Phantom loop demo") -> Path:
    """An empty blind project with two annotators and a reviewer (folder store: members by name)."""
    project_dir = Path(project_dir)
    admin.init_project(project_dir, name, phantom_labels())
    for user in ANNOTATORS:
        admin.add_member(project_dir, user, "annotator")
    admin.add_member(project_dir, REVIEWER, "reviewer")
    return project_dir


def add_phantom_cases(project_dir, seeds: list, shape, prefix: str = "phantom") -> list[str]:
    """Add one case per phantom seed (patient PHANTOM-<seed>), each assigned to one annotator in turn."""
    project_dir = Path(project_dir)
    ids = []
    with tempfile.TemporaryDirectory(prefix="phantom-cases-") as tmp:
        for n, seed in enumerate(seeds):
            phantom = make_phantom(seed=seed, shape=shape)
            case_id = f"{prefix}-{seed}"
            image = write_volume(phantom.volume, Path(tmp) / f"{case_id}.nrrd")
            admin.add_case(project_dir, case_id, image, phantom.patient_id, attributes={SEED_ATTRIBUTE: str(seed)})
            admin.assign(project_dir, case_id, ANNOTATORS[n % len(ANNOTATORS)])
            ids.append(case_id)
    return ids


def truth_of(case: dict, shape):
    """The phantom truth of a case made by ``add_phantom_cases`` (rebuilt from its seed)."""
    return make_phantom(seed=int(case["attributes"][SEED_ATTRIBUTE]), shape=shape).segmentation()


def annotate_round(project_dir, case_ids: list, shape, work_dir, *, target_dice: float = 0.95) -> list[dict]:
    """Each case's annotator opens, corrects, pushes (effort in meta) and submits it; the reviewer adjudicates.

    Returns one row per case: case_id, annotator, start ("prediction" or "new"), version, adjudicated, effort.
    """
    project_dir, work_dir = Path(project_dir), Path(work_dir)
    reviewer = open_store(project_dir, REVIEWER)
    rows = []
    for case_id in case_ids:
        assigned = [a["user"] for a in reviewer.assignments(case_id)]
        annotator = open_store(project_dir, assigned[0])
        opened = open_case(annotator, case_id, work_dir)
        start = read_segmentation(opened.segmentation_path) if opened.segmentation_path else None
        parent = opened.version["id"] if opened.version else None
        result, effort = correct_segmentation(start, truth_of(opened.case, shape), start_kind=opened.start,
                                              start_version=parent, target_dice=target_dice)
        path = write_seg_nrrd(result, work_dir / assigned[0] / case_id / "submit.seg.nrrd")
        version = annotator.push_version(case_id, path, parent=parent, message="simulated reading",
                                         meta={"effort": effort})
        annotator.set_state(case_id, "submitted")
        adjudicated = reviewer.push_version(case_id, path, parent=version["id"], kind="adjudicated",
                                           message=f"adjudicated: {assigned[0]}'s reading accepted")
        rows.append({"case_id": case_id, "annotator": assigned[0], "start": opened.start, "version": version["id"],
                     "adjudicated": adjudicated["id"], "effort": effort})
    return rows
