"""DicomTeamAnnotate: the hub module.

Connect to a team project (a shared folder or the project server), see my worklist, open a
case (download, volume, three-plane layout, window preset, a segmentation with the project's
label ontology), autosave drafts locally, submit or reopen; a reviewer sees every annotator's
versions. Also: load a DICOM folder or ZIP through the project's own ingestion.
The work is done by DicomTeamAnnotateLib (Qt-free); this file only wires it to Slicer.
"""
import hashlib
import logging
import os
import time
import traceback

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS_PATH = os.path.join(MODULE_DIR, "Resources", "requirements.txt")
CUSTOM_PRESET = "custom"  # the windowing module's name for a user-given level/width
POLL_INTERVAL_MS = 100
SETTINGS = "DicomTeamAnnotate/"  # prefix of this module's keys in Slicer's settings (never the scene)
SYNC_RETRY_MS = 30000  # while pushes wait offline, try to send them this often
FILTER_DELAY_MS = 300  # the worklist is re-read this long after the last keystroke in the filter
CASE_ATTRIBUTE = "DicomTeamAnnotate.CaseId"
VERSION_ATTRIBUTE = "DicomTeamAnnotate.VersionId"


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


class TaskRunner:
    """One background task at a time for a panel: a worker thread, a QTimer polling it, a progress dialog.

    Shared by the extension's panels (ConsensusReview and TrainBridge import it from here).
    ``onDone(task)`` runs on the main thread when the work ends; ``onBusyChanged()`` lets the
    panel enable or disable its buttons.
    """

    def __init__(self, onBusyChanged=None, intervalMs=POLL_INTERVAL_MS):
        """Called by a widget's setup()."""
        self.task = None
        self._onDone = None
        self._dialog = None
        self._onBusyChanged = onBusyChanged
        self._timer = qt.QTimer()
        self._timer.setInterval(intervalMs)
        self._timer.connect("timeout()", self._poll)

    @property
    def busy(self) -> bool:
        """True while a task runs."""
        return self.task is not None

    def start(self, work, onDone, name, dialogTitle=None, dialogText=""):
        """Run ``work(task)`` on a worker thread (with a progress dialog when ``dialogTitle``); None if busy."""
        from DicomTeamAnnotateLib.background import BackgroundTask

        if self.task is not None:
            slicer.util.showStatusMessage(_("Busy: wait for the current operation to finish."), 3000)
            return None
        self.task = BackgroundTask(work, name=name).start()
        self._onDone = onDone
        if dialogTitle:
            self._dialog = slicer.util.createProgressDialog(windowTitle=dialogTitle, labelText=dialogText, maximum=0)
            self._dialog.connect("canceled()", self.cancel)
        self._timer.start()
        self._busyChanged()
        return self.task

    def cancel(self) -> None:
        """Ask the task to stop at its next progress report (the Cancel button of the dialog)."""
        if self.task is not None:
            self.task.cancel()
            slicer.util.showStatusMessage(_("Cancelling..."), 3000)
        self._closeDialog()

    def stop(self) -> None:
        """Called by a widget's cleanup(): cancel and stop polling."""
        if self.task is not None:
            self.task.cancel()
        self._timer.stop()
        self._closeDialog()

    def _busyChanged(self) -> None:
        """Tell the panel that a task started or ended."""
        if self._onBusyChanged is not None:
            self._onBusyChanged()

    def _closeDialog(self) -> None:
        """Close the progress dialog, if one is open."""
        if self._dialog is not None:
            self._dialog.close()
            self._dialog = None

    def _poll(self) -> None:
        """Called by the timer on the main thread: show progress; when done, hand over the task."""
        task = self.task
        if task is None:
            self._timer.stop()
            return
        fraction, message = task.progress
        if self._dialog is not None:
            if fraction is not None:
                self._dialog.maximum = 100
                self._dialog.value = int(round(100 * fraction))
            if message:
                self._dialog.labelText = message
        if not task.done:
            return
        self._timer.stop()
        self._closeDialog()
        self.task, onDone, self._onDone = None, self._onDone, None
        try:
            onDone(task)
        finally:
            self._busyChanged()

    @staticmethod
    def result(task, failureText):
        """(True, result); or (False, the exception) after telling the user (cancelled: a status message)."""
        from DicomTeamAnnotateLib.background import TaskCancelled

        try:
            return True, task.result()
        except TaskCancelled as exc:
            slicer.util.showStatusMessage(_("Cancelled."), 3000)
            return False, exc
        except Exception as exc:  # raised on the worker; shown here on the main thread
            slicer.util.errorDisplay("\n\n".join((failureText, str(exc))),
                                     detailedText="".join(traceback.format_exception(exc)))
            return False, exc

    @staticmethod
    def progressReporter(task, message):
        """A progress callback ``(done, total)`` that reports to ``task`` (and lets Cancel stop the work)."""
        def report(done, total=None):
            # The HTTP store reports (bytes done, total); the folder store's copy reports a byte
            # count only: then the dialog stays a busy indicator (Cancel still works).
            task.report(done / total if total else None, message)
        return report


class CaseSession:
    """The case open for work: where it came from, its nodes, the parent of my next push (plain Python)."""

    def __init__(self, store, case_id, work_dir, image_path, geometry, labels, parent, volume_node,
                 segmentation_node, source):
        """Called by DicomTeamAnnotateLogic.loadCase()."""
        self.store = store
        self.case_id = case_id
        self.work_dir = work_dir
        self.image_path = image_path
        self.geometry = geometry
        self.labels = labels
        self.parent = parent  # version id my next push descends from (None: first push)
        self.volume_node = volume_node
        self.segmentation_node = segmentation_node
        self.source = source  # "version", "draft" or "new"
        self.saved_digest = None  # digest of the content last written (draft or push)
        self.last_draft_time = None

    @property
    def draft_path(self):
        """Where the autosaved draft of this case lives."""
        from DicomTeamAnnotateLib.store.worklist import draft_path

        return draft_path(self.work_dir, self.store, self.case_id)

    def alive(self) -> bool:
        """False once the nodes were removed from the scene (scene closed, user deleted them)."""
        node = self.segmentation_node
        return node is not None and node.GetScene() is not None and self.volume_node.GetScene() is not None


#
# DicomTeamAnnotate
#


class DicomTeamAnnotate(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DICOM Team Annotate")
        self.parent.categories = [translate("DicomTeamAnnotate", "DICOM Team Annotate")]
        self.parent.dependencies = []
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Team annotation of DICOM volumes. <b>Project</b>: connect to a project folder (local or on a shared
drive) or to a project server (URL, user and token; the token is kept in the OS keyring or in Slicer's
settings, never in the scene). <b>Worklist</b>: my cases and their state; <b>Open</b> downloads the
case, shows it in three linked planes with the project's window preset and creates a segmentation
with the project's labels. Drafts are autosaved locally; <b>Submit</b> pushes a version to the project;
pushes made offline are queued and sent when the store is back. A reviewer sees every annotator's
versions. <b>Load DICOM</b>: read a folder or ZIP through the project's ingestion (rejected files are
listed with the reason). <b>Add cases from DICOMweb</b> (administrators): query a PACS, retrieve the
matching series and add each as a case of a project folder, copied or by reference (the password stays in
the OS keyring, never in the scene or the settings). Headless twin: <code>dicomteam status|pull|push|versions</code>.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer's scripted module template (Jean-Christophe Fillion-Robin, Kitware Inc.; Andras Lasso,
PerkLab; Steve Pieper, Isomics, Inc.; NIH grant 3P41RR013218-12S1), pydicom, pylibjpeg and SimpleITK.
""")


#
# DicomTeamAnnotateParameterNode
#


@parameterNodeWrapper
class DicomTeamAnnotateParameterNode:
    """
    The parameters of the panel, saved with the scene (credentials never are).

    volume - The volume the window preset and the three-plane layout apply to.
    windowPreset - Name of the last applied window preset ('custom' uses customLevel/customWidth).
    customLevel - Window centre (HU) of the custom preset.
    customWidth - Window width (HU) of the custom preset.
    autosave - Write a local draft of the open case's segmentation periodically.
    autosaveSeconds - Seconds between autosaves.
    """

    volume: vtkMRMLScalarVolumeNode
    windowPreset: str = "soft tissue"
    customLevel: float = 40.0
    customWidth: float = 400.0
    autosave: bool = True
    autosaveSeconds: int = 60


#
# DicomTeamAnnotateWidget
#


class DicomTeamAnnotateWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: project, worklist, current case, versions, DICOM loading, view."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._tasks = None
        self._draftTask = None
        self._autosaveTimer = None
        self._syncTimer = None
        self._filterTimer = None
        self._versions = []
        self._offline = False

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DicomTeamAnnotate.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DicomTeamAnnotateLogic()
        self.tokens = TokenStore(qt.QSettings())
        self._tasks = TaskRunner(self._updateButtonStates)
        self._autosaveTimer = qt.QTimer()
        self._autosaveTimer.connect("timeout()", self._autosaveTick)
        self._syncTimer = qt.QTimer()
        self._syncTimer.setInterval(SYNC_RETRY_MS)
        self._syncTimer.connect("timeout()", self._syncTick)
        self._filterTimer = qt.QTimer()
        self._filterTimer.setSingleShot(True)
        self._filterTimer.setInterval(FILTER_DELAY_MS)
        self._filterTimer.connect("timeout()", self.onRefreshWorklist)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Project
        self._restoreConnectionSettings()
        self.ui.offlineBannerFrame.hide()
        self.ui.browseStoreButton.connect("clicked(bool)", self.onBrowseStore)
        self.ui.storeLocationLineEdit.connect("textChanged(QString)", self._updateButtonStates)
        self.ui.userLineEdit.connect("textChanged(QString)", self._updateButtonStates)
        self.ui.connectButton.connect("clicked(bool)", self.onConnect)
        self.ui.forgetTokenButton.connect("clicked(bool)", self.onForgetToken)
        self.ui.syncNowButton.connect("clicked(bool)", self.onSyncNow)
        # Worklist
        self._fillStateFilter()
        self.ui.stateFilterComboBox.connect("currentIndexChanged(int)", self.onRefreshWorklist)
        self.ui.textFilterLineEdit.connect("textChanged(QString)", self._onFilterTextChanged)
        self.ui.refreshWorklistButton.connect("clicked(bool)", self.onRefreshWorklist)
        self.ui.worklistTableWidget.connect("itemSelectionChanged()", self._updateButtonStates)
        self.ui.worklistTableWidget.connect("cellDoubleClicked(int,int)", lambda row, column: self.onOpenCase())
        self.ui.openCaseButton.connect("clicked(bool)", self.onOpenCase)
        # Current case
        self.ui.editSegmentationButton.connect("clicked(bool)", self.onEditSegmentation)
        self.ui.saveVersionButton.connect("clicked(bool)", lambda: self.onPush(submit=False))
        self.ui.submitButton.connect("clicked(bool)", lambda: self.onPush(submit=True))
        self.ui.reopenButton.connect("clicked(bool)", self.onReopen)
        self.ui.autosaveCheckBox.connect("toggled(bool)", self._restartAutosave)
        self.ui.autosaveSecondsSpinBox.connect("valueChanged(int)", self._restartAutosave)
        # Versions
        self.ui.refreshVersionsButton.connect("clicked(bool)", self.onRefreshVersions)
        self.ui.versionsTableWidget.connect("itemSelectionChanged()", self._updateButtonStates)
        self.ui.loadVersionButton.connect("clicked(bool)", self.onLoadVersion)
        # Load DICOM
        self.ui.issuesTableWidget.hide()
        self.ui.inputPathLineEdit.connect("currentPathChanged(QString)", self._updateButtonStates)
        self.ui.browseZipButton.connect("clicked(bool)", self.onBrowseZip)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)
        # Add cases from DICOMweb (admin)
        self._restoreDicomwebSettings()
        self.ui.dicomwebResultsTableWidget.hide()
        self.ui.dicomwebProjectPathLineEdit.connect("currentPathChanged(QString)", self._updateButtonStates)
        self.ui.dicomwebUrlLineEdit.connect("textChanged(QString)", self._updateButtonStates)
        self.ui.dicomwebImportButton.connect("clicked(bool)", self.onDicomwebImport)
        # View
        self.ui.windowPresetComboBox.connect("activated(int)", self.onWindowPresetActivated)
        self.ui.customLevelSpinBox.connect("valueChanged(double)", self.onCustomWindowChanged)
        self.ui.customWidthSpinBox.connect("valueChanged(double)", self.onCustomWindowChanged)
        self.ui.threePlaneLayoutButton.connect("clicked(bool)", self.onThreePlaneLayout)
        self._fillPresetComboBox()

        self.initializeParameterNode()
        self._restartAutosave()
        self._updateButtonStates()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self._saveDraftNow()
        for timer in (self._autosaveTimer, self._syncTimer, self._filterTimer):
            if timer is not None:
                timer.stop()
        if self._tasks is not None:
            self._tasks.stop()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module (autosave keeps running meanwhile)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: keep the open case's work as a draft first."""
        self._saveDraftNow()
        self.logic.session = None
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        self._showCaseStatus()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Called from setup() and enter(): make sure the parameter node exists and is observed."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.volume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.volume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        """Called by initializeParameterNode() and on scene close: connect the GUI to a parameter node."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" property in the .ui file are connected here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
            index = self.ui.windowPresetComboBox.findText(self._parameterNode.windowPreset)
            if index >= 0:
                self.ui.windowPresetComboBox.setCurrentIndex(index)
        self._updateButtonStates()

    # ----- background tasks: one at a time (TaskRunner) -----------------------------------------

    def _startTask(self, work, onDone, name, dialogTitle=None, dialogText=""):
        """Run ``work(task)`` on a worker thread; ``onDone(task)`` runs on the main thread when it ends."""
        return self._tasks.start(work, onDone, name, dialogTitle, dialogText)

    def _taskResult(self, task, failureText):
        """(True, result), or (False, None) after telling the user why; an unreachable store shows the banner."""
        from DicomTeamAnnotateLib.store.worklist import is_offline_error

        ok, value = TaskRunner.result(task, failureText)
        if ok:
            return True, value
        if is_offline_error(value):
            self._setOffline(True, str(value))
        return False, None

    # ----- project connection --------------------------------------------------------------------

    def _settings(self):
        """Slicer's application settings (QSettings)."""
        return qt.QSettings()

    def _restoreConnectionSettings(self) -> None:
        """Called from setup(): last store location, user and local folder (the token: keyring/settings)."""
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
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Choose the project folder"),
                                                     self.ui.storeLocationLineEdit.text)
        if folder:
            self.ui.storeLocationLineEdit.text = folder

    def onConnect(self) -> None:
        """Called when the user clicks 'Connect': check the credentials on a worker thread."""
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
        from DicomTeamAnnotateLib.store.worklist import is_offline_error

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

    # ----- worklist ---------------------------------------------------------------------------------

    def _fillStateFilter(self) -> None:
        """Called from setup(): 'all' then the workflow states."""
        from DicomTeamAnnotateLib.store.model import STATE_LABELS
        from DicomTeamAnnotateLib.store.worklist import STATE_FILTERS

        combo = self.ui.stateFilterComboBox
        combo.clear()
        for state in STATE_FILTERS:
            combo.addItem(_("all states") if state == "all" else STATE_LABELS[state], state)

    def _onFilterTextChanged(self, text) -> None:
        """Called on each keystroke in the filter: re-read the worklist once typing pauses."""
        self._filterTimer.start()

    def onRefreshWorklist(self, *args) -> None:
        """Called by 'Refresh', the filters and after each store operation: re-read my worklist."""
        if self.logic.store is None:
            return
        if self._tasks.busy:
            self._filterTimer.start()  # busy: try again shortly
            return
        state = self.ui.stateFilterComboBox.currentData or "all"
        text = self.ui.textFilterLineEdit.text
        self._startTask(lambda task: self.logic.worklistRows(state, text), self._onWorklist, name="worklist")

    def _onWorklist(self, task) -> None:
        """Called when the worklist arrives: fill the table, keeping the selected case selected."""
        from DicomTeamAnnotateLib.store.worklist import is_offline_error

        try:
            rows = task.result()
        except Exception as exc:
            self._setOffline(is_offline_error(exc), str(exc))
            self.ui.worklistStatusLabel.text = _("Worklist not available: {error}").format(error=exc)
            return
        self._fillWorklist(rows)

    def _fillWorklist(self, rows) -> None:
        """Fill the worklist table, keeping the selected case selected; the store answered: online."""
        self._setOffline(False)
        selected = self._selectedCaseId()
        table = self.ui.worklistTableWidget
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            annotators = ", ".join(f"{u}: {s.replace('_', ' ')}" for u, s in (row.get("annotators") or {}).items())
            notes = []
            if row.get("queued"):
                notes.append(_("{count} queued").format(count=row["queued"]))
            if row.get("conflict"):
                notes.append(_("conflict"))
            cells = (row["case_id"], str(row.get("patient_id") or ""), row["state_label"], str(row.get("n_versions", 0)),
                     annotators, ", ".join(notes))
            for c, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                item.setData(qt.Qt.UserRole, row["case_id"])
                table.setItem(r, c, item)
            if row["case_id"] == selected:
                table.selectRow(r)
        table.resizeColumnsToContents()
        self.ui.worklistStatusLabel.text = _("{count} case(s).").format(count=len(rows))

    def _selectedCaseId(self):
        """Case id of the selected worklist row, or None."""
        table = self.ui.worklistTableWidget
        row = table.currentRow()
        if row < 0 or not table.selectionModel().hasSelection():
            return None
        item = table.item(row, 0)
        return item.data(qt.Qt.UserRole) if item is not None else None

    # ----- opening a case ----------------------------------------------------------------------------

    def onOpenCase(self) -> None:
        """Called when the user clicks 'Open' (or double-clicks a case): download, then load."""
        caseId = self._selectedCaseId()
        if caseId is None or self.logic.store is None:
            return
        session = self.logic.session
        if session is not None and session.alive():
            if session.case_id == caseId and not slicer.util.confirmOkCancelDisplay(
                    _("Case {case} is open. Open it again from the project? Your edits are kept as a local draft, "
                      "which you can continue from.").format(case=caseId)):
                return
            self._saveDraftNow()  # the current case's work is kept before switching or reloading
        workDir = self.ui.workFolderLineEdit.currentPath or self.logic.defaultWorkFolder()
        message = _("Downloading case {case}...").format(case=caseId)
        self._startTask(lambda task: self.logic.fetchCase(caseId, workDir, TaskRunner.progressReporter(task, message)),
                        self._onCaseFetched, name="open case", dialogTitle=_("Opening case"), dialogText=message)

    def _onCaseFetched(self, task) -> None:
        """Called when the case is downloaded and read: ask about a newer draft, create the nodes, show them."""
        ok, fetched = self._taskResult(task, _("Could not open the case."))
        if not ok:
            return
        useDraft = False
        if fetched["draft_segmentation"] is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(fetched["draft_time"]))
            if self.logic.draftIsNewer(fetched):
                useDraft = slicer.util.confirmYesNoDisplay(
                    _("A local draft of case {case} from {time} has changes that were not pushed. Continue from "
                      "the draft? (No: start from your latest version in the project.)").format(
                        case=fetched["case"]["case_id"], time=when))
        with slicer.util.tryWithErrorDisplay(_("Could not show the case."), waitCursor=True):
            session = self.logic.loadCase(fetched, useDraft=useDraft)
            self.logic.showCase(session)
            if self._parameterNode:
                self._parameterNode.volume = session.volume_node
            preset = fetched.get("window_preset")
            index = self.ui.windowPresetComboBox.findText(preset) if preset else -1
            if index >= 0:
                self.ui.windowPresetComboBox.setCurrentIndex(index)
                if self._parameterNode:
                    self._parameterNode.windowPreset = preset
        self._versions = fetched.get("versions") or []
        self._showVersions()
        self._showCaseStatus()
        self._refreshWorklistAndVersions(fetched["case"]["case_id"])

    def _showCaseStatus(self, extra="") -> None:
        """The 'Current case' line: which case, from what, the parent version, the last autosave."""
        session = self.logic.session
        if session is None or not session.alive():
            self.ui.currentCaseLabel.text = _("No case open.")
            return
        source = {"version": _("your latest version"), "draft": _("your local draft"),
                  "new": _("an empty segmentation")}[session.source]
        text = _("Case {case}: started from {source}; next push descends from {parent}.").format(
            case=session.case_id, source=source, parent=session.parent or _("nothing (first version)"))
        if session.last_draft_time:
            text += " " + _("Draft saved at {time}.").format(time=time.strftime("%H:%M:%S",
                                                                                 time.localtime(session.last_draft_time)))
        self.ui.currentCaseLabel.text = text + (" " + extra if extra else "")

    def onEditSegmentation(self) -> None:
        """Called when the user clicks 'Segment Editor': edit the case's segmentation there."""
        session = self.logic.session
        if session is None or not session.alive():
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor
        editor.setSegmentationNode(session.segmentation_node)
        setSource = getattr(editor, "setSourceVolumeNode", None) or editor.setMasterVolumeNode  # before Slicer 5.2
        setSource(session.volume_node)

    # ----- autosave, push, submit, reopen ------------------------------------------------------------

    def _restartAutosave(self, *args) -> None:
        """Called when the autosave settings change: (re)start the timer."""
        self._autosaveTimer.stop()
        if self.ui.autosaveCheckBox.checked:
            self._autosaveTimer.setInterval(max(5, int(self.ui.autosaveSecondsSpinBox.value)) * 1000)
            self._autosaveTimer.start()

    def _autosaveTick(self) -> None:
        """Called by the autosave timer: snapshot the segmentation (main thread), write it on a worker."""
        from DicomTeamAnnotateLib.background import BackgroundTask

        session = self.logic.session
        if session is None or not session.alive():
            return
        if self._draftTask is not None:
            if not self._draftTask.done:
                return  # the previous draft is still being written
            self._finishDraftTask()
        try:
            snapshot = self.logic.draftSnapshot(session)
        except Exception as exc:
            logging.exception("DicomTeamAnnotate: autosave snapshot failed")
            self._showCaseStatus(_("Autosave failed: {error}").format(error=exc))
            return
        if snapshot is None:
            return  # nothing changed since the last save
        self._draftTask = BackgroundTask(lambda task: self.logic.writeDraft(session, *snapshot), name="autosave").start()

    def _finishDraftTask(self) -> None:
        """Called on the next autosave tick (or before a push): report how the last draft write went."""
        task, self._draftTask = self._draftTask, None
        try:
            task.result()
        except Exception as exc:
            logging.error(f"DicomTeamAnnotate: autosave failed: {exc}")
            self._showCaseStatus(_("Autosave failed: {error}").format(error=exc))
            return
        self._showCaseStatus()

    def _saveDraftNow(self) -> None:
        """Write the open case's draft synchronously (scene close, switching case, application exit)."""
        session = self.logic.session if self.logic is not None else None
        if session is None or not session.alive():
            return
        if self._draftTask is not None:
            self._draftTask.wait()
            self._draftTask = None
        try:
            self.logic.saveDraft(session)
        except Exception:
            logging.exception("DicomTeamAnnotate: could not save the draft")

    def onPush(self, submit) -> None:
        """Called by 'Save version' (submit=False) and 'Submit' (submit=True)."""
        session = self.logic.session
        if session is None or not session.alive():
            slicer.util.errorDisplay(_("Open a case first."))
            return
        if self._draftTask is not None:
            self._draftTask.wait()
            self._finishDraftTask()
        message = self.ui.messageLineEdit.text.strip() or ("submitted" if submit else "")
        with slicer.util.tryWithErrorDisplay(_("Could not read the segmentation."), waitCursor=True):
            seg = self.logic.currentSegmentation(session)  # MRML: main thread
        label = _("Submitting case {case}...") if submit else _("Pushing a version of case {case}...")
        label = label.format(case=session.case_id)
        self._startTask(lambda task: self.logic.pushSegmentation(session, seg, message, submit=submit,
                                                                 progress=TaskRunner.progressReporter(task, label)),
                        lambda task: self._onPushed(task, session, submit), name="push",
                        dialogTitle=_("Sending to the project"), dialogText=label)

    def _onPushed(self, task, session, submit) -> None:
        """Called when a push ends: the new parent, the banner, the worklist."""
        ok, version = self._taskResult(task, _("The segmentation was not sent."))
        if not ok:
            return
        self.logic.afterPush(session, version)
        self.ui.messageLineEdit.text = ""
        if version.get("queued"):
            self._setOffline(True)
            text = _("The store cannot be reached: version {id} is queued and will be sent later.").format(id=version["id"])
        elif submit:
            text = _("Submitted as version {id}.").format(id=version["id"])
        else:
            text = _("Pushed version {id}.").format(id=version["id"])
        self._showCaseStatus(text)
        self._showOfflineBanner()
        self._refreshWorklistAndVersions(session.case_id)

    def onReopen(self) -> None:
        """Called when the user clicks 'Reopen': my submitted case goes back to 'in progress'."""
        caseId = self.logic.session.case_id if self.logic.session is not None else self._selectedCaseId()
        if caseId is None:
            return
        self._startTask(lambda task: self.logic.reopen(caseId), self._onReopened, name="reopen")

    def _onReopened(self, task) -> None:
        """Called when the reopen request ends."""
        ok, states = self._taskResult(task, _("Could not reopen the case."))
        if ok:
            slicer.util.showStatusMessage(_("Case {case} is in progress again.").format(case=states["case_id"]), 5000)
            self._refreshWorklistAndVersions(states["case_id"])

    # ----- versions (a reviewer sees every annotator's) --------------------------------------------

    def onRefreshVersions(self) -> None:
        """Called by 'Refresh' under Versions and after a push: list the versions of the case."""
        caseId = self._selectedCaseId() or (self.logic.session.case_id if self.logic.session else None)
        if caseId is None or self.logic.store is None:
            return
        self._startTask(lambda task: self.logic.listVersions(caseId), self._onVersions, name="versions")

    def _onVersions(self, task) -> None:
        """Called when the version list arrives."""
        ok, versions = self._taskResult(task, _("Could not list the versions."))
        if ok:
            self._versions = versions
            self._showVersions()

    def _refreshWorklistAndVersions(self, caseId) -> None:
        """After a change to a case (open, push, reopen): re-read the worklist and the case's versions."""
        if self.logic.store is None:
            return
        state = self.ui.stateFilterComboBox.currentData or "all"
        text = self.ui.textFilterLineEdit.text

        def work(task):
            return self.logic.worklistRows(state, text), self.logic.listVersions(caseId)

        self._startTask(work, self._onWorklistAndVersions, name="refresh")

    def _onWorklistAndVersions(self, task) -> None:
        """Called when both lists arrive."""
        ok, result = self._taskResult(task, _("Could not read the worklist."))
        if not ok:
            return
        rows, self._versions = result
        self._fillWorklist(rows)
        self._showVersions()

    def _showVersions(self) -> None:
        """Fill the versions table (newest first)."""
        table = self.ui.versionsTableWidget
        versions = list(reversed(self._versions))
        table.setRowCount(len(versions))
        for r, v in enumerate(versions):
            cells = (v["author"], v["kind"], str(v.get("created", ""))[:19].replace("T", " "), v.get("message") or "",
                     _("conflict") if v.get("conflict") else "", v["id"])
            for c, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                item.setData(qt.Qt.UserRole, v["id"])
                table.setItem(r, c, item)
        table.resizeColumnsToContents()

    def onLoadVersion(self) -> None:
        """Called when the user clicks 'Load selected': fetch that version and show it as a segmentation."""
        row = self.ui.versionsTableWidget.currentRow()
        if row < 0:
            return
        versionId = self.ui.versionsTableWidget.item(row, 0).data(qt.Qt.UserRole)
        version = next(v for v in self._versions if v["id"] == versionId)
        workDir = self.ui.workFolderLineEdit.currentPath or self.logic.defaultWorkFolder()
        self._startTask(lambda task: self.logic.fetchVersion(version, workDir), self._onVersionFetched,
                        name="fetch version", dialogTitle=_("Loading a version"),
                        dialogText=_("Downloading version {id}...").format(id=versionId))

    def _onVersionFetched(self, task) -> None:
        """Called when a version is downloaded: make its segmentation node."""
        ok, fetched = self._taskResult(task, _("Could not load the version."))
        if ok:
            with slicer.util.tryWithErrorDisplay(_("Could not show the version."), waitCursor=True):
                self.logic.loadVersion(*fetched)

    # ----- state of the panel ---------------------------------------------------------------------

    def _fillPresetComboBox(self) -> None:
        """Called from setup(): the presets of DicomTeamAnnotateLib.windowing, then 'custom'."""
        combo = self.ui.windowPresetComboBox
        combo.clear()
        try:
            presets = self.logic.windowPresets()
        except (ImportError, ValueError) as exc:
            combo.enabled = False
            combo.toolTip = _("Window presets are not available: {error}").format(error=exc)
            logging.error(f"DicomTeamAnnotate: window presets not available: {exc}")
            return
        for name, (level, width) in presets.items():
            combo.addItem(name)
            combo.setItemData(combo.count - 1, _("level {level:g} / width {width:g} HU").format(level=level, width=width),
                              qt.Qt.ToolTipRole)
        combo.addItem(CUSTOM_PRESET)

    def _updateButtonStates(self, caller=None, event=None, *args) -> None:
        """Called when inputs, selections, tasks or the parameter node change: enable what can be used now."""
        busy = self._tasks is not None and self._tasks.busy
        location = self.ui.storeLocationLineEdit.text.strip()
        isServer = self.logic.isServer(location) if self.logic else False
        self.ui.tokenLineEdit.enabled = isServer
        self.ui.rememberTokenCheckBox.enabled = isServer
        self.ui.connectButton.enabled = bool(location and self.ui.userLineEdit.text.strip()) and not busy
        connected = self.logic is not None and self.logic.store is not None
        self.ui.refreshWorklistButton.enabled = connected and not busy
        self.ui.openCaseButton.enabled = connected and not busy and self._selectedCaseId() is not None
        session = self.logic.session if self.logic else None
        hasCase = session is not None and session.alive()
        for button in (self.ui.saveVersionButton, self.ui.submitButton, self.ui.editSegmentationButton):
            button.enabled = hasCase and not busy
        self.ui.reopenButton.enabled = connected and not busy and (hasCase or self._selectedCaseId() is not None)
        self.ui.refreshVersionsButton.enabled = connected and not busy
        self.ui.loadVersionButton.enabled = connected and not busy and self.ui.versionsTableWidget.currentRow() >= 0
        self.ui.syncNowButton.enabled = connected and not busy

        path = self.ui.inputPathLineEdit.currentPath
        canLoad = bool(path) and (os.path.isdir(path) or (os.path.isfile(path) and path.lower().endswith(".zip")))
        self.ui.loadButton.enabled = canLoad and not busy
        self.ui.loadButton.toolTip = (_("Read the DICOM files and load each series as a volume.") if canLoad
                                      else _("Choose an existing folder or .zip file first."))
        self.ui.dicomwebImportButton.enabled = (bool(self.ui.dicomwebProjectPathLineEdit.currentPath.strip())
                                                and bool(self.ui.dicomwebUrlLineEdit.text.strip()) and not busy)
        hasVolume = bool(self._parameterNode and self._parameterNode.volume)
        self.ui.windowPresetComboBox.enabled = hasVolume and self.ui.windowPresetComboBox.count > 0
        custom = self.ui.windowPresetComboBox.currentText == CUSTOM_PRESET
        self.ui.customLevelSpinBox.enabled = hasVolume and custom
        self.ui.customWidthSpinBox.enabled = hasVolume and custom
        self.ui.threePlaneLayoutButton.enabled = hasVolume

    # ----- loading DICOM -------------------------------------------------------------------------

    def onBrowseZip(self) -> None:
        """Called when the user clicks 'ZIP...': choose an archive."""
        start = self.ui.inputPathLineEdit.currentPath or ""
        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Choose a ZIP archive of DICOM files"),
                                              start, _("ZIP archives (*.zip)"))
        if path:
            self.ui.inputPathLineEdit.currentPath = path
            self.ui.inputPathLineEdit.addCurrentPathToHistory()

    def onLoadButton(self) -> None:
        """Called when the user clicks 'Load': ingest on a worker thread with a progress dialog."""
        from DicomTeamAnnotateLib.slicer_packages import ensure_requirements

        path = self.ui.inputPathLineEdit.currentPath
        self.ui.inputPathLineEdit.addCurrentPathToHistory()
        if not ensure_requirements(REQUIREMENTS_PATH, requester=_("DICOM Team Annotate")):
            return
        reading, done = _("Reading DICOM files..."), _("Creating volumes...")  # translated on the main thread
        self._startTask(lambda task: self.logic.ingestTask(task, [path], reading, done), self._finishIngest,
                        name="DICOM ingest", dialogTitle=_("Loading DICOM"), dialogText=reading)

    def _finishIngest(self, task) -> None:
        """Called when the worker is done: create the volume nodes (main thread) and show the report."""
        from DicomTeamAnnotateLib.background import TaskCancelled

        try:
            result = task.result()
        except TaskCancelled:
            self.ui.loadSummaryLabel.text = _("Loading cancelled.")
            return
        except Exception as exc:  # raised on the worker thread by ingest(); shown here on the main thread
            self.ui.loadSummaryLabel.text = _("Loading failed.")
            slicer.util.errorDisplay(_("Failed to load the DICOM files: {error}").format(error=exc),
                                     detailedText="".join(traceback.format_exception(exc)))
            return
        failures = []
        with slicer.util.WaitCursor():
            nodes = self.logic.createVolumeNodes(result, failures)
        self._showIngestReport(result, nodes, failures, task.elapsed)
        if nodes and self._parameterNode:
            self._parameterNode.volume = nodes[0]
        if nodes:
            self.logic.showVolume(nodes[0])

    def _showIngestReport(self, result, nodes, failures, seconds) -> None:
        """Called after loading: one summary line, and a table of rejected files and warnings."""
        rows = [("failed", seriesId, error) for seriesId, error in failures] + self.logic.reportRows(result)
        self.ui.loadSummaryLabel.text = _(
            "Loaded {volumes} volume(s) from {series} series in {seconds:.1f} s; {rejected} file(s) not used, "
            "{warnings} warning(s).").format(volumes=len(nodes), series=len(result.series), seconds=seconds,
                                            rejected=len(result.rejected),
                                            warnings=sum(1 for kind, _item, _reason in rows if kind == "warning"))
        table = self.ui.issuesTableWidget
        table.setRowCount(len(rows))
        kindText = {"failed": _("not loaded"), "rejected": _("not used"), "warning": _("warning")}
        for row, (kind, item, reason) in enumerate(rows):
            for column, text in enumerate((kindText.get(kind, kind), item, reason)):
                cell = qt.QTableWidgetItem(text)
                cell.setToolTip(text)
                table.setItem(row, column, cell)
        table.resizeColumnsToContents()
        table.setVisible(bool(rows))

    # ----- adding cases from DICOMweb (admin) -------------------------------------------------------

    def _restoreDicomwebSettings(self) -> None:
        """Called from setup(): last DICOMweb URL, user and project folder (the password: OS keyring only)."""
        settings = self._settings()
        self.ui.dicomwebUrlLineEdit.text = str(settings.value(SETTINGS + "DicomwebUrl", "") or "")
        self.ui.dicomwebUserLineEdit.text = str(settings.value(SETTINGS + "DicomwebUser", "") or "")
        self.ui.dicomwebReferenceCheckBox.checked = slicer.util.toBool(settings.value(SETTINGS + "DicomwebReference", False))
        project = str(settings.value(SETTINGS + "DicomwebProject", "") or "")
        location = self.ui.storeLocationLineEdit.text.strip()
        if not project and location and not self.logic.isServer(location):
            project = location  # an administrator connected to the project folder itself
        self.ui.dicomwebProjectPathLineEdit.currentPath = project

    def onDicomwebImport(self) -> None:
        """Called when the user clicks 'Import' under DICOMweb: query, retrieve and add cases on a worker thread."""
        from DicomTeamAnnotateLib.slicer_packages import ensure_requirements

        projectDir = self.ui.dicomwebProjectPathLineEdit.currentPath.strip()
        url, user = self.ui.dicomwebUrlLineEdit.text.strip(), self.ui.dicomwebUserLineEdit.text.strip()
        password = self.ui.dicomwebPasswordLineEdit.text  # never stored in the settings or the scene
        reference = self.ui.dicomwebReferenceCheckBox.checked
        filters = {"patient": self.ui.dicomwebPatientLineEdit.text, "study": self.ui.dicomwebStudyLineEdit.text,
                   "series": self.ui.dicomwebSeriesLineEdit.text}
        settings = self._settings()
        settings.setValue(SETTINGS + "DicomwebUrl", url)
        settings.setValue(SETTINGS + "DicomwebUser", user)
        settings.setValue(SETTINGS + "DicomwebProject", projectDir)
        settings.setValue(SETTINGS + "DicomwebReference", reference)
        self.ui.dicomwebProjectPathLineEdit.addCurrentPathToHistory()
        if not ensure_requirements(REQUIREMENTS_PATH, requester=_("DICOM Team Annotate")):
            return
        # translated here, on the main thread; the worker only formats them
        querying = _("Querying {url}...").format(url=url)
        template = _("Series {series} of {count}: {done} of {total} instances")

        def work(task):
            task.report(None, querying)

            def progress(seriesIndex, seriesCount, done, total):
                # a report is also where Cancel stops the work (whole instances stay in the cache)
                fraction = (seriesIndex + (done / total if total else 0)) / max(1, seriesCount)
                task.report(fraction, template.format(series=seriesIndex + 1, count=seriesCount, done=done, total=total))

            return self.logic.importFromDicomweb(projectDir, url, user, password, reference=reference,
                                                 progress=progress, **filters)

        if self._startTask(work, lambda task: self._onDicomwebImported(task, url, user, password),
                           name="DICOMweb import", dialogTitle=_("Adding cases from DICOMweb"), dialogText=querying):
            self.ui.dicomwebSummaryLabel.text = querying

    def _onDicomwebImported(self, task, url, user, password) -> None:
        """Called when the import ends: the summary, the table, the keyring, the worklist."""
        from DicomTeamAnnotateLib.background import TaskCancelled

        ok, result = TaskRunner.result(task, _("The DICOMweb import stopped."))
        if not ok:
            if isinstance(result, TaskCancelled):
                self.ui.dicomwebSummaryLabel.text = _(
                    "Import cancelled. Cases added before stay; the instances already retrieved stay in the local "
                    "cache, so the next import resumes.")
            else:
                self.ui.dicomwebSummaryLabel.text = _("Import failed: {error}").format(error=result)
            self.onRefreshWorklist()  # cases added before the failure are in the project
            return
        added, skipped = result["added"], result["skipped"]
        self.ui.dicomwebSummaryLabel.text = _(
            "{added} case(s) added, {skipped} series already in the project (skipped), in {seconds:.1f} s.").format(
            added=len(added), skipped=len(skipped), seconds=task.elapsed)
        self._showDicomwebResults(result["results"])
        if password and self.ui.dicomwebRememberPasswordCheckBox.checked:
            try:  # only now: the server accepted this password
                self.logic.rememberDicomwebPassword(url, user, password)
                self.ui.dicomwebPasswordLineEdit.text = ""
            except Exception as exc:  # no keyring module or no usable backend
                slicer.util.warningDisplay(_("The password was not remembered (no usable OS keyring): {error}")
                                           .format(error=exc))
        self.onRefreshWorklist()

    def _showDicomwebResults(self, results) -> None:
        """Fill the table of the last import: one row per series (case, status, patient, series)."""
        statusText = {"added": _("added"), "exists": _("skipped: already in the project")}
        table = self.ui.dicomwebResultsTableWidget
        table.setRowCount(len(results))
        for row, r in enumerate(results):
            series = " ".join(t for t in (r.get("modality") or "", r.get("description") or "") if t) or r["series_uid"]
            status = statusText.get(r["status"], r["status"])
            if r["status"] == "added" and r.get("reference"):
                status += " " + _("(reference)")
            for column, text in enumerate((r["case_id"], status, r.get("patient_id") or "", series)):
                cell = qt.QTableWidgetItem(text)
                cell.setToolTip(r["series_uid"] if column == 3 else text)
                table.setItem(row, column, cell)
        table.resizeColumnsToContents()
        table.setVisible(bool(results))

    # ----- viewing ------------------------------------------------------------------------------

    def onWindowPresetActivated(self, index) -> None:
        """Called when the user picks a window preset."""
        name = self.ui.windowPresetComboBox.itemText(index)
        self._parameterNode.windowPreset = name
        self._applyWindow()

    def onCustomWindowChanged(self, value) -> None:
        """Called when the user edits the custom level or width."""
        if self.ui.windowPresetComboBox.currentText == CUSTOM_PRESET:
            self._applyWindow()

    def _applyWindow(self) -> None:
        """Called when a preset or the custom window changes: apply it to the selected volume."""
        p = self._parameterNode
        if not p or not p.volume:
            return
        # The spin boxes, not the parameter node: this slot can run before the node is updated.
        level, width = self.ui.customLevelSpinBox.value, self.ui.customWidthSpinBox.value
        with slicer.util.tryWithErrorDisplay(_("Could not apply the window preset.")):
            self.logic.applyWindowPreset(p.volume, p.windowPreset, level, width)
        self._updateButtonStates()

    def onThreePlaneLayout(self) -> None:
        """Called when the user clicks 'Three-plane layout'."""
        with slicer.util.tryWithErrorDisplay(_("Could not set the three-plane layout.")):
            self.logic.setThreePlaneLayout(self._parameterNode.volume)


#
# DicomTeamAnnotateLogic
#


class DicomTeamAnnotateLogic(ScriptedLoadableModuleLogic):
    """Project, cases, drafts, versions, DICOM loading, windowing and layout; usable without the panel.

    Methods marked "any thread" do no MRML/Qt work and run on a worker; the others belong on the
    main thread. Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("DicomTeamAnnotate")
        logic.setStore(logic.connect("/data/project", "alice")["store"])
        session = logic.loadCase(logic.fetchCase("c1", logic.defaultWorkFolder()))
        logic.showCase(session)
        # ... segment in the Segment Editor ...
        logic.afterPush(session, logic.pushSegmentation(session, logic.currentSegmentation(session), submit=True))
    """

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        self.store = None  # the connected project store (other modules use it too)
        self.session = None  # the case open for work (CaseSession)
        self.queue = None  # OfflineQueue; None: the default location ($DICOMTEAM_HOME)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return DicomTeamAnnotateParameterNode(super().getParameterNode())

    # ----- project store ----------------------------------------------------------------------

    @staticmethod
    def isServer(location) -> bool:
        """True when ``location`` is a server URL (which needs a token), False for a folder."""
        from DicomTeamAnnotateLib.store.interface import is_url

        return is_url(str(location or "").strip())

    @staticmethod
    def defaultWorkFolder() -> str:
        """Where cases are downloaded and drafts kept: Slicer's cache folder, else ~/.cache."""
        app = getattr(slicer, "app", None)
        base = app.cachePath if app is not None else os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "DicomTeamAnnotate", "work")

    @staticmethod
    def connect(location, user, token=None, **options) -> dict:
        """Any thread: open the store and check the credentials; {'store', 'project', 'whoami'}.

        ``options`` go to the HTTP client (cache, timeout, retry_window_s, connect_window_s).
        """
        from DicomTeamAnnotateLib.store.worklist import connect

        if not str(location or "").strip() or not str(user or "").strip():
            raise ValueError("a store location (folder or URL) and a user name are needed")
        store = connect(str(location).strip(), str(user).strip(), token, **options)
        return {"store": store, "project": store.project(), "whoami": store.whoami()}

    def setStore(self, store) -> None:
        """Use ``store`` from now on (the previous one is closed; the open case keeps its own)."""
        previous = self.store
        if previous is not None and previous is not store and (self.session is None or self.session.store is not previous):
            previous.close()
        self.store = store

    def requireStore(self):
        """The connected store, or a clear error."""
        if self.store is None:
            raise RuntimeError("not connected to a project store: connect first")
        return self.store

    def worklistRows(self, state="all", text="") -> list:
        """Any thread: my cases with state, filtered (see store.worklist.worklist_rows)."""
        from DicomTeamAnnotateLib.store.worklist import worklist_rows

        return worklist_rows(self.requireStore(), state, text, queue=self.queue)

    def offlineStatus(self) -> dict:
        """{'queued': n, 'items': [...]}: pushes waiting for this store (local disk only)."""
        from DicomTeamAnnotateLib.store.worklist import offline_status

        return offline_status(self.requireStore(), queue=self.queue)

    def flushQueue(self) -> dict:
        """Any thread: send the queued pushes now; {'sent', 'failed', 'remaining'}."""
        from DicomTeamAnnotateLib.store.worklist import flush_queue

        return flush_queue(self.requireStore(), queue=self.queue)

    def listVersions(self, caseId) -> list:
        """Any thread: the versions of a case I may see (a reviewer: every annotator's)."""
        return self.requireStore().list_versions(caseId)

    def reopen(self, caseId) -> dict:
        """Any thread: my submitted case back to 'in progress'; returns the case's states."""
        from DicomTeamAnnotateLib.store.worklist import reopen_case

        return reopen_case(self.requireStore(), caseId)

    # ----- opening a case -----------------------------------------------------------------------

    def fetchCase(self, caseId, workDir, progress=None) -> dict:
        """Any thread: download the case and read the image, my latest version and my draft.

        Returns worklist.open_case's dict plus 'store', 'work_dir', 'volume' (Volume),
        'version_segmentation' and 'draft_segmentation' (Segmentation or None), 'draft_time'.
        """
        from DicomTeamAnnotateLib.segio import read_segmentation
        from DicomTeamAnnotateLib.store.worklist import open_case
        from DicomTeamAnnotateLib.volume import read_volume

        store = self.requireStore()
        opened = open_case(store, caseId, workDir, progress=progress)
        volume = read_volume(opened["image_path"])
        versionSeg = draftSeg = draftTime = None
        if opened["segmentation_path"] is not None:
            versionSeg = read_segmentation(opened["segmentation_path"], reference=volume.geometry)
        if opened["draft_path"] is not None:
            try:
                draftSeg = read_segmentation(opened["draft_path"], reference=volume.geometry)
                draftTime = os.path.getmtime(opened["draft_path"])
            except (OSError, ValueError) as exc:  # a damaged draft must not block opening the case
                logging.warning(f"DicomTeamAnnotate: draft {opened['draft_path']} not usable: {exc}")
        return {**opened, "store": store, "work_dir": str(workDir), "volume": volume,
                "version_segmentation": versionSeg, "draft_segmentation": draftSeg, "draft_time": draftTime}

    @staticmethod
    def draftIsNewer(fetched) -> bool:
        """True when the local draft was written after my latest version was created."""
        import datetime

        if fetched.get("draft_segmentation") is None:
            return False
        version = fetched.get("version")
        if not version:
            return True
        created = datetime.datetime.fromisoformat(str(version["created"]).replace("Z", "+00:00")).timestamp()
        return fetched["draft_time"] > created

    @staticmethod
    def withOntology(seg, labels, geometry):
        """``seg`` (or an empty segmentation on ``geometry``) holding a segment for every project label.

        Existing segments keep their voxels, names and colours; a label is matched by terminology
        code or by name (case-insensitive); missing labels are added empty with the project's
        name, colour and terminology.
        """
        import numpy as np
        from DicomTeamAnnotateLib.segmentation import Segment, Segmentation

        if seg is None:
            seg = Segmentation(np.zeros((1,) + tuple(geometry.shape), dtype=np.uint8), geometry, [])
        segments = list(seg.segments)
        for label in labels:
            wanted = Segment(name=label["name"], label_value=int(label["value"]), color=tuple(label["color"]),
                             terminology=label.get("terminology"))
            known = seg.find(wanted) or next((s for s in segments if s.name.lower() == wanted.name.lower()), None)
            if known is not None:
                continue
            used = {s.label_value for s in segments if s.layer == 0}
            value = wanted.label_value if wanted.label_value not in used else max(used) + 1
            if value > 255:
                raise ValueError(f"no free label value for segment '{wanted.name}' in layer 0")
            wanted.label_value, wanted.layer = value, 0
            segments.append(wanted)
        return Segmentation(seg.layers, seg.geometry, segments, dict(seg.metadata))

    def loadCase(self, fetched, useDraft=False, scene=None):
        """Main thread: volume and segmentation nodes of a fetched case; the project's window preset.

        Returns the CaseSession (also kept as ``self.session``).
        """
        from DicomTeamAnnotateLib.mrml import apply_window_to_display_node, segmentation_to_node, volume_to_node

        case, store = fetched["case"], fetched["store"]
        caseId = case["case_id"]
        volume = fetched["volume"]
        previous = self.session
        if previous is not None and previous.alive() and previous.case_id == caseId:
            # opened again: the new nodes replace the old ones (the caller saved their draft first)
            for node in (previous.segmentation_node, previous.volume_node):
                node.GetScene().RemoveNode(node)
            self.session = None
        volumeNode = volume_to_node(volume, scene, name=caseId)
        volumeNode.SetAttribute(CASE_ATTRIBUTE, caseId)
        preset = fetched.get("window_preset")
        if preset:
            try:
                apply_window_to_display_node(volumeNode, preset)
            except ValueError as exc:  # a preset name this Slicer does not know: keep the header's window
                logging.warning(f"DicomTeamAnnotate: project window preset not applied: {exc}")
        if useDraft and fetched.get("draft_segmentation") is not None:
            seg, source = fetched["draft_segmentation"], "draft"
        elif fetched.get("version_segmentation") is not None:
            seg, source = fetched["version_segmentation"], "version"
        else:
            seg, source = None, "new"
        seg = self.withOntology(seg, fetched["labels"], volume.geometry)
        segNode = segmentation_to_node(seg, scene, reference_volume_node=volumeNode,
                                       name=f"{caseId} - {store.user}")
        segNode.SetAttribute(CASE_ATTRIBUTE, caseId)
        version = fetched.get("version")
        session = CaseSession(store, caseId, fetched["work_dir"], fetched["image_path"], volume.geometry,
                              fetched["labels"], version["id"] if version else None, volumeNode, segNode, source)
        if version:
            segNode.SetAttribute(VERSION_ATTRIBUTE, version["id"])
        if source != "draft":
            session.saved_digest = self.segmentationDigest(seg)  # unchanged content is not re-saved as a draft
        self.session = session
        return session

    def showCase(self, session) -> None:
        """Main thread, application only: three linked planes on the case, segmentation shown."""
        self.setThreePlaneLayout(session.volume_node)
        displayNode = session.segmentation_node.GetDisplayNode()
        if displayNode is not None:
            displayNode.SetVisibility(True)

    # ----- drafts and pushes -----------------------------------------------------------------------

    @staticmethod
    def segmentationDigest(seg) -> str:
        """A digest of voxels and segment names/values/colours: tells whether anything changed."""
        h = hashlib.blake2b(digest_size=16)
        h.update(seg.layers.tobytes())
        for s in seg.segments:
            h.update(repr((s.name, s.label_value, s.layer, tuple(round(c, 4) for c in s.color))).encode("utf-8"))
        return h.hexdigest()

    @staticmethod
    def currentSegmentation(session):
        """Main thread: the case's segmentation node as a Segmentation on the case image's grid."""
        from DicomTeamAnnotateLib.mrml import node_to_segmentation

        if not session.alive():
            raise RuntimeError(f"the nodes of case {session.case_id} are no longer in the scene")
        return node_to_segmentation(session.segmentation_node, reference_geometry=session.geometry)

    def draftSnapshot(self, session):
        """Main thread: (segmentation, digest) when it changed since the last save, else None."""
        seg = self.currentSegmentation(session)
        digest = self.segmentationDigest(seg)
        return None if digest == session.saved_digest else (seg, digest)

    @staticmethod
    def writeDraft(session, seg, digest):
        """Any thread: write the draft .seg.nrrd atomically; returns its path."""
        from DicomTeamAnnotateLib.segio import write_seg_nrrd

        path = session.draft_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_seg_nrrd(seg, path)
        session.saved_digest, session.last_draft_time = digest, time.time()
        return path

    def saveDraft(self, session):
        """Main thread, synchronous: write the draft if the segmentation changed; its path, or None."""
        snapshot = self.draftSnapshot(session)
        return None if snapshot is None else self.writeDraft(session, *snapshot)

    def pushSegmentation(self, session, seg, message="", submit=False, progress=None) -> dict:
        """Any thread: push ``seg`` as my new version (and submit); queued when the store is unreachable."""
        import uuid

        from DicomTeamAnnotateLib.segio import write_seg_nrrd
        from DicomTeamAnnotateLib.store.worklist import save_version, submit_case, work_folder

        outgoing = work_folder(session.work_dir, session.store, session.case_id) / f"outgoing-{uuid.uuid4().hex[:12]}.seg.nrrd"
        outgoing.parent.mkdir(parents=True, exist_ok=True)
        write_seg_nrrd(seg, outgoing)
        push = submit_case if submit else save_version
        try:
            version = push(session.store, session.case_id, outgoing, parent=session.parent,
                           message=message or ("submitted" if submit else ""), queue=self.queue, progress=progress)
        finally:
            outgoing.unlink(missing_ok=True)  # a queued push keeps its own copy
        return {**version, "digest": self.segmentationDigest(seg)}

    @staticmethod
    def afterPush(session, version) -> None:
        """Main thread: the next push descends from this version; a sent push makes the draft obsolete."""
        session.parent = version["id"]
        if not version.get("queued"):
            session.draft_path.unlink(missing_ok=True)
            session.saved_digest = version.get("digest", session.saved_digest)
        if session.segmentation_node is not None:
            session.segmentation_node.SetAttribute(VERSION_ATTRIBUTE, version["id"])

    # ----- versions ------------------------------------------------------------------------------------

    def fetchVersion(self, version, workDir) -> tuple:
        """Any thread: download one version and read it; (version, Segmentation)."""
        from DicomTeamAnnotateLib.segio import read_segmentation
        from DicomTeamAnnotateLib.store.worklist import work_folder

        store = self.requireStore()
        folder = work_folder(workDir, store, version["case_id"]) / "versions"
        path = store.fetch_version(version["id"], folder / f"{version['author']}.{version['id']}.seg.nrrd")
        return version, read_segmentation(path)

    def loadVersion(self, version, seg, scene=None):
        """Main thread: a segmentation node of another version (on the open case's volume when it matches)."""
        from DicomTeamAnnotateLib.mrml import segmentation_to_node

        session = self.session
        reference = None
        if session is not None and session.alive() and session.case_id == version["case_id"]:
            reference = session.volume_node
        node = segmentation_to_node(seg, scene, reference_volume_node=reference,
                                    name=f"{version['case_id']} - {version['author']} ({version['kind']} {version['id']})")
        node.SetAttribute(CASE_ATTRIBUTE, version["case_id"])
        node.SetAttribute(VERSION_ATTRIBUTE, version["id"])
        return node

    # ----- adding cases from DICOMweb (admin) ------------------------------------------------------

    def importFromDicomweb(self, projectDir, url, user=None, password=None, patient=None, study=None, series=None,
                           reference=False, progress=None, cacheDir=None) -> dict:
        """Any thread: add each matching image series of a DICOMweb server as a case of a folder project.

        Blank filters are ignored; a blank password means ``$DICOMWEB_PASSWORD`` or the OS keyring's.
        ``progress(seriesIndex, seriesCount, done, total)`` is called after each instance; an exception
        raised there (TaskCancelled) stops the import: cases added before stay, and the retrieved
        instances stay in the cache for the next import. Returns {'added', 'skipped', 'results'}
        (pacs.importer's per-series summaries); PacsError names the failing step.
        """
        from DicomTeamAnnotateLib.pacs import PacsError
        from DicomTeamAnnotateLib.pacs.dicomweb import check_url
        from DicomTeamAnnotateLib.pacs.importer import import_dicomweb

        def optional(value):
            value = str(value or "").strip()
            return value or None

        projectDir = optional(projectDir)
        if projectDir is None or self.isServer(projectDir):
            raise ValueError(f"adding cases needs the project folder itself, not {projectDir or 'nothing'!r} "
                             "(a project server's administrator runs `dicomteam project import-dicomweb` on its folder)")
        stopped = []  # the exception the progress callback raised (Cancel), if any

        def report(*args):
            try:
                progress(*args)
            except BaseException as exc:
                stopped.append(exc)
                raise

        try:
            results = import_dicomweb(projectDir, check_url(optional(url) or ""), study=optional(study),
                                      series=optional(series), patient=optional(patient), user=optional(user),
                                      password=password or None, reference=bool(reference), cache_dir=cacheDir,
                                      callback=report if progress is not None else None)
        except PacsError:
            # The streamed WADO-RS retrieval wraps whatever its loop raises, the callback's TaskCancelled
            # included, as a "damaged instance" PacsError: a Cancel must stay a Cancel, not become an error.
            if stopped:
                raise stopped[0] from None
            raise
        return {"added": [r for r in results if r["status"] == "added"],
                "skipped": [r for r in results if r["status"] != "added"], "results": results}

    @staticmethod
    def rememberDicomwebPassword(url, user, password) -> None:
        """Keep a DICOMweb password in the OS keyring (never in the scene or Slicer's settings)."""
        from DicomTeamAnnotateLib.pacs.dicomweb import remember_password

        if not str(user or "").strip() or not password:
            raise ValueError("a user name and a password are needed to remember a password")
        remember_password(str(url).strip(), str(user).strip(), password)

    # ----- DICOM ingestion -------------------------------------------------------------------------

    @staticmethod
    def ingest(paths):
        """Read DICOM files/folders/ZIPs with DicomTeamAnnotateLib.dicom_ingest (no MRML; any thread)."""
        from DicomTeamAnnotateLib.dicom_ingest import ingest

        return ingest([os.fspath(p) for p in paths])

    def ingestTask(self, task, paths, readingText="", doneText=""):
        """The worker of startIngest(): ingest() reports no progress and cannot be interrupted,
        so the dialog is a busy indicator and Cancel discards the result once the files are read."""
        task.report(None, readingText)
        result = self.ingest(paths)
        task.report(1.0, doneText)  # raises TaskCancelled if the user cancelled meanwhile
        return result

    def startIngest(self, paths):
        """Start ingest() on a worker thread; the caller polls the returned BackgroundTask."""
        from DicomTeamAnnotateLib.background import BackgroundTask

        reading, done = _("Reading DICOM files..."), _("Creating volumes...")  # translated on the main thread
        return BackgroundTask(lambda task: self.ingestTask(task, paths, reading, done), name="DICOM ingest").start()

    @staticmethod
    def seriesNodeName(series) -> str:
        """A readable node name: series description (or modality and number), then the series id's tail."""
        meta = series.metadata or {}
        number = meta.get("series_number")
        label = meta.get("description") or " ".join(
            t for t in (meta.get("modality"), f"series {number}" if number else "") if t) or "DICOM"
        sid = str(series.series_id)
        return f"{label} [{sid[-8:]}]" if sid else label

    def createVolumeNodes(self, result, failures=None):
        """Main thread: one scalar volume node per ingested series (geometry from the adapter).

        With a ``failures`` list, a series that cannot become a node is recorded there as
        (series id, message) and the others still load; without it the error is raised.
        """
        from DicomTeamAnnotateLib.mrml import volume_to_node

        nodes = []
        for series in result.series:
            try:
                node = volume_to_node(series.volume, slicer.mrmlScene, name=self.seriesNodeName(series))
            except Exception as exc:
                if failures is None:
                    raise
                logging.exception(f"DicomTeamAnnotate: series {series.series_id} could not be loaded")
                failures.append((str(series.series_id), str(exc)))
                continue
            node.SetAttribute("DicomTeamAnnotate.SeriesId", str(series.series_id))
            nodes.append(node)
        return nodes

    def loadDicom(self, paths):
        """Ingest and create the nodes on the calling (main) thread; return (nodes, ingest result)."""
        result = self.ingest(paths)
        return self.createVolumeNodes(result), result

    @staticmethod
    def reportRows(result):
        """[(kind, file or series, reason)]: rejected files first, then each series' warnings."""
        rows = [("rejected", os.fspath(path), str(reason)) for path, reason in result.rejected]
        for series in result.series:
            rows += [("warning", str(series.series_id), str(w)) for w in series.warnings]
        return rows

    # ----- viewing --------------------------------------------------------------------------------

    @staticmethod
    def windowPresets():
        """{name: (level, width)} from DicomTeamAnnotateLib.windowing (Resources/window_presets.json)."""
        from DicomTeamAnnotateLib.windowing import load_presets

        return load_presets()

    def applyWindowPreset(self, volumeNode, preset, customLevel=None, customWidth=None):
        """Apply a preset name (or 'custom' with level/width) to the volume's display; return (level, width)."""
        from DicomTeamAnnotateLib.mrml import apply_window_to_display_node

        if volumeNode is None:
            raise ValueError("no volume selected")
        if preset == CUSTOM_PRESET:
            return apply_window_to_display_node(volumeNode, CUSTOM_PRESET, customLevel, customWidth)
        return apply_window_to_display_node(volumeNode, preset)

    @staticmethod
    def showVolume(volumeNode) -> None:
        """Show the volume as background of every slice view and fit the views to it."""
        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)

    def setThreePlaneLayout(self, volumeNode=None) -> None:
        """Four-up layout (axial, sagittal, coronal, 3D) with linked slice views, aligned to the volume."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        orientations = {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}
        for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
            orientation = orientations.get(sliceNode.GetLayoutName())
            if orientation is None:
                continue
            sliceNode.SetOrientation(orientation)
            if volumeNode is not None:
                # Annotation happens on the voxel grid: align each view with the volume's closest axis,
                # so an oblique acquisition is not cut obliquely (Slicer's "Rotate to volume plane").
                sliceNode.RotateToVolumePlane(volumeNode)
        for compositeNode in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            if compositeNode.GetLayoutName() in orientations:
                compositeNode.SetLinkedControl(True)
        if volumeNode is not None:
            self.showVolume(volumeNode)


#
# DicomTeamAnnotateTest
#


class DicomTeamAnnotateTest(ScriptedLoadableModuleTest):
    """In-Slicer test (run by Slicer's self-test and by ctest in an extension build)."""

    def setUp(self):
        """Called before each test: start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Called by Slicer's 'Reload and Test' and ctest: run every test of this module."""
        self.setUp()
        self.test_LoadPhantomSeries()
        self.setUp()
        self.test_RejectedFilesAreReported()
        self.setUp()
        self.test_ProjectRoundTrip()

    def _writePhantomSeries(self, folder):
        """A synthetic CT series (known geometry) written by DicomTeamAnnotateLib.phantom."""
        from DicomTeamAnnotateLib.phantom import make_phantom, write_phantom_dicom

        phantom = make_phantom(seed=0, shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0))
        write_phantom_dicom(phantom, folder)
        return phantom

    def test_LoadPhantomSeries(self):
        """Ingest a DICOM folder, check voxels and geometry of the node, apply a preset and the layout."""
        import tempfile

        import numpy as np

        from DicomTeamAnnotateLib.mrml import node_to_volume

        self.delayDisplay("Starting the test")
        logic = DicomTeamAnnotateLogic()
        with tempfile.TemporaryDirectory() as folder:
            phantom = self._writePhantomSeries(folder)
            nodes, result = logic.loadDicom([folder])
        self.assertEqual(len(nodes), 1)
        self.assertEqual(result.rejected, [])
        volume = node_to_volume(nodes[0])
        expected = phantom.volume
        np.testing.assert_array_equal(volume.array, expected.array)
        np.testing.assert_allclose(volume.geometry.origin, expected.geometry.to_lps().origin, atol=1e-4)
        np.testing.assert_allclose(volume.geometry.spacing, expected.geometry.spacing, atol=1e-4)

        level, width = logic.applyWindowPreset(nodes[0], "lung")
        display = nodes[0].GetDisplayNode()
        self.assertAlmostEqual(display.GetWindow(), width)
        self.assertAlmostEqual(display.GetLevel(), level)

        logic.setThreePlaneLayout(nodes[0])
        layoutNode = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
        self.assertEqual(layoutNode.GetViewArrangement(), slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(red.GetBackgroundVolumeID(), nodes[0].GetID())
        self.assertTrue(red.GetLinkedControl())
        self.delayDisplay("Test passed")

    def test_RejectedFilesAreReported(self):
        """A non-DICOM file beside the series is reported with a reason and does not stop the load."""
        import tempfile

        logic = DicomTeamAnnotateLogic()
        with tempfile.TemporaryDirectory() as folder:
            self._writePhantomSeries(folder)
            junk = os.path.join(folder, "notes.txt")
            with open(junk, "w") as f:
                f.write("not a DICOM file")
            nodes, result = logic.loadDicom([folder])
        self.assertEqual(len(nodes), 1)
        rows = logic.reportRows(result)
        self.assertTrue(any(kind == "rejected" and item.endswith("notes.txt") and reason for kind, item, reason in rows))
        self.delayDisplay("Test passed")

    def test_ProjectRoundTrip(self):
        """A folder project: open a case with the ontology, draw, autosave, submit, reopen; a reviewer sees it."""
        import tempfile
        from pathlib import Path

        import numpy as np

        from DicomTeamAnnotateLib.mrml import segmentation_to_node
        from DicomTeamAnnotateLib.phantom import make_phantom
        from DicomTeamAnnotateLib.store import admin
        from DicomTeamAnnotateLib.store.sync import OfflineQueue

        phantom = make_phantom(seed=0, shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0))
        labels = [{"name": "liver", "value": 1, "color": [0.9, 0.5, 0.4], "terminology": "SCT^10200004^Liver"},
                  {"name": "spleen", "value": 2, "color": [0.6, 0.3, 0.6]}]
        with tempfile.TemporaryDirectory() as tmp:
            project, work = Path(tmp) / "project", Path(tmp) / "work"
            admin.init_project(project, "Test", labels)
            admin.add_case(project, "c1", phantom.volume, "P1")
            admin.add_member(project, "alice", "annotator")
            admin.add_member(project, "rev", "reviewer")
            admin.assign(project, "c1", "alice")

            logic = DicomTeamAnnotateLogic()
            logic.queue = OfflineQueue(Path(tmp) / "queue")  # not the user's own offline queue
            logic.setStore(logic.connect(str(project), "alice")["store"])
            session = logic.loadCase(logic.fetchCase("c1", work))
            logic.showCase(session)
            segmentation = session.segmentation_node.GetSegmentation()
            self.assertEqual([segmentation.GetNthSegment(i).GetName() for i in range(2)], ["liver", "spleen"])
            self.assertIsNone(logic.saveDraft(session), "nothing drawn yet: no draft")

            seg = logic.currentSegmentation(session)
            drawn = seg.with_masks({"liver": phantom.labels == phantom.label_values["liver"]})
            segmentation_to_node(drawn, reference_volume_node=session.volume_node, node=session.segmentation_node)
            self.assertTrue(logic.saveDraft(session).is_file())
            version = logic.pushSegmentation(session, logic.currentSegmentation(session), submit=True)
            logic.afterPush(session, version)
            self.assertEqual(logic.worklistRows()[0]["state"], "submitted")
            self.assertEqual(logic.reopen("c1")["annotators"]["alice"], "in_progress")

            logic.setStore(logic.connect(str(project), "rev")["store"])
            versions = logic.listVersions("c1")
            self.assertEqual([v["author"] for v in versions], ["alice"])
            node = logic.loadVersion(*logic.fetchVersion(versions[0], work))
            liver = node.GetSegmentation().GetSegmentIdBySegmentName("liver")
            self.assertEqual(int(np.count_nonzero(slicer.util.arrayFromSegmentBinaryLabelmap(node, liver, session.volume_node))),
                             int(np.count_nonzero(phantom.labels == phantom.label_values["liver"])))
        self.delayDisplay("Test passed")
