"""Who may do what: tokens (kept only as hashes), roles and blinding.

Tokens are 256-bit random strings; the project keeps only their sha256 (a fast hash is
enough for a random token of that length, and it lets the server look a token up directly;
a slow salted hash such as scrypt is for low-entropy passwords).

Rules (the same for the folder store and the server, which both call these functions):
* annotator: sees and works on the cases assigned to them; pushes annotations only.
  In a blind project (the default) they see only their own versions, adjudicated ones and the
  model's predictions (blinding hides annotators from each other, not the model from them):
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
    """Annotators reach only the cases assigned to them.

    The same answer whether the case exists or not: an annotator must not learn which case ids
    exist by comparing 403 with 404 (the message names only what they asked for).
    """
    if not is_staff(role) and user not in assigned:
        raise Forbidden(f"case {case_id!r} is not assigned to {user!r}")


def version_visible(role: str, user: str, blind: bool, version: dict) -> bool:
    """May ``user`` see this version (its record and its content)?"""
    if is_staff(role) or not blind:
        return True
    return version["author"] == user or version["kind"] in ("adjudicated", "prediction")


def check_version_access(role: str, user: str, blind: bool, version: dict, assigned: bool = True) -> None:
    """Forbidden unless ``user`` may read ``version`` (``assigned``: its case is one of theirs).

    The message names the version asked for, never its case or author.
    """
    if not (is_staff(role) or assigned) or not version_visible(role, user, blind, version):
        raise Forbidden(f"version {version['id']} is not visible to {user!r} (another annotator's work in a blind "
                        "project, or a case not assigned to them)")


HIDDEN = "(hidden)"


def redact_versions(role: str, user: str, blind: bool, visible: list[dict], every: list[dict]) -> list[dict]:
    """``visible`` with what they reveal of versions ``user`` may not read taken out.

    An adjudicated version is visible to every annotator of a blind case, but its parent and
    its metadata (a consensus audit lists its inputs' ids and sha256s) name other annotators'
    versions: those ids and hashes are replaced by "(hidden)" wherever they appear, so a
    content address can never be learnt from a record the member may read.
    """
    if is_staff(role) or not blind:
        return visible
    secrets_ = {v["id"] for v in every if not version_visible(role, user, blind, v)}
    secrets_ |= {v["sha256"] for v in every if not version_visible(role, user, blind, v)}
    secrets_.discard(None)
    if not secrets_:
        return visible
    out = []
    for v in visible:
        if v["author"] != user:
            v = {**v, "parent": None if v.get("parent") in secrets_ else v.get("parent"),
                 "meta": _scrub(v.get("meta"), secrets_), "message": _scrub(v.get("message"), secrets_)}
        out.append(v)
    return out


def _scrub(value, secrets_: set):
    """``value`` (JSON) with every occurrence of a secret string replaced by HIDDEN."""
    if isinstance(value, str):
        for secret in secrets_:
            if secret in value:
                value = value.replace(secret, HIDDEN)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets_) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets_) for v in value]
    return value


def check_author_listing(role: str, user: str, blind: bool, author: str | None) -> None:
    """Listing another annotator's versions of a blind case is refused to annotators."""
    if author and author != user and blind and not is_staff(role):
        raise Forbidden(f"the project is blind: {user!r} may not list the versions of {author!r}")


def check_push_kind(role: str, kind: str) -> None:
    if kind == "adjudicated" and not is_staff(role):
        raise Forbidden("only reviewers and admins push adjudicated versions")
    if kind == "prediction" and not is_staff(role):
        raise Forbidden("only reviewers and admins push predictions (a model's output: `dicomteam preannotate`)")


def check_staff(role: str, what: str) -> None:
    if not is_staff(role):
        raise Forbidden(f"only reviewers and admins may {what}")
