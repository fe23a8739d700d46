"""The Training section of the TrainBridge panel: start, attach, cancel, resume a job, and its live view.

A training job is a detached process that outlives Slicer (TrainBridgeLib.jobs.runner): starting it
only writes its folder and spawns the supervisor, so it happens on the main thread; a clock then
re-reads the job's files (state, epoch, losses, validation Dice, the curves PNG, the log tail) every
JOB_POLL_MS. Cancelling waits for the processes to end, so it runs on a worker. A finished job's
test-set evaluation is loaded into the Evaluation section.
"""
from __future__ import annotations

import os

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section
from TrainBridgeLib.backends.registry import BACKENDS
from TrainBridgeLib.requirements import TRAINING

JOB_POLL_MS = 2000  # the job's files are re-read this often while it runs
DEVICES = ("cpu", "cuda", "mps")
DATASET_FILE = "dataset.json"


class TrainingSection(Section):
    """The training job: its settings, its controls and what it reports."""

    def __init__(self, panel):
        """No job followed yet; a MONAI network on the CPU by default."""
        super().__init__(panel)
        self.dataset_path = ""
        self.backend = "monai"
        self.arch = "segresnet"
        self.device = "cpu"
        self.job_folder = self.logic.defaultFolder("jobs", "job1")
        self.status_text = ""
        self.state = None
        self.epoch = 0
        self.num_epochs = 0
        self.curves_path = ""
        self.curves_stamp = None  # the curves PNG's modification time (the widget reloads it when it changes)
        self.log_text = ""
        self._clock = panel.ui.clock(JOB_POLL_MS, self.poll)

    # ----- choices and inputs ---------------------------------------------------------------------
    @staticmethod
    def backend_choices() -> list[tuple[str, str]]:
        """(key, text) of the training backends."""
        return [(b, b) for b in BACKENDS]

    def arch_choices(self) -> list[tuple[str, str]]:
        """(key, text) of the MONAI networks."""
        return [(a, a) for a in self.logic.architectures()]

    @staticmethod
    def device_choices() -> list[tuple[str, str]]:
        """(key, text) of the devices."""
        return [(d, d) for d in DEVICES]

    def set_dataset(self, path) -> None:
        """The exported dataset folder (DatasetXXX_Name) to train on."""
        self.dataset_path = str(path or "")
        self.changed()

    def set_backend(self, backend) -> None:
        """'monai' or 'nnunet'."""
        self.backend = str(backend)
        self.changed()

    def set_arch(self, arch) -> None:
        """A MONAI network of ``arch_choices``."""
        self.arch = str(arch)

    def set_device(self, device) -> None:
        """'cpu', 'cuda' or 'mps'."""
        self.device = str(device)

    def set_job_folder(self, path) -> None:
        """The job's folder (a new job is written there; attach reads it)."""
        self.job_folder = str(path or "")
        self.changed()

    # ----- outputs --------------------------------------------------------------------------------
    @property
    def job(self):
        """The job followed (TrainBridgeLib.jobs.runner.Job) or None."""
        return self.logic.job

    @property
    def running(self) -> bool:
        """The followed job's processes run (as of the last poll)."""
        return self.state in ("created", "starting", "running")

    @property
    def arch_enabled(self) -> bool:
        """The network applies to the chosen backend."""
        return self.backend == "monai"

    @property
    def can_start(self) -> bool:
        """'Start training' can be used now: an exported dataset, no job of this panel running."""
        return (bool(self.dataset_path) and os.path.isfile(os.path.join(self.dataset_path, DATASET_FILE))
                and bool(self.job_folder) and not self.running and not self.busy)

    @property
    def can_attach(self) -> bool:
        """'Attach' can be used now: the folder holds a job."""
        return bool(self.job_folder) and self.logic.isJobFolder(self.job_folder) and not self.busy

    @property
    def can_cancel(self) -> bool:
        """'Cancel' can be used now."""
        return self.job is not None and self.running and not self.busy

    @property
    def can_resume(self) -> bool:
        """'Resume' can be used now: a job that stopped before its end."""
        return self.job is not None and self.state in ("cancelled", "failed", "lost") and not self.busy

    # ----- actions --------------------------------------------------------------------------------
    def start(self) -> None:
        """'Start training': the backend's packages first (asked), then a detached job, polled from now on."""
        if not self.can_start or not self.panel.installer.ensure(TRAINING[self.backend]):
            return
        epochs = self.panel.parameter("epochs", 50)
        try:
            with self.ui.busy():
                self.logic.startTraining(self.dataset_path, self.job_folder, backend=self.backend, arch=self.arch,
                                         epochs=epochs, device=self.device)
        except (ValueError, OSError) as exc:
            self.ui.error(_("Could not start the training: {error}").format(error=exc))
            return
        self._follow()

    def attach(self) -> None:
        """'Attach': follow the job in the folder (after restarting Slicer, say)."""
        try:
            self.logic.attachJob(self.job_folder)
        except (FileNotFoundError, ValueError, OSError) as exc:
            self.ui.error(_("No training job there: {error}").format(error=exc))
            return
        self._follow()

    def cancel_job(self) -> None:
        """'Cancel': after the user confirms, stop the job's processes (on a worker: it waits for them)."""
        job = self.job
        if not self.can_cancel or not self.ui.confirm(_("Stop the training job?")):
            return

        def done(task):
            """The processes ended (main thread): the job's state now."""
            self.panel.result(task, _("The job could not be cancelled."))
            self.poll()

        self.status_text = _("Stopping the job...")
        self.tasks.start(lambda task: job.cancel(), done, name="cancel job")
        self.changed()

    def resume_job(self) -> None:
        """'Resume': restart an interrupted job where it stopped."""
        if not self.can_resume:
            return
        try:
            self.job.resume()
        except (ValueError, OSError) as exc:
            self.ui.error(_("Could not resume the job: {error}").format(error=exc))
            return
        self._follow()

    def _follow(self) -> None:
        """Show the job's state now and poll it while it runs."""
        self.curves_stamp = None
        self.poll()
        if self.running:
            self._clock.start()

    def poll(self) -> None:
        """The job clock (main thread): state, epoch, losses, Dice, curves, log; at the end, the evaluation."""
        job = self.job
        if job is None:
            self._clock.stop()
            return
        try:
            status = self.logic.jobStatus()
        except (OSError, ValueError) as exc:  # job.json being replaced at this instant, or removed
            self.status_text = _("Job status not readable: {error}").format(error=exc)
            self.changed()
            return
        self.state = status["state"]
        self.status_text = self.logic.statusText(status)
        epoch, total = status.get("epoch"), status.get("num_epochs")
        self.num_epochs = int(total or 0)
        self.epoch = int(epoch + 1) if epoch is not None else 0
        path = status.get("curves_png") or ""
        stamp = os.stat(path).st_mtime_ns if path and os.path.isfile(path) else None
        self.curves_path, self.curves_stamp = path, stamp
        self.log_text = job.log_tail(15)
        if self.state in self.logic.finalStates():
            self._clock.stop()
            evaluation = status["outputs"].get("evaluation")
            if self.state == "finished" and evaluation and os.path.isfile(os.path.join(evaluation, "metrics.json")):
                self.panel.evaluation.load(evaluation)
        self.changed()

    def stop(self) -> None:
        """The panel closes: polling stops (the job keeps running; attach later)."""
        self._clock.stop()
