"""DICOM SEG back into a ``Segmentation``: with highdicom, or with our own pydicom reader.

Two independent decoders of the pixels and geometry, so that each checks the other (and our
writer) in the tests:

* ``read_seg_highdicom``: highdicom's ``get_volume`` (its own geometry from the frames' plane
  positions), then resampled by physical position onto the reference grid;
* ``read_seg_pydicom``: our reader of the per-frame functional groups (Plane Position, Segment
  Identification) and the shared ones (Plane Orientation, Pixel Measures): each frame goes to
  the slice of the reference grid at its position; frames off that grid are placed on the SEG's
  own grid first and resampled.

Segment names, colours (CIELab -> RGB) and codes come from the Segment Sequence.  Label values
follow the project's labels when given (matched by name, then by code), else segment numbers.
FRACTIONAL frames are thresholded (>= 0.5 by default).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import (
    Code,
    Segment,
    Segmentation,
    TerminologyEntry,
    default_color,
    layer_dtype,
    match_segments,
)

log = logging.getLogger(__name__)

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"  # DICOM 2024 (dcmqi, highdicom); pydicom 3.0 has no name
SEG_SOP_CLASSES = (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
_TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def read_seg(path, reference: Geometry | None = None, *, reader: str = "highdicom", labels=None,
             threshold: float = 0.5) -> Segmentation:
    """A DICOM SEG file as a Segmentation (on ``reference``, a Geometry or its dict, when given).

    ``reader``: "highdicom" or "pydicom" (ours); ``labels``: the project's [{name, value}] or {name: value}.
    """
    readers = {"highdicom": read_seg_highdicom, "pydicom": read_seg_pydicom}
    if isinstance(reference, dict):
        reference = Geometry.from_dict(reference)
    if reader not in readers:
        raise ValueError(f"unknown SEG reader {reader!r} (use one of {', '.join(readers)})")
    return readers[reader](path, reference, labels=labels, threshold=threshold)


def _open(path):
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError as exc:
        raise ValueError(f"{path}: not a DICOM file ({exc})") from None
    if str(ds.get("SOPClassUID", "")) not in SEG_SOP_CLASSES:
        raise ValueError(f"{path}: not a DICOM Segmentation (SOP class {ds.get('SOPClassUID', 'missing')})")
    return ds


# ----- segment metadata (shared by both readers) --------------------------------------------------
def _code(seq) -> Code | None:
    if not seq:
        return None
    item = seq[0]
    return Code.parse(f"{item.get('CodingSchemeDesignator', '')}^{item.get('CodeValue', '')}^"
                      f"{item.get('CodeMeaning', '')}")


def segment_terminology(item) -> str | None:
    """Slicer's terminology entry of a Segment Sequence item: category, type and its modifier, anatomic
    region and its modifier (None for the 'Tissue' default, which names no structure)."""
    type_seq = item.get("SegmentedPropertyTypeCodeSequence")
    region_seq = item.get("AnatomicRegionSequence")
    entry = TerminologyEntry(
        category=_code(item.get("SegmentedPropertyCategoryCodeSequence")), type=_code(type_seq),
        type_modifier=_code(type_seq[0].get("SegmentedPropertyTypeModifierCodeSequence")) if type_seq else None,
        region=_code(region_seq),
        region_modifier=_code(region_seq[0].get("AnatomicRegionModifierSequence")) if region_seq else None)
    if entry.type is None or entry.is_default():
        return None
    return entry.to_slicer(_TERMINOLOGY_CONTEXT, _ANATOMIC_CONTEXT)


def segment_metadata(ds) -> dict:
    """{segment number: Segment (name, colour, terminology)} from the SEG's Segment Sequence.

    A label-map SEG's segment 0 (its background, designated by the Pixel Padding Value) is left out.
    """
    out = {}
    for n, item in enumerate(ds.SegmentSequence):
        number = int(item.SegmentNumber)
        if number == 0:
            continue
        name = str(item.get("SegmentLabel", "") or f"Segment_{number}")
        out[number] = Segment(name=name, label_value=number, color=_rgb(item, n), terminology=segment_terminology(item),
                              extra={"segment_number": number})
    names = [s.name for s in out.values()]
    for number, s in out.items():  # two segments with one label: keep both, distinct names
        if names.count(s.name) > 1:
            s.name = s.id = f"{s.name}_{number}"
    return out


def _rgb(item, index: int) -> tuple:
    value = item.get("RecommendedDisplayCIELabValue")
    if value is None:
        return default_color(index)
    from highdicom.color import CIELabColor

    try:
        r, g, b = CIELabColor.from_dicom_value([int(v) for v in value]).to_rgb(clip=True)
    except ValueError:
        return default_color(index)
    return (r / 255.0, g / 255.0, b / 255.0)


def assign_label_values(segments: list[Segment], labels=None, *, what: str = "") -> list[Segment]:
    """Segments with the project's label values (``match_segments``: terminology entry, else name); others
    after the largest.  Two SEG segments that one label could be (or the reverse) raise, naming them."""
    if not labels:
        return segments
    if isinstance(labels, dict):
        labels = [{"name": k, "value": v} for k, v in labels.items()]
    label_segments = [Segment(str(lab["name"]), int(lab["value"]), terminology=lab.get("terminology"))
                      for lab in labels]
    matches = match_segments(segments, label_segments, what=what)
    next_value = max((s.label_value for s in label_segments), default=0) + 1
    for s, lab in zip(segments, matches):
        if lab is not None:
            s.label_value = lab.label_value
            s.name = s.id = lab.name
        else:
            s.label_value = next_value
            next_value += 1
    return segments


def build_segmentation(geometry: Geometry, segments: list[Segment], *, numbers: np.ndarray | None = None,
                       masks: dict | None = None) -> Segmentation:
    """From a map of segment numbers (no overlaps: one layer, a lookup table) or from masks by name;
    the segments' label values are kept either way."""
    values = [s.label_value for s in segments]
    if numbers is not None and len(set(values)) == len(values):
        top = max([int(numbers.max(initial=0))] + [s.extra["segment_number"] for s in segments])
        lut = np.zeros(top + 1, dtype=layer_dtype(max(values, default=0)))
        for s in segments:
            lut[s.extra["segment_number"]] = s.label_value
            s.layer = 0
        return Segmentation(lut[numbers][np.newaxis], geometry, segments)
    if masks is None:
        masks = {s.name: numbers == s.extra["segment_number"] for s in segments}
    return Segmentation.from_masks({s.name: masks[s.name] for s in segments}, geometry,
                                   colors={s.name: s.color for s in segments},
                                   terminology={s.name: s.terminology for s in segments},
                                   values={s.name: s.label_value for s in segments})


# ----- highdicom ----------------------------------------------------------------------------------
def geometry_from_affine(affine, spatial_shape) -> Geometry:
    """Our Geometry of a highdicom Volume: its affine maps (slice, row, column) to LPS."""
    a = np.asarray(affine, dtype=float)
    cols = [a[:3, 2], a[:3, 1], a[:3, 0]]  # i = column, j = row, k = slice
    spacing = [float(np.linalg.norm(c)) for c in cols]
    direction = np.stack([c / s for c, s in zip(cols, spacing)], axis=1)
    n_slices, n_rows, n_cols = spatial_shape
    return Geometry(size=(n_cols, n_rows, n_slices), spacing=spacing, origin=a[:3, 3], direction=direction.ravel())


def read_seg_highdicom(path, reference: Geometry | None = None, *, labels=None, threshold: float = 0.5) -> Segmentation:
    """Read with highdicom: its volume and geometry, resampled onto ``reference`` by physical position."""
    import highdicom as hd

    ds = _open(path)
    seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    meta = segment_metadata(ds)
    # a label map's background (segment 0, dcmqi lists it) is no segment of ours
    seg_numbers = [n for n in seg.get_segment_numbers() if n in meta]
    segments = assign_label_values([meta[n] for n in seg_numbers], labels, what=str(path))
    fractional = str(ds.SegmentationType).upper() == "FRACTIONAL"
    out = None
    if not fractional and str(ds.get("SegmentsOverlap", "")).upper() != "YES":
        try:  # a map of segment numbers: one byte a voxel
            vol = seg.get_volume(combine_segments=True, relabel=False, dtype=np.uint16)
            out = build_segmentation(geometry_from_affine(vol.affine, vol.spatial_shape), segments, numbers=vol.array)
        except (ValueError, RuntimeError):  # overlaps ("UNDEFINED" in the header) cannot be combined
            out = None
    if out is None:
        # stored values, not rescaled floats: a quarter of the memory, and the threshold in stored units
        vol = seg.get_volume(rescale_fractional=False, dtype=np.uint8)
        array = vol.array.reshape(*vol.spatial_shape, -1)
        cut = threshold * float(ds.get("MaximumFractionalValue", 255) or 255) if fractional else 0.5
        masks = {meta[n].name: array[..., i] >= cut for i, n in enumerate(seg_numbers)}
        out = build_segmentation(geometry_from_affine(vol.affine, vol.spatial_shape), segments, masks=masks)
    out.metadata.update(_seg_summary(ds))
    return out.resampled(reference) if reference is not None else out


# ----- our own reader -----------------------------------------------------------------------------
def read_seg_pydicom(path, reference: Geometry | None = None, *, labels=None, threshold: float = 0.5) -> Segmentation:
    """Read with pydicom: per-frame positions and segment numbers placed onto ``reference`` (or the SEG's grid)."""
    ds = _open(path)
    meta = segment_metadata(ds)
    frames, positions, numbers = _frames(ds, path, threshold)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    orientation = _shared_or_frame(ds, shared, "PlaneOrientationSequence", "ImageOrientationPatient", path)
    measures = _first(shared, "PixelMeasuresSequence") or _first(ds.PerFrameFunctionalGroupsSequence[0],
                                                                  "PixelMeasuresSequence")
    if measures is None or "PixelSpacing" not in measures:
        raise ValueError(f"{path}: no Pixel Measures (PixelSpacing) in the functional groups")
    row_spacing, col_spacing = (float(v) for v in measures.PixelSpacing)
    own = _seg_grid(ds, orientation, (col_spacing, row_spacing), positions, measures, path)
    grid = reference.to_lps() if reference is not None and _frames_fit(reference, own, positions) else own
    for n in set(numbers) - set(meta) - {None}:
        raise ValueError(f"{path}: a frame refers to segment {n}, which the Segment Sequence lacks")
    if None in numbers:
        stored = {int(v) for f in frames for v in np.unique(f) if v != 0}
        for n in sorted(stored - set(meta))[:1]:
            raise ValueError(f"{path}: the label map holds value {n}, which the Segment Sequence lacks")
    ks = [int(round(grid.world_to_index(p)[2])) for p in positions]
    segments = assign_label_values(list(meta.values()), labels, what=str(path))
    seg_map = np.zeros(grid.shape, dtype=np.uint16)
    overlap = False
    for frame, k, n in zip(frames, ks, numbers):
        plane = seg_map[k]
        if n is None:  # a label-map frame: its values are the segment numbers
            plane[frame != 0] = frame[frame != 0]
            continue
        there = plane[frame]
        if np.any((there != 0) & (there != n)):
            overlap = True
            break
        plane[frame] = n
    if not overlap:
        out = build_segmentation(grid, segments, numbers=seg_map)
    else:  # overlapping segments: one mask each
        masks = {s.name: np.zeros(grid.shape, dtype=bool) for s in segments}
        for frame, k, n in zip(frames, ks, numbers):
            masks[meta[n].name][k] |= frame
        out = build_segmentation(grid, segments, masks=masks)
    out.metadata.update(_seg_summary(ds))
    return out.resampled(reference) if reference is not None else out


def _first(item, keyword):
    if item is None or keyword not in item or not item[keyword].value:
        return None
    return item[keyword][0]


def _shared_or_frame(ds, shared, sequence: str, keyword: str, path):
    item = _first(shared, sequence) or _first(ds.PerFrameFunctionalGroupsSequence[0], sequence)
    if item is None or keyword not in item:
        raise ValueError(f"{path}: no {sequence} > {keyword} in the functional groups")
    return np.array([float(v) for v in item[keyword]])


def _frames(ds, path, threshold):
    """Boolean frames, their positions (LPS) and their segment numbers."""
    count = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.PerFrameFunctionalGroupsSequence
    if len(per_frame) != count:
        raise ValueError(f"{path}: {count} frames but {len(per_frame)} per-frame functional group items")
    # pydicom unpacks 1-bit frames that are not byte aligned, and leaves a palette's indices as stored
    pixels = ds.pixel_array.reshape(count, int(ds.Rows), int(ds.Columns))
    seg_type = str(ds.SegmentationType).upper()
    if seg_type == "FRACTIONAL":
        frames = pixels.astype(np.float32) / float(ds.get("MaximumFractionalValue", 255) or 255) >= threshold
    elif seg_type == "LABELMAP":  # stored values are segment numbers; the padding value is background
        frames = pixels.astype(np.uint16)
        padding = ds.get("PixelPaddingValue")
        if padding is not None and int(padding) != 0:
            frames[pixels == int(padding)] = 0
    else:
        frames = pixels > 0
    positions, numbers = [], []
    for f, item in enumerate(per_frame):
        position = _first(item, "PlanePositionSequence")
        ident = _first(item, "SegmentIdentificationSequence")
        if position is None or (ident is None and seg_type != "LABELMAP"):
            raise ValueError(f"{path}: frame {f + 1} lacks its Plane Position or Segment Identification")
        positions.append(np.array([float(v) for v in position.ImagePositionPatient]))
        numbers.append(None if seg_type == "LABELMAP" else int(ident.ReferencedSegmentNumber))
    return frames, positions, numbers


def _seg_grid(ds, orientation, inplane_spacing, positions, measures, path) -> Geometry:
    """The grid the SEG's frames lie on: in-plane from the frames, slices from their positions."""
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    along = np.array([float(np.dot(p, normal)) for p in positions])
    levels = np.unique(np.round(along, 4))
    if "SpacingBetweenSlices" in measures and float(measures.SpacingBetweenSlices) > 0:
        spacing_k = float(measures.SpacingBetweenSlices)
    elif len(levels) > 1:
        spacing_k = float(np.min(np.diff(levels)))
    else:
        spacing_k = float(measures.get("SliceThickness", 1.0) or 1.0)
    first = positions[int(np.argmin(along))]
    n_slices = int(round((levels[-1] - levels[0]) / spacing_k)) + 1
    g = Geometry(size=(int(ds.Columns), int(ds.Rows), n_slices), spacing=(*inplane_spacing, spacing_k),
                 origin=first, direction=np.stack([row_dir, col_dir, normal], axis=1).ravel())
    for p in positions:
        ijk = g.world_to_index(p)
        if np.max(np.abs(ijk - np.round(ijk))) > 1e-2 or abs(ijk[0]) > 1e-2 or abs(ijk[1]) > 1e-2:
            raise ValueError(f"{path}: frame position {p.round(4).tolist()} is off the frames' common grid")
    return g


def _frames_fit(reference: Geometry, own: Geometry, positions) -> bool:
    """True when every frame is a whole slice of ``reference`` (same in-plane grid, integral k)."""
    ref = reference.to_lps()
    if ref.size[:2] != own.size[:2] or not np.allclose(ref.spacing[:2], own.spacing[:2], atol=1e-3) or \
            not np.allclose(ref.direction_matrix[:, :2], own.direction_matrix[:, :2], atol=1e-4):
        return False
    for p in positions:
        ijk = ref.world_to_index(p)
        k = round(ijk[2])
        if abs(ijk[0]) > 1e-2 or abs(ijk[1]) > 1e-2 or abs(ijk[2] - k) > 1e-2 or not 0 <= k < ref.size[2]:
            return False
    return True


def _seg_summary(ds) -> dict:
    """Provenance kept in Segmentation.metadata (and in an imported version's meta)."""
    ref = ds.get("ReferencedSeriesSequence")
    return {"source": "dicom-seg", "sop_instance_uid": str(ds.SOPInstanceUID),
            "series_instance_uid": str(ds.SeriesInstanceUID), "study_instance_uid": str(ds.StudyInstanceUID),
            "referenced_series_uid": str(ref[0].SeriesInstanceUID) if ref else None,
            "segmentation_type": str(ds.SegmentationType),
            "content_creator": str(ds.get("ContentCreatorName", "") or "") or None,
            "series_description": str(ds.get("SeriesDescription", "") or "")}


def referenced_series_uid(path) -> str | None:
    """The SeriesInstanceUID of the image series a SEG file was made on."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ref = ds.get("ReferencedSeriesSequence")
    return str(ref[0].SeriesInstanceUID) if ref else None
