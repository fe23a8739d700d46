"""The UI services the ConsensusReview panel needs beyond the core's (``DicomTeamAnnotateLib/slicer/ui.py``).

Several annotators' files are picked at once, the case report opens in the web browser, and the
'Open DICOM Team Annotate' button switches modules. Qt and slicer are imported inside the methods
(this file imports in plain Python); everything here runs on the main thread.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.ui import SlicerUi


class ReviewUi(SlicerUi):
    """SlicerUi plus choosing several files, opening a local file, and selecting a module."""

    def choose_files(self, title: str, folder: str = "", filters: str = "") -> list[str]:
        """Existing files the user picks ([] when cancelled)."""
        import qt
        import slicer

        return [str(p) for p in qt.QFileDialog.getOpenFileNames(slicer.util.mainWindow(), title, folder, filters) or []]

    def open_file(self, path: str) -> None:
        """Open a local file (the HTML report) with the system's application for it."""
        import qt

        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(path)))

    def show_module(self, name: str) -> None:
        """Switch the module panel to ``name``."""
        import slicer

        slicer.util.selectModule(name)
