"""The corpus: files written by other tools than this project, made at test time (issue 11).

Nothing third-party is copied into the repository: each builder writes its file with an
independent writer, and the tests compare what the project reads (or writes) with an
independent reader called in the test.

- ``slicer_files``: Slicer's own storage node (slicer-core) with terminology entries and shared
  layers; the legacy layouts of Slicer 4.5 (SlicerRT's ITK writer) and 4.6-4.9 (teem's list axis).
- ``volume_files``: NRRD with pynrrd in each encoding, detached headers and byte skips written
  as teem documents them; NIfTI with nibabel (big-endian, qform only); label maps above 255
  (FreeSurfer's aparc+aseg values); damaged files.
- ``dicom_series``: classic CT/MR series written with pydicom and with SimpleITK/GDCM (axial,
  sagittal, oblique), 12-bit signed/unsigned, re-encoded in each transfer syntax pydicom writes.
- ``enhanced``: enhanced multi-frame MR and CT holding several frame types at one position.
- ``seg_files``: DICOM SEG of each flavour from dcmqi's converters and from highdicom.

``need(tool)`` skips a test when a writer or reader is not installed, and fails under CI.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def need_module(name: str):
    """Import ``name`` or skip (fail under CI, where the test extra is installed)."""
    try:
        return __import__(name)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required under CI (pip install -e .[test])")
        pytest.skip(f"{name} is not installed (test extra)")


def need_tool(name: str) -> str:
    """The path of a command-line tool (dcmqi's converters live beside the Python that runs the tests)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required under CI (the dcmqi package of the test extra)")
        pytest.skip(f"{name} is not installed (pip install dcmqi)")
    return found
