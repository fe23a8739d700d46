"""The Load DICOM section of the DicomTeamAnnotate panel.

A folder or ZIP is read by the project's own ingestion on a worker thread; each series becomes a
volume node on the main thread, and the files not used are listed with the reason.
"""
from __future__ import annotations

import os

from DicomTeamAnnotateLib.core.tasks import TaskCancelled
from DicomTeamAnnotateLib.dicom.headers import refresh_decoders
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import DICOM_DECODERS
from DicomTeamAnnotateLib.slicer.panel import Section

REPORT_COLUMNS = (_("Kind"), _("File or series"), _("Reason"))


class DicomSection(Section):
    """Load a DICOM folder or ZIP through the project's ingestion."""

    def __init__(self, panel):
        super().__init__(panel)
        self.path = ""
        self.summary_text = ""
        self.report_rows: list[tuple] = []
        self.loaded_nodes = []

    def set_path(self, path) -> None:
        self.path = str(path or "")
        self.changed()

    def browse_zip(self) -> None:
        path = self.ui.choose_file(_("Choose a ZIP archive of DICOM files"), self.path, _("ZIP archives (*.zip)"))
        if path:
            self.set_path(path)

    @property
    def can_load(self) -> bool:
        p = self.path
        return bool(p) and (os.path.isdir(p) or (os.path.isfile(p) and p.lower().endswith(".zip"))) and not self.busy

    @property
    def load_tooltip(self) -> str:
        return (_("Read the DICOM files and load each series as a volume.") if self.can_load
                else _("Choose an existing folder or .zip file first."))

    def load(self) -> None:
        """'Load': ingest on a worker thread with a progress dialog.

        The decoders of compressed DICOM are asked for only when the files need them: the headers say so
        (their transfer syntax) before any pixel is decoded; if the user agrees, the files are read again.
        """
        if not self.can_load:
            return
        path = self.path
        reading, done = _("Reading DICOM files..."), _("Creating volumes...")  # translated on the main thread
        self.tasks.start(lambda task: self.logic.ingestTask(task, [path], reading, done), self._ingested,
                         name="DICOM ingest", title=_("Loading DICOM"), text=reading)

    def _ingested(self, task) -> None:
        try:
            result = task.result()
        except TaskCancelled:
            self.summary_text = _("Loading cancelled.")
            self.changed()
            return
        except Exception as exc:  # raised on the worker by the ingestion; shown on the main thread
            self.summary_text = _("Loading failed.")
            self.changed()
            self.ui.error(_("Failed to load the DICOM files: {error}").format(error=exc))
            return
        if result.missing_decoders and self.panel.installer.missing(DICOM_DECODERS):
            if self.panel.installer.ensure(DICOM_DECODERS):  # asked, naming what they are for
                refresh_decoders()  # pydicom looks for decoders once, at import
                self.load()  # again, now that the compressed files can be read
                return
        failures = []
        with self.ui.busy():
            nodes = self.logic.createVolumeNodes(result, failures)
        rows = [("failed", series_id, error) for series_id, error in failures] + self.logic.reportRows(result)
        kind_text = {"failed": _("not loaded"), "rejected": _("not used"), "warning": _("warning")}
        self.report_rows = [(kind_text.get(kind, kind), item, reason) for kind, item, reason in rows]
        self.summary_text = _(
            "Loaded {volumes} volume(s) from {series} series in {seconds:.1f} s; {rejected} file(s) not used, "
            "{warnings} warning(s).").format(volumes=len(nodes), series=len(result.series), seconds=task.elapsed,
                                            rejected=len(result.rejected),
                                            warnings=sum(1 for kind, _item, _reason in rows if kind == "warning"))
        self.loaded_nodes = nodes
        if nodes:
            self.panel.view.set_volume(nodes[0])
            self.logic.showVolume(nodes[0])
        self.changed()
