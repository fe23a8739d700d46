"""The DicomTeamAnnotate panel's Current case section (CaseSection, a mixin of the widget).

Open a case (offering a newer local draft), autosave drafts on a timer (snapshot on the main
thread, written on a worker), push a version, submit, reopen. The work itself is the logic's.
"""
import logging
import time

from DicomTeamAnnotateLib.core.tasks import BackgroundTask
from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner


class CaseSection:
    """The panel's Current case section: the case open for work and what happens to its segmentation."""

    # ----- opening a case ----------------------------------------------------------------------------

    def onOpenCase(self) -> None:
        """Called when the user clicks 'Open' (or double-clicks a case): download, then load."""
        import slicer
        from slicer.i18n import tr as _

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
        import slicer
        from slicer.i18n import tr as _

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
        from slicer.i18n import tr as _

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
        import slicer

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
        from slicer.i18n import tr as _


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
        from slicer.i18n import tr as _

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
        import slicer
        from slicer.i18n import tr as _

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
        from slicer.i18n import tr as _

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
        import slicer
        from slicer.i18n import tr as _

        ok, states = self._taskResult(task, _("Could not reopen the case."))
        if ok:
            slicer.util.showStatusMessage(_("Case {case} is in progress again.").format(case=states["case_id"]), 5000)
            self._refreshWorklistAndVersions(states["case_id"])
