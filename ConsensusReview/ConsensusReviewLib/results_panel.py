"""The Results section of the ConsensusReview panel: verdict, agreement tables, the map overlay, the report.

When a consensus is computed its nodes are made (the case image and the consensus segmentation,
reused from one run to the next), the review verdict and the per-label / per-annotator tables are
filled, and the chosen map (disagreement, vote counts, STAPLE probabilities) is overlaid on the
image. Choosing another map builds that map's volume; the opacity slider and the 'Show' check box
only change how the overlay is drawn (no volume is rebuilt or re-uploaded).
"""
from __future__ import annotations

import math
import os

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section

ANNOTATOR_COLUMNS = ("label", "annotator", "dice", "hd95", "nsd", "sensitivity", "specificity", "volume_diff_ml",
                     "tendency")
LABEL_COLUMNS = ("label", "mean_pairwise_dice", "max_pairwise_hd95", "consensus_volume_ml", "notes")


def format_value(value, digits: int = 3) -> str:
    """A table cell: numbers rounded, inf and undefined spelled out."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


def cells(rows, columns) -> list[tuple[str, ...]]:
    """Table cells of ``rows`` (dicts) in ``columns`` order."""
    return [tuple(format_value(row.get(key)) for key in columns) for row in rows]


def headers(columns) -> list[str]:
    """Column titles of ``columns``."""
    return [c.replace("_", " ") for c in columns]


class ResultsSection(Section):
    """The last consensus: its nodes, verdict, tables and map overlay."""

    def __init__(self, panel):
        """Nothing computed yet."""
        super().__init__(panel)
        self.run = None
        self.nodes: dict = {}  # {'case_id', 'reference', 'consensus', 'map'}
        self.review_text = ""
        self.label_cells: list = []
        self.annotator_cells: list = []
        self.map_choices: list[tuple[str, str]] = []
        self.map_key = None
        self.map_shown_key = None  # the key the map node holds now
        self.show_map = True

    # ----- outputs --------------------------------------------------------------------------------
    @property
    def report_path(self) -> str:
        """The case's HTML report of the last run ('' when none was written)."""
        return str(((self.run or {}).get("paths") or {}).get("report") or "")

    @property
    def can_open_report(self) -> bool:
        """'Open report' can be used now."""
        return bool(self.report_path) and os.path.isfile(self.report_path)

    @property
    def opacity(self) -> float:
        """The overlay's opacity (the parameter node's, which the slider edits)."""
        return float(self.panel.parameter("mapOpacity", 0.6))

    # ----- a new run ------------------------------------------------------------------------------
    def show_run(self, run) -> None:
        """Main thread: nodes, verdict, tables, map choices of a computed run; the map overlaid."""
        self.run = run
        try:
            with self.ui.busy():
                self.nodes = self.logic.showResult(run, previous=self.nodes)
        except Exception as exc:  # a node that cannot be made: the figures are still shown
            self.ui.error(_("Could not show the consensus: {error}").format(error=exc))
            self.nodes = {}
        result = run["result"]
        status = run.get("status")
        if status is None:
            self.review_text = ""
        elif status["needs_review"]:
            self.review_text = _("<b>Needs review</b>: {reasons}").format(reasons="; ".join(status["reasons"]))
        else:
            self.review_text = _("Within the review thresholds.")
        self.label_cells = cells(self.logic.labelRows(result), LABEL_COLUMNS)
        self.annotator_cells = cells(self.logic.annotatorRows(result), ANNOTATOR_COLUMNS)
        self.map_choices = self.logic.mapChoices(result)
        keys = [k for k, _text in self.map_choices]
        self.map_key = self.map_key if self.map_key in keys else (keys[0] if keys else None)
        self.map_shown_key = None  # a new result: its map must be built
        self.update_map()

    def forget_nodes(self) -> None:
        """The scene closed: the run's nodes are gone."""
        self.nodes = {}
        self.map_shown_key = None

    # ----- the map overlay ------------------------------------------------------------------------
    def choose_map(self, key) -> None:
        """Another map: build its volume (reusing the map node) and overlay it."""
        self.map_key = key or None
        self.update_map()

    def set_show_map(self, on) -> None:
        """'Show' toggled: overlay the map or remove the overlay."""
        self.show_map = bool(on)
        self.update_map()

    def set_opacity(self, opacity) -> None:
        """The slider moved: only the overlay's opacity changes (the map volume stays as it is)."""
        if self.run is not None and self.show_map and self.map_shown_key is not None:
            self.logic.setMapOpacity(float(opacity))

    def update_map(self) -> None:
        """Overlay the chosen map, building its volume only when the key or the run changed."""
        if self.run is None:
            return
        try:
            if not self.show_map or not self.map_key:
                self.logic.hideMap()
            else:
                if self.map_key != self.map_shown_key or self.logic.aliveNode(self.nodes.get("map")) is None:
                    self.nodes["map"] = self.logic.mapVolumeNode(self.run, self.map_key, node=self.nodes.get("map"))
                    self.map_shown_key = self.map_key
                self.logic.showMap(self.nodes["map"], self.nodes.get("reference"), self.opacity)
        except Exception as exc:
            self.ui.error(_("Could not show the disagreement map: {error}").format(error=exc))
        self.changed()

    def open_report(self) -> None:
        """'Open report': the case's HTML report in the web browser."""
        if self.can_open_report:
            self.ui.open_file(self.report_path)
