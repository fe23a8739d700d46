"""The DicomTeamAnnotate panel without Qt: six sections sharing the logic, one task runner, the UI services.

    panel = HubPanel(logic, ui, installer)      # ui: slicer/ui.py's SlicerUi in Slicer
    panel.project.set_location("/data/project"); panel.project.set_user("alice"); panel.project.connect()
    panel.worklist.select_case("c1"); panel.case.open_selected(); ...; panel.case.push(submit=True)

The module widget builds one, forwards each widget signal to it and copies its outputs to the
widgets on ``on_change``; the tests drive it directly.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.case_panel import CaseSection
from DicomTeamAnnotateLib.slicer.dicom_panel import DicomSection
from DicomTeamAnnotateLib.slicer.dicomweb_panel import DicomWebSection
from DicomTeamAnnotateLib.slicer.panel import Notifier
from DicomTeamAnnotateLib.slicer.project_panel import ProjectSection
from DicomTeamAnnotateLib.slicer.tasks import TaskRunner
from DicomTeamAnnotateLib.slicer.view_panel import ViewSection
from DicomTeamAnnotateLib.slicer.worklist_panel import WorklistSection
from DicomTeamAnnotateLib.worklist.offline import is_offline_error


class HubPanel(Notifier):
    """Project, worklist, current case, Load DICOM, DICOMweb and View sections of the hub module."""

    def __init__(self, logic, ui, installer, parameters=None):
        super().__init__()
        self.logic, self.ui, self.installer = logic, ui, installer
        self.settings = ui.settings()
        self.parameters = parameters  # the module's wrapped parameter node (volume, window, autosave)
        self.tasks = TaskRunner(ui, on_busy_changed=self.changed)
        self.project = ProjectSection(self)
        self.worklist = WorklistSection(self)
        self.case = CaseSection(self)
        self.dicom = DicomSection(self)
        self.dicomweb = DicomWebSection(self)
        self.view = ViewSection(self)

    def restore(self) -> None:
        """Called once the widgets exist: the user's last choices from Slicer's settings."""
        self.project.restore()
        self.dicomweb.restore()

    def set_parameters(self, parameters) -> None:
        self.parameters = parameters
        self.changed()

    def result(self, task, failure_text: str):
        """The task's (ok, value); a store that cannot be reached shows the offline banner."""
        ok, value = self.tasks.result(task, failure_text)
        if not ok and is_offline_error(value):
            self.project.set_offline(True, str(value))
        return ok, value

    def stop(self) -> None:
        """The panel is going away (application exit): save the draft, stop clocks and tasks."""
        self.case.stop()
        self.project.stop()
        self.worklist.stop()
        self.tasks.stop()
