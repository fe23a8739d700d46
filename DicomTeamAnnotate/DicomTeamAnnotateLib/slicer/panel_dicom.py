"""The DicomTeamAnnotate panel's Load DICOM section (DicomLoadSection, a mixin of the widget).

A folder or ZIP is read by the project's own ingestion on a worker thread; each series becomes a
volume node, and the files not used are listed with the reason.
"""
import traceback

from DicomTeamAnnotateLib.core.tasks import TaskCancelled


class DicomLoadSection:
    """The panel's Load DICOM section: ingest on a worker thread, then one volume node per series and a report."""

    def onBrowseZip(self) -> None:
        """Called when the user clicks 'ZIP...': choose an archive."""
        import qt
        import slicer
        from slicer.i18n import tr as _

        start = self.ui.inputPathLineEdit.currentPath or ""
        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Choose a ZIP archive of DICOM files"),
                                              start, _("ZIP archives (*.zip)"))
        if path:
            self.ui.inputPathLineEdit.currentPath = path
            self.ui.inputPathLineEdit.addCurrentPathToHistory()

    def onLoadButton(self) -> None:
        """Called when the user clicks 'Load': ingest on a worker thread with a progress dialog."""
        from slicer.i18n import tr as _

        path = self.ui.inputPathLineEdit.currentPath
        self.ui.inputPathLineEdit.addCurrentPathToHistory()
        if not self._ensureRequirements():
            return
        reading, done = _("Reading DICOM files..."), _("Creating volumes...")  # translated on the main thread
        self._startTask(lambda task: self.logic.ingestTask(task, [path], reading, done), self._finishIngest,
                        name="DICOM ingest", dialogTitle=_("Loading DICOM"), dialogText=reading)

    def _finishIngest(self, task) -> None:
        """Called when the worker is done: create the volume nodes (main thread) and show the report."""
        import slicer
        from slicer.i18n import tr as _


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
        import qt
        from slicer.i18n import tr as _

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
