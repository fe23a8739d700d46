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
from DicomTeamAnnotateLib.worklist.rows import ORDERS, STATE_FILTERS

FILTER_DELAY_MS = 300  # the worklist is re-read this long after the last keystroke in the filter
# the .ui's columns, in this order
WORKLIST_COLUMNS = (_("Case"), _("Patient"), _("State"), _("Versions"), _("Annotators"), _("Model"),
                    _("Uncertainty"), _("Notes"))
ORDER_LABELS = {"first": _("first (by case id)"), "random": _("random"),
                "uncertainty": _("uncertainty (least certain first)")}
VERSION_COLUMNS = (_("Author"), _("Kind"), _("Created"), _("Message"), _("Conflict"), _("Version"))


class WorklistSection(Section):
    """My worklist, its filters and selection; the selected case's versions."""

    def __init__(self, panel):
        super().__init__(panel)
        self.state_filter = "all"
        self.text_filter = ""
        self.order = "first"
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

    @staticmethod
    def order_choices() -> list[tuple[str, str]]:
        """(order, label) for the order: MONAI Label's active-learning strategies (worklist.rows.ORDERS)."""
        return [(o, ORDER_LABELS[o]) for o in ORDERS]

    def set_order(self, order) -> None:
        self.order = order if order in ORDERS else "first"
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
            prediction = row.get("prediction") or {}
            model = prediction.get("model") or ""
            if model and prediction.get("round") is not None:
                model = _("{model} (round {round})").format(model=model, round=prediction["round"])
            score = row.get("score")
            out.append((row["case_id"], (row["case_id"], str(row.get("patient_id") or ""), row["state_label"],
                                         str(row.get("n_versions", 0)), annotators, model,
                                         "" if score is None else f"{score:.3f}", ", ".join(notes))))
        return out

    def version_cells(self) -> list[tuple]:
        """(version id, cells) per row of the versions table, newest first."""
        return [(v["id"], (self._author(v), v["kind"], str(v.get("created", ""))[:19].replace("T", " "),
                           v.get("message") or "", _("conflict") if v.get("conflict") else "", v["id"]))
                for v in reversed(self.versions)]

    @staticmethod
    def _author(version) -> str:
        """Who made a version: a prediction is the model's (its author field is who ran the pre-annotation)."""
        if version.get("kind") == "prediction":
            model = ((version.get("meta") or {}).get("model") or {}).get("name")
            return _("model {name}").format(name=model or "?")
        return version["author"]

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
        state, text, order = self.state_filter, self.text_filter, self.order
        self.tasks.start(lambda task: self.logic.worklistRows(state, text, order), self._worklist, name="worklist")

    def _worklist(self, task) -> None:
        try:
            rows = task.result()
        except Exception as exc:
            self._not_available(exc)
            return
        self._show_rows(rows)

    def _not_available(self, exc) -> None:
        """A worklist read failed: the status line says why, the offline banner shows when the store is away."""
        self.panel.project.set_offline(is_offline_error(exc), str(exc))
        self.status_text = _("Worklist not available: {error}").format(error=exc)
        self.changed()

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
        state, text, order = self.state_filter, self.text_filter, self.order

        def work(task):
            return self.logic.worklistRows(state, text, order), self.logic.listVersions(case_id)

        if self.tasks.start(work, self._both, name="refresh") is None:
            self._filter_clock.start()  # busy: the worklist at least, shortly

    def _both(self, task) -> None:
        try:
            rows, self.versions = task.result()
        except Exception as exc:  # a refresh after the user's change, not an action of its own: no dialog
            self._not_available(exc)
            return
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
