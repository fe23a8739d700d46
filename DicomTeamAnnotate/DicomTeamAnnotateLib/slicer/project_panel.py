"""The Project section of the DicomTeamAnnotate panel: connect, saved tokens, the offline banner, the queue.

``TokenStore`` keeps server tokens in the OS keyring when one works, else in Slicer's settings;
never in the scene file. Settings live under ``SETTINGS`` (shared with the DICOMweb section).
"""
from __future__ import annotations

import hashlib
import logging

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section
from DicomTeamAnnotateLib.worklist.offline import is_offline_error

SETTINGS = "DicomTeamAnnotate/"  # prefix of this module's keys in Slicer's settings (never the scene)
SYNC_RETRY_MS = 30000  # while pushes wait offline, try to send them this often


def to_bool(value) -> bool:
    """A settings value as a bool (QSettings hands back 'true'/'false' strings from some back ends)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class TokenStore:
    """Server tokens: the OS keyring when one works, else Slicer's settings; never the scene file."""

    SERVICE = "DicomTeamAnnotate"

    def __init__(self, settings, keyring_module="auto"):
        """``settings``: an object with value(key, default), setValue(key, value), remove(key)."""
        self.settings = settings
        self._keyring = keyring_module

    def keyring(self):
        """The keyring module when installed (Slicer does not ship it), else None."""
        if self._keyring == "auto":
            try:
                import keyring
            except ImportError:
                keyring = None
            self._keyring = keyring
        return self._keyring

    @staticmethod
    def account(location, user) -> str:
        return f"{user}@{str(location).rstrip('/')}"

    def settings_key(self, location, user) -> str:
        """Settings key of a token (hashed: URLs hold characters settings keys treat as groups)."""
        digest = hashlib.sha256(self.account(location, user).encode("utf-8")).hexdigest()[:24]
        return f"{SETTINGS}Tokens/{digest}"

    def load(self, location, user) -> str:
        kr = self.keyring()
        if kr is not None:
            try:
                token = kr.get_password(self.SERVICE, self.account(location, user))
                if token:
                    return token
            except Exception as exc:  # no usable backend (headless Linux): fall back to the settings
                logging.info(f"DicomTeamAnnotate: keyring unavailable ({exc}); using Slicer settings")
        return str(self.settings.value(self.settings_key(location, user), "") or "")

    def save(self, location, user, token) -> str:
        """Keep the token; returns where: 'keyring' or 'settings'."""
        kr = self.keyring()
        if kr is not None:
            try:
                kr.set_password(self.SERVICE, self.account(location, user), token)
                self.settings.remove(self.settings_key(location, user))
                return "keyring"
            except Exception as exc:
                logging.info(f"DicomTeamAnnotate: keyring unavailable ({exc}); token kept in Slicer settings")
        self.settings.setValue(self.settings_key(location, user), token)
        return "settings"

    def forget(self, location, user) -> None:
        kr = self.keyring()
        if kr is not None:
            try:
                kr.delete_password(self.SERVICE, self.account(location, user))
            except Exception:  # not there, or no backend
                pass
        self.settings.remove(self.settings_key(location, user))


class ProjectSection(Section):
    """Connect to a project store; the offline banner and the queued pushes."""

    def __init__(self, panel):
        super().__init__(panel)
        self.location = ""
        self.user = ""
        self.token = ""
        self.remember_token = True
        self.work_folder = ""
        self.status_text = _("Not connected.")
        self.offline = False
        self.offline_reason = ""
        self.queued = 0
        self.tokens = TokenStore(panel.settings)
        self._sync_clock = panel.ui.clock(SYNC_RETRY_MS, self.sync_tick)

    # ----- inputs ----------------------------------------------------------------------------------
    def restore(self) -> None:
        """The last store, user and work folder (and the saved token) from Slicer's settings."""
        settings = self.panel.settings
        self.location = str(settings.value(SETTINGS + "StoreLocation", "") or "")
        self.user = str(settings.value(SETTINGS + "User", "") or "")
        self.remember_token = to_bool(settings.value(SETTINGS + "RememberToken", True))
        self.work_folder = str(settings.value(SETTINGS + "WorkFolder", "") or "") or self.logic.defaultWorkFolder()
        if self.location and self.user and self.is_server:
            self.token = self.tokens.load(self.location, self.user)
        self.changed()

    def set_location(self, text) -> None:
        self.location = str(text).strip()
        self.changed()

    def set_user(self, text) -> None:
        self.user = str(text).strip()
        self.changed()

    def set_token(self, text) -> None:
        self.token = str(text).strip()

    def set_remember_token(self, value) -> None:
        self.remember_token = bool(value)

    def set_work_folder(self, path) -> None:
        self.work_folder = str(path)

    def browse_store(self) -> None:
        folder = self.ui.choose_folder(_("Choose the project folder"), self.location)
        if folder:
            self.set_location(folder)

    # ----- outputs ----------------------------------------------------------------------------------
    @property
    def is_server(self) -> bool:
        return self.logic.isServer(self.location)

    @property
    def connected(self) -> bool:
        return self.logic.store is not None

    @property
    def can_connect(self) -> bool:
        return bool(self.location and self.user) and not self.busy

    @property
    def banner_visible(self) -> bool:
        return self.offline or self.queued > 0

    @property
    def banner_text(self) -> str:
        parts = []
        if self.offline:
            parts.append(_("OFFLINE: the project store cannot be reached."))
        if self.queued:
            parts.append(_("{count} push(es) wait in the local queue and will be sent when the store is back.")
                         .format(count=self.queued))
        return " ".join(parts)

    def current_work_folder(self) -> str:
        return self.work_folder or self.logic.defaultWorkFolder()

    # ----- actions ----------------------------------------------------------------------------------
    def connect(self) -> None:
        """Check the credentials on a worker; on success the store is the logic's and the worklist is read."""
        if not self.can_connect:
            return
        location, user = self.location, self.user
        if self.is_server and not self.token:
            self.token = self.tokens.load(location, user)
        token = self.token
        self.status_text = _("Connecting to {location}...").format(location=location)
        self.tasks.start(lambda task: self.logic.connect(location, user, token or None),
                         lambda task: self._connected(task, location, user, token), name="connect")
        self.changed()

    def _connected(self, task, location, user, token) -> None:
        ok, info = self.panel.result(task, _("Could not connect to {location}.").format(location=location))
        if not ok:
            self.status_text = _("Not connected.")
            self.changed()
            return
        self.logic.setStore(info["store"], (info.get("whoami") or {}).get("role"))
        settings = self.panel.settings
        settings.setValue(SETTINGS + "StoreLocation", location)
        settings.setValue(SETTINGS + "User", user)
        settings.setValue(SETTINGS + "RememberToken", self.remember_token)
        settings.setValue(SETTINGS + "WorkFolder", self.work_folder)
        if token and self.remember_token:
            self.tokens.save(location, user, token)
        project, me = info["project"], info["whoami"]
        self.status_text = _("Connected to project '{name}' as {user} ({role}){blind}.").format(
            name=project.get("name", "?"), user=me.get("user", user), role=me.get("role", "?"),
            blind=_(", blind reading") if project.get("blind") else "")
        self.set_offline(False)
        self.panel.worklist.refresh()

    def forget_token(self) -> None:
        self.tokens.forget(self.location, self.user)
        self.token = ""
        self.ui.status(_("Saved token removed."))
        self.changed()

    def set_offline(self, offline: bool, reason: str = "") -> None:
        """Show or hide the banner: the store unreachable, and how many pushes wait."""
        self.offline, self.offline_reason = bool(offline), reason
        self.queued = self.logic.offlineStatus()["queued"] if self.connected else 0
        if self.queued:
            self._sync_clock.start()
        else:
            self._sync_clock.stop()
        self.changed()

    def sync_now(self) -> None:
        """'Send now' in the banner: send the queued pushes."""
        self.tasks.start(lambda task: self.logic.flushQueue(), self._synced, name="sync")

    def sync_tick(self) -> None:
        """The retry clock while pushes wait: try quietly."""
        if not self.busy and self.connected:
            self.tasks.start(lambda task: self.logic.flushQueue(), lambda task: self._synced(task, quiet=True),
                             name="sync")

    def _synced(self, task, quiet: bool = False) -> None:
        try:
            result = task.result()
        except Exception as exc:
            self.set_offline(is_offline_error(exc), str(exc))
            if not quiet and not is_offline_error(exc):
                self.ui.error(_("Could not send the queued pushes: {error}").format(error=exc))
            return
        sent, failed = result["sent"], result["failed"]
        self.set_offline(bool(result["remaining"]) and not sent)
        if sent:
            self.ui.status(_("{count} queued push(es) sent.").format(count=len(sent)))
            self.panel.case.after_queued_pushes_sent(sent)
        if failed:
            self.ui.error(_("{count} queued push(es) were refused by the store and kept aside:\n{errors}").format(
                count=len(failed), errors="\n".join(e for _item, e in failed)))
        if sent or failed:
            self.panel.worklist.refresh()

    def stop(self) -> None:
        self._sync_clock.stop()
