"""Segmentation files: Slicer ``.seg.nrrd`` (see ``seg_nrrd.py``) and integer label maps.

Label maps (.nii, .nii.gz, .nrrd, .mha) go through SimpleITK, whose NIfTI reader converts the
file's RAS affine to LPS, so a label map stored with flipped axes still lands in the right
place.  Label names come from ``names`` {value: name}, else a sidecar JSON next to the file
(``organs.nii.gz`` -> ``organs.json``: ``{"labels": {name: value}}``, optional ``colors`` and
``terminology``), else ``Segment_<value>``.  Geometry leaves here in LPS.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, default_color, present_values
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.nrrd_payload import open_nrrd
from DicomTeamAnnotateLib.io.seg_nrrd import (
    is_seg_nrrd,
    read_seg_nrrd,
    read_seg_nrrd_geometry,
    write_seg_nrrd,
)
from DicomTeamAnnotateLib.io.volumes import file_suffix, read_volume, write_volume

LABELMAP_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha")


# ----- dispatch ---------------------------------------------------------------------------------
def read_segmentation(path, reference: Geometry | None = None, names: dict | None = None) -> Segmentation:
    """Read a ``.seg.nrrd`` or a label map (``names`` {value: name}); resample onto ``reference`` if given."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    seg = read_seg_nrrd(path) if is_seg_nrrd(path) else read_labelmap(path, names=names)
    if reference is not None:
        seg = seg.resampled(reference)
    return seg


def read_segmentation_geometry(path) -> Geometry:
    """The voxel grid (LPS) of a ``.seg.nrrd`` or label-map file from its header only (no voxels read)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if is_seg_nrrd(path):
        return read_seg_nrrd_geometry(path)
    return read_image_geometry(path)


def read_image_geometry(path) -> Geometry:
    """The voxel grid (LPS) of an image file (.nii(.gz), .nrrd, .mha) from its header (SimpleITK)."""
    import SimpleITK as sitk

    if file_suffix(path) in (".nrrd", ".nhdr"):
        open_nrrd(path)  # sizes checked (bounded, no overflow) before ITK reads the header
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"{path}: cannot read as an image ({str(exc).strip().splitlines()[-1]})") from None
    size, spacing, origin = reader.GetSize(), reader.GetSpacing(), reader.GetOrigin()
    direction = np.array(reader.GetDirection(), dtype=float).reshape(len(size), len(size))
    if len(size) == 2:  # a single slice reads as one-slice volume (as read_volume's JoinSeries gives)
        size, spacing, origin = (*size, 1), (*spacing, 1.0), (*origin, 0.0)
        direction = np.block([[direction, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]])
    if len(size) != 3:
        raise ValueError(f"{path}: a {len(size)}-dimensional image is no label map (expected 3D)")
    if reader.GetNumberOfComponents() != 1:
        raise ValueError(f"{path}: expected a scalar image, got {reader.GetNumberOfComponents()} components")
    try:
        return Geometry(size=size, spacing=spacing, origin=origin, direction=direction.ravel(), space="LPS")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_image_or_segmentation(path, names: dict | None = None, *, as_labels: bool | None = None):
    """A ``Segmentation`` for .seg.nrrd files and label maps, else a ``Volume``.

    ``as_labels`` forces the choice for a plain image; by default an image is a label map when
    it has a sidecar JSON, or is a non-negative 8/16-bit integer image with at most 256 values.
    """
    path = Path(path)
    if is_seg_nrrd(path):
        return read_seg_nrrd(path)
    volume = read_volume(path)
    if as_labels is None:
        as_labels = names is not None or sidecar_path(path).exists() or _looks_like_labels(volume.array)
    if as_labels:
        return _labelmap_with_names(path, volume, names)
    return volume


def write_segmentation(seg: Segmentation, path, values: dict | None = None) -> Path:
    """Write by file name: ``.seg.nrrd`` -> Slicer segmentation, other suffixes -> label map."""
    if str(path).lower().endswith(".seg.nrrd"):
        return write_seg_nrrd(seg, path)
    return write_labelmap(seg, path, values)


def _looks_like_labels(array: np.ndarray) -> bool:
    if not np.issubdtype(array.dtype, np.integer) or array.dtype.itemsize > 2 or array.min(initial=0) < 0:
        return False
    return int(np.count_nonzero(np.bincount(array.ravel()))) <= 256


# ----- label maps -------------------------------------------------------------------------------
def sidecar_path(path) -> Path:
    """``organs.nii.gz`` -> ``organs.json``: where the label names of a label map are kept."""
    path = Path(path)
    suffix = file_suffix(path)
    stem = path.name[: -len(suffix)] if suffix else path.name
    return path.with_name(stem + ".json")


def read_sidecar(path) -> tuple:
    """({value: name}, {name: rgb}, {name: terminology}) from a label map's sidecar JSON (empty if none)."""
    side = sidecar_path(path)
    if not side.exists():
        return {}, {}, {}
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{side}: cannot read label names ({exc})") from None
    labels = doc.get("labels", doc) if isinstance(doc, dict) else None
    if not isinstance(labels, dict):
        raise ValueError(f"{side}: field 'labels' must map names to values")
    names = {}
    for key, value in labels.items():
        try:  # {name: value} (organs.json, ours) or {value: name}
            names[int(value)] = str(key)
        except (TypeError, ValueError):
            try:
                names[int(key)] = str(value)
            except ValueError:
                raise ValueError(f"{side}: field 'labels' entry {key!r}: {value!r} is not a name/value pair") from None
    colors, terms = doc.get("colors") or {}, doc.get("terminology") or {}
    if not isinstance(colors, dict) or not isinstance(terms, dict):
        raise ValueError(f"{side}: fields 'colors' and 'terminology' must map names to values")
    return names, colors, terms


def _labelmap_with_names(path: Path, volume: Volume, names: dict | None) -> Segmentation:
    side_names, colors, terms = read_sidecar(path)
    try:
        return segmentation_from_labelmap(volume, names if names is not None else side_names,
                                          colors=colors, terminology=terms)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_labelmap(path, names: dict | None = None) -> Segmentation:
    """Read an integer label map; names from ``names`` {value: name}, a sidecar JSON, or Segment_<v>."""
    path = Path(path)
    return _labelmap_with_names(path, read_volume(path), names)


def segmentation_from_labelmap(volume: Volume, names: dict | None = None, reference: Geometry | None = None, *,
                               colors: dict | None = None, terminology: dict | None = None) -> Segmentation:
    """A Segmentation from a label-map Volume (``names`` {value: name}), optionally resampled onto ``reference``."""
    array = np.asarray(volume.array)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.array_equal(array, np.round(array)):
            raise ValueError(f"a label map must hold integers (pixel type {array.dtype})")
        array = array.astype(np.int32)
    if array.size and array.min() < 0:
        raise ValueError(f"negative label value {array.min()} in a label map")
    names = {int(k): str(v) for k, v in (names or {}).items()}
    colors, terminology = colors or {}, terminology or {}
    present = present_values(array)
    labels = [names.get(v, f"Segment_{v}") for v in present]
    segments = [Segment(name=name, label_value=v, color=colors.get(name, default_color(n)),
                        terminology=terminology.get(name))
                for n, (name, v) in enumerate(zip(labels, present))]
    seg = Segmentation.from_labelmap(array, volume.geometry, segments=segments)
    seg.metadata.update({"source": volume.metadata.get("source"),
                         "label_values": {s.name: v for s, v in zip(segments, present)}})
    return seg.resampled(reference) if reference is not None else seg


def labelmap_volume(seg: Segmentation, values: dict | None = None, reference: Geometry | None = None) -> Volume:
    """The segmentation as one label-map Volume, optionally on ``reference``.

    ``values`` {name: value}; by default the segments' own label values when each has its own
    (a FreeSurfer label map stays 2, 41, 1035...), else 1..N in segment order.
    """
    if reference is not None:
        seg = seg.resampled(reference)
    values = values or seg.own_values() or {s.name: i for i, s in enumerate(seg.segments, start=1)}
    unknown = [n for n in values if n not in seg.names]
    if unknown:
        raise ValueError(f"label values given for unknown segments {unknown} (segments: {', '.join(seg.names)})")
    bad = {n: v for n, v in values.items() if not 0 < int(v) <= 65535}
    if bad:
        raise ValueError(f"label values must be 1..65535, got {bad}")
    dtype = np.uint8 if max(values.values(), default=0) <= 255 else np.uint16
    return Volume(seg.to_labelmap(values, dtype=dtype), seg.geometry, {"label_values": dict(values)})


def write_labelmap(seg: Segmentation, path, values: dict | None = None, *, sidecar: bool = True) -> Path:
    """Write a NIfTI/NRRD label map ({name: value}, default: as ``labelmap_volume``) and a sidecar JSON of names."""
    path = Path(path)
    if file_suffix(path) not in LABELMAP_SUFFIXES:
        raise ValueError(f"{path}: unsupported label-map file type (use one of {', '.join(LABELMAP_SUFFIXES)})")
    volume = labelmap_volume(seg, values)
    values = volume.metadata["label_values"]
    write_volume(volume, path)
    if sidecar:
        by_name = {s.name: s for s in seg.segments}
        write_json_atomic(sidecar_path(path), {
            "labels": values,
            "colors": {n: list(by_name[n].color) for n in values},
            "terminology": {n: by_name[n].terminology for n in values if by_name[n].terminology},
        })
    return path
