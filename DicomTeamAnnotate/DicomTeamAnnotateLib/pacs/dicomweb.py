"""DICOMweb client: connect, query series (QIDO-RS), retrieve them into the local cache (WADO-RS), STOW-RS.

The transport is ``dicomweb-client`` over a ``requests`` session (HTTP basic auth when a user is
given, a (connect, read) timeout on every request, brief retries).  A series is streamed in one
request, and every instance is saved as soon as it has arrived: checked (its UID, its pixel data
complete) and written atomically (temporary name, rename).  An interrupted transfer so leaves
only whole instances, and a rerun fetches the rest one by one (after re-checking what it
finds).  ``series.json``, written after every instance file is fsynced, marks a complete
retrieval.  HTTP gzip is off by default (see ``connect``).  Every network failure becomes a
``PacsError`` naming the server and the step.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.pacs import PacsError

log = logging.getLogger(__name__)

PASSWORD_ENV = "DICOMWEB_PASSWORD"
KEYRING_SERVICE = "dicomteam-dicomweb"
CACHE_ENV = "DICOMTEAM_CACHE"
DEFAULT_TIMEOUT = (10.0, 120.0)  # seconds: (connect, read) for every request
COMPLETE_MARKER = "series.json"
# Series that are not image volumes: never imported as cases (a SEG is imported as a version instead).
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "REG", "DOC", "OT_SR"})
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
SERIES_FIELDS = ("PatientID", "Modality", "SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances")


# ----- connection ------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where retrieved series live: ``$DICOMTEAM_CACHE/dicomweb`` or ``~/.cache/dicomteam/dicomweb``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "dicomteam") / "dicomweb"


def resolve_password(password: str | None, url: str | None = None, user: str | None = None) -> str | None:
    """The password given, else ``$DICOMWEB_PASSWORD``, else the OS keyring's entry for (url, user)."""
    if password is not None:
        return password
    if os.environ.get(PASSWORD_ENV) is not None:
        return os.environ[PASSWORD_ENV]
    if url and user:
        try:
            import keyring

            return keyring.get_password(KEYRING_SERVICE, f"{user}@{url.rstrip('/')}")
        except Exception:  # no keyring module or no usable backend (headless Linux): no stored password
            return None
    return None


def remember_password(url: str, user: str, password: str) -> None:
    """Keep a DICOMweb password in the OS keyring (never in a project, a scene or Slicer's settings)."""
    import keyring

    keyring.set_password(KEYRING_SERVICE, f"{user}@{check_url(url)}", password)


def check_url(url: str) -> str:
    """The URL without a trailing slash; PacsError when it is not http(s)://host[:port][/path].

    A URL with a user name or password in it (``http://alice:pw@host/...``) is refused: URLs are
    stored in projects and settings and shown in messages, so credentials go separately (user
    name as ``--user``, password in the keyring or ``$DICOMWEB_PASSWORD``).
    """
    parsed = urlparse(url or "")
    if "@" in parsed.netloc:
        shown = parsed._replace(netloc="***@" + parsed.netloc.rsplit("@", 1)[1]).geturl()
        raise PacsError(f"DICOMweb URL {shown!r} carries credentials: give the user name with --user (or the "
                        "User field) and the password in the keyring or $DICOMWEB_PASSWORD, not in the URL")
    try:
        _ = parsed.port  # raises ValueError for a non-numeric port
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise PacsError(f"bad DICOMweb URL {url!r}: expected http(s)://host[:port]/path, "
                        f"e.g. http://localhost:8042/dicom-web")
    return url.rstrip("/")


def connect(url: str, user: str | None = None, password: str | None = None, *, timeout=DEFAULT_TIMEOUT,
            http_compression: bool = False):
    """A ``DICOMwebClient`` for ``url`` with basic auth (when ``user``) and timeouts on every request.

    HTTP (gzip) compression is off by default: pixel data is often compressed already, and
    gzip made a loopback WADO-RS transfer from Orthanc 7x slower (benchmarks/bench_pacs.py);
    turn it on for slow links.
    """
    import requests
    from dicomweb_client.api import DICOMwebClient

    url = check_url(url)
    session = requests.Session()
    if not http_compression:
        session.headers["Accept-Encoding"] = "identity"
    if user:
        session.auth = (user, resolve_password(password, url, user) or "")
    # 64 KiB reads: a streamed series yields each instance as soon as it is complete
    client = DICOMwebClient(url, session=session, timeout=timeout, chunk_size=1 << 16)
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=200)
    return client


_REASONS = (("IncompleteRead", "the response was cut short"), ("Connection broken", "the response was cut short"),
            ("RemoteDisconnected", "the server closed the connection"), ("Connection reset", "connection reset"),
            ("Name or service not known", "host name not found"), ("Connection refused", "connection refused"),
            ("timed out", "timed out"))


def _short_reason(exc: Exception) -> str:
    """The useful part of a requests/urllib3 error ("[Errno 111] Connection refused")."""
    text = str(exc)
    m = re.search(r"(\[Errno [^\]]+\][^'\")]*)", text)
    if m:
        return m.group(1).strip()
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    return type(exc).__name__


@contextlib.contextmanager
def pacs_errors(url: str, what: str):
    """Turn requests' exceptions raised inside the block into one-line PacsErrors."""
    import requests

    try:
        yield
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        if status in (401, 403):
            raise PacsError(f"{what}: the DICOMweb server at {url} refused the credentials (HTTP {status}); "
                            f"check --user and --password (or ${PASSWORD_ENV})") from None
        if status == 404:
            raise PacsError(f"{what}: not found at {url} (HTTP 404); is the URL the server's DICOMweb root, "
                            f"e.g. http://host:8042/dicom-web?") from None
        reason = exc.response.reason if exc.response is not None else ""
        raise PacsError(f"{what}: the DICOMweb server at {url} answered HTTP {status} {reason}".rstrip()) from None
    except requests.exceptions.Timeout:
        raise PacsError(f"{what}: the DICOMweb server at {url} did not answer in time") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise PacsError(f"{what}: connection to the DICOMweb server at {url} failed or was cut "
                        f"({_short_reason(exc)})") from None
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"{what}: request to {url} failed ({_short_reason(exc)})") from None


# ----- query -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesInfo:
    """What QIDO-RS says about one series."""

    study_uid: str
    series_uid: str
    patient_id: str = ""
    modality: str = ""
    description: str = ""
    series_number: int | None = None
    instances: int | None = None

    @classmethod
    def from_json(cls, item: dict) -> SeriesInfo:
        """From one DICOM JSON result of a series query."""
        from pydicom import Dataset

        ds = Dataset.from_json(item)
        number = ds.get("SeriesNumber")
        count = ds.get("NumberOfSeriesRelatedInstances")
        return cls(study_uid=check_uid(ds.get("StudyInstanceUID", ""), "StudyInstanceUID"),
                   series_uid=check_uid(ds.get("SeriesInstanceUID", ""), "SeriesInstanceUID"),
                   patient_id=str(ds.get("PatientID", "") or ""), modality=str(ds.get("Modality", "") or ""),
                   description=str(ds.get("SeriesDescription", "") or ""),
                   series_number=int(number) if number not in (None, "") else None,
                   instances=int(count) if count not in (None, "") else None)


def check_uid(uid, what: str) -> str:
    """A DICOM UID as str; PacsError when it is not digits and dots (it becomes a folder name)."""
    uid = str(uid or "").strip()
    if not _UID.match(uid) or len(uid) > 64:
        raise PacsError(f"invalid {what} {uid!r} from the server (expected digits and dots, at most 64 characters)")
    return uid


def parse_query(pairs) -> dict:
    """``["Modality=CT", "0008103E=abdomen*"]`` (or a dict) as QIDO search filters; keys checked."""
    from pydicom.datadict import tag_for_keyword

    items = pairs.items() if isinstance(pairs, dict) else [_split_pair(p) for p in (pairs or [])]
    filters = {}
    for key, value in items:
        key = key.strip()
        if not (tag_for_keyword(key) is not None or re.fullmatch(r"[0-9A-Fa-f]{8}", key)):
            raise PacsError(f"--query: {key!r} is neither a DICOM keyword (e.g. Modality) nor a tag (e.g. 00080060)")
        filters[key] = value
    return filters


def _split_pair(text: str):
    if "=" not in text:
        raise PacsError(f"--query: expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key, value


def query_series(client, *, study: str | None = None, series: str | None = None, patient: str | None = None,
                 query=None, images_only: bool = True) -> list[SeriesInfo]:
    """QIDO-RS: the series matching the filters (image series only unless ``images_only=False``)."""
    filters = parse_query(query)
    if patient:
        filters["PatientID"] = patient
    if series:
        filters["SeriesInstanceUID"] = series
    with pacs_errors(client.base_url, "QIDO-RS series query"):
        items = client.search_for_series(study_instance_uid=study, fields=list(SERIES_FIELDS),
                                         search_filters=filters or None, get_remaining=True)
    found = [SeriesInfo.from_json(item) for item in items]
    if images_only:
        skipped = [s for s in found if s.modality.upper() in NON_IMAGE_MODALITIES]
        for s in skipped:
            log.info("skipping %s series %s (not an image series)", s.modality, s.series_uid)
        found = [s for s in found if s not in skipped]
    return found


def list_instances(client, study_uid: str, series_uid: str) -> list[str]:
    """QIDO-RS: the SOP Instance UIDs of one series."""
    with pacs_errors(client.base_url, f"QIDO-RS instance query of series {series_uid}"):
        items = client.search_for_instances(study_uid, series_uid, fields=["SOPInstanceUID"], get_remaining=True)
    from pydicom import Dataset

    return [check_uid(Dataset.from_json(item).get("SOPInstanceUID", ""), "SOPInstanceUID") for item in items]


# ----- retrieve ----------------------------------------------------------------------------------
@dataclass
class RetrievedSeries:
    """A series complete in the local cache: its folder, its files, and what this call transferred."""

    study_uid: str
    series_uid: str
    folder: Path
    files: list
    fetched: int
    skipped: int


def series_cache_folder(study_uid: str, series_uid: str, cache_dir=None) -> Path:
    """The cache folder of one series (``<cache>/<study uid>/<series uid>``)."""
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    return root / check_uid(study_uid, "StudyInstanceUID") / check_uid(series_uid, "SeriesInstanceUID")


def cached_series(study_uid: str, series_uid: str, cache_dir=None) -> RetrievedSeries | None:
    """The series when a complete retrieval is in the cache (marker and every file present), else None."""
    import json

    folder = series_cache_folder(study_uid, series_uid, cache_dir)
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return None
    sops = json.loads(marker.read_text(encoding="utf-8")).get("instances", [])
    files = [folder / f"{check_uid(s, 'SOPInstanceUID')}.dcm" for s in sops]
    if not files or not all(f.is_file() for f in files):
        return None
    return RetrievedSeries(study_uid, series_uid, folder, files, fetched=0, skipped=len(files))


def retrieve_series(client, study_uid: str, series_uid: str, cache_dir=None, *, progress: bool = False,
                    callback=None) -> RetrievedSeries:
    """WADO-RS: bring one series into the cache, skipping instances already there.

    ``callback(done, total)`` is called after each instance (a GUI progress hook); ``progress``
    shows a tqdm bar (the CLI's; tqdm is not in Slicer, so it is imported only then).  On failure the
    instances already written stay (whole) for the next try.
    """
    folder = series_cache_folder(study_uid, series_uid, cache_dir)
    sops = list_instances(client, study_uid, series_uid)
    if not sops:
        raise PacsError(f"series {series_uid} of study {study_uid} has no instances at {client.base_url}")
    files = [folder / f"{sop}.dcm" for sop in sops]
    folder.mkdir(parents=True, exist_ok=True)
    complete = cached_series(study_uid, series_uid, cache_dir)  # fsynced before its marker: trusted
    trusted = {f.name for f in complete.files} if complete else set()
    missing = [(sop, f) for sop, f in zip(sops, files) if f.name not in trusted and not _cached_instance_ok(f, sop)]
    done = len(sops) - len(missing)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sops), initial=done, unit="inst", desc=f"series …{series_uid[-12:]}", leave=False)

    def saved():
        nonlocal done
        done += 1
        if bar is not None:
            bar.update(1)
        if callback:
            callback(done, len(sops))

    try:
        wanted = dict(missing)
        if len(wanted) > 1 and len(wanted) == len(sops):
            # nothing cached: the whole series in one streamed request (no per-request latency)
            _stream_series(client, study_uid, series_uid, wanted, saved)
        for sop, path in list(wanted.items()):  # a resumed transfer (or what the stream lacked): one by one
            _save_instance(_retrieve_instance(client, study_uid, series_uid, sop), path)
            saved()
    finally:
        if bar is not None:
            bar.close()
    _fsync_all([f for _, f in missing] + [folder])
    write_json_atomic(folder / COMPLETE_MARKER, {"url": client.base_url, "study_uid": study_uid,
                                                 "series_uid": series_uid, "instances": sops})
    return RetrievedSeries(study_uid, series_uid, folder, files, fetched=len(missing), skipped=len(sops) - len(missing))


def _save_instance(ds, path: Path) -> None:
    """Atomic (temporary name, rename) but not yet durable: ``_fsync_all`` runs once per series,
    before the completion marker, because an fsync per instance tripled the transfer time."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_all(paths) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError:  # some file systems (network shares) refuse fsync on a directory
            pass
        finally:
            os.close(fd)


def _cached_instance_ok(path: Path, sop: str) -> bool:
    """True when a cached instance is whole: an interrupted run's files (not yet fsynced, so
    possibly damaged by a crash) are checked before they are trusted; a bad one is fetched again."""
    if not path.is_file():
        return False
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        ok = str(ds.get("SOPInstanceUID", "")) == sop and _pixel_data_problem(ds) is None
    except Exception:  # any parse failure means: fetch it again
        ok = False
    if not ok:
        log.warning("cached instance %s is damaged; fetching it again", path)
        path.unlink(missing_ok=True)
    return ok


def _stream_series(client, study_uid: str, series_uid: str, wanted: dict, saved) -> None:
    """Save the instances of one multipart series response as they arrive (each checked, atomic);
    ``wanted`` {sop: path} loses every instance saved, so a failure leaves the rest to fetch."""
    what = f"WADO-RS retrieve of series {series_uid}"
    try:
        with pacs_errors(client.base_url, what):
            for ds in client.iter_series(study_uid, series_uid, media_types=(("application/dicom", "*"),)):
                sop = str(ds.get("SOPInstanceUID", ""))
                if sop not in wanted:
                    continue  # added to the series after the query: not part of this case
                problem = _pixel_data_problem(ds)
                if problem:
                    raise PacsError(f"{what}: received a damaged instance {sop} from {client.base_url} ({problem})")
                _save_instance(ds, wanted.pop(sop))
                try:
                    saved()
                except Exception as exc:  # the caller's progress callback (e.g. Cancel): not a transfer fault
                    raise _CallbackError(exc) from exc
    except _CallbackError as wrapped:
        raise wrapped.__cause__ from None
    except PacsError:
        raise
    except Exception as exc:  # a cut multipart body surfaces as a pydicom/struct/EOF error of any kind
        raise PacsError(f"{what}: received a damaged instance from {client.base_url} ({type(exc).__name__}: {exc})") \
            from None


class _CallbackError(Exception):
    """Carries an exception raised by the progress callback past the transfer-error handling."""


def _retrieve_instance(client, study_uid: str, series_uid: str, sop: str):
    """One instance in its stored transfer syntax, checked to be the one asked for."""
    what = f"WADO-RS retrieve of instance {sop}"
    try:
        with pacs_errors(client.base_url, what):
            ds = client.retrieve_instance(study_uid, series_uid, sop, media_types=(("application/dicom", "*"),))
    except PacsError:
        raise
    except Exception as exc:  # a cut multipart body surfaces as a pydicom/struct/EOF error of any kind
        raise PacsError(f"{what}: received a damaged instance from {client.base_url} ({type(exc).__name__}: {exc})") \
            from None
    if str(ds.get("SOPInstanceUID", "")) != sop:
        raise PacsError(f"{what}: the server sent instance {ds.get('SOPInstanceUID', '?')!r} instead")
    problem = _pixel_data_problem(ds)
    if problem:
        raise PacsError(f"{what}: received a damaged instance from {client.base_url} ({problem})")
    return ds


def _pixel_data_problem(ds) -> str | None:
    """Why the pixel data is incomplete (a body cut short can still parse), or None.

    Checked before an instance enters the cache, because a cached instance is never fetched again.
    """
    if "PixelData" not in ds:
        return None
    data = ds.PixelData
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        from pydicom.encaps import generate_frames

        try:
            got = sum(1 for _ in generate_frames(data, number_of_frames=frames))
        except Exception as exc:  # pydicom raises several types for broken item tags / lengths
            return f"encapsulated pixel data unreadable: {exc}"
        return None if got >= frames else f"{got} of {frames} compressed frames"
    bits = int(ds.get("BitsAllocated", 8))
    samples = int(ds.get("SamplesPerPixel", 1))
    expected = (int(ds.Rows) * int(ds.Columns) * samples * frames * bits + 7) // 8
    return None if len(data) >= expected else f"pixel data has {len(data)} of {expected} bytes"


# ----- store -----------------------------------------------------------------------------------
def stow(client, datasets) -> list[str]:
    """STOW-RS the datasets; return their SOP Instance UIDs (PacsError when the server refuses any)."""
    datasets = list(datasets)
    with pacs_errors(client.base_url, "STOW-RS"):
        response = client.store_instances(datasets)
    failed = response.get("FailedSOPSequence") if response is not None else None
    if failed:
        reasons = ", ".join(f"{item.get('ReferencedSOPInstanceUID', '?')} (reason {item.get('FailureReason', '?')})"
                            for item in failed)
        raise PacsError(f"STOW-RS to {client.base_url}: the server refused {len(failed)} instance(s): {reasons}")
    return [str(ds.SOPInstanceUID) for ds in datasets]
