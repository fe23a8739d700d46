"""A case on the annotator's disk: where its files live, downloading it for work, pushing my work.

Long calls (``open_case``, ``submit_case``) accept a ``progress(done, total)`` callable and
belong in a background thread in the GUI.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from DicomTeamAnnotateLib.io.segmentations import is_seg_nrrd, read_sidecar, segmentation_from_labelmap, write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import read_volume
from DicomTeamAnnotateLib.store.model import check_id, prediction_summary
from DicomTeamAnnotateLib.worklist.offline import push_or_queue

log = logging.getLogger(__name__)


def work_folder(work_dir, store, case_id: str) -> Path:
    """Where a case's files live locally: ``work_dir/<user>/<case_id>/``."""
    return Path(work_dir) / check_id(store.user, "user name") / check_id(case_id, "case id")


def draft_path(work_dir, store, case_id: str) -> Path:
    """The autosave draft of my segmentation of a case (local only until submitted)."""
    return work_folder(work_dir, store, case_id) / "draft.seg.nrrd"


@dataclass
class OpenedCase:
    """A case downloaded for work (``open_case``): its files on my disk and what the project says about it."""

    case: dict                      # the store's case record
    image_path: Path
    segmentation_path: Path | None  # the file of ``version`` (None: nothing to start from)
    version: dict | None            # my latest version, or the prediction I start from: my next push's parent
    draft_path: Path | None         # my autosaved draft, when there is one
    labels: list                    # the project's label ontology
    window_preset: str | None
    versions: list                  # every version I may see (a reviewer: every annotator's)
    start: str                      # what I start from: "version", "prediction" or "new"
    prediction: dict | None         # the model's latest prediction (``model.prediction_summary``), or None

    @property
    def case_id(self) -> str:
        return self.case["case_id"]


def open_case(store, case_id: str, work_dir, progress=None) -> OpenedCase:
    """Download a case for work: the image, my latest version, the draft if any, and the project settings.

    With no version of my own yet, a case the model has pre-annotated starts from the model's
    latest prediction: it is returned as 'version' (so my first push has the prediction as its
    parent, and the store knows exactly what I changed) with 'start' "prediction".
    """
    folder = work_folder(work_dir, store, case_id)
    case = store.get_case(case_id)
    image = store.fetch_image(case_id, folder, progress=progress)
    mine = store.latest_version(case_id)
    predicted = store.latest_version(case_id, kind="prediction")
    start = "version" if mine else "new"
    if mine is None and predicted is not None:
        mine, start = predicted, "prediction"
    seg = store.fetch_version(mine["id"], folder / f"{case_id}.{mine['id']}.seg.nrrd") if mine else None
    project = store.project()
    draft = draft_path(work_dir, store, case_id)
    if mine and mine.get("conflict"):
        log.warning("your latest version %s of %s is flagged as a conflict", mine["id"], case_id)
    return OpenedCase(case=case, image_path=image, segmentation_path=seg, version=mine,
                      draft_path=draft if draft.exists() else None, labels=project["labels"],
                      window_preset=project.get("window_preset"), versions=store.list_versions(case_id),
                      start=start, prediction=prediction_summary(predicted) if predicted else None)


def fetch_all_versions(store, case_id: str, dest_dir, latest_only: bool = True) -> list[tuple[dict, Path]]:
    """(version, path) of every version I may see (a reviewer: all annotators'), latest per author by default."""
    versions = store.list_versions(case_id)
    if latest_only:
        by_author = {}
        for v in versions:
            by_author[(v["author"], v["kind"])] = v
        versions = list(by_author.values())
    return [(v, store.fetch_version(v["id"], Path(dest_dir) / f"{case_id}.{v['author']}.{v['id']}.seg.nrrd"))
            for v in versions]


def as_seg_nrrd(path, labels: list[dict], work_dir) -> Path:
    """``path`` if it is a .seg.nrrd, else a label map converted to one.

    Label names come from the file's sidecar JSON when it has one, else from the project's
    label ontology (with its colours and terminology).
    """
    path = Path(path)
    if is_seg_nrrd(path):
        return path
    names, colors, terms = read_sidecar(path)
    if not names:
        names = {int(lab["value"]): lab["name"] for lab in labels}
        colors = {lab["name"]: tuple(lab["color"]) for lab in labels}
        terms = {lab["name"]: lab["terminology"] for lab in labels if lab.get("terminology")}
    try:
        seg = segmentation_from_labelmap(read_volume(path), names, colors=colors, terminology=terms)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    out = Path(work_dir) / (path.name.split(".")[0] + ".seg.nrrd")
    write_seg_nrrd(seg, out)
    return out


def save_version(store, case_id: str, seg_path, parent=None, message: str = "", *, queue=None, progress=None,
                 meta: dict | None = None) -> dict:
    """Push my work as a new version without submitting (queued when the store is unreachable).

    ``meta``: the version's metadata, e.g. ``{"effort": EffortTracker.record(...)}`` (worklist.effort).
    """
    return push_or_queue(store, case_id, seg_path, parent=parent, message=message, meta=meta, queue=queue,
                         progress=progress)


def submit_case(store, case_id: str, seg_path, parent=None, message: str = "submitted", *, queue=None,
                progress=None, meta: dict | None = None) -> dict:
    """Push my segmentation and mark my work on the case submitted (both queued when offline); ``meta`` as
    for save_version."""
    return push_or_queue(store, case_id, seg_path, parent=parent, message=message, meta=meta, queue=queue,
                         submit=True, progress=progress)
