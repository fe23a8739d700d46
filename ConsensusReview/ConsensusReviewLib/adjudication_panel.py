"""The Adjudication section of the ConsensusReview panel: the reviewer's final segmentation, start to publication.

Start from the consensus or one annotator's segmentation (a new segmentation node), edit it in the
Segment Editor, and publish it to the project as the case's adjudicated version (the ground truth)
with its audit record: the node is read on the main thread, the push runs on a worker with the
store read here.
"""
from __future__ import annotations

from ConsensusReviewLib.requirements import PUBLISH
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section


class AdjudicationSection(Section):
    """Start, edit and publish the adjudication of the last consensus run."""

    def __init__(self, panel):
        """Nothing to adjudicate until a consensus is computed."""
        super().__init__(panel)
        self.start_choices: list[tuple[str, str]] = []
        self.start_key = None
        self.note = ""
        self.status_text = ""

    @property
    def run(self):
        """The consensus run being adjudicated (the Results section's)."""
        return self.panel.results.run

    @property
    def adjudication(self):
        """The logic's adjudication in progress ({'run', 'node', ...}) or None."""
        return self.logic.adjudication

    @property
    def can_start(self) -> bool:
        """'Start' can be used now."""
        return self.run is not None and not self.busy

    @property
    def can_edit(self) -> bool:
        """'Segment Editor' can be used now."""
        return self.adjudication is not None

    @property
    def from_project(self) -> bool:
        """The adjudicated run is a project case (only those can be published)."""
        adjudication = self.adjudication
        return adjudication is not None and adjudication["run"]["source"] == "store"

    @property
    def can_publish(self) -> bool:
        """'Publish ground truth' can be used now."""
        return self.from_project and self.panel.connected and not self.busy

    @property
    def publish_tooltip(self) -> str:
        """Why 'Publish' is (not) available."""
        if self.run is not None and self.run["source"] != "store":
            return _("Publishing needs a project case as input.")
        return _("Push the edited segmentation to the project as the case's adjudicated version, with the audit record.")

    def run_changed(self, run) -> None:
        """A new consensus: its start choices (the consensus, then each annotator)."""
        self.start_choices = self.logic.adjudicationStarts(run)
        keys = [k for k, _text in self.start_choices]
        self.start_key = self.start_key if self.start_key in keys else (keys[0] if keys else None)
        self.changed()

    def set_start(self, key) -> None:
        """A key of ``start_choices``."""
        self.start_key = key
        self.changed()

    def set_note(self, text) -> None:
        """The reviewer's note for the audit record."""
        self.note = str(text)

    def start(self) -> None:
        """'Start': a segmentation node to edit, from the chosen start; then edit it in the Segment Editor."""
        if not self.can_start or self.start_key is None:
            return
        texts = dict(self.start_choices)
        try:
            with self.ui.busy():
                node = self.logic.startAdjudication(self.run, self.start_key, self.panel.results.nodes.get("reference"))
        except Exception as exc:
            self.ui.error(_("Could not start the adjudication: {error}").format(error=exc))
            return
        self.status_text = _("Editing '{node}' (from {start}). Publish when done.").format(
            node=node.GetName(), start=texts.get(self.start_key, self.start_key))
        self.edit()
        self.changed()

    def edit(self) -> None:
        """'Segment Editor': edit the adjudication there, on the run's image."""
        adjudication = self.adjudication
        if adjudication is not None:
            self.logic.editInSegmentEditor(adjudication["node"], self.panel.results.nodes.get("reference"))

    def publish(self) -> None:
        """'Publish ground truth': after the reviewer confirms, push the edited segmentation on a worker."""
        adjudication, store = self.adjudication, self.panel.store
        if not self.can_publish or not self.panel.installer.ensure(PUBLISH):
            return
        case_id = adjudication["run"]["case_id"]
        if not self.ui.confirm(_("Publish '{node}' as the ground truth of case {case}? Every member will see it as "
                                 "the adjudicated version.").format(node=adjudication["node"].GetName(), case=case_id)):
            return
        try:
            with self.ui.busy():
                seg = self.logic.adjudicatedSegmentation()  # MRML: main thread
        except Exception as exc:
            self.ui.error(_("Could not read the adjudicated segmentation: {error}").format(error=exc))
            return
        note, logic = self.note.strip(), self.logic
        self.status_text = _("Sending the ground truth to the project...")
        self.tasks.start(lambda task: logic.publish(seg, note=note, store=store, adjudication=adjudication),
                         self._published, name="publish", title=_("Publishing"), text=self.status_text)
        self.changed()

    def _published(self, task) -> None:
        """The push ended (main thread): the version published, or why not."""
        ok, version = self.panel.result(task, _("The ground truth was not published."))
        if ok:
            self.status_text = _("Published as adjudicated version {id} of case {case}.").format(
                id=version["id"], case=version["case_id"])
        else:
            self.status_text = _("Not published.")
        self.changed()
