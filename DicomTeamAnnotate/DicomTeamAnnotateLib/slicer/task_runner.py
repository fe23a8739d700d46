"""TaskRunner: one background task at a time for a module panel (worker thread, QTimer poll, progress dialog).

Shared by the extension's panels: ConsensusReview, TrainBridge and SamPrompt import it through the
DicomTeamAnnotate module file, which re-exports it. Qt and Slicer are imported inside the methods,
so this file imports in plain Python.
"""
import traceback

from DicomTeamAnnotateLib.core.tasks import BackgroundTask, TaskCancelled

POLL_INTERVAL_MS = 100


class TaskRunner:
    """One background task at a time for a panel: a worker thread, a QTimer polling it, a progress dialog.

    Shared by the extension's panels (ConsensusReview, TrainBridge and SamPrompt use it too).
    ``onDone(task)`` runs on the main thread when the work ends; ``onBusyChanged()`` lets the
    panel enable or disable its buttons.
    """

    def __init__(self, onBusyChanged=None, intervalMs=POLL_INTERVAL_MS):
        """Called by a widget's setup()."""
        import qt

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
        import slicer
        from slicer.i18n import tr as _


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
        import slicer
        from slicer.i18n import tr as _

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
        import slicer
        from slicer.i18n import tr as _


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
