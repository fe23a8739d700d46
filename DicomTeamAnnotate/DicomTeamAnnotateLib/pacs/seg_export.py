"""A ``Segmentation`` as a DICOM Segmentation object (SEG), built with highdicom.

One SEG segment per project segment: its name as Segment Label, its colour as Recommended
Display CIELab Value, its terminology as Segmented Property Category/Type codes (SNOMED CT;
Slicer's terminology strings and bare ``SCHEME^CODE^Meaning`` triples are both understood; a
segment without one gets category "Tissue" and type "Tissue", a bare type gets category
"Anatomical structure").  Frames reference the source series' instances: the segmentation must
lie on the source grid (``Segmentation.resampled(volume.geometry)`` puts it there), and every
slice is matched to its source instance by physical position, never by file order.

BINARY stores 1-bit masks; FRACTIONAL stores 8-bit fractions (a binary segmentation gives 0 or
1; ``probabilities`` gives real soft maps, e.g. a STAPLE consensus); LABELMAP (DICOM Label Map
Segmentation, SOP class 1.2.840.10008.5.1.4.1.1.66.7, highdicom >= 0.24) stores one 8/16-bit label
map whose values are the segment numbers: the segmentation's own label values where each segment
has its own (FreeSurfer's 2035 stays 2035), else 1..N.  The anatomic region and its modifier of
a segment's terminology go into the Anatomic Region Sequence.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, TerminologyEntry
from DicomTeamAnnotateLib.pacs.dicomweb import connect, stow

log = logging.getLogger(__name__)

# (code, scheme, meaning) defaults, from DICOM CID 7150 "Segmentation Property Categories".
TISSUE = ("85756007", "SCT", "Tissue")
ANATOMICAL_STRUCTURE = ("91723000", "SCT", "Anatomical structure")
SEG_SERIES_DESCRIPTION = "DicomTeamAnnotate segmentation"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"  # pydicom 3.0 has no name for it
_POSITION_TOL_VOXELS = 1e-2
_DIRECTION_TOL = 1e-4


# ----- the source series ---------------------------------------------------------------------------
def read_source_series(source, *, pixels: bool = False) -> list:
    """The datasets of ONE single-frame image series from a folder or a list of files.

    Files that are not DICOM are ignored; several series, multi-frame images or missing
    geometry raise ValueError naming the file.
    """
    import pydicom

    paths = _dicom_candidates(source)
    datasets = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
        except (pydicom.errors.InvalidDicomError, EOFError, OSError, ValueError):
            log.debug("not a DICOM file: %s", path)
            continue
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            continue  # SR, SEG, presentation states... are not source images
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ValueError(f"{path}: multi-frame source images are not supported for SEG export yet")
        ds.filename = str(path)
        _fill_sop_class(ds)
        datasets.append(ds)
    if not datasets:
        raise ValueError(f"{source}: no DICOM image with position and orientation found")
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series) > 1:
        raise ValueError(f"{source}: holds {len(series)} series ({', '.join(sorted(series))}); give one series")
    for ds in datasets:
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if not str(ds.get(key, "")).strip():
                raise ValueError(f"{ds.filename}: empty {key}; a SEG must reference real UIDs "
                                 f"(store the series in the PACS, or give it UIDs, first)")
    return datasets


def _fill_sop_class(ds) -> None:
    """An empty SOPClassUID (seen in anonymised data) taken from the file meta, which names it too."""
    if not str(ds.get("SOPClassUID", "")).strip():
        meta_class = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", "")).strip()
        if not meta_class:
            raise ValueError(f"{getattr(ds, 'filename', '?')}: empty SOPClassUID and no file meta to take it from")
        log.info("%s: empty SOPClassUID, using the file meta's %s", getattr(ds, "filename", "?"), meta_class)
        ds.SOPClassUID = meta_class


def _dicom_candidates(source) -> list[Path]:
    if isinstance(source, (list, tuple)):
        return [Path(p) for p in source]
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))


def slice_indices(datasets, geometry: Geometry) -> list[int]:
    """The k index of each source image on ``geometry``; ValueError when the grids differ."""
    g = geometry.to_lps()
    d = g.direction_matrix
    ks = []
    for ds in datasets:
        name = getattr(ds, "filename", None) or ds.get("SOPInstanceUID", "?")
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        if not (np.allclose(iop[:3], d[:, 0], atol=_DIRECTION_TOL)
                and np.allclose(iop[3:], d[:, 1], atol=_DIRECTION_TOL)):
            raise ValueError(f"{name}: orientation {iop.round(5).tolist()} differs from the segmentation's "
                             f"i/j axes; resample the segmentation onto the source series first")
        if (int(ds.Columns), int(ds.Rows)) != g.size[:2]:
            raise ValueError(f"{name}: {ds.Columns}x{ds.Rows} pixels, the segmentation has {g.size[0]}x{g.size[1]}")
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        if not np.allclose((col_spacing, row_spacing), g.spacing[:2], atol=1e-3, rtol=0):
            raise ValueError(f"{name}: pixel spacing {col_spacing, row_spacing} differs from the segmentation's "
                             f"{g.spacing[:2]}")
        ijk = g.world_to_index([float(v) for v in ds.ImagePositionPatient])
        k = int(round(ijk[2]))
        if abs(ijk[0]) > _POSITION_TOL_VOXELS or abs(ijk[1]) > _POSITION_TOL_VOXELS or \
                abs(ijk[2] - k) > _POSITION_TOL_VOXELS or not 0 <= k < g.size[2]:
            raise ValueError(f"{name}: position {ds.ImagePositionPatient} is not a slice of the segmentation's grid "
                             f"(index {ijk.round(3).tolist()})")
        ks.append(k)
    if sorted(ks) != list(range(g.size[2])):
        missing = sorted(set(range(g.size[2])) - set(ks))
        dupes = sorted({k for k in ks if ks.count(k) > 1})
        raise ValueError(f"the source series does not match the segmentation's slices one to one "
                         f"(slices without a source image: {missing[:10]}, slices with several: {dupes[:10]})")
    return ks


# ----- segment descriptions ----------------------------------------------------------------------
def _triple(code) -> tuple:
    return code.value, code.scheme, (code.meaning or code.value)[:64]


def segment_codes(terminology: str | None) -> tuple:
    """((code, scheme, meaning) of the category, of the type) for a segment's terminology string
    (Slicer's entry read field by field, or a bare 'SCHEME^CODE^Meaning' type)."""
    entry = TerminologyEntry.parse(terminology)
    if entry is None:
        return TISSUE, TISSUE
    return (_triple(entry.category) if entry.category else ANATOMICAL_STRUCTURE), _triple(entry.type)


def segment_type_modifier(terminology: str | None) -> tuple | None:
    """(code, scheme, meaning) of the type modifier of a Slicer terminology string (e.g. Right), or None."""
    entry = TerminologyEntry.parse(terminology)
    return _triple(entry.type_modifier) if entry is not None and entry.type_modifier else None


def _coded(code):
    import highdicom as hd

    return hd.sr.CodedConcept(code.value, code.scheme, (code.meaning or code.value)[:64])


def segment_description(number: int, segment: Segment, algorithm_type: str = "MANUAL", *, color: bool = True):
    """The highdicom SegmentDescription of one segment (label, codes with the type modifier, anatomic
    region with its modifier, CIELab colour unless ``color`` is False)."""
    import highdicom as hd

    category, prop_type = segment_codes(segment.terminology)
    entry = TerminologyEntry.parse(segment.terminology) if prop_type != TISSUE else None
    rgb = [min(255.0, max(0.0, c * 255.0)) for c in segment.color]
    description = hd.seg.SegmentDescription(
        segment_number=number, segment_label=segment.name[:64],
        segmented_property_category=hd.sr.CodedConcept(*category),
        segmented_property_type=hd.sr.CodedConcept(*prop_type),
        algorithm_type=algorithm_type,
        algorithm_identification=None if algorithm_type == "MANUAL" else _algorithm(),
        tracking_id=segment.name[:64], tracking_uid=hd.UID(),
        anatomic_regions=[_coded(entry.region)] if entry is not None and entry.region is not None else None,
        display_color=hd.color.CIELabColor.from_rgb(*rgb) if color else None)
    if entry is not None and entry.type_modifier is not None:  # left/right kidney share a type code
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _coded(entry.type_modifier)]
    if entry is not None and entry.region is not None and entry.region_modifier is not None:
        description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [_coded(entry.region_modifier)]
    return description


def _algorithm():
    """Who made a SEMIAUTOMATIC/AUTOMATIC segmentation: our tools' algorithms (SAM prompts, nnU-Net and
    MONAI models) are of the family 'Artificial Intelligence' (DCM 123110, CID 7162)."""
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(name="DicomTeamAnnotate", version=_version(),
                                              family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dicomteamannotate")
    except Exception:  # not installed as a distribution (a developer checkout in Slicer)
        return "dev"


# ----- the SEG -------------------------------------------------------------------------------
def build_seg(seg: Segmentation, source_datasets, *, fractional: bool = False, probabilities: dict | None = None,
              labelmap: bool = False, algorithm_type: str = "MANUAL", series_description: str = SEG_SERIES_DESCRIPTION,
              series_number: int = 300, content_creator: str | None = None, series_uid: str | None = None,
              sop_uid: str | None = None):
    """A highdicom Segmentation of ``seg`` referencing ``source_datasets`` (one series on seg's grid).

    ``probabilities`` {segment name: float array (K, J, I) in 0..1} implies FRACTIONAL and
    replaces those segments' binary masks; ``labelmap`` makes a Label Map Segmentation.
    """
    import highdicom as hd

    if not seg.segments:
        raise ValueError("the segmentation has no segments; nothing to export")
    fractional = fractional or bool(probabilities)
    if labelmap and fractional:
        raise ValueError("a label-map SEG holds no fractions: choose labelmap or fractional")
    if labelmap and not hasattr(hd.seg.SegmentationTypeValues, "LABELMAP"):
        raise ValueError(f"highdicom {hd.__version__} cannot write a label-map SEG (it needs highdicom 0.24 or newer)")
    datasets = list(source_datasets)
    for ds in datasets:
        _fill_sop_class(ds)
    ks = slice_indices(datasets, seg.geometry)
    if labelmap:
        numbers = labelmap_numbers(seg)
        descriptions = [segment_description(numbers[s.name], s, algorithm_type) for s in seg.segments]
        pixels = _labelmap_array(seg, ks, numbers)
    else:
        descriptions = [segment_description(n, s, algorithm_type) for n, s in enumerate(seg.segments, start=1)]
        pixels = _pixel_array(seg, ks, probabilities or {})
    kwargs = {"transfer_syntax_uid": _transfer_syntax(fractional or labelmap)}
    if fractional:
        kwargs.update(fractional_type="PROBABILITY", max_fractional_value=255)
    if content_creator:
        kwargs["content_creator_name"] = content_creator if "^" in content_creator else content_creator + "^"
    with warnings.catch_warnings():
        # highdicom warns when the source's PatientName has one component ("PHANTOM-0001"); nothing to act on
        warnings.filterwarnings("ignore", message=".*person name", category=UserWarning)
        return hd.seg.Segmentation(
            source_images=datasets, pixel_array=pixels,
            segmentation_type="LABELMAP" if labelmap else "FRACTIONAL" if fractional else "BINARY",
            segment_descriptions=descriptions, series_instance_uid=series_uid or hd.UID(), series_number=series_number,
            sop_instance_uid=sop_uid or hd.UID(), instance_number=1, manufacturer="DicomTeamAnnotate",
            manufacturer_model_name="dicomteam", software_versions=_version(), device_serial_number="0",
            content_label="SEGMENTATION", content_description=series_description[:64],
            series_description=series_description,
            omit_empty_frames=True, **kwargs)


def labelmap_numbers(seg: Segmentation) -> dict:
    """{segment name: segment number} of a label-map SEG: the own label values when each segment has its
    own and all fit 16 bits (the file's values are what a user sees), else 1..N."""
    values = seg.own_values()
    if values is None or max(values.values()) > 65535:
        values = {s.name: n for n, s in enumerate(seg.segments, start=1)}
    return values


def _labelmap_array(seg: Segmentation, ks: list[int], numbers: dict) -> np.ndarray:
    """Frames of segment numbers in source-image order; overlapping segments cannot share one label map."""
    out = np.zeros(seg.geometry.shape, dtype=np.uint8 if max(numbers.values()) <= 255 else np.uint16)
    covered = np.zeros(seg.geometry.shape, dtype=bool)
    for s in seg.segments:
        m = seg.mask(s.name)
        both = covered & m
        if np.any(both):
            other = [t.name for t in seg.segments if t.name != s.name and np.any(seg.mask(t.name) & both)]
            raise ValueError(f"segments '{s.name}' and '{other[0]}' overlap: a label-map SEG cannot hold them "
                             "(export BINARY instead)")
        out[m] = numbers[s.name]
        covered |= m
    return out[np.asarray(ks)]


def _pixel_array(seg: Segmentation, ks: list[int], probabilities: dict) -> np.ndarray:
    """Frames in source-image order, always a fresh array (highdicom scales fractional input in place).

    Without overlaps or probabilities: a label map of segment numbers (1 byte a voxel; highdicom
    accepts it for BINARY and FRACTIONAL alike); else stacked (K, J, I, S) masks, float32 where
    probabilities are given.
    """
    unknown = sorted(set(probabilities) - set(seg.names))
    if unknown:
        raise ValueError(f"probabilities for unknown segments: {unknown} (segments: {seg.names})")
    order = np.asarray(ks)
    if not probabilities and len(seg.segments) < 256:
        numbers = np.zeros(seg.geometry.shape, dtype=np.uint8)
        covered = np.zeros(seg.geometry.shape, dtype=bool)
        for n, s in enumerate(seg.segments, start=1):
            m = seg.mask(s.name)
            if np.any(covered & m):
                break  # overlapping segments: stacked masks below
            numbers[m] = n
            covered |= m
        else:
            return numbers[order]
    dtype = np.float32 if probabilities else np.uint8
    stacked = np.zeros((len(order), *seg.geometry.shape[1:], len(seg.segments)), dtype=dtype)
    for n, s in enumerate(seg.segments):
        if s.name in probabilities:
            p = np.asarray(probabilities[s.name], dtype=np.float32)
            if p.shape != seg.geometry.shape or np.nanmin(p) < 0 or np.nanmax(p) > 1:
                raise ValueError(f"probabilities of '{s.name}': need shape {seg.geometry.shape} and values in 0..1")
            stacked[..., n] = p[order]
        else:
            stacked[..., n] = seg.mask(s.name)[order]
    return stacked


def _transfer_syntax(bytes_per_pixel: bool) -> str:
    """RLE Lossless for 8/16-bit frames (fractional, label map: widely read, ~30x smaller), else uncompressed."""
    from pydicom.pixels import get_encoder
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    if bytes_per_pixel and get_encoder(RLELossless).is_available:
        return RLELossless
    return ExplicitVRLittleEndian  # BINARY frames are 1 bit a pixel already


def write_seg(seg_dataset, path) -> Path:
    """Write a SEG dataset to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        seg_dataset.save_as(tmp, enforce_file_format=True)
    return path


def export_seg(seg: Segmentation, source, *, out=None, stow_url: str | None = None, user: str | None = None,
               password: str | None = None, fractional: bool = False, **options) -> dict:
    """Build the SEG of ``seg`` against the source series (folder, files or datasets); write and/or STOW it.

    ``options`` go to ``build_seg`` (``labelmap=True``: a Label Map Segmentation).  Returns
    {sop_instance_uid, sop_class_uid, series_instance_uid, study_instance_uid, frames, segments, path, stowed}.
    """
    if out is None and stow_url is None:
        raise ValueError("export_seg: give out=PATH and/or stow_url=URL")
    datasets = source if _are_datasets(source) else read_source_series(source)
    seg_ds = build_seg(seg, datasets, fractional=fractional, **options)
    result = {"sop_instance_uid": str(seg_ds.SOPInstanceUID), "sop_class_uid": str(seg_ds.SOPClassUID),
              "series_instance_uid": str(seg_ds.SeriesInstanceUID),
              "study_instance_uid": str(seg_ds.StudyInstanceUID), "frames": int(seg_ds.NumberOfFrames),
              "segments": [s.name for s in seg.segments], "path": None, "stowed": False}
    if out is not None:
        result["path"] = str(write_seg(seg_ds, out))
    if stow_url is not None:

        stow(connect(stow_url, user, password), [seg_ds])
        result["stowed"] = True
    return result


def _are_datasets(source) -> bool:
    from pydicom import Dataset

    return isinstance(source, (list, tuple)) and bool(source) and all(isinstance(d, Dataset) for d in source)

