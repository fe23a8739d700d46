"""The Annotation loop section of the TrainBridge panel: pre-annotate the project with a model, the effort table.

'Pre-annotate' pushes the chosen model's predictions of the project's cases not yet annotated as
versions of kind ``prediction`` (TrainBridgeLogic.preannotate on a worker: progress per case,
Cancel between cases, a rerun goes on where it stopped). 'Effort' reads the effort records of the
project's versions (TrainBridgeLogic.effortReport on a worker): one row per round of the loop and
annotator, and the picture of time and edit size per case. The project is the hub's connection,
read on the main thread and handed to the worker.
"""
from __future__ import annotations

import os

from DicomTeamAnnotateLib.slicer.connection import current_role
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section
from DicomTeamAnnotateLib.slicer.worklist_panel import ORDER_LABELS
from DicomTeamAnnotateLib.store.auth import is_staff
from DicomTeamAnnotateLib.worklist.rows import ORDERS
from TrainBridgeLib.evaluation_panel import cells
from TrainBridgeLib.loop.model_folder import describe_model_folder
from TrainBridgeLib.requirements import EFFORT_REPORT, preannotate_feature

EFFORT_COLUMNS = ("round", "annotator", "cases", "median_active_min", "total_active_min", "sam_prompts_per_case",
                  "editor_operations_per_case", "voxels_changed_per_case", "mean_dice_start_result")


class LoopSection(Section):
    """The model to pre-annotate with, its order and limit, 'Pre-annotate'; 'Effort' with its table and picture."""

    def __init__(self, panel):
        """No model chosen yet: the Training section's job once it has one."""
        super().__init__(panel)
        self.model_folder = ""
        self.strategy = "uncertainty"
        self.limit = 0  # 0: every case not yet annotated
        self.status_text = ""
        self.skipped_text = ""
        self.effort_rows = []
        self.effort_picture = ""
        self.effort_text = ""

    # ----- inputs -----------------------------------------------------------------------------------
    @staticmethod
    def strategy_choices() -> list[tuple[str, str]]:
        """(key, text) of the orders: by case id, shuffled, the model's least certain cases first."""
        return [(s, ORDER_LABELS[s]) for s in ORDERS]

    def set_model_folder(self, path) -> None:
        """A training job folder, a model from 'Model export' or an nnU-Net model folder."""
        self.model_folder = str(path or "")
        self.status_text = self.skipped_text = ""  # the last run's outcome was about another model
        self.changed()

    def set_strategy(self, strategy) -> None:
        """One of the worklist's orders (worklist.rows.ORDERS)."""
        self.strategy = str(strategy) if strategy in ORDERS else self.strategy

    def set_limit(self, limit) -> None:
        """Push at most this many predictions (0: all)."""
        self.limit = max(0, int(limit or 0))

    # ----- outputs ----------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The model used: the chosen folder, else the Training section's job once it has finished (a job
        still training changes its weights every epoch)."""
        if self.model_folder:
            return self.model_folder
        job = self.panel.training.job_folder
        info = describe_model_folder(job) if job else {}
        return job if info.get("kind") == "job" and info.get("state") == "finished" else ""

    @property
    def blocker(self) -> str:
        """Why 'Pre-annotate' cannot run now ('' when it can): the project, the role, the model folder."""
        if self.panel.store is None:
            return _("Connect to a project in DICOM Team Annotate first.")
        role = current_role()
        if role is not None and not is_staff(role):
            return _("Pre-annotation pushes the model's versions: a reviewer or an admin of the project runs it "
                     "(you are {role}).").format(role=role)
        if not self.model:
            return _("Choose a model: a training job, a training loop, an exported model or an nnU-Net model folder.")
        problem = describe_model_folder(self.model)["problem"]
        return _("Not usable: {problem}").format(problem=problem) if problem else ""

    @property
    def can_preannotate(self) -> bool:
        """'Pre-annotate' can be used now: connected as staff, a usable model folder, nothing running."""
        return not self.busy and not self.blocker

    @property
    def status_line(self) -> str:
        """What the status line shows: the last run's outcome, else why 'Pre-annotate' cannot run."""
        return self.status_text or self.blocker or _("Model: {model}").format(model=self.model)

    @property
    def can_report_effort(self) -> bool:
        """'Effort' can be used now: connected to a project, nothing running."""
        return self.panel.store is not None and not self.busy

    @property
    def effort_cells(self) -> list:
        """The effort table's cells."""
        return cells(self.effort_rows, EFFORT_COLUMNS)

    # ----- actions ----------------------------------------------------------------------------------
    def preannotate(self) -> None:
        """'Pre-annotate': the model's packages first (asked), then predict and push on a worker."""
        model = self.model
        if not self.can_preannotate or not self.panel.installer.ensure(preannotate_feature(model)):
            return
        store, strategy, limit, logic = self.panel.store, self.strategy, self.limit or None, self.logic
        device = self.panel.training.device  # the Training section's choice: cpu, cuda or mps
        self.status_text, self.skipped_text = _("Pre-annotating..."), ""
        self.tasks.start(lambda task: logic.preannotate(model, strategy=strategy, limit=limit, store=store,
                                                        progress=task.report, device=device),
                         self._preannotated, name="pre-annotate", title=_("Pre-annotation"), text=self.status_text)
        self.changed()

    def _preannotated(self, task) -> None:
        """The pre-annotation ended (main thread): what was pushed and skipped, or why not."""
        ok, summary = self.panel.result(task, _("The cases were not pre-annotated."))
        if ok:
            self.status_text = _("Round {round}: {pushed} prediction(s) pushed by {model}, {skipped} case(s) skipped.").format(
                round=summary["round"], pushed=len(summary["pushed"]), model=summary["model"]["name"],
                skipped=len(summary["skipped"]))
            self.skipped_text = "\n".join(f"{s['case_id']}: {s['reason']}" for s in summary["skipped"])
        else:
            self.status_text = _("Pre-annotation stopped: the predictions pushed so far are kept ('uncertainty' "
                                 "with a limit pushes only once every case is predicted); 'Pre-annotate' again "
                                 "skips the cases this model already pre-annotated.")
        self.changed()

    def report_effort(self) -> None:
        """'Effort': the table per round and annotator and its picture, computed on a worker."""
        if not self.can_report_effort or not self.panel.installer.ensure(EFFORT_REPORT):
            return
        store, logic = self.panel.store, self.logic
        picture = os.path.join(logic.defaultFolder("effort"), "effort.png")
        self.effort_text = message = _("Reading the effort records...")  # translated here, on the main thread
        self.tasks.start(lambda task: logic.effortReport(picture, store=store,
                                                         progress=lambda f, _m=None: task.report(f, message)),
                         self._reported, name="effort", title=_("Effort"), text=self.effort_text)
        self.changed()

    def _reported(self, task) -> None:
        """The effort report ended (main thread): its rows and picture, or why not."""
        ok, report = self.panel.result(task, _("The effort could not be read."))
        if ok:
            self.effort_rows, self.effort_picture = report["table"], report["picture"] or ""
            self.effort_text = (_("{cases} case(s) with effort records.").format(cases=len(report["cases"]))
                                if report["cases"] else _("No effort records yet (they come with versions "
                                                          "pushed from the DICOM Team Annotate panel)."))
        else:
            self.effort_text = _("The effort could not be read.")
        self.changed()
