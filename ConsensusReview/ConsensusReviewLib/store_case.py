"""Consensus inputs from the project store: every annotator's latest submitted version of a case.

Through the Store API only (``DicomTeamAnnotateLib.store.open_store``), so the same code works
on a project folder and on the project server.  The reviewer's role sees every version; an
annotator of a blind project sees only their own, so consensus is a reviewer's task.  A model's
prediction (kind ``prediction``) is no reading and is left out, unless asked for
(``include_predictions``): then the case's latest prediction joins as one more rater, "model".
"""
from __future__ import annotations

from pathlib import Path

from ConsensusReviewLib.inputs import align_segmentations
from DicomTeamAnnotateLib.core.segmentation import Segment
from DicomTeamAnnotateLib.io.segmentations import read_segmentation
from DicomTeamAnnotateLib.io.volumes import read_volume


def project_segments(project: dict) -> list:
    """The project's label list as Segments (names, colours, terminology; the matching keys)."""
    out = []
    for entry in project.get("labels") or []:
        color = entry.get("color") or (0.5, 0.5, 0.5)
        if isinstance(color, str):  # "#rrggbb"
            color = tuple(int(color.lstrip("#")[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
        out.append(Segment(name=entry["name"], label_value=int(entry.get("value") or len(out) + 1),
                           color=tuple(color), terminology=entry.get("terminology")))
    return out


MODEL_RATER = "model"


def rater_name(version: dict) -> str:
    """The name a version reads under in consensus: its author, or "model" for a prediction."""
    return MODEL_RATER if version["kind"] == "prediction" else version["author"]


def annotation_versions(store, case_id: str, submitted_only: bool = True, include_predictions: bool = False) -> list:
    """The latest 'annotation' version of each author of a case, in order of first push.

    ``submitted_only`` (default): only authors whose workflow state on the case is "submitted"
    (a draft is not a read); False takes every author's latest version.  ``include_predictions``:
    the case's latest prediction too, last (predictions are left out by default: no reading).
    """
    every = store.list_versions(case_id)
    versions = [v for v in every if v["kind"] == "annotation"]
    latest: dict = {}
    for v in versions:  # push order: later versions replace earlier ones of the same author
        latest[v["author"]] = v
    chosen = list(latest.values())
    if submitted_only:
        states = store.states(case_id).get("annotators", {})
        chosen = [v for v in chosen if states.get(v["author"]) == "submitted"]
    order = {a: n for n, a in enumerate(dict.fromkeys(v["author"] for v in versions))}
    chosen = sorted(chosen, key=lambda v: order[v["author"]])
    predictions = [v for v in every if v["kind"] == "prediction"]
    if include_predictions and predictions:
        if MODEL_RATER in {v["author"] for v in chosen}:
            raise ValueError(f"case {case_id!r}: an annotator is named {MODEL_RATER!r}, the name the model's "
                             "prediction would read under")
        chosen.append(predictions[-1])
    return chosen


def load_store_case(store, case_id: str, work_dir, submitted_only: bool = True,
                    include_predictions: bool = False) -> tuple:
    """(ConsensusInputs on the case image's grid, image Volume, versions used) for one case."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    versions = annotation_versions(store, case_id, submitted_only, include_predictions)
    if len(versions) < 2:
        which = "submitted annotations" if submitted_only else "annotations"
        raise ValueError(f"case {case_id!r}: consensus needs {which} by at least two annotators; "
                         f"the store has {len(versions)} ({', '.join(rater_name(v) for v in versions) or 'none'})")
    image = read_volume(store.fetch_image(case_id, work_dir))
    segs, sources = [], []
    for v in versions:
        path = store.fetch_version(v["id"], work_dir / f"{v['id']}.seg.nrrd")
        segs.append(read_segmentation(path))
        model = ((v.get("meta") or {}).get("model") or {}).get("name")
        by = f"the model {model}" if v["kind"] == "prediction" else v["author"]
        sources.append(f"version {v['id']} by {by} ({v['created']})")
    labels = project_segments(store.project()) or None
    inputs = align_segmentations(segs, [rater_name(v) for v in versions], image.geometry, sources, labels)
    return inputs, image, versions
