"""What the scenarios share: the log and status bar read back, waiting for a panel's task, the hub connected,
a Segment Editor on a segmentation (as its module builds one)."""
from __future__ import annotations

import logging


class LogCapture(logging.Handler):
    """Every log record from now on, as (level name, message)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append((record.levelname, record.getMessage()))


def capture_log() -> LogCapture:
    handler = LogCapture()
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    return handler


def errors(log, since=0) -> list:
    return [m for level, m in log.records[since:] if level == "ERROR"]


def status_messages() -> list:
    import slicer

    return list(slicer.app.mainWindow.statusBar().messages)


def questions() -> list:
    """The texts of the message boxes shown so far that asked something (OK/Cancel, Yes/No)."""
    import qt

    return [b["text"] for b in qt.QMessageBox.shown if b["icon"] == qt.QMessageBox.Question]


def wait(app, panel, timeout=300) -> None:
    """Run the event loop until the panel's task has ended (its on_done ran)."""
    app.process_events(until=lambda: not panel.tasks.busy, timeout=timeout)
    app.process_events()


def connect_hub(app, project, user, work):
    """DICOM Team Annotate connected to ``project`` as ``user`` (a folder project: no token); its widget."""
    hub = app.panel("DicomTeamAnnotate")
    hub.ui.storeLocationLineEdit.type_text(str(project))
    hub.ui.userLineEdit.type_text(user)
    hub.ui.workFolderLineEdit.currentPath = str(work)
    hub.ui.connectButton.click()
    app.process_events(until=lambda: hub.panel.project.connected and not hub.panel.tasks.busy, timeout=120)
    return hub


def segment_editor_on(seg, volume, segment_id, effect=None):
    """A Segment Editor widget and its editor node on ``seg`` / ``volume``, ``segment_id`` selected and
    ``effect`` (a name) active; (widget, node)."""
    import slicer

    editor = slicer.qMRMLSegmentEditorWidget()
    editor.setMRMLScene(slicer.mrmlScene)
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor.setMRMLSegmentEditorNode(node)
    editor.setSegmentationNode(seg)
    editor.setSourceVolumeNode(volume)
    node.SetSelectedSegmentID(segment_id)
    if effect:
        editor.setActiveEffectByName(effect)
    return editor, node
