"""Grouping frames into volumes: by series, then split where they cannot form one stack.

Rules (README "DICOM ingestion" documents them):

* Frames group by SeriesInstanceUID.  Files whose SeriesInstanceUID is blank (common in
  anonymised data) group by what they share (FrameOfReferenceUID, orientation, size,
  SeriesNumber, SeriesDescription, Modality, StudyInstanceUID, PatientID) under a stable derived
  id ``derived-<hash of those fields>``.  Frames of a multi-frame file stay among themselves.
* A series splits into separate volumes when its frames disagree on orientation, rows/columns
  or pixel spacing; and when acquisitions (AcquisitionNumber, TemporalPosition, EchoNumbers,
  frame type, ComplexImageComponent, echo time, StackID, non-spatial Dimension Index Values,
  in that order) overlap in space.  Acquisitions at disjoint positions (sequential CT writes
  one AcquisitionNumber per table position) stay one volume.  Positions that still repeat
  split in InstanceNumber order (then frame number).  Every split is a warning on the volumes
  it makes, and each volume records what tells it apart (``SeriesPlan.distinguished_by``); a
  series split by frame type, complex component, echo time or dimension index names its
  volumes by that value (``<uid>-B0_MAP``, ``<uid>-M``), others number them.
* Within a volume frames are sorted by the projection of ImagePositionPatient on the slice
  normal, never by file name or InstanceNumber.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from DicomTeamAnnotateLib.dicom.frames import Frame

POSITION_TOL_MM = 1e-3   # two frames closer than this along the normal are at the same position
ORIENTATION_TOL = 1e-3   # direction cosines closer than this are the same orientation
# (Frame attribute, name shown, whether a volume split by it is named by its value)
SPLIT_KEYS = (("acquisition", "AcquisitionNumber", False), ("temporal", "temporal position", False),
              ("echo", "EchoNumbers", False), ("frame_type", "frame type", True),
              ("complex_component", "ComplexImageComponent", True), ("echo_time", "echo time", True),
              ("stack", "StackID", False), ("dimension", "dimension index", True))
NAMED_KEYS = {name for _, name, named in SPLIT_KEYS if named}


@dataclass
class SeriesPlan:
    """The frames of one output volume, sorted along the slice normal."""

    base_id: str
    frames: list[Frame]
    derived_id: bool = False
    warnings: list[str] = field(default_factory=list)
    series_id: str = ""
    distinguished_by: dict = field(default_factory=dict)  # {key name: value} of each split that made it

    @property
    def normal(self) -> np.ndarray:
        return self.frames[0].normal

    def projections(self) -> np.ndarray:
        return np.array([f.position @ self.normal for f in self.frames])


def text_value(ds, keyword) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def derived_series_id(frame: Frame) -> str:
    """A stable id for a blank-UID series, from the fields its files share."""
    ds = frame.file.ds
    orientation = ",".join(f"{v + 0.0:.3f}" for v in np.round(np.concatenate([frame.row_dir, frame.col_dir]), 3))
    fields = [text_value(ds, "FrameOfReferenceUID"), orientation, str(frame.rows), str(frame.cols),
              text_value(ds, "SeriesNumber"), text_value(ds, "SeriesDescription"), text_value(ds, "Modality"),
              text_value(ds, "StudyInstanceUID"), text_value(ds, "PatientID")]
    return "derived-" + hashlib.sha256("\\".join(fields).encode("utf-8")).hexdigest()[:16]


def _series_key(frame: Frame) -> tuple:
    uid = text_value(frame.file.ds, "SeriesInstanceUID")
    base, derived = (uid, False) if uid else (derived_series_id(frame), True)
    file_key = frame.file.source.label if frame.index is not None else ""
    return base, derived, file_key


def _same_orientation(a: Frame, b: Frame) -> bool:
    return (np.max(np.abs(a.row_dir - b.row_dir)) < ORIENTATION_TOL
            and np.max(np.abs(a.col_dir - b.col_dir)) < ORIENTATION_TOL)


def _split_by_grid(frames: list[Frame]) -> list[list[Frame]]:
    """Groups of frames sharing orientation, rows/columns and pixel spacing."""
    groups: list[list[Frame]] = []
    for f in frames:
        for g in groups:
            ref = g[0]
            if ((ref.rows, ref.cols) == (f.rows, f.cols) and _same_orientation(ref, f)
                    and np.allclose(ref.pixel_spacing, f.pixel_spacing, atol=1e-4, rtol=0)):
                g.append(f)
                break
        else:
            groups.append([f])
    return groups


def _has_repeats(d: np.ndarray) -> bool:
    d = np.sort(d)
    return bool(np.any(np.diff(d) < POSITION_TOL_MM))


def _ranges_overlap(parts: list[np.ndarray]) -> bool:
    spans = sorted((float(p.min()), float(p.max())) for p in parts)
    return any(b[0] <= a[1] + POSITION_TOL_MM for a, b in zip(spans, spans[1:]))


def _split_stacks(frames: list[Frame], base: str, labels: dict | None = None) -> tuple[list, list[str]]:
    """Split frames whose acquisitions overlap in space, then frames at repeated positions.

    Returns ([(frames, {key name: value})], warnings).
    """
    labels = dict(labels or {})
    normal = frames[0].normal
    d = np.array([f.position @ normal for f in frames])
    notes: list[str] = []
    for attr, name, _named in SPLIT_KEYS:
        values = sorted({getattr(f, attr) for f in frames}, key=_natural)
        if len(values) < 2:
            continue
        parts = [[f for f in frames if getattr(f, attr) == v] for v in values]
        if _ranges_overlap([np.array([f.position @ normal for f in p]) for p in parts]):
            shown = ", ".join(repr(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
            out, warnings = [], notes + [f"series {base}: {len(values)} different {name} values ({shown}) "
                                         "overlap in space: split into one volume each"]
            for v, p in zip(values, parts):
                sub, sub_warnings = _split_stacks(p, base, {**labels, name: v})
                out.extend(sub)
                warnings.extend(w for w in sub_warnings if w not in warnings)
            return out, warnings
        notes.append(f"series {base}: {len(values)} different {name} values at disjoint positions: "
                     "kept as one volume")
    out, warnings = _split_repeats(frames, d, base)
    return [(part, dict(labels)) for part in out], notes + warnings


def _natural(value: str):
    """Sort "2" before "10"."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _split_repeats(frames: list[Frame], d: np.ndarray, base: str) -> tuple[list[list[Frame]], list[str]]:
    if not _has_repeats(d):
        return [frames], []
    # nothing tells the repeats apart: the n-th frame (in InstanceNumber order, then file and frame number,
    # never the label text: "[frame 35]" sorts before "[frame 3]") at each position goes to volume n
    order = sorted(range(len(frames)), key=lambda i: (frames[i].instance, frames[i].file.source.label,
                                                      -1 if frames[i].index is None else frames[i].index))
    seen: list[float] = []
    counts: list[int] = []
    parts: dict[int, list[Frame]] = defaultdict(list)
    for i in order:
        hit = next((k for k, p in enumerate(seen) if abs(p - d[i]) < POSITION_TOL_MM), None)
        if hit is None:
            seen.append(float(d[i]))
            counts.append(0)
            hit = len(seen) - 1
        parts[counts[hit]].append(frames[i])
        counts[hit] += 1
    n_repeated = sum(1 for c in counts if c > 1)
    warning = (f"series {base}: {n_repeated} position(s) hold more than one slice and no tag tells them apart: "
               f"split in InstanceNumber order into {len(parts)} volumes")
    return [parts[k] for k in sorted(parts)], [warning]


def _drop_duplicates(frames: list[Frame]) -> tuple[list[Frame], list[tuple[str, str]]]:
    """Single-frame files repeating a SOPInstanceUID already seen (the same image twice)."""
    seen: dict[str, str] = {}
    kept, dropped = [], []
    for f in frames:
        uid = text_value(f.file.ds, "SOPInstanceUID") if f.index is None else ""
        if uid and uid in seen:
            dropped.append((f.label, f"duplicate of {seen[uid]} (same SOPInstanceUID)"))
            continue
        if uid:
            seen[uid] = f.label
        kept.append(f)
    return kept, dropped


def plan_series(frames: list[Frame]) -> tuple[list[SeriesPlan], list[str], list[tuple[str, str]]]:
    """Group frames into volumes; returns (plans with ids, notes, rejected duplicates)."""
    frames, rejected = _drop_duplicates(frames)
    by_series: dict[tuple, list[Frame]] = defaultdict(list)
    for f in frames:
        by_series[_series_key(f)].append(f)
    notes: list[str] = []
    plans: list[SeriesPlan] = []
    for (base, derived, _file), members in by_series.items():
        if derived:
            notes.append(f"{len(members)} frame(s) with a blank SeriesInstanceUID grouped by FrameOfReferenceUID, "
                         "orientation, size, SeriesNumber, SeriesDescription, Modality, StudyInstanceUID and "
                         f"PatientID as {base}")
        grids = _split_by_grid(members)
        grid_warning = ([f"series {base}: frames differ in orientation, rows/columns or pixel spacing: split into "
                         f"{len(grids)} groups"] if len(grids) > 1 else [])
        for grid in grids:
            stacks, warnings = _split_stacks(grid, base)
            for stack, labels in stacks:
                normal = stack[0].normal
                stack = sorted(stack, key=lambda f: (float(f.position @ normal), f.instance))
                w = list(grid_warning) + warnings
                if derived:
                    w.insert(0, f"SeriesInstanceUID is blank: volume id {base} derived from the fields its files "
                                "share (FrameOfReferenceUID, orientation, size, SeriesNumber, SeriesDescription, "
                                "Modality)")
                plans.append(SeriesPlan(base, stack, derived, w, distinguished_by=labels))
    _assign_ids(plans)
    return plans, notes, rejected


def _assign_ids(plans: list[SeriesPlan]) -> None:
    """``base`` when a series gives one volume, else ``base-1``, ``base-2``... in a stable order."""
    by_base: dict[str, list[SeriesPlan]] = defaultdict(list)
    for p in plans:
        by_base[p.base_id].append(p)
    for base, group in by_base.items():
        if len(group) == 1:
            group[0].series_id = base
            continue
        group.sort(key=lambda p: (min(f.instance for f in p.frames), p.frames[0].file.source.label,
                                  tuple(np.round(p.frames[0].position, 3)), len(p.frames)))
        names = _volume_names(group)
        for n, p in enumerate(group, start=1):
            p.series_id = f"{base}-{names[n - 1] if names else n}"
    plans.sort(key=lambda p: p.series_id)


def _volume_names(group: list[SeriesPlan]) -> list[str] | None:
    """Names of the volumes of one series from what tells them apart (frame type, complex component,
    echo time, dimension index), or None when they are not told apart that way or names would repeat."""
    keys = [k for k in group[0].distinguished_by if k in NAMED_KEYS]
    if not keys or any([k for k in p.distinguished_by if k in NAMED_KEYS] != keys for p in group):
        return None
    parts = []
    for key in keys:
        values = [str(p.distinguished_by[key]).split("\\") for p in group]
        width = max(len(v) for v in values)
        padded = [v + [""] * (width - len(v)) for v in values]
        differ = [i for i in range(width) if len({v[i] for v in padded}) > 1]  # 'ORIGINAL\\PRIMARY\\M' -> 'M'
        parts.append(["_".join(v[i] for i in differ) for v in padded])
    names = ["-".join(_slug(part[n]) for part in parts) for n in range(len(group))]
    return names if len(set(names)) == len(names) and all(names) else None


def _slug(text: str) -> str:
    return "_".join("".join(c if c.isalnum() or c in ".=" else " " for c in text).split())
