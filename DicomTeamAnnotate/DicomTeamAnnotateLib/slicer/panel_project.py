"""The Project section of the DicomTeamAnnotate panel: connecting, saved server tokens, the offline banner.

TokenStore keeps server tokens (the OS keyring, else Slicer's settings; never the scene file);
ProjectSection is a mixin of DicomTeamAnnotateWidget. SETTINGS is the prefix of the module's keys
in Slicer's settings, shared with the DICOMweb section.
"""
import hashlib
import logging

from DicomTeamAnnotateLib.worklist.offline import is_offline_error

SETTINGS = "DicomTeamAnnotate/"  # prefix of this module's keys in Slicer's settings (never the scene)


#
# Credentials: Qt-free, the settings object is injected (QSettings in Slicer, a dict-like in tests)
#


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
        """The keyring account name of one user on one store."""
        return f"{user}@{str(location).rstrip('/')}"

    def settingsKey(self, location, user) -> str:
        """Settings key of a token (hashed: URLs hold characters settings keys treat as groups)."""
        digest = hashlib.sha256(self.account(location, user).encode("utf-8")).hexdigest()[:24]
        return f"{SETTINGS}Tokens/{digest}"

    def load(self, location, user) -> str:
        """The saved token of ``user`` on ``location``, or ''."""
        kr = self.keyring()
        if kr is not None:
            try:
                token = kr.get_password(self.SERVICE, self.account(location, user))
                if token:
                    return token
            except Exception as exc:  # no usable backend (headless Linux): fall back to the settings
                logging.info(f"DicomTeamAnnotate: keyring unavailable ({exc}); using Slicer settings")
        return str(self.settings.value(self.settingsKey(location, user), "") or "")

    def save(self, location, user, token) -> str:
        """Keep the token; returns where: 'keyring' or 'settings'."""
        kr = self.keyring()
        if kr is not None:
            try:
                kr.set_password(self.SERVICE, self.account(location, user), token)
                self.settings.remove(self.settingsKey(location, user))
                return "keyring"
            except Exception as exc:
                logging.info(f"DicomTeamAnnotate: keyring unavailable ({exc}); token kept in Slicer settings")
        self.settings.setValue(self.settingsKey(location, user), token)
        return "settings"

    def forget(self, location, user) -> None:
        """Remove the saved token from both places."""
        kr = self.keyring()
        if kr is not None:
            try:
                kr.delete_password(self.SERVICE, self.account(location, user))
            except Exception:  # not there, or no backend
                pass
        self.settings.remove(self.settingsKey(location, user))


class ProjectSection:
    """The panel's Project section: connect, forget the token, the offline banner, sending queued pushes."""

    def _restoreConnectionSettings(self) -> None:
        """Called from setup(): last store location, user and local folder (the token: keyring/settings)."""
        import slicer

        settings = self._settings()
        self.ui.storeLocationLineEdit.text = str(settings.value(SETTINGS + "StoreLocation", "") or "")
        self.ui.userLineEdit.text = str(settings.value(SETTINGS + "User", "") or "")
        self.ui.rememberTokenCheckBox.checked = slicer.util.toBool(settings.value(SETTINGS + "RememberToken", True))
        workDir = str(settings.value(SETTINGS + "WorkFolder", "") or "") or self.logic.defaultWorkFolder()
        self.ui.workFolderLineEdit.currentPath = workDir
        location, user = self.ui.storeLocationLineEdit.text.strip(), self.ui.userLineEdit.text.strip()
        if location and user and self.logic.isServer(location):
            self.ui.tokenLineEdit.text = self.tokens.load(location, user)

    def onBrowseStore(self) -> None:
        """Called when the user clicks '...' beside the store: choose a project folder."""
        import qt
        import slicer
        from slicer.i18n import tr as _

        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Choose the project folder"),
                                                     self.ui.storeLocationLineEdit.text)
        if folder:
            self.ui.storeLocationLineEdit.text = folder

    def onConnect(self) -> None:
        """Called when the user clicks 'Connect': check the credentials on a worker thread."""
        from slicer.i18n import tr as _

        location, user = self.ui.storeLocationLineEdit.text.strip(), self.ui.userLineEdit.text.strip()
        token = self.ui.tokenLineEdit.text.strip()
        if self.logic.isServer(location) and not token:
            token = self.tokens.load(location, user)
            self.ui.tokenLineEdit.text = token
        self.ui.connectionStatusLabel.text = _("Connecting to {location}...").format(location=location)
        self._startTask(lambda task: self.logic.connect(location, user, token or None),
                        lambda task: self._onConnected(task, location, user, token), name="connect")

    def _onConnected(self, task, location, user, token) -> None:
        """Called on the main thread when the connection check ends."""
        from slicer.i18n import tr as _

        ok, info = self._taskResult(task, _("Could not connect to {location}.").format(location=location))
        if not ok:
            self.ui.connectionStatusLabel.text = _("Not connected.")
            return
        self.logic.setStore(info["store"])
        settings = self._settings()
        settings.setValue(SETTINGS + "StoreLocation", location)
        settings.setValue(SETTINGS + "User", user)
        settings.setValue(SETTINGS + "RememberToken", self.ui.rememberTokenCheckBox.checked)
        settings.setValue(SETTINGS + "WorkFolder", self.ui.workFolderLineEdit.currentPath)
        self.ui.workFolderLineEdit.addCurrentPathToHistory()
        if token and self.ui.rememberTokenCheckBox.checked:
            self.tokens.save(location, user, token)
        project, me = info["project"], info["whoami"]
        self.ui.connectionStatusLabel.text = _("Connected to project '{name}' as {user} ({role}){blind}.").format(
            name=project.get("name", "?"), user=me.get("user", user), role=me.get("role", "?"),
            blind=_(", blind reading") if project.get("blind") else "")
        self._setOffline(False)
        self.onRefreshWorklist()

    def onForgetToken(self) -> None:
        """Called when the user clicks 'Forget token': remove it from the keyring and the settings."""
        import slicer
        from slicer.i18n import tr as _

        location, user = self.ui.storeLocationLineEdit.text.strip(), self.ui.userLineEdit.text.strip()
        self.tokens.forget(location, user)
        self.ui.tokenLineEdit.text = ""
        slicer.util.showStatusMessage(_("Saved token removed."), 3000)

    def _setOffline(self, offline, reason="") -> None:
        """Show or hide the offline banner (with the number of queued pushes)."""
        self._offline = bool(offline)
        self._showOfflineBanner(reason)

    def _showOfflineBanner(self, reason="") -> None:
        """Called after each store operation: the banner says if the store is unreachable and what waits."""
        from slicer.i18n import tr as _

        queued = self.logic.offlineStatus()["queued"] if self.logic.store is not None else 0
        if not self._offline and not queued:
            self.ui.offlineBannerFrame.hide()
            self._syncTimer.stop()
            return
        parts = []
        if self._offline:
            parts.append(_("OFFLINE: the project store cannot be reached."))
        if queued:
            parts.append(_("{count} push(es) wait in the local queue and will be sent when the store is back.")
                         .format(count=queued))
        self.ui.offlineBannerLabel.text = " ".join(parts)
        self.ui.offlineBannerLabel.toolTip = reason
        self.ui.offlineBannerFrame.show()
        if queued and not self._syncTimer.isActive():
            self._syncTimer.start()

    def onSyncNow(self) -> None:
        """Called when the user clicks 'Send now' in the offline banner."""
        self._startTask(lambda task: self.logic.flushQueue(), self._onSynced, name="sync")

    def _syncTick(self) -> None:
        """Called by the sync timer while pushes wait: try to send them quietly."""
        if not self._tasks.busy and self.logic.store is not None:
            self._startTask(lambda task: self.logic.flushQueue(), lambda task: self._onSynced(task, quiet=True),
                            name="sync")

    def _onSynced(self, task, quiet=False) -> None:
        """Called when a flush of the offline queue ends."""
        import slicer
        from slicer.i18n import tr as _


        try:
            result = task.result()
        except Exception as exc:
            self._setOffline(is_offline_error(exc), str(exc))
            if not quiet and not is_offline_error(exc):
                slicer.util.errorDisplay(_("Could not send the queued pushes: {error}").format(error=exc))
            return
        sent, failed = len(result["sent"]), result["failed"]
        self._setOffline(bool(result["remaining"]) and not sent)
        if sent:
            slicer.util.showStatusMessage(_("{count} queued push(es) sent.").format(count=sent), 5000)
            self._updateSessionParent(result["sent"])
        if failed:
            slicer.util.warningDisplay(_("{count} queued push(es) were refused by the store and kept aside:\n{errors}")
                                       .format(count=len(failed), errors="\n".join(e for _item, e in failed)))
        if sent or failed:
            self.onRefreshWorklist()

    def _updateSessionParent(self, versions) -> None:
        """After queued pushes were sent: the open case's next push descends from the last one."""
        session = self.logic.session
        for version in versions:
            if session is not None and version.get("case_id") == session.case_id and version.get("author") == session.store.user:
                session.parent = version["id"]
