"""Scenario: the panel's 'Add cases from DICOMweb' logic against a real Orthanc (see test_gui_dicomteamannotate_dicomweb.py).

argv: TMP_DIR URL USER PASSWORD. The Orthanc holds patients GUI-A and GUI-B (stored by the test).
Bad input and refused credentials add nothing; an import cancelled at its 3rd instance (the way the
panel's Cancel stops it: a TaskCancelled from the progress report) adds nothing and the next one
resumes from the cache; reference mode; a rerun skips what exists; the worklist shows the cases.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("DicomTeamAnnotate")

import store_support as ss  # noqa: E402

from DicomTeamAnnotateLib.core.tasks import BackgroundTask, TaskCancelled  # noqa: E402
from DicomTeamAnnotateLib.store.folder import FolderCatalog  # noqa: E402
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue  # noqa: E402

tmp, url, user, password = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
project, cache = tmp / "project", tmp / "cache"
ss.make_team_project(project)
logic = M.DicomTeamAnnotateLogic()
out = {}


def case_ids():
    catalog = FolderCatalog(project)
    catalog.refresh()
    return sorted(c["case_id"] for c in catalog.cases())


def failure(**kwargs):
    """The error of an import that must fail: 'Type: message'."""
    args = {"projectDir": project, "url": url, "user": user, "password": password, "cacheDir": cache, **kwargs}
    try:
        logic.importFromDicomweb(**args)
        return "accepted"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


before = case_ids()
out["blank_project"] = failure(projectDir="  ")
out["server_as_project"] = failure(projectDir="https://team.example.org")
out["bad_url"] = failure(url="ftp://pacs.example.org")
out["wrong_password"] = failure(password="not-the-password", patient="GUI-A")
out["no_match"] = failure(patient="NOBODY")
out["cases_after_errors"] = case_ids() == before

# --- Cancel at the 3rd instance, exactly as the panel's dialog does it ----------------------------
def cancelling_import(task):
    def progress(seriesIndex, seriesCount, done, total):
        if done == 3:
            task.cancel()  # what TaskRunner.cancel() does from the main thread
        task.report(done / total, "")  # raises TaskCancelled once cancelled

    return logic.importFromDicomweb(f"  {project}  ", f" {url}/ ", f" {user} ", password, patient=" GUI-A ",
                                    study="", series="", progress=progress, cacheDir=cache)


task = BackgroundTask(cancelling_import, name="DICOMweb import").start()
try:
    task.result(timeout=300)
    out["cancelled"] = "not cancelled"
except TaskCancelled:
    out["cancelled"] = "cancelled"
out["cases_after_cancel"] = case_ids() == before

# --- the next import resumes from the cache -------------------------------------------------------
reports = []
resumed = logic.importFromDicomweb(project, url, user, password, patient="GUI-A", cacheDir=cache,
                                   progress=lambda *args: reports.append(args))
out["resumed"] = [(r["status"], r["patient_id"], r["fetched"], r["skipped"], r["reference"]) for r in resumed["results"]]
out["reports_last"] = reports[-1] if reports else None
out["reports_count"] = len(reports)

# --- reference mode; then a rerun (password from $DICOMWEB_PASSWORD) skips both ---------------------
referenced = logic.importFromDicomweb(project, url, user, password, patient="GUI-B", reference=True, cacheDir=cache)
out["referenced"] = [(r["status"], r["patient_id"], r["reference"]) for r in referenced["added"]]
catalog = FolderCatalog(project)
catalog.refresh()
ref_case = catalog.case(referenced["added"][0]["case_id"])
out["reference_recorded"] = bool(ref_case.get("reference")) and referenced["added"][0]["series_uid"] in str(ref_case)
os.environ["DICOMWEB_PASSWORD"] = password
rerun = logic.importFromDicomweb(project, url, user, "", cacheDir=cache)  # no filter: every series
out["rerun"] = {"added": len(rerun["added"]), "skipped": sorted(r["patient_id"] for r in rerun["skipped"])}

# --- the worklist (what the panel refreshes) shows the new cases -----------------------------------
logic.queue = OfflineQueue(tmp / "queue")
logic.setStore(logic.connect(str(project), "rev")["store"])
rows = logic.worklistRows()
new = {r["case_id"]: r["patient_id"] for r in rows if r["case_id"] not in before}
out["worklist_new"] = sorted(new.values())
out["worklist_ids_match"] = sorted(new) == sorted(r["case_id"] for r in resumed["added"] + referenced["added"])
gui_support.emit(out)
