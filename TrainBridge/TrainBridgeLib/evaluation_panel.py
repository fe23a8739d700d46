"""The Evaluation section of the TrainBridge panel: the test-set metrics, the comparison view, the worst slices.

metrics.json of an evaluation folder fills two tables (per case and label, worst Dice first; the
worst slices); a case's image, ground truth and prediction are read on a worker and shown one label
at a time, side by side (ground truth left, prediction right, both on Red's plane) or overlaid; a
worst slice is jumped to (its case shown first when needed). Leaving the module gives the views
back as they were (layout, Yellow's plane, linked views, both segmentations in every view).
"""
from __future__ import annotations

import math

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import NIFTI_FILES
from DicomTeamAnnotateLib.slicer.panel import Section
from TrainBridgeLib.mrml import COMPARISON_MODES

EVALUATION_COLUMNS = ("case", "label", "dice", "hd95", "nsd", "volume_diff_ml")
WORST_SLICE_COLUMNS = ("case", "label", "axis", "slice", "dice", "error_voxels")


def format_number(value, digits: int = 3) -> str:
    """A table cell: numbers rounded, inf and undefined spelled out."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def cells(rows, columns) -> list[tuple[str, ...]]:
    """Table cells of ``rows`` (dicts) in ``columns`` order."""
    return [tuple(format_number(row.get(key)) for key in columns) for row in rows]


def headers(columns) -> list[str]:
    """Column titles of ``columns``."""
    return [c.replace("_", " ") for c in columns]


class EvaluationSection(Section):
    """The evaluation tables, the comparison view and the worst slices."""

    def __init__(self, panel):
        """Nothing loaded yet."""
        super().__init__(panel)
        self.folder = ""
        self.evaluation = None
        self.rows: list[dict] = []
        self.summary_text = ""
        self.case = None
        self.label = None
        self.mode = COMPARISON_MODES[0]
        self.worst_row = -1
        self.comparison = None  # {'case', 'image', 'gt', 'pred'} nodes
        self._saved_views = None  # what side by side changed in the views
        self._pending_jump = None

    # ----- choices and outputs --------------------------------------------------------------------
    @staticmethod
    def mode_choices() -> list[tuple[str, str]]:
        """(key, text) of the comparison modes."""
        return [(m, m) for m in COMPARISON_MODES]

    def case_choices(self) -> list[tuple[str, str]]:
        """(case, text): the worst cases first (with their mean Dice), then the others of the table."""
        if self.evaluation is None:
            return []
        out = [(w["case"], _("{case} (mean Dice {dice})").format(case=w["case"], dice=format_number(w["mean_dice"])))
               for w in self.evaluation.get("worst_cases", [])]
        for case in dict.fromkeys(r["case"] for r in self.rows):
            if case not in {c for c, _text in out}:
                out.append((case, case))
        return out

    def label_choices(self) -> list[tuple[str, str]]:
        """(label, label) of the evaluated labels."""
        return [(name, name) for name in (self.evaluation or {}).get("labels", {})]

    @property
    def worst_slices(self) -> list[dict]:
        """The evaluation's worst slices (worst first)."""
        return (self.evaluation or {}).get("worst_slices", [])

    @property
    def evaluation_cells(self) -> list:
        """The metrics table's cells."""
        return cells(self.rows, EVALUATION_COLUMNS)

    @property
    def worst_slice_cells(self) -> list:
        """The worst slices table's cells."""
        return cells(self.worst_slices, WORST_SLICE_COLUMNS)

    @property
    def can_show(self) -> bool:
        """'Show' can be used now."""
        return self.evaluation is not None and self.case is not None and not self.busy

    @property
    def can_jump(self) -> bool:
        """'Jump to worst slice' can be used now."""
        return bool(self.worst_slices) and not self.busy

    # ----- inputs ---------------------------------------------------------------------------------
    def set_folder(self, path) -> None:
        """The evaluation folder (the job's 'evaluation' folder holds metrics.json)."""
        self.folder = str(path or "")
        self.changed()

    def select_case(self, case) -> None:
        """The case to compare."""
        self.case = case or None
        self.changed()

    def set_label(self, label) -> None:
        """The one label shown; the view follows when a case is shown."""
        self.label = label or None
        self.apply_view()

    def set_mode(self, mode) -> None:
        """Side by side or overlaid; the view follows when a case is shown."""
        self.mode = mode
        self.apply_view()

    def select_worst_slice(self, row) -> None:
        """The row selected in the worst slices table."""
        self.worst_row = int(row)

    # ----- actions --------------------------------------------------------------------------------
    def load(self, folder=None) -> None:
        """'Load': metrics.json of the evaluation folder into the tables and the comparison choices."""
        if folder is not None:
            self.folder = str(folder)
        try:
            self.evaluation = self.logic.loadEvaluation(self.folder)
        except (OSError, ValueError) as exc:
            self.ui.error(_("Could not read the evaluation: {error}").format(error=exc))
            return
        self.rows = self.logic.evaluationRows(self.evaluation)
        self.summary_text = self.logic.summaryText(self.evaluation)
        cases, labels = [c for c, _t in self.case_choices()], [n for n, _t in self.label_choices()]
        self.case = self.case if self.case in cases else (cases[0] if cases else None)
        self.label = self.label if self.label in labels else (labels[0] if labels else None)
        self.worst_row = -1
        self.changed()

    def activate_row(self, row: int) -> None:
        """A double-click in the metrics table: show that case and label."""
        if 0 <= row < len(self.rows):
            self.case, self.label = self.rows[row]["case"], self.rows[row]["label"]
            self.show_case()

    def show_case(self) -> None:
        """'Show': read the case's image, ground truth and prediction on a worker, then show them."""
        if not self.can_show or not self.panel.installer.ensure(NIFTI_FILES):
            return
        evaluation, case, logic = self.evaluation, self.case, self.logic
        self.tasks.start(lambda task: logic.readComparison(evaluation, case), self._read, name="read case",
                         title=_("Comparison"), text=_("Reading case {case}...").format(case=case))
        self.changed()

    def _read(self, task) -> None:
        """The case is read (main thread): its nodes, the view, a pending jump."""
        ok, read = self.panel.result(task, _("Could not read the case."))
        if ok:
            try:
                with self.ui.busy():
                    self.comparison = self.logic.showComparison(read, previous=self.comparison)
            except Exception as exc:
                self.ui.error(_("Could not show the case: {error}").format(error=exc))
                self.comparison = None
            self.apply_view()
            if self._pending_jump is not None and self.comparison is not None:
                target, self._pending_jump = self._pending_jump, None
                if target["case"] == self.comparison["case"]:
                    self.logic.jumpToSlice(target)
        self._pending_jump = None
        self.changed()

    def apply_view(self) -> None:
        """The shown case in the chosen mode with the chosen label (nothing before a case is shown)."""
        if self.comparison is None:
            self.changed()
            return
        try:
            self._saved_views = self.logic.setComparisonView(self.comparison, self.mode, self.label, self._saved_views)
        except Exception as exc:
            self.ui.error(_("Could not change the view: {error}").format(error=exc))
        self.changed()

    def jump(self) -> None:
        """'Jump to worst slice': the selected (else the worst) slice; its case is shown first when needed."""
        worst = self.worst_slices
        if not worst or self.busy:
            return
        target = worst[min(max(self.worst_row, 0), len(worst) - 1)]
        self.case, self.label = target["case"], target["label"]
        if self.comparison is None or self.comparison["case"] != target["case"]:
            self._pending_jump = target
            self.show_case()
            return
        self.apply_view()
        self.logic.jumpToSlice(target)

    def leave(self) -> None:
        """The user leaves the module: the views the side-by-side comparison changed are given back."""
        if self._saved_views is not None or self.comparison is not None:
            self.logic.leaveComparisonView(self.comparison, self._saved_views)
        self._saved_views = None

    def scene_closing(self) -> None:
        """The comparison's nodes go with the scene (its slice and composite nodes are the scene's singletons)."""
        self.comparison = None
        self._saved_views = None
        self._pending_jump = None
