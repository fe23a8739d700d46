"""The Model export section of the TrainBridge panel: the trained MONAI model as ONNX or TorchScript.

The export and its check against PyTorch run on a worker (TrainBridgeLogic.exportModel); the format's
packages are installed first (ONNX also needs onnx and ONNX Runtime).
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section
from TrainBridgeLib.requirements import MODEL_EXPORT


class ModelSection(Section):
    """The model format, the output folder and 'Export model'."""

    def __init__(self, panel):
        """ONNX into Slicer's cache folder by default."""
        super().__init__(panel)
        self.format = "onnx"
        self.output_folder = self.logic.defaultFolder("models")
        self.status_text = ""

    @staticmethod
    def format_choices() -> list[tuple[str, str]]:
        """(key, text) of the export formats."""
        return [(f, f) for f in MODEL_EXPORT]

    def set_format(self, fmt) -> None:
        """'onnx' or 'torchscript'."""
        self.format = str(fmt)

    def set_output_folder(self, path) -> None:
        """Where the model and its manifest are written."""
        self.output_folder = str(path or "")
        self.changed()

    @property
    def can_export(self) -> bool:
        """'Export model' can be used now: the Training section's job folder holds a job."""
        job_folder = self.panel.training.job_folder
        return (bool(job_folder) and bool(self.output_folder) and self.logic.isJobFolder(job_folder)
                and not self.busy)

    def export(self) -> None:
        """'Export model': the format's packages first (asked), then export and check on a worker."""
        if not self.can_export or not self.panel.installer.ensure(MODEL_EXPORT[self.format]):
            return
        job_dir, fmt, out_dir, logic = self.panel.training.job_folder, self.format, self.output_folder, self.logic
        # the export reports no progress: it cannot be interrupted, and once written it is reported as written
        self.status_text = _("Exporting and checking the model...")
        self.tasks.start(lambda task: logic.exportModel(job_dir, fmt, out_dir), self._exported, name="export model",
                         title=_("Model export"), text=self.status_text)
        self.changed()

    def _exported(self, task) -> None:
        """The export ended (main thread): where the manifest is, or why not."""
        ok, manifest = self.panel.result(task, _("The model was not exported."))
        if ok:
            self.status_text = _("Exported: {manifest}").format(manifest=manifest)
        else:
            self.status_text = _("The model was not exported.")
        self.changed()
