"""The DicomTeamAnnotate panel's lists (WorklistSection, a mixin of the widget).

My worklist, filtered by state and text and re-read after each change to a case, and the versions
of a case: a reviewer sees every annotator's and can load any of them as a segmentation.
"""

from DicomTeamAnnotateLib.store.model import STATE_LABELS
from DicomTeamAnnotateLib.worklist.offline import is_offline_error
from DicomTeamAnnotateLib.worklist.rows import STATE_FILTERS


class WorklistSection:
    """The panel's Worklist and Versions sections (a reviewer sees every annotator's versions)."""

    # ----- worklist ---------------------------------------------------------------------------------

    def _fillStateFilter(self) -> None:
        """Called from setup(): 'all' then the workflow states."""
        from slicer.i18n import tr as _


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
        from slicer.i18n import tr as _


        try:
            rows = task.result()
        except Exception as exc:
            self._setOffline(is_offline_error(exc), str(exc))
            self.ui.worklistStatusLabel.text = _("Worklist not available: {error}").format(error=exc)
            return
        self._fillWorklist(rows)

    def _fillWorklist(self, rows) -> None:
        """Fill the worklist table, keeping the selected case selected; the store answered: online."""
        import qt
        from slicer.i18n import tr as _

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
        import qt

        table = self.ui.worklistTableWidget
        row = table.currentRow()
        if row < 0 or not table.selectionModel().hasSelection():
            return None
        item = table.item(row, 0)
        return item.data(qt.Qt.UserRole) if item is not None else None

    # ----- versions (a reviewer sees every annotator's) --------------------------------------------

    def onRefreshVersions(self) -> None:
        """Called by 'Refresh' under Versions and after a push: list the versions of the case."""
        caseId = self._selectedCaseId() or (self.logic.session.case_id if self.logic.session else None)
        if caseId is None or self.logic.store is None:
            return
        self._startTask(lambda task: self.logic.listVersions(caseId), self._onVersions, name="versions")

    def _onVersions(self, task) -> None:
        """Called when the version list arrives."""
        from slicer.i18n import tr as _

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
        from slicer.i18n import tr as _

        ok, result = self._taskResult(task, _("Could not read the worklist."))
        if not ok:
            return
        rows, self._versions = result
        self._fillWorklist(rows)
        self._showVersions()

    def _showVersions(self) -> None:
        """Fill the versions table (newest first)."""
        import qt
        from slicer.i18n import tr as _

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
        import qt
        from slicer.i18n import tr as _

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
        import slicer
        from slicer.i18n import tr as _

        ok, fetched = self._taskResult(task, _("Could not load the version."))
        if ok:
            with slicer.util.tryWithErrorDisplay(_("Could not show the version."), waitCursor=True):
                self.logic.loadVersion(*fetched)
