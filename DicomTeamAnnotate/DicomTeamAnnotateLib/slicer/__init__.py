"""The only code of the core library that touches Slicer (MRML, Qt, pip inside Slicer).

- ``mrml``: node <-> (array, Geometry) conversions (real MRML through slicer-core in tests).
- ``packages``: a feature's Python requirements, installed at first use after the user agrees.
- ``task_runner``: one background task at a time for a module panel.
- ``panel_*``: the DicomTeamAnnotate panel's sections.
"""
