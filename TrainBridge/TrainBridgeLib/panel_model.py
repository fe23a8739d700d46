"""The TrainBridge panel's Model export section (ModelExportSection, a mixin of the widget).

The job's trained MONAI model as ONNX or TorchScript with a manifest, written and checked against
PyTorch on a worker by TrainBridgeLogic.exportModel.
"""

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner


class ModelExportSection:
    """The panel's Model export section."""

    def _setupModelExportSection(self) -> None:
        """Called from setup(): the model formats, the output folder, the export button."""
        for fmt in ("onnx", "torchscript"):
            self.ui.modelFormatComboBox.addItem(fmt, fmt)
        self.ui.modelOutputLineEdit.currentPath = self.logic.defaultFolder("models")
        self.ui.exportModelButton.connect("clicked(bool)", self.onExportModel)

    def onExportModel(self) -> None:
        """Called by 'Export model': ONNX or TorchScript with a manifest, on a worker."""
        from slicer.i18n import tr as _


        if not self._ensureRequirements():
            return
        jobDir, fmt = self.ui.jobFolderLineEdit.currentPath, self.ui.modelFormatComboBox.currentData
        outDir = self.ui.modelOutputLineEdit.currentPath

        def onDone(task):
            ok, manifest = TaskRunner.result(task, _("The model was not exported."))
            if ok:
                self.ui.modelStatusLabel.text = _("Exported: {manifest}").format(manifest=manifest)

        self._tasks.start(lambda task: self.logic.exportModel(jobDir, fmt, outDir), onDone, name="export model",
                          dialogTitle=_("Model export"), dialogText=_("Exporting and checking the model..."))
