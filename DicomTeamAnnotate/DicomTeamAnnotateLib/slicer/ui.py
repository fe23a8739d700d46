"""The panels' UI services in Slicer: dialogs, status line, settings, a clock, a progress dialog.

The panel models (``*_panel.py``) never import Qt: they call these services, which the module
widgets hand them. Everything here runs on the main thread; Qt and slicer are imported inside the
methods so that this file imports in plain Python. The tests run the models with these very
services, inside the Slicer harness (Testing/slicer_harness/).
"""
from __future__ import annotations

import contextlib


class QtClock:
    """A repeating qt.QTimer calling ``callback`` on the main thread while started."""

    def __init__(self, interval_ms: int, callback):
        import qt

        self._timer = qt.QTimer()
        self._timer.setInterval(int(interval_ms))
        self._timer.connect("timeout()", callback)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def active(self) -> bool:
        return bool(self._timer.isActive())

    def set_interval(self, interval_ms: int) -> None:
        self._timer.setInterval(int(interval_ms))


class QtProgressView:
    """A modal QProgressDialog for one task.

    Two Qt behaviours are kept away from the user: QProgressDialog::closeEvent emits canceled()
    (so ``finish`` disconnects before closing: a finished task never reads as cancelled), and a
    value at the maximum resets and hides the dialog while autoReset/autoClose are on (both off
    here: the dialog stays until the task has really ended).
    """

    def __init__(self, title: str, text: str, on_cancel):
        import slicer

        self._on_cancel = on_cancel
        self._dialog = slicer.util.createProgressDialog(windowTitle=title, labelText=text, maximum=0,
                                                        autoClose=False, autoReset=False)
        self._dialog.connect("canceled()", self._canceled)

    def _canceled(self) -> None:
        self._on_cancel()

    def update(self, fraction, message) -> None:
        if fraction is not None:
            self._dialog.maximum = 100
            self._dialog.value = int(round(100 * fraction))
        if message:
            self._dialog.labelText = message

    def finish(self) -> None:
        dialog, self._dialog = self._dialog, None
        if dialog is not None:
            dialog.disconnect("canceled()", self._canceled)
            dialog.close()
            dialog.deleteLater()


class SlicerUi:
    """Dialogs through ``slicer.util`` (which logs them and answers them itself in testing mode)."""

    def confirm(self, text: str) -> bool:
        """OK/Cancel question; True for OK."""
        import slicer

        return bool(slicer.util.confirmOkCancelDisplay(text))

    def ask(self, text: str) -> bool:
        """Yes/No question; True for Yes."""
        import slicer

        return bool(slicer.util.confirmYesNoDisplay(text))

    def error(self, text: str, details: str | None = None) -> None:
        import slicer

        if details:
            slicer.util.errorDisplay(text, detailedText=details)
        else:
            slicer.util.errorDisplay(text)

    def info(self, text: str) -> None:
        import slicer

        slicer.util.infoDisplay(text)

    def status(self, text: str, ms: int = 5000) -> None:
        import slicer

        slicer.util.showStatusMessage(text, ms)

    def clock(self, interval_ms: int, callback) -> QtClock:
        return QtClock(interval_ms, callback)

    def progress_view(self, title: str, text: str, on_cancel) -> QtProgressView:
        return QtProgressView(title, text, on_cancel)

    def settings(self):
        """Slicer's application settings (QSettings: value/setValue/remove)."""
        import qt

        return qt.QSettings()

    def choose_file(self, title: str, folder: str = "", filters: str = "") -> str:
        """An existing file the user picks ('' when cancelled)."""
        import qt
        import slicer

        return qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), title, folder, filters) or ""

    def choose_files(self, title: str, folder: str = "", filters: str = "") -> list[str]:
        """Existing files the user picks, several at once (an annotator's files each; [] when cancelled)."""
        import qt
        import slicer

        return [str(p) for p in qt.QFileDialog.getOpenFileNames(slicer.util.mainWindow(), title, folder, filters) or []]

    def choose_folder(self, title: str, folder: str = "") -> str:
        import qt
        import slicer

        return qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), title, folder) or ""

    @contextlib.contextmanager
    def busy(self):
        """A wait cursor while a short main-thread step runs."""
        import slicer

        with slicer.util.WaitCursor():
            yield

    def open_url(self, url: str) -> None:
        import qt

        qt.QDesktopServices.openUrl(qt.QUrl(url))

    def open_file(self, path: str) -> None:
        """A local file (an HTML report) in the system's application for it."""
        import qt

        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(path)))

    def show_module(self, name: str) -> None:
        """Switch Slicer's module panel to ``name``."""
        import slicer

        slicer.util.selectModule(name)
