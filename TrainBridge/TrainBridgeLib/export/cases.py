"""Loading one training case: its image channel(s) and its label, as Volumes on one grid.

A case's sources may be files (a volume file or a DICOM folder per channel; a label map or a
Slicer ``.seg.nrrd``), in-memory ``Volume``/``Segmentation`` objects (from Slicer nodes), or a
mix.  Everything is aligned onto the first channel's grid by physical position, and the label
becomes one map with the dataset's consecutive values (nnU-Net requires 0, 1, 2, ...).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.geometry import check_drawn_inside, resample_like
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, match_segments
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.dicom.ingest import load_image as load
from DicomTeamAnnotateLib.io.segmentations import read_segmentation
from DicomTeamAnnotateLib.io.volumes import read_volume


@dataclass
class LabelDef:
    """One label of the project's ontology: name, value in the source files, optional terminology."""

    name: str
    source_value: int | None = None
    terminology: str | None = None
    color: tuple | None = None


@dataclass
class CaseInput:
    """One case to export: channel sources, label source, patient id and attributes (for strata)."""

    case_id: str
    patient_id: str
    images: list  # per channel: a path (volume file or DICOM folder) or a Volume
    label: object = None  # a path (label map or .seg.nrrd), a label-map Volume, a Segmentation, or None
    attributes: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)  # provenance copied into cases.json (store version id...)


def parse_label_names(data) -> list[LabelDef]:
    """Ontology from {name: value}, {"labels": {...}}, dataset.json, or a project's [{name, value}] list."""
    if isinstance(data, dict) and "labels" in data:
        data = data["labels"]
    out = []
    if isinstance(data, dict):
        for name, value in data.items():
            if str(name).lower() == "background" and int(value) == 0:
                continue
            out.append(LabelDef(str(name), int(value)))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if isinstance(item, str):
                out.append(LabelDef(item, None))
                continue
            if "name" not in item:
                raise ValueError(f"label #{i}: field 'name' missing")
            value = item.get("value", item.get("label_value"))
            out.append(LabelDef(str(item["name"]), None if value is None else int(value),
                                item.get("terminology"), tuple(item["color"]) if item.get("color") else None))
    else:
        raise ValueError(f"labels must be a mapping or a list, got {type(data).__name__}")
    names = [d.name for d in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate label name(s): {', '.join(dupes)}")
    values = [d.source_value for d in out if d.source_value is not None]
    if any(v <= 0 for v in values):
        raise ValueError(f"label values must be >= 1 (0 is background), got {sorted(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"two labels share a value: {sorted(values)}")
    if values:
        out.sort(key=lambda d: (d.source_value is None, d.source_value or 0))
    return out


def load_label_names(path) -> list[LabelDef]:
    """Read an ontology JSON file (organs.json, dataset.json, project.json or {name: value})."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read label names ({exc})") from None
    try:
        return parse_label_names(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_image(source, what: str = "image") -> Volume:
    """A Volume from a Volume, a volume file, or a DICOM series folder."""
    if isinstance(source, Volume):
        return source
    return load(source)


def load_channels(sources: list, case_id: str) -> list[Volume]:
    """All channels of a case, resampled (linear) onto the first channel's grid when they differ."""
    if not sources:
        raise ValueError(f"case '{case_id}': field 'images' is empty")
    channels = [load_image(s) for s in sources]
    ref = channels[0].geometry
    out = [channels[0]]
    for vol in channels[1:]:
        if not vol.geometry.same_grid(ref):
            # co-registered series (MRI sequences) live on different grids; nnU-Net needs one grid
            arr = resample_like(vol.array.astype(np.float32), vol.geometry, ref, label=False)
            vol = Volume(arr, ref, dict(vol.metadata, resampled_from=vol.geometry.to_dict()))
        out.append(vol)
    return out


def label_source_values(source, what: str) -> set:
    """The non-zero values of a label-map source (used when no ontology is given)."""
    if isinstance(source, Segmentation):
        return set()
    if isinstance(source, Volume):
        arr = source.array
    else:
        if str(source).lower().endswith(".seg.nrrd"):
            return set()
        arr = read_volume(source).array
    return {int(v) for v in np.unique(arr) if v != 0}


def segments_for_labels(seg: Segmentation, labels: list[LabelDef], what: str) -> list:
    """The segment of ``seg`` that is each label (``match_segments``: terminology entry, else name), or None."""
    wanted = [Segment(d.name, 1, terminology=d.terminology) for d in labels]
    return match_segments(wanted, seg.segments, what=what)


def label_array(source, labels: list[LabelDef], reference, case_id: str, *, drop_unknown: bool = False) -> tuple:
    """The case's label map on ``reference`` (uint8/uint16) with values 1..N in ontology order.

    Returns (array, notes).  Unknown values / segments raise unless ``drop_unknown``.
    """
    notes = []
    dtype = np.uint8 if len(labels) < 255 else np.uint16  # 255 stays free as the sentinel below
    if isinstance(source, (str, Path)) and str(source).lower().endswith(".seg.nrrd"):
        source = read_segmentation(source)
    if isinstance(source, Segmentation):
        seg = source
        if not seg.geometry.same_grid(reference):
            check_drawn_inside(np.any(seg.layers != 0, axis=0), seg.geometry, reference,
                               f"case '{case_id}': field 'label'")
            notes.append("label resampled onto the image grid")
            seg = seg.resampled(reference)
        out = np.zeros(reference.shape, dtype=dtype)
        used = set()
        matches = segments_for_labels(seg, labels, f"case '{case_id}': field 'label'")
        for value, s in enumerate(matches, start=1):
            if s is not None:
                out[seg.layers[s.layer] == s.label_value] = value
                used.add(s.name)
        unknown = [n for n in seg.names if n not in used]
        if unknown and not drop_unknown:
            raise ValueError(f"case '{case_id}': field 'label': segment(s) {unknown} are not in the label names "
                             f"({', '.join(d.name for d in labels)})")
        return out, notes
    vol = source if isinstance(source, Volume) else read_volume(source)
    arr = vol.array
    if not np.issubdtype(arr.dtype, np.integer):
        if np.isnan(arr).any() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"case '{case_id}': field 'label': a label map must hold integers ({arr.dtype})")
        arr = arr.astype(np.int64)
    if not vol.geometry.same_grid(reference):
        check_drawn_inside(arr != 0, vol.geometry, reference, f"case '{case_id}': field 'label'")
        notes.append("label resampled onto the image grid (" + "; ".join(vol.geometry.differences(reference)) + ")")
        arr = resample_like(arr, vol.geometry, reference, label=True)
    if arr.size and arr.min() < 0:
        raise ValueError(f"case '{case_id}': field 'label': negative value {int(arr.min())}")
    # one pass through a lookup table maps every source value; values that are not labels map to a
    # sentinel above the last label, so a single max() tells whether any was present
    top = int(arr.max(initial=0))
    size = max([top] + [d.source_value or 0 for d in labels]) + 1
    sentinel = np.iinfo(dtype).max
    lut = np.full(size, sentinel, dtype=dtype)
    lut[0] = 0
    for value, label in enumerate(labels, start=1):
        if label.source_value is None:
            raise ValueError(f"label '{label.name}' has no value, needed to read label-map files")
        lut[label.source_value] = value
    if arr.dtype == dtype and np.array_equal(lut[: top + 1], np.arange(top + 1)):
        return arr, notes  # already 0..N in ontology order (a project's own export): no copy
    out = np.take(lut, arr)
    if int(out.max(initial=0)) == sentinel:
        if not drop_unknown:
            present = np.flatnonzero(np.bincount(arr.ravel()))
            unknown = [int(v) for v in present if lut[v] == sentinel]
            raise ValueError(f"case '{case_id}': field 'label': value(s) {unknown} are not in the label names")
        out[out == sentinel] = 0
    return out, notes
