"""The TrainBridge panel's Evaluation section (EvaluationSection, a mixin of the widget).

The test-set evaluation (metrics.json) in two tables, per case and label (worst Dice first) and the
worst slices; a case's prediction beside its ground truth, one label at a time, side by side or
overlaid; a jump to a worst slice.
"""
import math

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner
from TrainBridgeLib.mrml import COMPARISON_MODES

EVALUATION_COLUMNS = ("case", "label", "dice", "hd95", "nsd", "volume_diff_ml")
WORST_SLICE_COLUMNS = ("case", "label", "axis", "slice", "dice", "error_voxels")


def formatNumber(value, digits=3) -> str:
    """A table cell: numbers rounded, inf and undefined spelled out."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


class EvaluationSection:
    """The panel's Evaluation section: the metric tables, the comparison view, the worst slices."""

    def _setupEvaluationSection(self) -> None:
        """Called from setup(): the tables, the comparison modes and buttons."""
        self.ui.loadEvaluationButton.connect("clicked(bool)", self.onLoadEvaluation)
        self.ui.evaluationTableWidget.connect("cellDoubleClicked(int,int)", self.onEvaluationRowActivated)
        self.ui.worstSlicesTableWidget.connect("cellDoubleClicked(int,int)", self.onWorstSliceActivated)
        for mode in COMPARISON_MODES:
            self.ui.comparisonModeComboBox.addItem(mode, mode)
        self.ui.comparisonModeComboBox.connect("activated(int)", self._onComparisonViewChanged)
        self.ui.comparisonLabelComboBox.connect("activated(int)", self._onComparisonViewChanged)
        self.ui.showCaseButton.connect("clicked(bool)", self.onShowCase)
        self.ui.jumpToWorstSliceButton.connect("clicked(bool)", self.onJumpToWorstSlice)

    def onLoadEvaluation(self) -> None:
        """Called by 'Load': read metrics.json of the evaluation folder into the tables."""
        import slicer
        from slicer.i18n import tr as _

        with slicer.util.tryWithErrorDisplay(_("Could not read the evaluation."), waitCursor=True):
            self._evaluation = self.logic.loadEvaluation(self.ui.evaluationFolderLineEdit.currentPath)
        self._fillTable(self.ui.evaluationTableWidget, self.logic.evaluationRows(self._evaluation), EVALUATION_COLUMNS)
        self._fillTable(self.ui.worstSlicesTableWidget, self._evaluation.get("worst_slices", []), WORST_SLICE_COLUMNS)
        self.ui.comparisonLabelComboBox.clear()
        for name in self._evaluation["labels"]:
            self.ui.comparisonLabelComboBox.addItem(name, name)
        self.ui.comparisonCaseComboBox.clear()
        for worst in self._evaluation.get("worst_cases", []):
            self.ui.comparisonCaseComboBox.addItem(
                _("{case} (mean Dice {dice})").format(case=worst["case"], dice=formatNumber(worst["mean_dice"])),
                worst["case"])
        self.ui.evaluationSummaryLabel.text = self.logic.summaryText(self._evaluation)
        self._updateButtonStates()

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
                text = formatNumber(row.get(key))
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()

    def onEvaluationRowActivated(self, row, column) -> None:
        """Called on a double-click in the evaluation table: show that case and label."""
        rows = self.logic.evaluationRows(self._evaluation)
        self._selectComparison(rows[row]["case"], rows[row]["label"])
        self.onShowCase()

    def _selectComparison(self, case, label) -> None:
        """Select a case and a label in the comparison controls."""
        index = self.ui.comparisonCaseComboBox.findData(case)
        if index < 0:
            self.ui.comparisonCaseComboBox.addItem(case, case)
            index = self.ui.comparisonCaseComboBox.count - 1
        self.ui.comparisonCaseComboBox.setCurrentIndex(index)
        self.ui.comparisonLabelComboBox.setCurrentIndex(max(0, self.ui.comparisonLabelComboBox.findData(label)))

    def onShowCase(self) -> None:
        """Called by 'Show': read the case's image, ground truth and prediction on a worker, then show them."""
        import slicer
        from slicer.i18n import tr as _


        case, evaluation = self.ui.comparisonCaseComboBox.currentData, self._evaluation
        if not case or evaluation is None:
            return

        def onDone(task):
            ok, read = TaskRunner.result(task, _("Could not read the case."))
            if ok:
                with slicer.util.tryWithErrorDisplay(_("Could not show the case."), waitCursor=True):
                    self._comparison = self.logic.showComparison(read, previous=self._comparison)
                    self._onComparisonViewChanged()

        self._tasks.start(lambda task: self.logic.readComparison(evaluation, case), onDone, name="read case")

    def _onComparisonViewChanged(self, *args) -> None:
        """Called when the mode or the label changes: one label, side by side or overlaid."""
        import slicer
        from slicer.i18n import tr as _

        if self._comparison is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not change the view.")):
            self.logic.setComparisonView(self._comparison, self.ui.comparisonModeComboBox.currentData,
                                         self.ui.comparisonLabelComboBox.currentData)

    def onWorstSliceActivated(self, row, column) -> None:
        """Called on a double-click in the worst slices table: show that case and jump to the slice."""
        self.ui.worstSlicesTableWidget.selectRow(row)
        self.onJumpToWorstSlice()

    def onJumpToWorstSlice(self) -> None:
        """Called by 'Jump to worst slice': the selected (or worst) slice of the shown case, else load it."""
        import slicer
        from slicer.i18n import tr as _

        worst = self._evaluation.get("worst_slices", []) if self._evaluation else []
        if not worst:
            return
        row = max(0, self.ui.worstSlicesTableWidget.currentRow())
        target = worst[min(row, len(worst) - 1)]
        if self._comparison is None or self._comparison["case"] != target["case"]:
            self._selectComparison(target["case"], target["label"])
            self.onShowCase()
            return  # the jump happens when the user asks again once the case is shown
        self._selectComparison(target["case"], target["label"])
        self._onComparisonViewChanged()
        with slicer.util.tryWithErrorDisplay(_("Could not jump to the slice.")):
            self.logic.jumpToSlice(target)
