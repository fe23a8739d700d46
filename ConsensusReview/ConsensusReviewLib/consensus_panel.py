"""The ConsensusReview panel without Qt: four sections sharing the logic, one task runner and the UI services.

    panel = ConsensusPanel(logic, ui, installer, parameters)   # ui: DicomTeamAnnotateLib.slicer.ui.SlicerUi in Slicer
    panel.inputs.set_source("nodes"); panel.inputs.set_nodes([n1, n2, n3]); panel.inputs.compute()
    ... the task ends on the main thread ...
    panel.results.choose_map("votes:liver"); panel.results.set_opacity(0.3)
    panel.adjudication.start(); panel.adjudication.publish()

The module widget (ConsensusReview.py) builds one, forwards each widget signal to an input or an
action and copies the outputs to the widgets on ``on_change``; the tests drive it through the widgets.
The project store is the hub module's connection (``DicomTeamAnnotateLib.slicer.connection``), read on
the main thread and handed to the workers.
"""
from __future__ import annotations

from ConsensusReviewLib.adjudication_panel import AdjudicationSection
from ConsensusReviewLib.inputs_panel import InputsSection
from ConsensusReviewLib.queue_panel import QueueSection
from ConsensusReviewLib.results_panel import ResultsSection
from DicomTeamAnnotateLib.slicer.panel import Notifier
from DicomTeamAnnotateLib.slicer.tasks import TaskRunner


class ConsensusPanel(Notifier):
    """Inputs (and method), Results, Review queue and Adjudication sections of the ConsensusReview module."""

    def __init__(self, logic, ui, installer, parameters=None):
        """``parameters``: the module's wrapped parameter node (thresholds, tolerance, map opacity, reference)."""
        super().__init__()
        self.logic, self.ui, self.installer = logic, ui, installer
        self.parameters = parameters
        self.tasks = TaskRunner(ui, on_busy_changed=self.changed)
        self.inputs = InputsSection(self)
        self.results = ResultsSection(self)
        self.queue = QueueSection(self)
        self.adjudication = AdjudicationSection(self)

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

    @property
    def connected(self) -> bool:
        """True when the hub module is connected to a project."""
        return self.store is not None

    def result(self, task, failure_text: str):
        """(ok, value) of a finished task; a failure is shown to the user, a cancel only in the status line."""
        return self.tasks.result(task, failure_text)

    def scene_closing(self) -> None:
        """The scene is about to close: the nodes of the last run and the adjudication node go with it."""
        self.results.forget_nodes()
        self.logic.adjudication = None
        self.changed()

    def stop(self) -> None:
        """The panel is going away (application exit): cancel a running task."""
        self.tasks.stop()
