"""The modules' own in-Slicer tests (XTest classes), where they need no Slicer application, run here
headless, so that the code ctest runs inside Slicer is exercised in CI too (see gui_support.py)."""
from __future__ import annotations

from gui_support import run_scenario


def test_in_slicer_tests_that_need_no_application_pass():
    out = run_scenario("xtests_without_application")
    assert out == {"DicomTeamAnnotate.test_RejectedFilesAreReported": "passed",
                   "TrainBridge.test_ExportFromNodes": "passed"}, out
