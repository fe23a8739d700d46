"""DICOM SEG between the PACS and the project store.

* ``find_seg_series``: the SEG series of a study in the PACS (optionally: those made on one image
  series), by QIDO-RS plus the SEG's WADO-RS metadata (Referenced Series Sequence).
* ``import_seg_version``: a SEG file (e.g. a prior read found in the PACS) read onto the case
  image's grid, named with the project's labels, and pushed as an annotation version.
* ``export_case_seg``: a case's final (adjudicated, by default) version as a SEG referencing the
  original instances, written to a file and/or STOWed back to the PACS.
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, write_seg_nrrd
from DicomTeamAnnotateLib.pacs import PacsError
from DicomTeamAnnotateLib.pacs.dicomweb import pacs_errors, query_series, retrieve_series
from DicomTeamAnnotateLib.pacs.reference import PacsReference, fetch_reference
from DicomTeamAnnotateLib.pacs.seg_export import export_seg
from DicomTeamAnnotateLib.pacs.seg_import import read_seg, referenced_series_uid
from DicomTeamAnnotateLib.store.model import choose_version

log = logging.getLogger(__name__)

_LOCATION = re.compile(r"^(?P<url>https?://.+)/studies/(?P<study>[0-9.]+)/series/(?P<series>[0-9.]+)$")


def find_seg_series(client, study_uid: str, referenced_series_uid: str | None = None) -> list:
    """SeriesInfo of the SEG series in a study (those referencing ``referenced_series_uid`` when given)."""
    from pydicom import Dataset

    segs = query_series(client, study=study_uid, query={"Modality": "SEG"}, images_only=False)
    if referenced_series_uid is None:
        return segs
    out = []
    for info in segs:
        with pacs_errors(client.base_url, f"WADO-RS metadata of SEG series {info.series_uid}"):
            items = client.retrieve_series_metadata(info.study_uid, info.series_uid)
        for item in items:
            # only the Referenced Series Sequence: the rest carries bulk-data URIs we do not want
            refs = Dataset.from_json({k: v for k, v in item.items() if k == "00081115"}).get("ReferencedSeriesSequence")
            refs = refs or []
            if any(str(r.get("SeriesInstanceUID", "")) == referenced_series_uid for r in refs):
                out.append(info)
                break
    return out


def retrieve_seg_files(client, study_uid: str, seg_series_uid: str, cache_dir=None) -> list[Path]:
    """The SEG instances of one series, in the local cache."""
    return list(retrieve_series(client, study_uid, seg_series_uid, cache_dir).files)


def case_geometry(store, case_id: str) -> Geometry:
    """The case image's grid, from the case record (no pixel transfer)."""
    case = store.get_case(case_id)
    if not case.get("geometry"):
        raise PacsError(f"case {case_id!r} has no geometry in the store")
    return Geometry.from_dict(case["geometry"])


def import_seg_version(store, case_id: str, seg_path, *, reader: str = "highdicom", message: str | None = None,
                       kind: str = "annotation", parent: str | None = None) -> dict:
    """Push a DICOM SEG as a version of ``case_id`` (on the case grid, project label values); returns it.

    Refused (PacsError, nothing pushed): a SEG made on another series than the one the case
    records, and a SEG with drawn voxels of which none falls on the case image (another patient
    position or frame of reference: it would become an empty version).
    """
    recorded = reference_of_case(store.get_case(case_id))
    made_on = referenced_series_uid(seg_path)
    if recorded is not None and made_on is not None and made_on != recorded.series_uid:
        raise PacsError(f"{seg_path}: the SEG was made on series {made_on}, but case {case_id!r} is series "
                        f"{recorded.series_uid}")
    geometry = case_geometry(store, case_id)
    seg = read_seg(seg_path, geometry, reader=reader, labels=store.project().get("labels"))
    if not seg.layers.any() and _has_drawn_voxels(seg_path):
        raise PacsError(f"{seg_path}: none of the SEG's segmented voxels lies on the image of case {case_id!r} "
                        "(another frame of reference or position?); nothing imported")
    meta = {k: v for k, v in seg.metadata.items() if v is not None}
    with tempfile.TemporaryDirectory(prefix="dicomteam-seg-") as tmp:
        path = write_seg_nrrd(seg, Path(tmp) / f"{case_id}.seg.nrrd")
        text = message or f"imported DICOM SEG {meta.get('sop_instance_uid', '')} " \
                          f"({meta.get('series_description') or 'no description'})"
        return store.push_version(case_id, path, parent=parent, message=text, kind=kind, meta=meta)


def _has_drawn_voxels(seg_path) -> bool:
    import pydicom

    return bool(pydicom.dcmread(seg_path).pixel_array.any())


def reference_of_case(case: dict) -> PacsReference | None:
    """The PACS location a case came from (reference mode, or the source of a DICOMweb import)."""
    ref = case.get("reference")
    if isinstance(ref, dict):
        return PacsReference.from_dict(ref)
    m = _LOCATION.match(str(case.get("source") or ""))
    if m:
        return PacsReference(m["url"], m["study"], m["series"])
    return None


def export_case_seg(store, case_id: str, *, version_id: str | None = None, kind: str = "adjudicated",
                    source=None, out=None, stow_url: str | None = None, user: str | None = None,
                    password: str | None = None, cache_dir=None, **options) -> dict:
    """A case's version (default: the latest adjudicated one) as a SEG against its source series.

    ``source``: a DICOM folder, a PacsReference, or None for the PACS location the case records.
    """
    if version_id is None:

        chosen = choose_version(store.list_versions(case_id), kind)
        if chosen is None:
            raise PacsError(f"case {case_id!r} has no {kind} version to export (versions flagged as conflicts are "
                            f"not taken; name one with --version)")
        version_id = chosen["id"]
    if source is None:
        source = reference_of_case(store.get_case(case_id))
        if source is None:
            raise PacsError(f"case {case_id!r} records no PACS location; give the source DICOM series")
    if isinstance(source, PacsReference):

        source = fetch_reference(source, user=user, password=password, cache_dir=cache_dir).files
    with tempfile.TemporaryDirectory(prefix="dicomteam-seg-") as tmp:
        path = store.fetch_version(version_id, Path(tmp) / f"{version_id}.seg.nrrd")
        seg = read_segmentation(path, reference=case_geometry(store, case_id))
    result = export_seg(seg, source, out=out, stow_url=stow_url, user=user, password=password, **options)
    return {**result, "case_id": case_id, "version_id": version_id}
