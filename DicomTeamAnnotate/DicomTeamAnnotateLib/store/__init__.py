"""The shared project store: folder store, HTTP server and client, sync (see ``interface``).

The interface and the rules every store shares:

- ``interface``: the Store interface every part of the project codes against, and ``open_store()``.
- ``model``: the project model: names, checks, errors (``StoreError`` ...) and record builders.
- ``auth``: who may do what: tokens (kept only as hashes), roles and blinding.
- ``states``: workflow states derived from records (todo -> in progress -> ... -> adjudicated).
- ``service``: the project's rules once (``ProjectService``): what a member may see and do, how a push is kept.

Storage:

- ``events``: the append-only event log of a project folder (one JSON file per event).
- ``blobs``: content-addressed blob storage, written once, never edited.
- ``folder``: the folder store: a project directory on a local disk or a shared network drive.
- ``sqlindex``: the server's SQL index of a project folder (SQLite, or PostgreSQL from a URL).

Server and client:

- ``server``: the project server (FastAPI over a project folder and its SQL index).
- ``client``: the HTTP store: the Store interface over the project server.
- ``cache``: the HTTP client's local cache of downloaded blobs, and the download that fills it.

Administration and the PACS:

- ``admin``: project administration on the folder: init, add a case, members, assign and unassign.
- ``verify``: `dicomteam project verify`: the event files against the server's SQL index.
- ``dicomweb_import``: series from a DICOMweb server imported as project cases.
- ``seg_exchange``: DICOM SEG between the PACS and the project store (import a version, export a case).
"""
from DicomTeamAnnotateLib.store.interface import Store, open_store
from DicomTeamAnnotateLib.store.model import (
    Conflict,
    Forbidden,
    GeometryMismatch,
    InvalidInput,
    NotFound,
    StoreError,
    StoreUnavailable,
    Unauthorized,
)

__all__ = ["Store", "open_store", "StoreError", "InvalidInput", "GeometryMismatch", "Unauthorized", "Forbidden",
           "NotFound", "Conflict", "StoreUnavailable"]
