"""The case open for work (CaseSession), and the steps on it that need neither MRML nor Qt.

DicomTeamAnnotateLogic makes the nodes (main thread) and delegates the rest here: reading a
downloaded case, giving a segmentation the project's labels, the change digest, the draft file,
the push, and downloading another version. Every function here runs on any thread. The project's
IO and store modules are imported inside the functions, so that importing this file (the module
file does, at Slicer's startup) stays cheap.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import os
import time
import uuid

from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import read_volume
from DicomTeamAnnotateLib.worklist.cases import (
    OpenedCase,
    draft_path,
    open_case,
    save_version,
    submit_case,
    work_folder,
)


class CaseSession:
    """The case open for work: where it came from, its nodes, the parent of my next push (plain Python)."""

    def __init__(self, store, case_id, work_dir, image_path, geometry, labels, parent, volume_node,
                 segmentation_node, source):
        """Called by DicomTeamAnnotateLogic.loadCase()."""
        self.store = store
        self.case_id = case_id
        self.work_dir = work_dir
        self.image_path = image_path
        self.geometry = geometry
        self.labels = labels
        self.parent = parent  # version id my next push descends from (None: first push)
        self.volume_node = volume_node
        self.segmentation_node = segmentation_node
        self.source = source  # "version", "prediction", "draft" or "new"
        self.saved_digest = None  # digest of the content last written (draft or push)
        self.last_draft_time = None
        self.prediction = None  # the model's prediction the case started from (model.prediction_summary), if any
        self.effort = None  # the EffortTracker of this session (worklist.effort); its record goes with each push
        self.effort_start = None  # the Segmentation the work started from (the record compares the result to it)

    @property
    def draft_path(self):
        """Where the autosaved draft of this case lives."""
        return draft_path(self.work_dir, self.store, self.case_id)

    def alive(self) -> bool:
        """False once the nodes were removed from the scene (scene closed, user deleted them)."""
        node = self.segmentation_node
        return node is not None and node.GetScene() is not None and self.volume_node.GetScene() is not None


@dataclasses.dataclass
class FetchedCase(OpenedCase):
    """An opened case read into memory, ready to become nodes (``fetch_case``; any thread)."""

    store: object = None
    work_dir: str = ""
    volume: object = None                # Volume of the case image
    version_segmentation: Segmentation | None = None
    draft_segmentation: Segmentation | None = None
    draft_time: float | None = None      # the draft file's modification time (seconds since the epoch)

    def draft_is_newer(self) -> bool:
        """True when the local draft was written after my latest version was created."""
        if self.draft_segmentation is None:
            return False
        if not self.version:
            return True
        created = datetime.datetime.fromisoformat(str(self.version["created"]).replace("Z", "+00:00")).timestamp()
        return self.draft_time > created


def fetch_case(store, case_id, work_dir, progress=None) -> FetchedCase:
    """Download the case and read the image, my latest version and my draft."""
    opened = open_case(store, case_id, work_dir, progress=progress)
    volume = read_volume(opened.image_path)
    version_seg = draft_seg = draft_time = None
    if opened.segmentation_path is not None:
        version_seg = read_segmentation(opened.segmentation_path, reference=volume.geometry)
    if opened.draft_path is not None:
        try:
            draft_seg = read_segmentation(opened.draft_path, reference=volume.geometry)
            draft_time = os.path.getmtime(opened.draft_path)
        except (OSError, ValueError) as exc:  # a damaged draft must not block opening the case
            logging.warning(f"DicomTeamAnnotate: draft {opened.draft_path} not usable: {exc}")
    return FetchedCase(**vars(opened), store=store, work_dir=str(work_dir), volume=volume,
                       version_segmentation=version_seg, draft_segmentation=draft_seg, draft_time=draft_time)


def with_ontology(seg, labels, geometry):
    """``seg`` (or an empty segmentation on ``geometry``) holding a segment for every project label.

    Existing segments keep their voxels, names and colours; a label is matched by terminology
    code or by name (case-insensitive); missing labels are added empty with the project's
    name, colour and terminology.
    """
    import numpy as np


    if seg is None:
        seg = Segmentation(np.zeros((1,) + tuple(geometry.shape), dtype=np.uint8), geometry, [])
    segments = list(seg.segments)
    for label in labels:
        wanted = Segment(name=label["name"], label_value=int(label["value"]), color=tuple(label["color"]),
                         terminology=label.get("terminology"))
        known = seg.find(wanted) or next((s for s in segments if s.name.lower() == wanted.name.lower()), None)
        if known is not None:
            continue
        used = {s.label_value for s in segments if s.layer == 0}
        value = wanted.label_value if wanted.label_value not in used else max(used) + 1
        if value > 255:
            raise ValueError(f"no free label value for segment '{wanted.name}' in layer 0")
        wanted.label_value, wanted.layer = value, 0
        segments.append(wanted)
    return Segmentation(seg.layers, seg.geometry, segments, dict(seg.metadata))


def segmentation_digest(seg) -> str:
    """A digest of voxels and segment names/values/colours: tells whether anything changed."""
    h = hashlib.blake2b(digest_size=16)
    h.update(seg.layers.tobytes())
    for s in seg.segments:
        h.update(repr((s.name, s.label_value, s.layer, tuple(round(c, 4) for c in s.color))).encode("utf-8"))
    return h.hexdigest()


def write_draft(session, seg, digest):
    """Write the draft .seg.nrrd atomically; returns its path."""
    path = session.draft_path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_seg_nrrd(seg, path)
    session.saved_digest, session.last_draft_time = digest, time.time()
    return path


def push_segmentation(session, seg, message="", submit=False, progress=None, queue=None, meta=None) -> dict:
    """Push ``seg`` as my new version (and submit); queued in ``queue`` when the store is unreachable.

    ``meta``: the version's metadata; the hub passes ``{"effort": tracker.record(start, seg)}`` (worklist.effort).
    """
    outgoing = work_folder(session.work_dir, session.store, session.case_id) / f"outgoing-{uuid.uuid4().hex[:12]}.seg.nrrd"
    outgoing.parent.mkdir(parents=True, exist_ok=True)
    write_seg_nrrd(seg, outgoing)
    push = submit_case if submit else save_version
    try:
        version = push(session.store, session.case_id, outgoing, parent=session.parent,
                       message=message or ("submitted" if submit else ""), queue=queue, progress=progress, meta=meta)
    finally:
        outgoing.unlink(missing_ok=True)  # a queued push keeps its own copy
    return {**version, "digest": segmentation_digest(seg)}


def fetch_version(store, version, work_dir) -> tuple:
    """Download one version and read it; (version, Segmentation)."""
    folder = work_folder(work_dir, store, version["case_id"]) / "versions"
    path = store.fetch_version(version["id"], folder / f"{version['author']}.{version['id']}.seg.nrrd")
    return version, read_segmentation(path)
