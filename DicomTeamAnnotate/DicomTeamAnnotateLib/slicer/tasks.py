"""One background task at a time for a panel: worker thread, main-thread polling, progress, Cancel.

Qt-free: the clock that polls and the progress view are the panel's UI services (``slicer/ui.py``
gives Slicer's: a qt.QTimer and a QProgressDialog; tests give their own). What it guarantees:
- the work runs on a worker thread and gets only what the caller closed over (plain objects);
  ``on_done(task)`` runs on the main thread (the clock's callback), Qt, MRML and pip stay there;
- Cancel (the dialog's button, or ``cancel()``) asks the task to stop at its next progress
  report; a task that ends by itself never looks cancelled: the progress view is finished, not
  closed with a cancel, and the runner forgets the task before anything can call back;
- one task at a time: ``start`` while busy says so and returns None.
"""
from __future__ import annotations

import traceback

from DicomTeamAnnotateLib.core.tasks import BackgroundTask, TaskCancelled
from DicomTeamAnnotateLib.slicer.i18n import tr as _

POLL_INTERVAL_MS = 100


class TaskRunner:
    """Runs a panel's background tasks (one at a time); ``on_busy_changed()`` after a start and an end."""

    def __init__(self, ui, on_busy_changed=None, interval_ms: int = POLL_INTERVAL_MS):
        self.ui = ui
        self.task = None
        self._on_done = None
        self._view = None
        self._on_busy_changed = on_busy_changed
        self._clock = ui.clock(interval_ms, self.poll)

    @property
    def busy(self) -> bool:
        return self.task is not None

    def start(self, work, on_done, name: str, title: str | None = None, text: str = ""):
        """Run ``work(task)`` on a worker; ``on_done(task)`` on the main thread when it ends; None if busy."""
        if self.task is not None:
            self.ui.status(_("Busy: wait for the current operation to finish."))
            return None
        self.task = BackgroundTask(work, name=name).start()
        self._on_done = on_done
        if title:
            self._view = self.ui.progress_view(title, text, on_cancel=self.cancel)
        self._clock.start()
        self._busy_changed()
        return self.task

    def cancel(self) -> None:
        """The user's Cancel: the task stops at its next progress report (the view says so)."""
        task = self.task
        if task is None or task.done:
            return
        task.cancel()
        self.ui.status(_("Cancelling..."))
        if self._view is not None:
            self._view.update(None, _("Cancelling..."))

    def stop(self) -> None:
        """The panel is closing: cancel the task and stop polling."""
        if self.task is not None:
            self.task.cancel()
        self._clock.stop()
        self._finish_view()

    def _busy_changed(self) -> None:
        if self._on_busy_changed is not None:
            self._on_busy_changed()

    def _finish_view(self) -> None:
        view, self._view = self._view, None
        if view is not None:
            view.finish()

    def poll(self) -> None:
        """Called by the clock on the main thread: show progress; when done, hand the task over."""
        task = self.task
        if task is None:
            self._clock.stop()
            return
        fraction, message = task.progress
        if self._view is not None and not task.cancel_requested:
            self._view.update(fraction, message)
        if not task.done:
            return
        self._clock.stop()
        self.task, on_done, self._on_done = None, self._on_done, None
        self._finish_view()
        try:
            on_done(task)
        finally:
            self._busy_changed()

    def result(self, task, failure_text: str):
        """(True, value); or (False, exception) after telling the user (a cancel: only a status line)."""
        try:
            return True, task.result()
        except TaskCancelled as exc:
            self.ui.status(_("Cancelled."))
            return False, exc
        except Exception as exc:  # raised on the worker; shown here, on the main thread
            self.ui.error("\n\n".join((failure_text, str(exc))), details="".join(traceback.format_exception(exc)))
            return False, exc

    @staticmethod
    def progress_reporter(task, message: str):
        """A ``progress(done, total)`` callback reporting to ``task`` (each call is also where Cancel stops it)."""
        def report(done, total=None):
            # the HTTP store reports (bytes, total); the folder store's copy reports bytes only: then the
            # view stays a busy indicator, and Cancel still works
            task.report(done / total if total else None, message)
        return report
