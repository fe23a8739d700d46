"""The Review queue section of the ConsensusReview panel: every project case's agreement, lowest first.

'Build queue' computes the consensus of each case with two or more annotators on a worker (with
the method, options and thresholds of the panel), optionally marks the flagged cases 'in review',
and writes the project report; a double-click on a row computes that case in the Inputs section.
"""
from __future__ import annotations

import os

from ConsensusReviewLib.requirements import REVIEW_QUEUE
from ConsensusReviewLib.results_panel import cells
from DicomTeamAnnotateLib.core.tasks import TaskCancelled
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section
from DicomTeamAnnotateLib.slicer.tasks import TaskRunner

QUEUE_COLUMNS = ("case_id", "worst_label", "mean_pairwise_dice", "max_pairwise_hd95", "min_annotator_dice",
                 "disputed_fraction", "needs_review", "reasons")


class QueueSection(Section):
    """The project's review queue."""

    def __init__(self, panel):
        """No queue yet."""
        super().__init__(panel)
        self.queue: list[dict] = []
        self.mark_in_review = False
        self.status_text = ""
        self.status_tooltip = ""
        self.report = None

    def set_mark_in_review(self, value) -> None:
        """Move the flagged cases to 'in review' in the project (a reviewer's right)."""
        self.mark_in_review = bool(value)

    @property
    def can_build(self) -> bool:
        """'Build queue' can be used now."""
        return self.panel.connected and not self.busy

    @property
    def queue_cells(self) -> list:
        """The table's cells, one row per case, the lowest agreement first."""
        return cells(self.queue, QUEUE_COLUMNS)

    def build(self) -> None:
        """'Build queue': on a worker, with a progress dialog (Cancel stops before the next case)."""
        store = self.panel.store
        if store is None or self.busy or not self.panel.installer.ensure(REVIEW_QUEUE):
            return
        inputs = self.panel.inputs
        method, options, thresholds, mark = inputs.method, inputs.options(), inputs.thresholds(), self.mark_in_review
        out_dir = inputs.output_folder or self.logic.defaultOutputFolder()
        work_dir = os.path.join(self.logic.defaultOutputFolder(), "inputs")
        label = _("Computing the agreement of every case...")
        logic = self.logic

        def work(task):
            """Worker: every case's consensus, the marking and the project report."""
            report = TaskRunner.progress_reporter(task, label)

            def progress(done, total):
                """Report a case done (a Cancel stops here, before the next case)."""
                # Cancel stops before a case; the last call comes after the cases were marked 'in review'
                # and the project report written: a Cancel then would hide what was done, so it is not a stop
                if done < total:
                    report(done, total)

            os.makedirs(work_dir, exist_ok=True)
            return logic.buildReviewQueue(method, work_dir, thresholds, options=options, markInReview=mark,
                                          outDir=out_dir, progress=progress, store=store)

        self.status_text = label
        self.tasks.start(work, self._built, name="review queue", title=_("Review queue"), text=label)
        self.changed()

    def _built(self, task) -> None:
        """The queue is built (main thread): its rows, what was skipped and marked."""
        ok, built = self.panel.result(task, _("The review queue could not be built."))
        if not ok:
            self.status_text = (_("Review queue cancelled.") if isinstance(built, TaskCancelled)
                                else _("Review queue not built."))
            self.changed()
            return
        self.queue = built["queue"]
        text = _("{n} case(s), {flagged} need review; {skipped} skipped.").format(
            n=len(self.queue), flagged=sum(1 for q in self.queue if q["needs_review"]), skipped=len(built["skipped"]))
        if built["marked"]:
            text += " " + _("Marked 'in review': {cases}.").format(cases=", ".join(built["marked"]))
        self.status_text = text
        self.status_tooltip = "\n".join(built["skipped"])
        self.report = built.get("report")
        self.changed()

    def activate(self, row: int) -> None:
        """A double-click on a row: compute that case's consensus."""
        if 0 <= row < len(self.queue):
            self.panel.inputs.compute_case(self.queue[row]["case_id"])
