"""The Slicer side of the core library: panel models (Qt-free), the MRML adapter, first-use installs.

Everything here imports in plain Python; Slicer, Qt and MRML are imported inside the functions that
need them, and called on the main thread only.

Panel services:

- ``panel``: the base of every panel model (state, ``changed()`` notifications).
- ``tasks``: one background task at a time for a panel (worker thread, main-thread polling, progress, Cancel).
- ``ui``: the panels' UI services in Slicer (dialogs, status line, settings, a clock, a progress dialog).
- ``qt_binding``: helpers the module widgets use to copy panel state into Qt widgets.
- ``i18n``: ``_()`` for the Qt-free files.
- ``packages``: a feature's Python requirements, installed at first use after the user agrees
  (``Installer``; ``require()`` for the module logics' methods).

Slicer's scene and the other modules:

- ``mrml``: node <-> (array, Geometry) conversions, the only code that touches Slicer nodes.
- ``connection``: the project store the hub module is connected to, and the open case's effort, for the other modules.
- ``effort_observer``: what Slicer reports about the work on the open case (segment edits, view activity).

The DicomTeamAnnotate (hub) panel:

- ``hub_panel``: the panel, made of the six sections below, one task runner and the UI services.
- ``project_panel``: the Project section: connect, saved tokens, the offline banner, the queue.
- ``worklist_panel``: the Worklist and Versions sections.
- ``case_panel``: the Current case section: open, autosave drafts, push, submit, reopen.
- ``dicom_panel``: the Load DICOM section.
- ``dicomweb_panel``: the 'Add cases from DICOMweb' section (administrators of a folder project).
- ``view_panel``: the View section: window presets (or a custom level/width), three planes.
"""
