"""The Worklist and Versions sections of the DicomTeamAnnotate panel.

My cases filtered by state and text (the text filter re-reads the worklist once typing pauses),
re-read after each change to a case; the versions of a case: a reviewer sees every annotator's
and can load any of them as a segmentation.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import SEGMENTATION_FILES
from DicomTeamAnnotateLib.slicer.panel import Section
from DicomTeamAnnotateLib.store.model import STATE_LABELS
from DicomTeamAnnotateLib.worklist.offline import is_offline_error
from DicomTeamAnnotateLib.worklist.rows import STATE_FILTERS

FILTER_DELAY_MS = 300  # the worklist is re-read this long after the last keystroke in the filter
WORKLIST_COLUMNS = (_("Case"), _("Patient"), _("State"), _("Versions"), _("Annotators"), _("Notes"))
VERSION_COLUMNS = (_("Author"), _("Kind"), _("Created"), _("Message"), _("Conflict"), _("Version"))


class WorklistSection(Section):
    """My worklist, its filters and selection; the selected case's versions."""

    def __init__(self, panel):
        super().__init__(panel)
        self.state_filter = "all"
        self.text_filter = ""
        self.rows: list[dict] = []
        self.selected_case_id = None
        self.status_text = ""
        self.versions: list[dict] = []
        self.selected_version_id = None
        self._filter_clock = panel.ui.clock(FILTER_DELAY_MS, self._filter_paused)

    # ----- inputs ----------------------------------------------------------------------------------
    @staticmethod
    def state_choices() -> list[tuple[str, str]]:
        """(state, label) for the state filter: 'all' then the workflow states."""
        return [(s, _("all states") if s == "all" else STATE_LABELS[s]) for s in STATE_FILTERS]

    def set_state_filter(self, state) -> None:
        self.state_filter = state or "all"
        self.refresh()

    def set_text_filter(self, text) -> None:
        """Each keystroke: the worklist is re-read once typing pauses."""
        self.text_filter = str(text)
        self._filter_clock.start()

    def _filter_paused(self) -> None:
        self._filter_clock.stop()
        self.refresh()

    def select_case(self, case_id) -> None:
        self.selected_case_id = case_id
        self.changed()

    def select_version(self, version_id) -> None:
        self.selected_version_id = version_id
        self.changed()

    # ----- outputs ----------------------------------------------------------------------------------
    def worklist_cells(self) -> list[tuple]:
        """(case id, cells) per row of the worklist table."""
        out = []
        for row in self.rows:
            annotators = ", ".join(f"{u}: {s.replace('_', ' ')}" for u, s in (row.get("annotators") or {}).items())
            notes = []
            if row.get("queued"):
                notes.append(_("{count} queued").format(count=row["queued"]))
            if row.get("conflict"):
                notes.append(_("conflict"))
            out.append((row["case_id"], (row["case_id"], str(row.get("patient_id") or ""), row["state_label"],
                                         str(row.get("n_versions", 0)), annotators, ", ".join(notes))))
        return out

    def version_cells(self) -> list[tuple]:
        """(version id, cells) per row of the versions table, newest first."""
        return [(v["id"], (v["author"], v["kind"], str(v.get("created", ""))[:19].replace("T", " "),
                           v.get("message") or "", _("conflict") if v.get("conflict") else "", v["id"]))
                for v in reversed(self.versions)]

    @property
    def can_refresh(self) -> bool:
        return self.panel.project.connected and not self.busy

    @property
    def can_open(self) -> bool:
        return self.can_refresh and self.selected_case_id is not None

    @property
    def can_load_version(self) -> bool:
        return self.can_refresh and self.selected_version_id is not None

    # ----- actions ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read my worklist (busy: again when the current task ends)."""
        if not self.panel.project.connected:
            return
        if self.busy:
            self._filter_clock.start()
            return
        state, text = self.state_filter, self.text_filter
        self.tasks.start(lambda task: self.logic.worklistRows(state, text), self._worklist, name="worklist")

    def _worklist(self, task) -> None:
        try:
            rows = task.result()
        except Exception as exc:
            self.panel.project.set_offline(is_offline_error(exc), str(exc))
            self.status_text = _("Worklist not available: {error}").format(error=exc)
            self.changed()
            return
        self._show_rows(rows)

    def _show_rows(self, rows) -> None:
        self.rows = rows
        if self.selected_case_id not in {r["case_id"] for r in rows}:
            self.selected_case_id = None
        self.status_text = _("{count} case(s).").format(count=len(rows))
        self.panel.project.set_offline(False)

    def refresh_versions(self) -> None:
        case_id = self.selected_case_id or self.panel.case.case_id
        if case_id is None or not self.panel.project.connected:
            return
        self.tasks.start(lambda task: self.logic.listVersions(case_id), self._versions, name="versions")

    def _versions(self, task) -> None:
        ok, versions = self.panel.result(task, _("Could not list the versions."))
        if ok:
            self.versions = versions
            self.selected_version_id = None
            self.changed()

    def refresh_after_change(self, case_id) -> None:
        """After a change to a case (open, push, reopen): re-read the worklist and the case's versions."""
        if not self.panel.project.connected:
            return
        state, text = self.state_filter, self.text_filter

        def work(task):
            return self.logic.worklistRows(state, text), self.logic.listVersions(case_id)

        if self.tasks.start(work, self._both, name="refresh") is None:
            self._filter_clock.start()  # busy: the worklist at least, shortly

    def _both(self, task) -> None:
        ok, result = self.panel.result(task, _("Could not read the worklist."))
        if not ok:
            return
        rows, self.versions = result
        self._show_rows(rows)

    def load_version(self) -> None:
        """'Load selected': fetch that version and show it as a segmentation node."""
        version = next((v for v in self.versions if v["id"] == self.selected_version_id), None)
        if version is None or not self.panel.installer.ensure(SEGMENTATION_FILES):
            return
        work_dir = self.panel.project.current_work_folder()
        self.tasks.start(lambda task: self.logic.fetchVersion(version, work_dir), self._version_fetched,
                         name="fetch version", title=_("Loading a version"),
                         text=_("Downloading version {id}...").format(id=version["id"]))

    def _version_fetched(self, task) -> None:
        ok, fetched = self.panel.result(task, _("Could not load the version."))
        if ok:
            try:
                self.logic.loadVersion(*fetched)
            except Exception as exc:
                self.ui.error(_("Could not show the version: {error}").format(error=exc))

    def stop(self) -> None:
        self._filter_clock.stop()
