"""The shared project store: folder store, HTTP server and client, sync, worklist (see interface.py)."""
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
