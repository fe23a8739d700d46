"""The base of every panel model: what a panel section shows and does, without Qt.

A panel model holds the section's inputs (what the user typed or picked), its outputs (texts,
table rows, which buttons can be used now) and its actions (what a click starts). It gets its
collaborators injected: the module's logic, a ``TaskRunner`` for background work, the UI services
(dialogs, status line, settings, clocks: ``slicer/ui.py`` in Slicer) and an ``Installer`` for
first-use packages. After each change it calls ``changed()``; the Qt widget listens and copies the
outputs to its widgets, and forwards each widget signal to an input or an action. Tests drive the
models directly (and through the widgets inside the Slicer harness).
"""
from __future__ import annotations


class Notifier:
    """``on_change(callback)`` and ``changed()``: how a panel model tells its widget to refresh."""

    def __init__(self):
        self._listeners = []

    def on_change(self, callback) -> None:
        self._listeners.append(callback)

    def changed(self) -> None:
        for callback in list(self._listeners):
            callback()


class Section:
    """One section of a panel: it reaches the shared collaborators through ``self.panel``."""

    def __init__(self, panel):
        self.panel = panel

    @property
    def logic(self):
        return self.panel.logic

    @property
    def ui(self):
        return self.panel.ui

    @property
    def tasks(self):
        return self.panel.tasks

    @property
    def busy(self) -> bool:
        return self.panel.tasks.busy

    def changed(self) -> None:
        self.panel.changed()


def table_rows(items, columns) -> list[tuple]:
    """Rows of strings for a table: ``columns`` are callables of one item."""
    return [tuple(str(column(item)) for column in columns) for item in items]
