"""Consensus inputs from the project store: every annotator's latest submitted version of a case.

Through the Store API only (``DicomTeamAnnotateLib.store.open_store``), so the same code works
on a project folder and on the project server.  The reviewer's role sees every version; an
annotator of a blind project sees only their own, so consensus is a reviewer's task.
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


def annotation_versions(store, case_id: str, submitted_only: bool = True) -> list:
    """The latest 'annotation' version of each author of a case, in order of first push.

    ``submitted_only`` (default): only authors whose workflow state on the case is "submitted"
    (a draft is not a read); False takes every author's latest version.
    """
    versions = [v for v in store.list_versions(case_id) if v["kind"] == "annotation"]
    latest: dict = {}
    for v in versions:  # push order: later versions replace earlier ones of the same author
        latest[v["author"]] = v
    chosen = list(latest.values())
    if submitted_only:
        states = store.states(case_id).get("annotators", {})
        chosen = [v for v in chosen if states.get(v["author"]) == "submitted"]
    order = {a: n for n, a in enumerate(dict.fromkeys(v["author"] for v in versions))}
    return sorted(chosen, key=lambda v: order[v["author"]])


def load_store_case(store, case_id: str, work_dir, submitted_only: bool = True) -> tuple:
    """(ConsensusInputs on the case image's grid, image Volume, versions used) for one case."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    versions = annotation_versions(store, case_id, submitted_only)
    if len(versions) < 2:
        which = "submitted annotations" if submitted_only else "annotations"
        raise ValueError(f"case {case_id!r}: consensus needs {which} by at least two annotators; "
                         f"the store has {len(versions)} ({', '.join(v['author'] for v in versions) or 'none'})")
    image = read_volume(store.fetch_image(case_id, work_dir))
    segs, sources = [], []
    for v in versions:
        path = store.fetch_version(v["id"], work_dir / f"{v['id']}.seg.nrrd")
        segs.append(read_segmentation(path))
        sources.append(f"version {v['id']} by {v['author']} ({v['created']})")
    labels = project_segments(store.project()) or None
    inputs = align_segmentations(segs, [v["author"] for v in versions], image.geometry, sources, labels)
    return inputs, image, versions
