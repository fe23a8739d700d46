"""The Store interface every part of the project codes against, and ``open_store``.

Two implementations: ``folder.FolderStore`` (a project folder) and ``client.HttpStore`` (the
project server).  Both return the same plain dicts; the contract tests check that.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from DicomTeamAnnotateLib.store.client import HttpStore
from DicomTeamAnnotateLib.store.folder import FolderStore


@runtime_checkable
class Store(Protocol):
    """One member's view of a project.  Errors are ``model.StoreError`` subclasses."""

    location: str
    user: str

    def project(self) -> dict:
        """{'name', 'labels': [{name, value, color, terminology}], 'blind', 'window_preset'}."""

    def whoami(self) -> dict:
        """{'user', 'role'}."""

    def members(self) -> list[dict]:
        """[{'user', 'role'}] (an annotator sees only themself)."""

    def list_cases(self) -> list[dict]:
        """[{'case_id', 'patient_id', 'image_sha256', 'image_size', 'image_name', 'geometry', 'added', 'source',
        'reference'}]; a reference-mode case has ``image_sha256`` None and ``reference`` {kind, url, study_uid,
        series_uid, user}: its pixels stay in the PACS."""

    def get_case(self, case_id: str) -> dict:
        """One case (as in list_cases)."""

    def assignments(self, case_id: str | None = None) -> list[dict]:
        """[{'case_id', 'user'}]."""

    def list_versions(self, case_id: str, author: str | None = None) -> list[dict]:
        """[{'id', 'case_id', 'author', 'parent', 'created', 'message', 'sha256', 'size', 'kind', 'meta',
        'filename', 'conflict'}] in push order (blinding applied)."""

    def get_version(self, version_id: str) -> dict:
        """One version record."""

    def latest_version(self, case_id: str, author: str | None = None, kind: str | None = None) -> dict | None:
        """The latest version by ``author`` (default: me), or None."""

    def fetch_image(self, case_id: str, dest_dir, progress=None) -> Path:
        """The case image (.nrrd) written into ``dest_dir`` (a reference-mode case: fetched from its PACS)."""

    def fetch_version(self, version_id: str, dest_path, progress=None) -> Path:
        """A version's .seg.nrrd written to ``dest_path`` (a file or a folder)."""

    def push_version(self, case_id: str, seg_path, parent: str | None = None, message: str = "",
                     kind: str = "annotation", meta: dict | None = None, *, version_id: str | None = None,
                     progress=None) -> dict:
        """Keep a new immutable version; returns its record."""

    def states(self, case_id: str) -> dict:
        """{'case_id', 'state', 'override', 'annotators': {user: state}}."""

    def set_state(self, case_id: str, state: str, annotator: str | None = None) -> dict:
        """Move a case or an annotator's work on it; returns states(case_id)."""

    def worklist(self) -> list[dict]:
        """My cases: [{'case_id', 'patient_id', 'state', 'my_state', 'case_state', 'latest_version',
        'n_versions', 'conflict'}] (reviewers also get 'annotators')."""

    def audit(self, case_id: str | None = None) -> list[dict]:
        """The append-only log: [{'id', 'time', 'actor', 'type', 'case_id', 'data'}]."""

    def close(self) -> None:
        """Release connections."""


def is_url(location) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def open_store(location, user: str, token: str | None = None, **options) -> Store:
    """A Store for ``user``: an http(s) URL opens the server (token or $DICOMTEAM_TOKEN), else a folder.

    A folder store trusts the user name (no token); the server checks the token.
    ``options`` go to HttpStore (cache, timeout, retry_window_s, chunk_size).
    """
    if is_url(location):

        return HttpStore(location, user, token, **options)
    return FolderStore(Path(location).expanduser(), user)
