"""One record per 2D image ("frame"), whether it is a single-frame file or one frame of an
enhanced multi-frame file (per-frame / shared functional groups), so that grouping and sorting
treat both the same way.

Besides its place in space, a frame carries what tells images at one position apart: the
frame type (the ``FrameType`` of the frame's ``*FrameTypeSequence``, or ``ImageType``: a Philips
field map holds "M" and "B0 MAP" frames at the same positions), the complex image component
(MAGNITUDE, PHASE...), the echo time, and the values of the Dimension Index Sequence that are
not spatial.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from DicomTeamAnnotateLib.dicom.headers import FileHeader, RejectedFile, float_list, int_value


@dataclass
class Frame:
    """Where one 2D image lies in space, how to rescale it, and the keys that tell stacks apart."""

    file: FileHeader
    index: int | None            # frame number inside a multi-frame file; None for a single-frame file
    position: np.ndarray         # ImagePositionPatient: centre of the first transmitted pixel, LPS mm
    row_dir: np.ndarray          # direction of increasing column index (i)
    col_dir: np.ndarray          # direction of increasing row index (j)
    rows: int
    cols: int
    pixel_spacing: tuple         # (between rows, between columns) = (along j, along i), mm
    slope: float = 1.0
    intercept: float = 0.0
    thickness: float | None = None
    instance: int = 0            # InstanceNumber, or InStackPositionNumber for a frame
    acquisition: str = ""
    temporal: str = ""
    echo: str = ""
    stack: str = ""
    window: tuple | None = None  # (center, width) from the header
    frame_type: str = ""         # FrameType (enhanced) or ImageType, values joined by '\\'
    complex_component: str = ""  # ComplexImageComponent: MAGNITUDE, PHASE, REAL, IMAGINARY, MIXED
    echo_time: str = ""          # EffectiveEchoTime (enhanced) or EchoTime, ms
    dimension: str = ""          # the non-spatial Dimension Index Values, e.g. "ComplexImageComponent=2"

    @property
    def label(self) -> str:
        return self.file.source.label if self.index is None else f"{self.file.source.label} [frame {self.index + 1}]"

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.row_dir, self.col_dir)
        return n / np.linalg.norm(n)


def _first(value):
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, str)):
        value = list(value)
        return value[0] if value else None
    return value


def _window(item) -> tuple | None:
    center, width = _first(item.get("WindowCenter")), _first(item.get("WindowWidth"))
    try:
        return (float(center), float(width)) if center is not None and width is not None else None
    except (TypeError, ValueError):
        return None


def _orientation(iop, where: str):
    iop = float_list(iop, 6)
    if iop is None:
        return None
    row, col = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 1e-6 or nc < 1e-6 or abs(np.dot(row, col) / (nr * nc)) > 1e-3:
        raise RejectedFile(f"{where}ImageOrientationPatient {list(iop)} is not two perpendicular unit vectors")
    return row / nr, col / nc


def _spacing(item, ds) -> tuple:
    ps = float_list(item.get("PixelSpacing"), 2)
    if ps is None:
        ps = float_list(ds.get("ImagerPixelSpacing"), 2)
    if ps is None or min(ps) <= 0:
        raise RejectedFile("no valid PixelSpacing: cannot give the image a size in mm")
    return float(ps[0]), float(ps[1])


def _rescale(item) -> tuple:
    slope, intercept = item.get("RescaleSlope"), item.get("RescaleIntercept")
    try:
        slope = float(slope) if slope not in (None, "") else 1.0
        intercept = float(intercept) if intercept not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise RejectedFile(f"RescaleSlope/RescaleIntercept not numbers: {slope!r} / {intercept!r}") from None
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise RejectedFile(f"invalid RescaleSlope {slope}")
    return slope, intercept


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _multi(value) -> str:
    """A multi-valued string attribute as 'A\\B\\C'."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return "\\".join(str(v).strip() for v in value)


def _number(value) -> str:
    """A number as text that compares equal for equal values ('4.60' and '4.6')."""
    try:
        return f"{float(_first(value)):g}"
    except (TypeError, ValueError):
        return ""


# Dimension index pointers that place a frame in space or that other Frame fields already carry.
_PLACED = {0x00209057: "InStackPositionNumber", 0x00200032: "ImagePositionPatient", 0x00209056: "StackID",
           0x00209128: "TemporalPositionIndex", 0x0020930D: "TemporalPositionTimeOffset"}


def _dimension_pointers(ds) -> list:
    """[(index in DimensionIndexValues, name)] of the Dimension Index Sequence items that are not spatial."""
    out = []
    for n, item in enumerate(ds.get("DimensionIndexSequence") or []):
        pointer = item.get("DimensionIndexPointer")
        if pointer is None:
            continue
        tag = int(pointer.value if hasattr(pointer, "value") else pointer)
        if tag in _PLACED:
            continue
        from pydicom.datadict import keyword_for_tag

        out.append((n, keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"))
    return out


def _frame_type_item(fg_item):
    """The frame's ``<modality>FrameTypeSequence`` item (MR, CT, PET, XA/XRF...), or None."""
    if fg_item is None:
        return None
    for elem in fg_item:
        if elem.keyword.endswith("FrameTypeSequence") and elem.VR == "SQ" and elem.value:
            return elem.value[0]
    return None


def frames_of(header: FileHeader) -> list[Frame]:
    """The frames of one file (one for a classic single-frame image)."""
    ds = header.ds
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_frames(header)
    if header.number_of_frames > 1:
        if "GridFrameOffsetVector" in ds:
            return _grid_frames(header)
        raise RejectedFile(f"multi-frame image ({header.number_of_frames} frames, {ds.get('Modality', '?')}) "
                           "without functional groups or per-frame positions: cannot place the frames in space")
    return [_single_frame(header)]


def _base(header: FileHeader, index, position, orientation, item_spacing, rescale, **kw) -> Frame:
    ds = header.ds
    return Frame(file=header, index=index, position=position, row_dir=orientation[0], col_dir=orientation[1],
                 rows=int(ds.Rows), cols=int(ds.Columns), pixel_spacing=item_spacing, slope=rescale[0],
                 intercept=rescale[1], acquisition=_text(ds.get("AcquisitionNumber")),
                 echo=_text(ds.get("EchoNumbers")), **kw)


def _single_frame(header: FileHeader) -> Frame:
    ds = header.ds
    position = float_list(ds.get("ImagePositionPatient"), 3)
    orientation = _orientation(ds.get("ImageOrientationPatient"), "")
    if position is None or orientation is None:
        raise RejectedFile("no ImagePositionPatient/ImageOrientationPatient: cannot place the image in space "
                           f"({ds.get('Modality', '?')} {str(ds.get('ImageType', '')).strip()})")
    thickness = float_list(ds.get("SliceThickness"), 1)
    rescale = _rescale(ds)
    dose_scaling = float_list(ds.get("DoseGridScaling"), 1)
    if dose_scaling is not None and rescale == (1.0, 0.0):  # RT Dose: stored value x DoseGridScaling = Gy
        rescale = (float(dose_scaling[0]), 0.0)
    return _base(header, None, position, orientation, _spacing(ds, ds), rescale,
                 thickness=float(thickness[0]) if thickness is not None else None,
                 instance=int_value(ds.get("InstanceNumber"), 0) or 0,
                 temporal=_text(ds.get("TemporalPositionIdentifier")), window=_window(ds),
                 frame_type=_multi(ds.get("ImageType")), complex_component=_text(ds.get("ComplexImageComponent")),
                 echo_time=_number(ds.get("EchoTime")))


def _group(fg_item, keyword):
    """First item of a functional-group macro sequence, or None."""
    if fg_item is None:
        return None
    seq = fg_item.get(keyword)
    return seq[0] if seq else None


def _enhanced_frames(header: FileHeader) -> list[Frame]:
    ds = header.ds
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    n = header.number_of_frames
    if per_frame and len(per_frame) != n:
        raise RejectedFile(f"PerFrameFunctionalGroupsSequence has {len(per_frame)} items for {n} frames")

    def lookup(item, keyword):  # per-frame value first, then shared
        return _group(item, keyword) or _group(shared, keyword)

    pointers = _dimension_pointers(ds)
    frames = []
    for f in range(n):
        item = per_frame[f] if per_frame else None
        where = f"frame {f + 1}: "
        pos_item = lookup(item, "PlanePositionSequence")
        ori_item = lookup(item, "PlaneOrientationSequence")
        position = float_list(pos_item.get("ImagePositionPatient"), 3) if pos_item else None
        orientation = _orientation(ori_item.get("ImageOrientationPatient"), where) if ori_item else None
        if position is None or orientation is None:
            raise RejectedFile(f"{where}no Plane Position/Orientation functional group: cannot place it in space")
        measures = lookup(item, "PixelMeasuresSequence")
        if measures is None:
            raise RejectedFile(f"{where}no Pixel Measures functional group (pixel spacing)")
        transform = lookup(item, "PixelValueTransformationSequence")
        content = _group(item, "FrameContentSequence")
        voi = lookup(item, "FrameVOILUTSequence")
        kind = _frame_type_item(item) or _frame_type_item(shared)
        echo = lookup(item, "MREchoSequence")
        raw_index = content.get("DimensionIndexValues") if content is not None else None
        index_values = [] if raw_index in (None, "") else [raw_index] if isinstance(raw_index, int) else list(raw_index)
        dimension = ", ".join(f"{name}={index_values[k]}" for k, name in pointers if k < len(index_values))
        thickness = float_list(measures.get("SliceThickness"), 1)
        frames.append(_base(
            header, f, position, orientation, _spacing(measures, ds),
            _rescale(transform) if transform is not None else _rescale(ds),
            thickness=float(thickness[0]) if thickness is not None else None,
            instance=int_value(content.get("InStackPositionNumber"), f + 1) if content is not None else f + 1,
            temporal=_text(content.get("TemporalPositionIndex")) if content is not None else "",
            stack=_text(content.get("StackID")) if content is not None else "",
            window=_window(voi) if voi is not None else _window(ds),
            frame_type=_multi(kind.get("FrameType")) if kind is not None else _multi(ds.get("ImageType")),
            complex_component=_text(kind.get("ComplexImageComponent")) if kind is not None else "",
            echo_time=_number(echo.get("EffectiveEchoTime")) if echo is not None else "",
            dimension=dimension))
    return frames


def _grid_frames(header: FileHeader) -> list[Frame]:
    """RT Dose style multi-frame: one position plus an offset per frame along the normal."""
    ds = header.ds
    first = _single_frame(header)
    offsets = float_list(ds.get("GridFrameOffsetVector"))
    if offsets is None or offsets.size != header.number_of_frames:
        raise RejectedFile("GridFrameOffsetVector does not give one offset per frame")
    frames = []
    for f, off in enumerate(offsets):
        # a first offset of 0 means "relative to ImagePositionPatient"; otherwise the first offset is
        # the position of the first frame itself: either way the distance from IPP is off - offsets[0]
        position = first.position + (off - offsets[0]) * first.normal
        frames.append(Frame(**{**first.__dict__, "index": f, "position": position,
                               "instance": f + 1}))
    return frames
