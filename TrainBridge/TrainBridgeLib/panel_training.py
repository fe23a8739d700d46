"""The TrainBridge panel's Training section (TrainingJobSection, a mixin of the widget).

Start a training job (a detached process that outlives Slicer), attach to one from its folder,
cancel or resume it; while followed, the job's files are re-read by the widget's job timer: state,
epoch, losses, validation Dice, the curves PNG and the log tail. A finished job's test-set
evaluation is loaded into the Evaluation section.
"""
import os

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner


class TrainingJobSection:
    """The panel's Training section: start, attach, cancel, resume, and the live view of the job."""

    def _setupTrainingSection(self) -> None:
        """Called from setup(): backends, networks and devices; the job folder and the job buttons."""
        for backend in ("monai", "nnunet"):
            self.ui.backendComboBox.addItem(backend, backend)
        for arch in self.logic.architectures():
            self.ui.archComboBox.addItem(arch, arch)
        for device in ("cpu", "cuda", "mps"):
            self.ui.deviceComboBox.addItem(device, device)
        self.ui.backendComboBox.connect("currentIndexChanged(int)", self._updateButtonStates)
        self.ui.datasetPathLineEdit.connect("currentPathChanged(QString)", self._updateButtonStates)
        self.ui.jobFolderLineEdit.connect("currentPathChanged(QString)", self._updateButtonStates)
        self.ui.jobFolderLineEdit.currentPath = self.logic.defaultFolder("jobs", "job1")
        self.ui.startTrainingButton.connect("clicked(bool)", self.onStartTraining)
        self.ui.attachJobButton.connect("clicked(bool)", self.onAttachJob)
        self.ui.cancelJobButton.connect("clicked(bool)", self.onCancelJob)
        self.ui.resumeJobButton.connect("clicked(bool)", self.onResumeJob)

    def onStartTraining(self) -> None:
        """Called by 'Start training': a background job (a process that outlives Slicer), then poll it."""
        import slicer
        from slicer.i18n import tr as _

        if not self._ensureRequirements():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start the training."), waitCursor=True):
            self.logic.startTraining(self.ui.datasetPathLineEdit.currentPath, self.ui.jobFolderLineEdit.currentPath,
                                     backend=self.ui.backendComboBox.currentData, arch=self.ui.archComboBox.currentData,
                                     epochs=self._parameterNode.epochs, device=self.ui.deviceComboBox.currentData)
            self.ui.jobFolderLineEdit.addCurrentPathToHistory()
            self._startPolling()

    def onAttachJob(self) -> None:
        """Called by 'Attach': follow the job in the chosen folder (e.g. after restarting Slicer)."""
        import slicer
        from slicer.i18n import tr as _

        with slicer.util.tryWithErrorDisplay(_("No training job there."), waitCursor=True):
            self.logic.attachJob(self.ui.jobFolderLineEdit.currentPath)
            self._startPolling()

    def _startPolling(self) -> None:
        """Show the job's state now and every JOB_POLL_MS."""
        self._curvesStamp = None
        self._pollJob()
        self._jobTimer.start()

    def onCancelJob(self) -> None:
        """Called by 'Cancel': kill the job's process tree (on a worker: it waits for the processes)."""
        import slicer
        from slicer.i18n import tr as _

        if self.logic.job is None or not slicer.util.confirmOkCancelDisplay(_("Stop the training job?")):
            return
        job = self.logic.job

        def onDone(task):
            TaskRunner.result(task, _("The job could not be cancelled."))
            self._pollJob()

        self._tasks.start(lambda task: job.cancel(), onDone, name="cancel job")

    def onResumeJob(self) -> None:
        """Called by 'Resume': restart an interrupted job where it stopped."""
        import slicer
        from slicer.i18n import tr as _

        with slicer.util.tryWithErrorDisplay(_("Could not resume the job."), waitCursor=True):
            self.logic.job.resume()
            self._startPolling()

    def _pollJob(self) -> None:
        """Called by the job timer: state, epoch, losses, Dice, the curves, the log tail."""
        from slicer.i18n import tr as _

        job = self.logic.job
        if job is None:
            self._jobTimer.stop()
            return
        try:
            status = self.logic.jobStatus()
        except (OSError, ValueError) as exc:  # job.json being replaced at this instant, or removed
            self.ui.jobStatusLabel.text = _("Job status not readable: {error}").format(error=exc)
            return
        self.ui.jobStatusLabel.text = self.logic.statusText(status)
        epoch, total = status.get("epoch"), status.get("num_epochs")
        self.ui.epochProgressBar.maximum = int(total or 0) or 1
        self.ui.epochProgressBar.value = int(epoch + 1) if epoch is not None else 0
        self._showCurves(status.get("curves_png"))
        self.ui.logPlainTextEdit.setPlainText(job.log_tail(15))
        if status["state"] in self.logic.finalStates():
            self._jobTimer.stop()
            evaluation = status["outputs"].get("evaluation")
            if status["state"] == "finished" and evaluation and os.path.isfile(os.path.join(evaluation, "metrics.json")):
                self.ui.evaluationFolderLineEdit.currentPath = evaluation
                self.onLoadEvaluation()
        self._updateButtonStates()

    def _showCurves(self, path) -> None:
        """Show the curves PNG when it changed since the last poll."""
        import qt

        if not path or not os.path.isfile(path):
            return
        stamp = os.stat(path).st_mtime_ns
        if stamp == self._curvesStamp:
            return
        pixmap = qt.QPixmap(path)
        if pixmap.isNull():
            return  # being rewritten right now: next poll
        self._curvesStamp = stamp
        width = max(200, self.ui.curvesLabel.width)
        self.ui.curvesLabel.setPixmap(pixmap.scaledToWidth(width, qt.Qt.SmoothTransformation))
