"""Who may do what: tokens (kept only as hashes), roles and blinding.

Tokens are 256-bit random strings; the project keeps only their sha256 (a fast hash is
enough for a random token of that length, and it lets the server look a token up directly;
a slow salted hash such as scrypt is for low-entropy passwords).

Rules (the same for the folder store and the server, which both call these functions):
* annotator: sees and works on the cases assigned to them; pushes annotations only.
  In a blind project (the default) they see only their own versions and adjudicated ones:
  asking for another annotator's version is refused (403).
* reviewer: sees every case and every version, sets review states, pushes adjudicated versions.
* admin: everything a reviewer may do (project administration works on the project folder).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from DicomTeamAnnotateLib.store.model import Forbidden

STAFF = ("reviewer", "admin")


def new_token() -> str:
    """A fresh random token (shown once to the member, stored only hashed).

    The ``dta_`` prefix makes a leaked token recognisable (secret scanners, logs) and keeps
    it from starting with ``-``, which a command line would take for an option
    (``--token -Kx...`` fails to parse; one token in 64 of ``token_urlsafe`` starts so).
    """
    return "dta_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, token_sha256: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_sha256 or "")


def is_staff(role: str) -> bool:
    return role in STAFF


def check_case_access(role: str, user: str, case_id: str, assigned: list[str]) -> None:
    """Annotators reach only the cases assigned to them."""
    if not is_staff(role) and user not in assigned:
        raise Forbidden(f"case {case_id!r} is not assigned to {user!r}")


def version_visible(role: str, user: str, blind: bool, version: dict) -> bool:
    """May ``user`` see this version (its record and its content)?"""
    if is_staff(role) or not blind:
        return True
    return version["author"] == user or version["kind"] == "adjudicated"


def check_version_access(role: str, user: str, blind: bool, version: dict) -> None:
    if not version_visible(role, user, blind, version):
        raise Forbidden(f"version {version['id']} belongs to another annotator and the project is blind")


def check_author_listing(role: str, user: str, blind: bool, author: str | None) -> None:
    """Listing another annotator's versions of a blind case is refused to annotators."""
    if author and author != user and blind and not is_staff(role):
        raise Forbidden(f"the project is blind: {user!r} may not list the versions of {author!r}")


def check_push_kind(role: str, kind: str) -> None:
    if kind == "adjudicated" and not is_staff(role):
        raise Forbidden("only reviewers and admins push adjudicated versions")


def check_staff(role: str, what: str) -> None:
    if not is_staff(role):
        raise Forbidden(f"only reviewers and admins may {what}")
