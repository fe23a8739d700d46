"""The ConsensusReview panel's Results section (ResultsSection, a mixin of the widget).

When a consensus is computed: its nodes, the review verdict, the per-label and per-annotator
agreement tables, the disagreement / vote-count / probability map overlaid on the image, and
the case's HTML report.
"""
import math
import os

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner

ANNOTATOR_COLUMNS = ("label", "annotator", "dice", "hd95", "nsd", "sensitivity", "specificity", "volume_diff_ml",
                     "tendency")
LABEL_COLUMNS = ("label", "mean_pairwise_dice", "max_pairwise_hd95", "consensus_volume_ml", "notes")


def formatValue(value, digits=3) -> str:
    """A table cell: numbers rounded, inf and undefined spelled out."""
    from slicer.i18n import tr as _

    if value is None:
        return "-"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "-"
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


class ResultsSection:
    """The panel's Results section: the agreement tables and the map layer of the last consensus run."""

    def _onRun(self, task) -> None:
        """Called when the consensus is computed: tables, nodes, the map, adjudication choices."""
        import slicer
        from slicer.i18n import tr as _


        ok, run = TaskRunner.result(task, _("The consensus could not be computed."))
        if not ok:
            self.ui.runStatusLabel.text = _("Consensus not computed.")
            return
        self._run = run
        with slicer.util.tryWithErrorDisplay(_("Could not show the consensus."), waitCursor=True):
            self._nodes = self.logic.showResult(run, previous=self._nodes)
        result = run["result"]
        self.ui.runStatusLabel.text = _("{method} of {n} annotators ({names}) in {seconds:.1f} s.").format(
            method=result.method, n=len(result.inputs.annotators), names=", ".join(result.inputs.annotators),
            seconds=task.elapsed)
        self._showStatus(run)
        self._fillTable(self.ui.labelTableWidget, self.logic.labelRows(result), LABEL_COLUMNS)
        self._fillTable(self.ui.annotatorTableWidget, self.logic.annotatorRows(result), ANNOTATOR_COLUMNS)
        self.ui.mapComboBox.clear()
        for key, text in self.logic.mapChoices(result):
            self.ui.mapComboBox.addItem(text, key)
        self.ui.startFromComboBox.clear()
        for key, text in self.logic.adjudicationStarts(run):
            self.ui.startFromComboBox.addItem(text, key)
        self.onShowMap()

    def _showStatus(self, run) -> None:
        """The review verdict of the case, with the reasons."""
        from slicer.i18n import tr as _

        status = run["status"]
        if status is None:
            self.ui.reviewStatusLabel.text = ""
        elif status["needs_review"]:
            self.ui.reviewStatusLabel.text = _("<b>Needs review</b>: {reasons}").format(
                reasons="; ".join(status["reasons"]))
        else:
            self.ui.reviewStatusLabel.text = _("Within the review thresholds.")

    @staticmethod
    def _fillTable(table, rows, columns) -> None:
        """Fill a QTableWidget with ``rows`` (dicts) in ``columns`` order."""
        import qt

        table.clear()
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels([c.replace("_", " ") for c in columns])
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                text = formatValue(row.get(key))
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()

    def onShowMap(self, *args) -> None:
        """Called when the map, its visibility or opacity changes: update the overlay."""
        import slicer
        from slicer.i18n import tr as _

        if self._run is None:
            return
        key = self.ui.mapComboBox.currentData
        with slicer.util.tryWithErrorDisplay(_("Could not show the disagreement map.")):
            if not self.ui.showMapCheckBox.checked or not key:
                self.logic.hideMap()
                return
            self._nodes["map"] = self.logic.mapVolumeNode(self._run, key, node=self._nodes.get("map"))
            self.logic.showMap(self._nodes["map"], self._nodes.get("reference"), self.ui.mapOpacitySlider.value)

    def onOpenReport(self) -> None:
        """Called by 'Open report': the case's HTML report in the web browser."""
        import qt

        report = (self._run or {}).get("paths", {}).get("report")
        if report and os.path.isfile(report):
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(report)))
