"""The Current case section of the DicomTeamAnnotate panel: open, autosave drafts, push, submit, reopen.

Opening downloads and reads the case on a worker (offering a newer local draft), then the logic
makes the nodes on the main thread. Autosave snapshots the segmentation on the main thread (MRML)
and writes the draft on a worker, on a clock. A push reads the segmentation on the main thread and
sends it on a worker; when the store cannot be reached the push is queued and the banner says so.
"""
from __future__ import annotations

import logging
import time

from DicomTeamAnnotateLib.core.tasks import BackgroundTask
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import SEGMENTATION_FILES
from DicomTeamAnnotateLib.slicer.panel import Section
from DicomTeamAnnotateLib.slicer.tasks import TaskRunner

MIN_AUTOSAVE_SECONDS = 5


class CaseSection(Section):
    """The case open for work and what happens to its segmentation."""

    def __init__(self, panel):
        super().__init__(panel)
        self.message = ""
        self.autosave = True
        self.autosave_seconds = 60
        self.note = ""  # the last event worth telling (pushed, queued, autosave failed)
        self._draft_task = None
        self._autosave_clock = panel.ui.clock(self.autosave_seconds * 1000, self.autosave_tick)

    # ----- state --------------------------------------------------------------------------------
    @property
    def session(self):
        session = self.logic.session
        return session if session is not None and session.alive() else None

    @property
    def case_id(self):
        return self.session.case_id if self.session is not None else None

    @property
    def can_edit(self) -> bool:
        return self.session is not None and not self.busy

    @property
    def can_reopen(self) -> bool:
        return (self.panel.project.connected and not self.busy
                and (self.session is not None or self.panel.worklist.selected_case_id is not None))

    @property
    def status_text(self) -> str:
        session = self.session
        if session is None:
            return _("No case open.")
        if session.source == "prediction":
            prediction = session.prediction or {}
            source = _("the model's prediction ({model}, round {round})").format(
                model=prediction.get("model") or _("unnamed model"), round=prediction.get("round") or "?")
        else:
            source = {"version": _("your latest version"), "draft": _("your local draft"),
                      "new": _("an empty segmentation")}[session.source]
        text = _("Case {case}: started from {source}; next push descends from {parent}.").format(
            case=session.case_id, source=source, parent=session.parent or _("nothing (first version)"))
        if session.last_draft_time:
            text += " " + _("Draft saved at {time}.").format(
                time=time.strftime("%H:%M:%S", time.localtime(session.last_draft_time)))
        return text + (" " + self.note if self.note else "")

    # ----- inputs -------------------------------------------------------------------------------
    def set_message(self, text) -> None:
        self.message = str(text)

    def set_autosave(self, enabled, seconds=None) -> None:
        """Autosave on or off, every ``seconds`` (at least 5)."""
        self.autosave = bool(enabled)
        if seconds is not None:
            self.autosave_seconds = max(MIN_AUTOSAVE_SECONDS, int(seconds))
        self._autosave_clock.stop()
        if self.autosave:
            self._autosave_clock.set_interval(self.autosave_seconds * 1000)
            self._autosave_clock.start()

    # ----- opening a case -----------------------------------------------------------------------
    def open_selected(self) -> None:
        """'Open' (or a double click): download the selected case, then make its nodes."""
        case_id = self.panel.worklist.selected_case_id
        if case_id is None or not self.panel.project.connected:
            return
        if self.session is not None:
            if self.session.case_id == case_id and not self.ui.confirm(
                    _("Case {case} is open. Open it again from the project? Your edits are kept as a local draft, "
                      "which you can continue from.").format(case=case_id)):
                return
            self.save_draft_now()  # the current case's work is kept before switching or reloading
        if not self.panel.installer.ensure(SEGMENTATION_FILES):
            return
        work_dir = self.panel.project.current_work_folder()
        message = _("Downloading case {case}...").format(case=case_id)
        self.tasks.start(lambda task: self.logic.fetchCase(case_id, work_dir,
                                                           TaskRunner.progress_reporter(task, message)),
                         self._fetched, name="open case", title=_("Opening case"), text=message)

    def _fetched(self, task) -> None:
        ok, fetched = self.panel.result(task, _("Could not open the case."))
        if not ok:
            return
        use_draft = False
        if fetched.draft_is_newer():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(fetched.draft_time))
            use_draft = self.ui.ask(_("A local draft of case {case} from {time} has changes that were not pushed. "
                                      "Continue from the draft? (No: start from your latest version in the "
                                      "project.)").format(case=fetched.case_id, time=when))
        try:
            session = self.logic.loadCase(fetched, useDraft=use_draft)
            self.logic.showCase(session)
        except Exception as exc:
            logging.exception("DicomTeamAnnotate: could not show the case")
            self.ui.error(_("Could not show the case: {error}").format(error=exc))
            return
        self.note = ""
        self.panel.view.case_opened(session.volume_node, fetched.window_preset)
        self.panel.worklist.versions = fetched.versions or []
        self.panel.worklist.refresh_after_change(session.case_id)
        self.changed()

    def edit_segmentation(self) -> None:
        """'Segment Editor': edit the case's segmentation there."""
        if self.session is not None:
            self.logic.editInSegmentEditor(self.session)

    # ----- autosave -----------------------------------------------------------------------------
    def autosave_tick(self) -> None:
        """The autosave clock: snapshot on the main thread (MRML), write on a worker."""
        session = self.session
        if session is None:
            return
        if self._draft_task is not None:
            if not self._draft_task.done:
                return  # the previous draft is still being written
            self._finish_draft()
        if self.panel.installer.missing(SEGMENTATION_FILES):
            return  # never asks from a timer; the draft is written once the case was opened (which installs)
        try:
            snapshot = self.logic.draftSnapshot(session)
        except Exception as exc:
            logging.exception("DicomTeamAnnotate: autosave snapshot failed")
            self.note = _("Autosave failed: {error}").format(error=exc)
            self.changed()
            return
        if snapshot is not None:
            self._draft_task = BackgroundTask(lambda task: self.logic.writeDraft(session, *snapshot),
                                              name="autosave").start()

    def _finish_draft(self) -> None:
        task, self._draft_task = self._draft_task, None
        try:
            task.result()
        except Exception as exc:
            logging.error(f"DicomTeamAnnotate: autosave failed: {exc}")
            self.note = _("Autosave failed: {error}").format(error=exc)
        self.changed()

    def save_draft_now(self) -> None:
        """Write the open case's draft synchronously (scene close, switching case, application exit)."""
        session = self.session
        if session is None:
            return
        if self._draft_task is not None:
            self._draft_task.wait()
            self._draft_task = None
        try:
            self.logic.saveDraft(session)
        except Exception:
            logging.exception("DicomTeamAnnotate: could not save the draft")

    # ----- push, submit, reopen -----------------------------------------------------------------
    def push(self, submit: bool) -> None:
        """'Save version' (submit False) or 'Submit' (True)."""
        session = self.session
        if session is None:
            self.ui.error(_("Open a case first."))
            return
        if self._draft_task is not None:
            self._draft_task.wait()
            self._finish_draft()
        message = self.message.strip() or ("submitted" if submit else "")
        try:
            seg = self.logic.currentSegmentation(session)  # MRML: main thread
        except Exception as exc:
            self.ui.error(_("Could not read the segmentation: {error}").format(error=exc))
            return
        effort = self.logic.effortCounts(session)  # time and actions; the voxel comparison runs on the worker
        label = (_("Submitting case {case}...") if submit else _("Pushing a version of case {case}...")).format(
            case=session.case_id)
        self.tasks.start(lambda task: self.logic.pushSegmentation(session, seg, message, submit=submit,
                                                                  progress=TaskRunner.progress_reporter(task, label),
                                                                  effort=effort),
                         lambda task: self._pushed(task, session, submit), name="push",
                         title=_("Sending to the project"), text=label)

    def _pushed(self, task, session, submit) -> None:
        ok, version = self.panel.result(task, _("The segmentation was not sent."))
        if not ok:
            return
        self.logic.afterPush(session, version)
        self.message = ""
        if version.get("queued"):
            self.note = _("The store cannot be reached: version {id} is queued and will be sent later.").format(
                id=version["id"])
            self.panel.project.set_offline(True)
        else:
            self.note = (_("Submitted as version {id}.") if submit else _("Pushed version {id}.")).format(
                id=version["id"])
            self.panel.project.set_offline(False)
        self.panel.worklist.refresh_after_change(session.case_id)
        self.changed()

    def after_queued_pushes_sent(self, versions) -> None:
        """Queued pushes went out: the open case's next push descends from the last of its own."""
        session = self.session
        for version in versions:
            if session is not None and version.get("case_id") == session.case_id and \
                    version.get("author") == session.store.user:
                session.parent = version["id"]
        self.changed()

    def reopen(self) -> None:
        """'Reopen': my submitted case back to in progress."""
        case_id = self.case_id or self.panel.worklist.selected_case_id
        if case_id is not None:
            self.tasks.start(lambda task: self.logic.reopen(case_id), self._reopened, name="reopen")

    def _reopened(self, task) -> None:
        ok, states = self.panel.result(task, _("Could not reopen the case."))
        if ok:
            self.ui.status(_("Case {case} is in progress again.").format(case=states["case_id"]))
            self.panel.worklist.refresh_after_change(states["case_id"])

    def scene_closing(self) -> None:
        """Before the scene is closed: keep the open case's work as a draft."""
        self.save_draft_now()
        self.logic.closeCase()
        self.changed()

    def stop(self) -> None:
        self.save_draft_now()
        self._autosave_clock.stop()
