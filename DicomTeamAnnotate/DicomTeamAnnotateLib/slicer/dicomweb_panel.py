"""The 'Add cases from DICOMweb' section of the DicomTeamAnnotate panel (administrators of a folder project).

Query a PACS, retrieve the matching series and add each as a case, copied or by reference. The
DICOMweb password is kept only in the OS keyring (once the server accepted it), never in Slicer's
settings or the scene.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.core.tasks import TaskCancelled
from DicomTeamAnnotateLib.dicom.headers import refresh_decoders
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import DICOM_DECODERS
from DicomTeamAnnotateLib.slicer.panel import Section
from DicomTeamAnnotateLib.slicer.project_panel import SETTINGS, to_bool

RESULT_COLUMNS = (_("Case"), _("Status"), _("Patient"), _("Series"))


class DicomWebSection(Section):
    """Import series from a DICOMweb server as cases of a folder project."""

    def __init__(self, panel):
        super().__init__(panel)
        self.project_dir = ""
        self.url = ""
        self.user = ""
        self.password = ""
        self.remember_password = False
        self.patient = self.study = self.series = ""
        self.reference = False
        self.summary_text = ""
        self.results: list[dict] = []

    def restore(self) -> None:
        settings = self.panel.settings
        self.url = str(settings.value(SETTINGS + "DicomwebUrl", "") or "")
        self.user = str(settings.value(SETTINGS + "DicomwebUser", "") or "")
        self.reference = to_bool(settings.value(SETTINGS + "DicomwebReference", False))
        project = str(settings.value(SETTINGS + "DicomwebProject", "") or "")
        location = self.panel.project.location
        if not project and location and not self.logic.isServer(location):
            project = location  # an administrator connected to the project folder itself
        self.project_dir = project
        self.changed()

    def set(self, **fields) -> None:
        """Inputs by name: project_dir, url, user, password, remember_password, patient, study, series, reference."""
        for name, value in fields.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            setattr(self, name, value)
        self.changed()

    @property
    def can_import(self) -> bool:
        return bool(self.project_dir.strip()) and bool(self.url.strip()) and not self.busy

    def result_cells(self) -> list[tuple]:
        status_text = {"added": _("added"), "exists": _("skipped: already in the project")}
        out = []
        for r in self.results:
            series = " ".join(t for t in (r.get("modality") or "", r.get("description") or "") if t) or r["series_uid"]
            status = status_text.get(r["status"], r["status"])
            if r["status"] == "added" and r.get("reference"):
                status += " " + _("(reference)")
            out.append((r["case_id"], status, r.get("patient_id") or "", series))
        return out

    def run_import(self) -> None:
        """'Import': query, retrieve and add cases on a worker thread, with progress and Cancel."""
        if not self.can_import:
            return
        project_dir, url, user = self.project_dir.strip(), self.url.strip(), self.user.strip()
        password, reference = self.password, self.reference
        filters = {"patient": self.patient, "study": self.study, "series": self.series}
        settings = self.panel.settings
        settings.setValue(SETTINGS + "DicomwebUrl", url)
        settings.setValue(SETTINGS + "DicomwebUser", user)
        settings.setValue(SETTINGS + "DicomwebProject", project_dir)
        settings.setValue(SETTINGS + "DicomwebReference", reference)
        if not self.panel.installer.ensure(DICOM_DECODERS):
            return
        refresh_decoders()  # pydicom looks for decoders once, at import: see the ones just installed
        querying = _("Querying {url}...").format(url=url)  # translated here; the worker only formats
        template = _("Series {series} of {count}: {done} of {total} instances")

        def work(task):
            task.report(None, querying)

            def progress(series_index, series_count, done, total):
                # each report is also where Cancel stops the work (whole instances stay in the cache)
                fraction = (series_index + (done / total if total else 0)) / max(1, series_count)
                task.report(fraction, template.format(series=series_index + 1, count=series_count, done=done,
                                                      total=total))

            return self.logic.importFromDicomweb(project_dir, url, user, password, reference=reference,
                                                 progress=progress, **filters)

        if self.tasks.start(work, lambda task: self._imported(task, url, user, password), name="DICOMweb import",
                            title=_("Adding cases from DICOMweb"), text=querying):
            self.summary_text = querying
            self.changed()

    def _imported(self, task, url, user, password) -> None:
        ok, result = self.tasks.result(task, _("The DICOMweb import stopped."))
        if not ok:
            if isinstance(result, TaskCancelled):
                self.summary_text = _("Import cancelled. Cases added before stay; the instances already retrieved "
                                      "stay in the local cache, so the next import resumes.")
            else:
                self.summary_text = _("Import failed: {error}").format(error=result)
            self.panel.worklist.refresh()  # cases added before the failure are in the project
            self.changed()
            return
        added, skipped = result["added"], result["skipped"]
        self.summary_text = _("{added} case(s) added, {skipped} series already in the project (skipped), in "
                              "{seconds:.1f} s.").format(added=len(added), skipped=len(skipped), seconds=task.elapsed)
        self.results = result["results"]
        if password and self.remember_password:
            try:  # only now: the server accepted this password
                self.logic.rememberDicomwebPassword(url, user, password)
                self.password = ""
            except Exception as exc:  # no keyring module or no usable backend
                self.ui.error(_("The password was not remembered (no usable OS keyring): {error}").format(error=exc))
        self.panel.worklist.refresh()
        self.changed()
