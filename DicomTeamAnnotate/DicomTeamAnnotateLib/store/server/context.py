"""What every route of one app shares: the project's index, the limits, and who a token is.

``ServerContext.authenticate`` resolves a bearer token to a ``Member`` (tokens are stored
hashed; an expired or revoked token is refused).  Resolved tokens are remembered until the
index sees any new event (a member added, removed or rotated, by this server or by an admin on
the folder), so a revocation takes effect on the index's next refresh, not later.
"""
from __future__ import annotations

import dataclasses
import os
import threading

from DicomTeamAnnotateLib.store import auth
from DicomTeamAnnotateLib.store.model import Unauthorized, now_iso
from DicomTeamAnnotateLib.store.service import ProjectService


@dataclasses.dataclass(frozen=True)
class Member:
    """An authenticated member: user name and role (annotator, reviewer or admin)."""

    user: str
    role: str

    @property
    def is_staff(self) -> bool:
        return auth.is_staff(self.role)


@dataclasses.dataclass(frozen=True)
class Limits:
    """The server's bounds on what one request or one member may cost (see runner.serve)."""

    max_json_bytes: int = 1 << 20
    max_json_depth: int = 64
    max_upload_bytes: int = int(os.environ.get("DICOMTEAM_MAX_UPLOAD_BYTES", 32 << 30))
    max_header_bytes: int = 64 << 10
    uploads_per_member: int = 16          # open upload sessions a member may hold
    concurrent_puts_per_member: int = 4   # chunks a member may be sending at once
    upload_max_age_s: float = 24 * 3600  # sessions untouched this long are purged
    head_timeout_s: float = 15.0          # a request's head must arrive within this
    body_idle_timeout_s: float = 60.0     # a body that stalls this long is cut off
    keep_alive_s: int = 30
    page_size: int = 500                  # default rows of a listing page
    max_page_size: int = 5000


class ServerContext:
    """The index, the limits and the token lookup of one app."""

    def __init__(self, index, limits: Limits | None = None):
        self.index = index
        self.limits = limits or Limits()
        self._tokens: dict = {}
        self._generation = None
        self._lock = threading.Lock()

    def authenticate(self, token: str | None, claimed_user: str | None = None) -> Member:
        """The member a bearer token belongs to; Unauthorized for a missing, unknown, expired or revoked one."""
        if not token or not token.strip():
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>' "
                               "(from `dicomteam project add-member`)")
        token_hash = auth.hash_token(token.strip())
        self.index.refresh()
        with self._lock:
            if self._generation != self.index.generation:
                self._tokens.clear()
                self._generation = self.index.generation
            row = self._tokens.get(token_hash)
        if row is None:
            row = self.index.member_by_token(token_hash)
            if row is None:
                self.index.refresh(force=True)  # added a moment ago on the folder
                row = self.index.member_by_token(token_hash)
            if row is None:
                raise Unauthorized("unknown or revoked token")
            with self._lock:
                if len(self._tokens) > 10000:
                    self._tokens.clear()
                self._tokens[token_hash] = row
        expires = row.get("expires")
        if expires and expires <= now_iso():
            raise Unauthorized(f"the token of {row['user']!r} expired on {expires[:19]}Z; ask an admin for a new "
                               "one (`dicomteam project rotate-token`)")
        if claimed_user and claimed_user != row["user"]:
            raise Unauthorized(f"the token belongs to {row['user']!r}, not to {claimed_user!r}")
        return Member(row["user"], row["role"])

    def service(self, member: Member) -> ProjectService:
        """The project's rules for this member (for one request: the member was resolved just now)."""
        return ProjectService(self.index, member.user, role=member.role)
