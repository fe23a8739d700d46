"""DICOM ingestion: folders, file lists or ZIP archives in; volumes with full geometry out.

    result = ingest(["/data/case1", "/data/case2.zip"])
    for s in result.series:
        s.series_id, s.volume.geometry, s.metadata["modality"], s.warnings
    result.rejected      # [(path, reason)] for every file that did not become part of a volume

The steps live in small modules of this package: ``headers`` (find files, read each header once),
``frames`` (one record per 2D frame, multi-frame files included), ``sort`` (group, split, sort),
``geometry`` (spacing, tilt, non-uniform spacing) and ``pixels`` (parallel decoding and rescale).
This module joins them and writes the metadata summary.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.dicom.frames import Frame, frames_of
from DicomTeamAnnotateLib.dicom.geometry import RefusedStack, regularize, stack_geometry
from DicomTeamAnnotateLib.dicom.headers import MissingDecoder, RejectedFile, collect_sources, read_header
from DicomTeamAnnotateLib.dicom.pixels import PROGRESS_MIN_FILES, decode_stacks
from DicomTeamAnnotateLib.dicom.sort import SeriesPlan, plan_series, text_value
from DicomTeamAnnotateLib.io.volumes import has_volume_suffix, read_volume


@dataclass
class IngestedSeries:
    """One output volume: its id (SeriesInstanceUID, or a derived id), the volume, a summary."""

    series_id: str
    volume: Volume
    warnings: list = field(default_factory=list)
    files: list = field(default_factory=list)

    @property
    def metadata(self) -> dict:
        """The series summary (modality, uid, description, ...): the volume's own metadata."""
        return self.volume.metadata


@dataclass
class IngestResult:
    """Every volume found, every file left out (with the reason), and notes on what was done."""

    series: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    missing_decoders: list = field(default_factory=list)  # transfer syntaxes of files rejected for want of one

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"{len(self.series)} volume(s), {len(self.rejected)} file(s) rejected"]
        for s in self.series:
            g = s.volume.geometry
            told = "; ".join(f"{k} {v}" for k, v in (s.metadata.get("distinguished_by") or {}).items())
            lines.append(f"  {s.series_id}: {s.metadata.get('modality', '?')} {g.size[0]}x{g.size[1]}x{g.size[2]} "
                         f"spacing {', '.join(f'{v:.4g}' for v in g.spacing)} mm"
                         + (f" [{told}]" if told else "")
                         + (f" ({len(s.warnings)} warning(s))" if s.warnings else ""))
        return "\n".join(lines)


def _metadata(plan: SeriesPlan, frames: list[Frame], volume_dtype) -> dict:
    ds = frames[len(frames) // 2].file.ds
    windows = [f.window for f in frames if f.window]
    window = windows[len(windows) // 2] if windows else None
    slopes = {f.slope for f in frames}
    intercepts = {f.intercept for f in frames}
    modality = text_value(ds, "Modality")
    rescale_type = text_value(ds, "RescaleType")
    transfer_syntaxes = sorted({f.file.transfer_syntax for f in frames if f.file.transfer_syntax})
    from pydicom.uid import UID

    return {
        "series_id": plan.series_id,
        "series_instance_uid": text_value(ds, "SeriesInstanceUID"),
        "study_instance_uid": text_value(ds, "StudyInstanceUID"),
        "derived_id": plan.derived_id,
        "patient_id": text_value(ds, "PatientID"),
        "modality": modality,
        "description": text_value(ds, "SeriesDescription"),
        "study_description": text_value(ds, "StudyDescription"),
        "series_number": text_value(ds, "SeriesNumber"),
        "study_date": text_value(ds, "StudyDate"),
        "frame_of_reference_uid": text_value(ds, "FrameOfReferenceUID"),
        "manufacturer": text_value(ds, "Manufacturer"),
        "manufacturer_model": text_value(ds, "ManufacturerModelName"),
        "institution": text_value(ds, "InstitutionName"),
        "window_center": window[0] if window else None,
        "window_width": window[1] if window else None,
        "rescale_slope": slopes.pop() if len(slopes) == 1 else "per slice",
        "rescale_intercept": intercepts.pop() if len(intercepts) == 1 else "per slice",
        "units": rescale_type or ("HU" if modality == "CT" else ""),
        "number_of_slices": len(frames),
        "number_of_files": len({id(f.file) for f in frames}),
        "transfer_syntax": ", ".join(UID(ts).name for ts in transfer_syntaxes),
        "dtype": str(np.dtype(volume_dtype)),
        "source": frames[0].file.source.label,
        # what tells this volume apart from the others of its series (frame type, echo time...), if split
        "distinguished_by": dict(plan.distinguished_by),
    }


HEADER_SHARE = 0.2  # the fraction of on_progress given to reading headers (decoding takes the rest)


def _read_headers(sources, progress: bool, on_progress) -> tuple[list[Frame], list, list]:
    frames: list[Frame] = []
    rejected: list = []
    missing: dict = {}  # transfer syntax name -> None (ordered set)
    items = sources.sources
    total = len(items)
    if progress and total >= PROGRESS_MIN_FILES and sys.stderr.isatty():
        from tqdm import tqdm

        items = tqdm(items, desc="reading headers", unit="file", file=sys.stderr)
    for n, src in enumerate(items, start=1):
        try:
            frames.extend(frames_of(read_header(sources, src)))
        except RejectedFile as exc:
            rejected.append((src.label, str(exc)))
            if isinstance(exc, MissingDecoder):
                missing[exc.transfer_syntax] = None
        if on_progress:
            on_progress(HEADER_SHARE * n / total, f"reading headers ({n}/{total})")
    return frames, rejected, list(missing)


def ingest(paths, progress: bool = False, *, workers: int | None = None, on_progress=None) -> IngestResult:
    """Turn DICOM files (folders, file lists, ZIP archives) into volumes; never stops at a bad file.

    ``progress``: a tqdm bar on stderr for large inputs (only when stderr is a terminal).
    ``workers``: parallel decoders (default: CPUs, at most 8; 1 decodes in this thread).
    ``on_progress(fraction, message)``: called as files are read and decoded (any thread may
    call ingest; the callback runs on that thread); an exception it raises cancels ingestion.
    """
    result = IngestResult()
    with collect_sources(paths) as sources:
        result.rejected.extend(sources.rejected)
        result.notes.extend(sources.notes)
        frames, rejected, result.missing_decoders = _read_headers(sources, progress, on_progress)
        result.rejected.extend(rejected)
        plans, notes, duplicates = plan_series(frames)
        result.notes.extend(notes)
        result.rejected.extend(duplicates)
        def on_file(done, total):
            on_progress(HEADER_SHARE + (1 - HEADER_SHARE) * done / total, f"decoding pixels ({done}/{total})")

        arrays, failures = decode_stacks(sources, [p.frames for p in plans], workers=workers, progress=progress,
                                         on_file=on_file if on_progress else None)
    reported: set[int] = set()
    for plan, array in zip(plans, arrays):
        bad = [k for k, f in enumerate(plan.frames) if id(f.file) in failures]
        for k in bad:
            key = id(plan.frames[k].file)
            if key not in reported:
                reported.add(key)
                result.rejected.append((plan.frames[k].file.source.label, failures[key]))
        frames_ok = [f for k, f in enumerate(plan.frames) if k not in set(bad)]
        warnings = list(plan.warnings)
        if bad:
            array = np.delete(array, bad, axis=0)
            warnings.append(f"{len(bad)} slice(s) could not be decoded and were left out (see rejected files)")
        if not frames_ok:
            continue
        try:
            sg = stack_geometry(frames_ok)
        except RefusedStack as exc:
            result.rejected.append((f"series {plan.series_id} ({len(frames_ok)} frames, first "
                                    f"{frames_ok[0].label})", str(exc)))
            continue
        warnings.extend(sg.warnings)
        if frames_ok[0].file.ds.get("PhotometricInterpretation", "") == "MONOCHROME1":
            warnings.append("MONOCHROME1: low values display bright; values are kept as stored (not inverted)")
        array = regularize(array, sg)
        volume = Volume(array, sg.geometry, _metadata(plan, frames_ok, array.dtype))
        files = list(dict.fromkeys(f.file.source.label for f in frames_ok))
        result.series.append(IngestedSeries(plan.series_id, volume, warnings, files))
    if not result.series and not result.rejected:
        result.notes.append("no files found")
    return result


def load_dicom_volume(path, series_id: str | None = None) -> Volume:
    """The one volume in ``path`` (folder, file, list or ZIP); ValueError when there is not exactly one."""
    result = ingest(path)
    series = result.series
    if series_id is not None:
        series = [s for s in series if s.series_id == series_id]
    if len(series) == 1:
        return series[0].volume
    if not series:
        reasons = "; ".join(f"{p}: {r}" for p, r in result.rejected[:5])
        more = f" (and {len(result.rejected) - 5} more)" if len(result.rejected) > 5 else ""
        wanted = f" with id {series_id}" if series_id else ""
        raise ValueError(f"{path}: no DICOM volume{wanted} found" + (f" ({reasons}{more})" if reasons else ""))
    ids = ", ".join(f"{s.series_id} ({s.metadata.get('modality', '?')}, {s.volume.geometry.size[2]} slices)"
                    for s in series)
    raise ValueError(f"{path}: expected exactly one DICOM series, found {len(series)}: {ids}; "
                     "pass series_id= to choose one")


def load_image(path) -> Volume:
    """A Volume from a volume file (.nrrd/.nii.gz/...) or, through our ingestion, a DICOM folder/ZIP/file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file() and has_volume_suffix(path):
        return read_volume(path)
    return load_dicom_volume(path)


def series_report(series: IngestedSeries, output_file: str | None = None) -> dict:
    """The JSON-ready description of one ingested series (what ingest_report.json lists)."""
    g = series.volume.geometry
    m = series.metadata
    return {
        "series_id": series.series_id,
        "uid": m.get("series_instance_uid") or series.series_id,
        "derived_id": m.get("derived_id", False),
        "study_uid": m.get("study_instance_uid", ""),
        "patient_id": m.get("patient_id", ""),
        "modality": m.get("modality", ""),
        "description": m.get("description", ""),
        "number_of_slices": m.get("number_of_slices"),
        "size": list(g.size),
        "spacing": list(g.spacing),
        "origin": list(g.origin),
        "direction": list(g.direction),
        "space": g.space,
        "dtype": str(series.volume.array.dtype),
        "window_center": m.get("window_center"),
        "window_width": m.get("window_width"),
        "output_file": output_file,
        "distinguished_by": dict(m.get("distinguished_by") or {}),
        "warnings": list(series.warnings),
    }
