"""The TrainBridge panel without Qt: four sections sharing the logic, one task runner and the UI services.

    panel = TrainBridgePanel(logic, ui, installer, parameters)  # ui: the core's SlicerUi in Slicer
    panel.export.set_source("nodes"); panel.export.add_node_case(); ...; panel.export.export()
    panel.training.start()            # a detached job, polled on the main thread
    panel.evaluation.show_case(); panel.evaluation.set_mode("overlaid"); panel.evaluation.jump()
    panel.model.export()
    panel.loop.preannotate(); panel.loop.report_effort()   # the annotation loop: predictions, effort

The module widget (TrainBridge.py) builds one, forwards each widget signal to an input or an action
and copies the outputs to the widgets on ``on_change``; the tests drive it through the widgets. The
project store is the hub module's connection (``DicomTeamAnnotateLib.slicer.connection``), read on the
main thread and handed to the workers.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.panel import Notifier
from DicomTeamAnnotateLib.slicer.tasks import TaskRunner
from TrainBridgeLib.evaluation_panel import EvaluationSection
from TrainBridgeLib.export_panel import ExportSection
from TrainBridgeLib.loop_panel import LoopSection
from TrainBridgeLib.model_panel import ModelSection
from TrainBridgeLib.training_panel import TrainingSection


class TrainBridgePanel(Notifier):
    """Export, Training, Evaluation (with the comparison view), Model export and Annotation loop sections."""

    def __init__(self, logic, ui, installer, parameters=None):
        """``parameters``: the module's wrapped parameter node (case nodes, dataset name and id, folds, epochs)."""
        super().__init__()
        self.logic, self.ui, self.installer = logic, ui, installer
        self.parameters = parameters
        self.tasks = TaskRunner(ui, on_busy_changed=self.changed)
        self.export = ExportSection(self)
        self.training = TrainingSection(self)
        self.evaluation = EvaluationSection(self)
        self.model = ModelSection(self)
        self.loop = LoopSection(self)

    def set_parameters(self, parameters) -> None:
        """The widget (re)connected a parameter node (or None while the scene closes)."""
        self.parameters = parameters
        self.changed()

    def parameter(self, name: str, default):
        """A parameter node value (main thread), ``default`` while there is no parameter node."""
        return getattr(self.parameters, name) if self.parameters is not None else default

    @property
    def store(self):
        """The project store the hub module is connected to, or None (main thread)."""
        return self.logic.projectStore(required=False)

    def result(self, task, failure_text: str):
        """(ok, value) of a finished task; a failure is shown to the user, a cancel only in the status line."""
        return self.tasks.result(task, failure_text)

    def leave(self) -> None:
        """The user opens another module: the views the comparison changed are given back."""
        self.evaluation.leave()

    def scene_closing(self) -> None:
        """The scene is about to close: node cases and the comparison's nodes go with it."""
        self.export.scene_closing()
        self.evaluation.scene_closing()
        self.changed()

    def stop(self) -> None:
        """The panel is going away (application exit): polling stops, a task is cancelled (a job keeps running)."""
        self.training.stop()
        self.tasks.stop()
