"""The ConsensusReview panel's Inputs and Method sections (RunSection, a mixin of the widget).

Where the annotations come from (a project case, segmentation nodes or files), the method's
options and review thresholds, and 'Compute consensus': the inputs are read on the main thread,
the consensus is computed on a worker thread. The work itself is the logic's.
"""
import os

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner

SOURCES = ("store", "nodes", "files")


class RunSection:
    """The panel's Inputs and Method sections: choosing the annotations, then computing their consensus."""

    # ----- inputs -------------------------------------------------------------------------------------

    def _fillChoices(self) -> None:
        """Called from setup(): the input sources, the methods (STAPLE selected), tie rules and HD95 modes."""
        import qt
        from slicer.i18n import tr as _

        for key, text in (("store", _("Project case")), ("nodes", _("Segmentation nodes")), ("files", _("Files"))):
            self.ui.sourceComboBox.addItem(text, key)
        for key, text in self.logic.methodChoices().items():
            self.ui.methodComboBox.addItem(key, key)
            self.ui.methodComboBox.setItemData(self.ui.methodComboBox.count - 1, text, qt.Qt.ToolTipRole)
        self.ui.methodComboBox.setCurrentIndex(self.ui.methodComboBox.findData("staple"))
        for key, text in (("background", _("half the votes: background")),
                          ("foreground", _("half the votes: foreground"))):
            self.ui.tieComboBox.addItem(text, key)
        for key, text in (("max", _("max of the directed 95th percentiles")),
                          ("mean", _("mean of the directed 95th percentiles (SlicerRT)"))):
            self.ui.hdModeComboBox.addItem(text, key)

    def _source(self) -> str:
        """'store', 'nodes' or 'files'."""
        return self.ui.sourceComboBox.currentData or "store"

    def _onSourceChanged(self, *args) -> None:
        """Called when the input source changes: show its controls."""
        source = self._source()
        self.ui.storeInputsWidget.setVisible(source == "store")
        self.ui.nodesInputsWidget.setVisible(source == "nodes")
        self.ui.filesInputsWidget.setVisible(source == "files")
        self._showStoreStatus()
        self._updateButtonStates()

    def _showStoreStatus(self) -> None:
        """Say which project the reviewer is connected to (the connection is made in DICOM Team Annotate)."""
        from slicer.i18n import tr as _

        store = self.logic.projectStore(required=False)
        if store is None:
            self.ui.storeStatusLabel.text = _("Not connected: connect to the project in DICOM Team Annotate.")
        else:
            self.ui.storeStatusLabel.text = _("Project {location} as {user}.").format(location=store.location,
                                                                                     user=store.user)
        self._updateButtonStates()

    def onRefreshCases(self) -> None:
        """Called by 'Refresh': list the project's cases with their annotators."""
        self._tasks.start(lambda task: self.logic.reviewCases(), self._onCases, name="cases")

    def _onCases(self, task) -> None:
        """Called when the case list arrives."""
        from slicer.i18n import tr as _


        ok, rows = TaskRunner.result(task, _("Could not list the cases."))
        if not ok:
            return
        combo, current = self.ui.caseComboBox, self.ui.caseComboBox.currentData
        combo.clear()
        for row in rows:
            annotators = ", ".join(row["annotators"]) or _("no annotator yet")
            combo.addItem(f"{row['case_id']} ({row['state'].replace('_', ' ')}; {annotators})", row["case_id"])
        index = combo.findData(current) if current else -1
        combo.setCurrentIndex(max(index, 0))

    def onAddFiles(self) -> None:
        """Called by 'Add...': choose annotators' .seg.nrrd or label-map files."""
        import qt
        import slicer
        from slicer.i18n import tr as _

        paths = qt.QFileDialog.getOpenFileNames(slicer.util.mainWindow(), _("Annotators' segmentations"), "",
                                                _("Segmentations (*.seg.nrrd *.nrrd *.nii *.nii.gz *.nhdr)"))
        for path in paths:
            self.ui.filesListWidget.addItem(path)
        self._updateButtonStates()

    def onRemoveFiles(self) -> None:
        """Called by 'Remove': drop the selected files from the list."""
        for item in self.ui.filesListWidget.selectedItems():
            self.ui.filesListWidget.takeItem(self.ui.filesListWidget.row(item))
        self._updateButtonStates()

    # ----- consensus ----------------------------------------------------------------------------------

    def _options(self) -> dict:
        """The method options of the panel, as run_consensus takes them."""
        return {"threshold": self.ui.thresholdSpinBox.value, "tie": self.ui.tieComboBox.currentData,
                "tolerance_mm": self.ui.toleranceSpinBox.value, "hd_mode": self.ui.hdModeComboBox.currentData}

    def _thresholds(self) -> dict:
        """The review thresholds of the panel."""
        return {"min_mean_pairwise_dice": self.ui.minPairwiseDiceSpinBox.value,
                "max_pairwise_hd95_mm": self.ui.maxHd95SpinBox.value,
                "max_disputed_fraction": self.ui.maxDisputedSpinBox.value,
                "min_annotator_dice": self.ui.minAnnotatorDiceSpinBox.value}

    def onRun(self) -> None:
        """Called by 'Compute consensus': gather the inputs, then compute on a worker thread."""
        import slicer
        from slicer.i18n import tr as _

        source, method = self._source(), self.ui.methodComboBox.currentData
        options, thresholds = self._options(), self._thresholds()
        outDir = self.ui.outputFolderLineEdit.currentPath or None
        reference = self._parameterNode.referenceVolume if self._parameterNode else None
        # Everything the worker needs is read here, on the main thread (widgets, MRML, translations).
        if source == "nodes":
            with slicer.util.tryWithErrorDisplay(_("Could not read the segmentation nodes."), waitCursor=True):
                prepared = self.logic.segmentationsFromNodes(list(self.ui.segmentationsComboBox.checkedNodes()),
                                                             reference)
            downloading = ""

            def gather():
                return self.logic.inputsFromSegmentations(prepared)
        elif source == "files":
            from DicomTeamAnnotateLib.slicer.mrml import node_to_volume

            paths = [self.ui.filesListWidget.item(i).text() for i in range(self.ui.filesListWidget.count)]
            referenceVolume = node_to_volume(reference) if reference is not None else None
            downloading = ""

            def gather():
                return self.logic.inputsFromFiles(paths, referenceVolume)
        else:
            caseId, submittedOnly = self.ui.caseComboBox.currentData, self.ui.submittedOnlyCheckBox.checked
            workDir = os.path.join(self.logic.defaultOutputFolder(), "inputs", str(caseId))
            downloading = _("Downloading the annotations of {case}...").format(case=caseId)
            reference = None  # the case image comes with the inputs

            def gather():
                return self.logic.inputsFromStore(caseId, workDir, submittedOnly)

        computing = _("Computing the {method} consensus...").format(method=method)

        def work(task):
            task.report(None, downloading or computing)
            prepared = gather()
            prepared["reference_node"] = reference  # passed through untouched: MRML stays on the main thread
            task.report(None, computing)
            folder = os.path.join(outDir, prepared["case_id"] or "consensus") if outDir else None
            return self.logic.runConsensus(prepared, method, options, thresholds, folder)

        self.ui.runStatusLabel.text = computing
        self._tasks.start(work, self._onRun, name="consensus", dialogTitle=_("Consensus"), dialogText=computing)
