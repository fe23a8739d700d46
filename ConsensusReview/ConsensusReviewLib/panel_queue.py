"""The ConsensusReview panel's Review queue section (QueueSection, a mixin of the widget).

The consensus of every project case with two or more annotators, lowest agreement first, built on
a worker thread (optionally marking the flagged cases 'in review'); a double-click opens a case.
"""
import os

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner

QUEUE_COLUMNS = ("case_id", "worst_label", "mean_pairwise_dice", "max_pairwise_hd95", "min_annotator_dice",
                 "disputed_fraction", "needs_review", "reasons")


class QueueSection:
    """The panel's Review queue section: every case's agreement, the cases to review first at the top."""

    def onBuildQueue(self) -> None:
        """Called by 'Build queue': consensus of every case with two or more annotators, lowest agreement first."""
        from slicer.i18n import tr as _


        method, options, thresholds = self.ui.methodComboBox.currentData, self._options(), self._thresholds()
        mark = self.ui.markInReviewCheckBox.checked
        outDir = self.ui.outputFolderLineEdit.currentPath or self.logic.defaultOutputFolder()
        workDir = os.path.join(self.logic.defaultOutputFolder(), "inputs")
        label = _("Computing the agreement of every case...")

        def work(task):
            return self.logic.buildReviewQueue(method, workDir, thresholds, options=options, markInReview=mark,
                                               outDir=outDir, progress=TaskRunner.progressReporter(task, label))

        self._tasks.start(work, self._onQueue, name="review queue", dialogTitle=_("Review queue"), dialogText=label)

    def _onQueue(self, task) -> None:
        """Called when the queue is built."""
        from slicer.i18n import tr as _


        ok, built = TaskRunner.result(task, _("The review queue could not be built."))
        if not ok:
            return
        self._queue = built["queue"]
        self._fillTable(self.ui.queueTableWidget, self._queue, QUEUE_COLUMNS)
        text = _("{n} case(s), {flagged} need review; {skipped} skipped.").format(
            n=len(self._queue), flagged=sum(1 for q in self._queue if q["needs_review"]), skipped=len(built["skipped"]))
        if built["marked"]:
            text += " " + _("Marked 'in review': {cases}.").format(cases=", ".join(built["marked"]))
        self.ui.queueStatusLabel.text = text
        self.ui.queueStatusLabel.toolTip = "\n".join(built["skipped"])
        self._queueReport = built.get("report")

    def onQueueCaseActivated(self, row, column) -> None:
        """Called on a double-click in the queue: compute that case's consensus."""
        caseId = self._queue[row]["case_id"]
        self.ui.sourceComboBox.setCurrentIndex(self.ui.sourceComboBox.findData("store"))
        index = self.ui.caseComboBox.findData(caseId)
        if index < 0:
            self.ui.caseComboBox.addItem(caseId, caseId)
            index = self.ui.caseComboBox.count - 1
        self.ui.caseComboBox.setCurrentIndex(index)
        self.onRun()
