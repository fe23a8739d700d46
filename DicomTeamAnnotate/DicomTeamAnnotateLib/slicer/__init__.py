"""The Slicer side of the core library: panel models (Qt-free), the MRML adapter, first-use installs.

Everything here imports in plain Python; Slicer, Qt and MRML are imported inside the functions that
need them, and called on the main thread only.

- ``panel``: the base of every panel model (state, ``changed()`` notifications); ``tasks``: one
  background task at a time for a panel (worker thread, main-thread polling, progress, Cancel).
- ``ui``: the panels' UI services in Slicer (dialogs, status line, settings, a clock, a progress
  dialog); ``qt_binding``: helpers the module widgets use to copy panel state into Qt widgets;
  ``i18n``: ``_()`` for the Qt-free files.
- ``packages``: a feature's Python requirements, installed at first use after the user agrees
  (``Installer``; ``require`` for the module logics' methods).
- ``mrml``: node <-> (array, Geometry) conversions, the only code that touches Slicer nodes.
- ``connection``: the project store the hub module is connected to, for the other modules.
- ``hub_panel``: the DicomTeamAnnotate panel, made of ``project_panel``, ``worklist_panel``,
  ``case_panel``, ``dicom_panel``, ``dicomweb_panel`` and ``view_panel``.
"""
