"""The DicomTeamAnnotate panel's 'Add cases from DICOMweb' section (DicomWebSection, a mixin of the widget).

For administrators of a folder project. The DICOMweb password is kept only in the OS keyring
(once the server accepted it), never in Slicer's settings or the scene.
"""
from DicomTeamAnnotateLib.core.tasks import TaskCancelled
from DicomTeamAnnotateLib.slicer.panel_project import SETTINGS
from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner


class DicomWebSection:
    """The panel's DICOMweb section: query a PACS, retrieve the series, add each as a case of the project."""

    def _restoreDicomwebSettings(self) -> None:
        """Called from setup(): last DICOMweb URL, user and project folder (the password: OS keyring only)."""
        import slicer

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
        from slicer.i18n import tr as _

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
        if not self._ensureRequirements():
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
        import slicer
        from slicer.i18n import tr as _


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
        import qt
        from slicer.i18n import tr as _

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
