"""The DicomTeamAnnotate panel's 'Add cases from DICOMweb' logic, headless, against a real Orthanc.

Orthanc (DICOMweb plugin, authentication on) runs on 127.0.0.1 as in the PACS tests
(pacs_orthanc.py: skipped without Orthanc, failing under CI); the logic runs in a fresh
interpreter (gui_support.py). The widget itself needs the Qt application: DicomTeamAnnotateTest.
"""
from __future__ import annotations

import pydicom
import pytest
from gui_support import run_scenario
from pacs_orthanc import PASSWORD, USER, start_orthanc

pytest.importorskip("dicomweb_client")
pytestmark = pytest.mark.filterwarnings("ignore:.*person name:UserWarning")

SLICES = 12


@pytest.fixture(scope="module")
def orthanc_with_two_patients(tmp_path_factory):
    """Orthanc holding two small phantom CT series, patients GUI-A and GUI-B."""
    from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
    from DicomTeamAnnotateLib.pacs import dicomweb as dw

    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        folder = tmp_path_factory.mktemp("phantoms")
        for seed, patient in enumerate(("GUI-A", "GUI-B")):
            phantom = make_phantom(seed=seed, shape=(SLICES, 24, 24), patient_id=patient)
            files = write_phantom_dicom(phantom, folder / patient)
            dw.stow(server.client(), [pydicom.dcmread(f) for f in files])
        yield server
    finally:
        server.stop()


def test_panel_logic_adds_cases_from_dicomweb(orthanc_with_two_patients, tmp_path):
    server = orthanc_with_two_patients
    out = run_scenario("dicomteamannotate_dicomweb", tmp_path, server.url, USER, PASSWORD,
                       env={"DICOMTEAM_HOME": str(tmp_path / "home"), "DICOMTEAM_CACHE": str(tmp_path / "cache")})
    # bad input and refused credentials: clear errors, nothing added
    assert out["blank_project"].startswith("ValueError") and "project folder" in out["blank_project"]
    assert out["server_as_project"].startswith("ValueError")
    assert out["bad_url"].startswith("PacsError") and "bad DICOMweb URL" in out["bad_url"]
    assert out["wrong_password"].startswith("PacsError") and "refused the credentials" in out["wrong_password"]
    assert out["no_match"].startswith("PacsError") and "no image series" in out["no_match"]
    assert out["cases_after_errors"]

    # Cancel (a TaskCancelled from the progress report) adds no partial case; the next import resumes
    assert out["cancelled"] == "cancelled" and out["cases_after_cancel"]
    assert out["resumed"] == [["added", "GUI-A", SLICES - 3, 3, False]]
    assert out["reports_last"] == [0, 1, SLICES, SLICES] and out["reports_count"] == SLICES - 3

    # reference mode records the PACS location; a rerun (password from the environment) skips both
    assert out["referenced"] == [["added", "GUI-B", True]] and out["reference_recorded"]
    assert out["rerun"] == {"added": 0, "skipped": ["GUI-A", "GUI-B"]}
    assert out["worklist_new"] == ["GUI-A", "GUI-B"] and out["worklist_ids_match"]
