"""Import series from a DICOMweb server as project cases (`dicomteam project import-dicomweb`).

For each image series the query finds: retrieve it into the local cache (resumable), turn it
into a volume through our DICOM ingestion, then add the case in one step (the store appends one
event record).  Nothing is added before the series is complete and ingested, so a failure
mid-transfer leaves no partial case; rerunning resumes the transfer and skips the cases that
exist.  Case ids are stable: ``<PatientID>_S<SeriesNumber>_<8 hex of the Series UID hash>``.

Copy mode stores the pixels in the project (the case's ``source`` keeps the PACS location, so
a SEG can later reference the original instances).  Reference mode (``reference=True``) stores
only the location and the image geometry (the series is still retrieved once, here, to learn
it); whoever opens the case fetches the pixels on demand (see ``reference.py``).
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from DicomTeamAnnotateLib.dicom.ingest import ingest
from DicomTeamAnnotateLib.pacs import PacsError
from DicomTeamAnnotateLib.pacs.dicomweb import connect, query_series, retrieve_series
from DicomTeamAnnotateLib.pacs.reference import PacsReference
from DicomTeamAnnotateLib.store import admin
from DicomTeamAnnotateLib.store.folder import FolderCatalog

log = logging.getLogger(__name__)


def case_id_for(info) -> str:
    """A stable, store-safe case id for a series (same series, same id)."""
    patient = re.sub(r"[^A-Za-z0-9._-]+", "-", info.patient_id or "").strip("-._") or "case"
    digest = hashlib.sha1(info.series_uid.encode("ascii")).hexdigest()[:8]
    number = f"_S{info.series_number}" if info.series_number is not None else ""
    return f"{patient[:80]}{number}_{digest}"


def import_dicomweb(project_dir, url: str, *, study: str | None = None, series: str | None = None,
                    patient: str | None = None, query=None, user: str | None = None, password: str | None = None,
                    reference: bool = False, cache_dir=None, progress: bool = False, callback=None,
                    client=None) -> list[dict]:
    """Import every matching image series as a case; returns one summary dict per series.

    ``callback(series_index, series_count, done, total)`` reports instance progress (a GUI hook).
    Raises PacsError on the first series that fails, naming what was imported before it.
    """
    project_dir = Path(project_dir)
    catalog = FolderCatalog(project_dir)  # NotFound before any network traffic when DIR is no project
    client = client or connect(url, user, password)
    found = query_series(client, study=study, series=series, patient=patient, query=query)
    if not found:
        raise PacsError(f"no image series at {client.base_url} matches the query "
                        f"(study={study}, series={series}, patient={patient}, query={query or {}})")
    results = []
    for index, info in enumerate(found):
        case_id = case_id_for(info)
        catalog.refresh()
        summary = {"case_id": case_id, "patient_id": info.patient_id, "study_uid": info.study_uid,
                   "series_uid": info.series_uid, "modality": info.modality, "description": info.description,
                   "reference": bool(reference), "fetched": 0, "skipped": 0}
        if catalog.case(case_id) is not None:
            results.append({**summary, "status": "exists"})
            log.debug("case %s exists (series %s); skipped", case_id, info.series_uid)
            continue
        try:
            per_series = (lambda done, total, i=index: callback(i, len(found), done, total)) if callback else None
            retrieved = retrieve_series(client, info.study_uid, info.series_uid, cache_dir, progress=progress,
                                        callback=per_series)
            ref = PacsReference(client.base_url, info.study_uid, info.series_uid, user=user)
            volume = _ingest(retrieved.files, ref)
            _add_case(project_dir, case_id, volume, info.patient_id or case_id, ref if reference else None)
        except PacsError as exc:
            done = [r["case_id"] for r in results if r["status"] == "added"]
            raise PacsError(f"{exc}; series {index + 1} of {len(found)} was not imported"
                            + (f" (imported before it: {', '.join(done)})" if done else "")
                            + "; rerun the same command to resume") from None
        results.append({**summary, "status": "added", "fetched": retrieved.fetched, "skipped": retrieved.skipped})
        log.debug("added case %s from series %s (%d instances fetched, %d from the cache)", case_id,
                 info.series_uid, retrieved.fetched, retrieved.skipped)
    return results


def _ingest(files, ref: PacsReference):
    """The series as one Volume through our ingestion; PacsError when it is not one image volume."""
    result = ingest([str(f) for f in files])
    if len(result.series) != 1:
        reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in result.rejected[:3])
        raise PacsError(f"{ref.location()}: expected one image volume, ingestion found {len(result.series)}"
                        + (f" ({reasons})" if reasons else ""))
    volume = result.series[0].volume
    volume.metadata["source"] = ref.location()
    return volume


def _add_case(project_dir: Path, case_id: str, volume, patient_id: str, reference: PacsReference | None) -> dict:
    """One case: the pixels copied into the project, or (reference mode) only the PACS location."""
    return admin.add_case(project_dir, case_id, volume, patient_id,
                          reference=reference.to_dict() if reference is not None else None)
