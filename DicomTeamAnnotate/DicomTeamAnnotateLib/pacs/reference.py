"""Reference mode: a case that records where its series lives in the PACS instead of holding pixels.

The project keeps only the location (DICOMweb URL, Study and Series Instance UIDs, optionally
the user name; never a password).  Whoever opens the case fetches the series on demand into
their local cache (resumable, see ``dicomweb.retrieve_series``) and loads it through our
ingestion; a complete cached series is used without contacting the server.

    ref = PacsReference("http://pacs:8042/dicom-web", study_uid, series_uid, user="alice")
    volume = load_reference_volume(ref)                 # password: argument or $DICOMWEB_PASSWORD
    path = fetch_reference_image(ref, "/tmp/case1", "case1")   # a .nrrd, like Store.fetch_image

A project case in reference mode records ``ref.to_dict()``; ``fetch_case_image`` is what
``Store.fetch_image`` calls for it, with this machine's credentials: the PACS user is
``$DICOMWEB_USER`` or the one recorded, the password ``$DICOMWEB_PASSWORD`` or the OS keyring's.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume
from DicomTeamAnnotateLib.io.volumes import write_volume
from DicomTeamAnnotateLib.pacs import PacsError
from DicomTeamAnnotateLib.pacs.dicomweb import (
    cached_series,
    check_uid,
    check_url,
    connect,
    resolve_password,
    retrieve_series,
)

KIND = "dicomweb"
USER_ENV = "DICOMWEB_USER"


@dataclass(frozen=True)
class PacsReference:
    """Where a series lives: the DICOMweb root and its UIDs (plus the user name, for convenience)."""

    url: str
    study_uid: str
    series_uid: str
    user: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "url", check_url(self.url))
        check_uid(self.study_uid, "StudyInstanceUID")
        check_uid(self.series_uid, "SeriesInstanceUID")

    def to_dict(self) -> dict:
        """JSON-ready, with ``kind: "dicomweb"`` (what a case record stores)."""
        return {"kind": KIND, **{k: v for k, v in asdict(self).items() if v is not None}}

    @classmethod
    def from_dict(cls, d: dict) -> PacsReference:
        """From ``to_dict()`` output; PacsError when it is not a DICOMweb reference."""
        if not isinstance(d, dict) or d.get("kind", KIND) != KIND:
            raise PacsError(f"not a DICOMweb reference: {d!r}")
        try:
            return cls(url=d["url"], study_uid=d["study_uid"], series_uid=d["series_uid"], user=d.get("user"))
        except KeyError as exc:
            raise PacsError(f"DICOMweb reference lacks field {exc.args[0]!r}: {d!r}") from None

    def location(self) -> str:
        """The series' WADO-RS URL (a human-readable provenance string)."""
        return f"{self.url}/studies/{self.study_uid}/series/{self.series_uid}"


def fetch_reference(ref: PacsReference, *, password: str | None = None, user: str | None = None, cache_dir=None,
                    progress: bool = False, callback=None, client=None):
    """The series complete in the local cache: from the cache when it is there, else from the PACS."""
    cached = cached_series(ref.study_uid, ref.series_uid, cache_dir)
    if cached is not None:
        return cached
    client = client or connect(ref.url, user or ref.user, password)
    return retrieve_series(client, ref.study_uid, ref.series_uid, cache_dir, progress=progress, callback=callback)


def load_reference_volume(ref: PacsReference, **fetch_options):
    """The referenced series as a Volume, through our DICOM ingestion (fetched on demand)."""
    series = fetch_reference(ref, **fetch_options)
    try:
        volume = load_dicom_volume([str(f) for f in series.files])
    except ValueError as exc:
        raise PacsError(f"{ref.location()}: {exc}") from None
    volume.metadata["source"] = ref.location()
    return volume


def fetch_reference_image(ref: PacsReference, dest_dir, name: str, expected: dict | None = None,
                          **fetch_options) -> Path:
    """Write the referenced series as ``dest_dir/<name>.nrrd`` (what ``Store.fetch_image`` returns).

    ``expected``: the grid the project recorded for the case (Geometry.to_dict()); the series as
    the PACS serves it now must still be on it (instances added or removed since would put every
    annotation of the case off its image), else PacsError naming the differences.
    """
    volume = load_reference_volume(ref, **fetch_options)
    if expected is not None:
        differences = Geometry.from_dict(expected).differences(volume.geometry)
        if differences:
            raise PacsError(f"case {name!r}: series {ref.series_uid} at {ref.url} is no longer the image the project "
                            f"recorded ({'; '.join(differences)}); the series changed in the PACS since it was added")
    return write_volume(volume, Path(dest_dir) / f"{name}.nrrd")


def fetch_case_image(case: dict, dest_dir, *, cache_dir=None, progress=None) -> Path:
    """A reference-mode case's image as ``dest_dir/<case_id>.nrrd``, fetched on demand (cache first).

    ``progress``: True (a progress bar) or a callable(done, total) over the series' instances.
    """
    ref = PacsReference.from_dict(case.get("reference"))
    user = os.environ.get(USER_ENV) or ref.user
    return fetch_reference_image(ref, dest_dir, case["case_id"], case.get("geometry"), user=user,
                                 password=resolve_password(None, ref.url, user), cache_dir=cache_dir,
                                 progress=progress is True, callback=progress if callable(progress) else None)
