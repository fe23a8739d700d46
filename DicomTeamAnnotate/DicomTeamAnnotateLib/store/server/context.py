"""What every route of one app shares: the project's index, the limits, who a token is, answers.

``ServerContext.authenticate`` resolves a bearer token to a ``Member`` (tokens are stored
hashed; an expired or revoked token is refused).  Resolved tokens and read answers are
remembered until the index's change count moves (any event applied, by this server, another
instance, or imported from an admin's edit of the folder), so a revocation takes effect as
soon as the index has it, never later.
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
    """The index, the limits, the token lookup and the answer cache of one app.

    Answers to reads (a worklist, a listing) are kept per member and thrown away as soon as the
    index's change count moves (``SqlIndex.stamp``: any event applied by any server instance),
    so a poll repeated while nothing changed costs one tiny query instead of the whole listing.
    """

    def __init__(self, index, limits: Limits | None = None):
        self.index = index
        self.limits = limits or Limits()
        self._stamp = None
        self._tokens: dict = {}
        self._answers: dict = {}
        self._lock = threading.Lock()

    def _current(self, stamp: int) -> None:
        """Drop what was cached under another change count."""
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._tokens, self._answers, self._stamp = {}, {}, stamp

    def authenticate(self, token: str | None, claimed_user: str | None = None) -> tuple[Member, int]:
        """(member, change count) for a bearer token; Unauthorized for a missing, unknown, expired or revoked one."""
        if not token or not token.strip():
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>' "
                               "(from `dicomteam project add-member`)")
        token_hash = auth.hash_token(token.strip())
        self.index.refresh()
        stamp = self.index.stamp()
        self._current(stamp)
        row = self._tokens.get(token_hash)
        if row is None:
            row = self.index.member_by_token(token_hash)
            if row is None:
                self.index.refresh(force=True)  # added a moment ago on the folder
                row = self.index.member_by_token(token_hash)
                stamp = self.index.stamp()
            if row is None:
                raise Unauthorized("unknown or revoked token")
            if stamp == self._stamp and len(self._tokens) < 10000:  # read at this count: valid while it stays
                self._tokens[token_hash] = row
        expires = row.get("expires")
        if expires and expires <= now_iso():
            raise Unauthorized(f"the token of {row['user']!r} expired on {expires[:19]}Z; ask an admin for a new "
                               "one (`dicomteam project rotate-token`)")
        if claimed_user and claimed_user != row["user"]:
            raise Unauthorized(f"the token belongs to {row['user']!r}, not to {claimed_user!r}")
        return Member(row["user"], row["role"]), stamp

    def cached_member(self, token: str | None, claimed_user: str | None = None) -> tuple[Member, int] | None:
        """``authenticate`` without a thread, for a token already resolved at the current change count.

        For an index whose reads may run on the event loop (SQLite); None whenever the full path
        must run (another count, an unknown token, or the folder is due to be looked at).
        """
        if not self.index.local or not token or self.index.refresh_due():
            return None
        stamp = self.index.stamp()
        row = self._tokens.get(auth.hash_token(token.strip())) if stamp == self._stamp else None
        if row is None:
            return None
        expires = row.get("expires")
        if (expires and expires <= now_iso()) or (claimed_user and claimed_user != row["user"]):
            return None  # the full path says why
        return Member(row["user"], row["role"]), stamp

    def cached_answer(self, stamp: int, key: tuple):
        """The answer kept for ``key`` at change count ``stamp`` (None when there is none)."""
        return self._answers.get(key) if stamp == self._stamp else None

    def keep_answer(self, stamp: int, key: tuple, answer) -> None:
        if stamp == self._stamp and len(self._answers) < 20000:
            self._answers[key] = answer

    def service(self, member: Member) -> ProjectService:
        """The project's rules for this member (for one request: the member was resolved just now)."""
        return ProjectService(self.index, member.user, role=member.role)
