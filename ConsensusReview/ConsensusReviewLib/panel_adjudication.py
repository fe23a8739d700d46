"""The ConsensusReview panel's Adjudication section (AdjudicationSection, a mixin of the widget).

Start from the consensus or one annotator's segmentation, edit it in the Segment Editor, and
publish it as the case's adjudicated version (the ground truth) with its audit record.
"""

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner


class AdjudicationSection:
    """The panel's Adjudication section: the reviewer's final segmentation, from start to publication."""

    def onStartAdjudication(self) -> None:
        """Called by 'Start': a segmentation node to edit, from the consensus or one annotator."""
        import slicer
        from slicer.i18n import tr as _

        if self._run is None:
            return
        start = self.ui.startFromComboBox.currentData
        with slicer.util.tryWithErrorDisplay(_("Could not start the adjudication."), waitCursor=True):
            node = self.logic.startAdjudication(self._run, start, self._nodes.get("reference"))
            self.ui.adjudicationStatusLabel.text = _("Editing '{node}' (from {start}). Publish when done.").format(
                node=node.GetName(), start=self.ui.startFromComboBox.currentText)
            self.onEditAdjudication()

    def onEditAdjudication(self) -> None:
        """Called by 'Segment Editor': edit the adjudication there."""
        import slicer

        adjudication = self.logic.adjudication
        if adjudication is None:
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor
        editor.setSegmentationNode(adjudication["node"])
        reference = self._nodes.get("reference")
        if reference is not None:
            setSource = getattr(editor, "setSourceVolumeNode", None) or editor.setMasterVolumeNode  # before Slicer 5.2
            setSource(reference)

    def onPublish(self) -> None:
        """Called by 'Publish ground truth': push the edited segmentation as the adjudicated version."""
        import slicer
        from slicer.i18n import tr as _

        adjudication = self.logic.adjudication
        if adjudication is None:
            return
        if not slicer.util.confirmOkCancelDisplay(
                _("Publish '{node}' as the ground truth of case {case}? Every member will see it as the adjudicated "
                  "version.").format(node=adjudication["node"].GetName(), case=self._run["case_id"])):
            return
        note = self.ui.adjudicationNoteLineEdit.text.strip()
        with slicer.util.tryWithErrorDisplay(_("Could not read the adjudicated segmentation."), waitCursor=True):
            seg = self.logic.adjudicatedSegmentation()  # MRML: main thread
        self._tasks.start(lambda task: self.logic.publish(seg, note=note), self._onPublished, name="publish",
                          dialogTitle=_("Publishing"), dialogText=_("Sending the ground truth to the project..."))

    def _onPublished(self, task) -> None:
        """Called when the ground truth is in the project."""
        from slicer.i18n import tr as _


        ok, version = TaskRunner.result(task, _("The ground truth was not published."))
        if ok:
            self.ui.adjudicationStatusLabel.text = _("Published as adjudicated version {id} of case {case}.").format(
                id=version["id"], case=version["case_id"])
