"""The TrainBridge panel's Export section (ExportSection, a mixin of the widget).

Which cases become the nnU-Net dataset: the connected project's latest adjudicated (or annotation)
versions, or a list of cases made of scene nodes or files, each with its patient id (the splits
keep a patient's cases together); the dataset is written on a worker by TrainBridgeLogic.
"""
import os
from pathlib import Path

from DicomTeamAnnotateLib.slicer.task_runner import TaskRunner


class ExportSection:
    """The panel's Export section: the case source, the case list, writing the dataset."""

    def _setupExportSection(self) -> None:
        """Called from setup(): the export sources and version kinds, the case list's buttons."""
        from slicer.i18n import tr as _

        for key, text in (("store", _("Project: adjudicated versions")), ("nodes", _("Segmentation nodes")),
                          ("files", _("Files"))):
            self.ui.exportSourceComboBox.addItem(text, key)
        self.ui.exportSourceComboBox.connect("currentIndexChanged(int)", self._onExportSourceChanged)
        for kind in ("adjudicated", "annotation"):
            self.ui.versionKindComboBox.addItem(kind)
        self.ui.addNodeCaseButton.connect("clicked(bool)", self.onAddNodeCase)
        self.ui.addFileCaseButton.connect("clicked(bool)", self.onAddFileCase)
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCase)
        self.ui.rawFolderLineEdit.currentPath = self.logic.defaultFolder("nnUNet_raw")
        self.ui.exportButton.connect("clicked(bool)", self.onExport)

    def _exportSource(self) -> str:
        """'store', 'nodes' or 'files'."""
        return self.ui.exportSourceComboBox.currentData or "store"

    def _onExportSourceChanged(self, *args) -> None:
        """Called when the export source changes: show its controls."""
        source = self._exportSource()
        self.ui.exportStoreWidget.setVisible(source == "store")
        self.ui.exportNodesWidget.setVisible(source == "nodes")
        self.ui.exportFilesWidget.setVisible(source == "files")
        self.ui.exportCasesTableWidget.setVisible(source != "store")
        self.ui.removeCaseButton.setVisible(source != "store")
        self._showStoreStatus()

    def _showStoreStatus(self) -> None:
        """Which project the export reads (the connection is made in DICOM Team Annotate)."""
        from slicer.i18n import tr as _

        store = self.logic.projectStore(required=False)
        self.ui.exportStoreStatusLabel.text = (
            _("Not connected: connect to the project in DICOM Team Annotate.") if store is None
            else _("Project {location} as {user}: each case's latest adjudicated version.").format(
                location=store.location, user=store.user))
        self._updateButtonStates()

    def _nextCaseId(self) -> str:
        """case_000, case_001, ... (not used yet in the list)."""
        used = {c["case_id"] for c in self._exportCases}
        n = 0
        while f"case_{n:03d}" in used:
            n += 1
        return f"case_{n:03d}"

    def onAddNodeCase(self) -> None:
        """Called by 'Add case' (nodes): the selected volume and segmentation, with the patient id."""
        import slicer
        from slicer.i18n import tr as _

        p = self._parameterNode
        if not p or not p.caseVolume or not p.caseSegmentation:
            slicer.util.errorDisplay(_("Choose a volume and a segmentation first."))
            return
        patient = self.ui.patientLineEdit.text.strip() or p.caseVolume.GetName()
        self._exportCases.append({"case_id": self._nextCaseId(), "patient_id": patient, "kind": "nodes",
                                  "volume": p.caseVolume, "segmentation": p.caseSegmentation,
                                  "image_text": p.caseVolume.GetName(), "label_text": p.caseSegmentation.GetName()})
        self.ui.patientLineEdit.text = ""
        self._showExportCases()

    def onAddFileCase(self) -> None:
        """Called by 'Add case files...': an image (or DICOM folder) and its label file, with the patient id."""
        import qt
        import slicer
        from slicer.i18n import tr as _

        image = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Image of the case"), "",
                                               _("Images (*.nrrd *.nii *.nii.gz *.mha *.dcm);;All files (*)"))
        if not image:
            return
        label = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Label of the case"), os.path.dirname(image),
                                               _("Segmentations (*.seg.nrrd *.nrrd *.nii *.nii.gz)"))
        if not label:
            return
        patient = self.ui.patientLineEdit.text.strip() or Path(image).name.split(".")[0]
        self._exportCases.append({"case_id": self._nextCaseId(), "patient_id": patient, "kind": "files",
                                  "images": [image], "label": label, "image_text": image, "label_text": label})
        self.ui.patientLineEdit.text = ""
        self._showExportCases()

    def onRemoveCase(self) -> None:
        """Called by 'Remove': drop the selected case from the export list."""
        row = self.ui.exportCasesTableWidget.currentRow()
        if 0 <= row < len(self._exportCases):
            del self._exportCases[row]
        self._showExportCases()

    def _showExportCases(self) -> None:
        """Fill the export case table."""
        import qt

        table = self.ui.exportCasesTableWidget
        table.setRowCount(len(self._exportCases))
        for r, case in enumerate(self._exportCases):
            for c, text in enumerate((case["case_id"], case["patient_id"], case["image_text"], case["label_text"])):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()
        self._updateButtonStates()

    def onExport(self) -> None:
        """Called by 'Export dataset': read the cases (nodes on the main thread), write on a worker."""
        import slicer
        from slicer.i18n import tr as _


        p = self._parameterNode
        source, rawDir = self._exportSource(), self.ui.rawFolderLineEdit.currentPath
        options = {"name": p.datasetName.strip(), "dataset_id": p.datasetId or None, "folds": p.folds,
                   "test_fraction": p.testFraction, "monai_json": self.ui.monaiJsonCheckBox.checked,
                   "stratify_by": self.ui.stratifyLineEdit.text.strip() or None}
        label = _("Exporting the dataset...")
        if source == "store":
            kind = self.ui.versionKindComboBox.currentText
            downloading = _("Downloading the cases...")

            def work(task):
                import tempfile

                task.report(None, downloading)
                os.makedirs(rawDir, exist_ok=True)
                # the downloads are needed only until written as NIfTI; same disk as the dataset
                with tempfile.TemporaryDirectory(prefix=".store-download-", dir=rawDir) as tmp:
                    cases, labels = self.logic.casesFromStore(tmp, kind=kind)
                    return self.logic.exportDataset(cases, rawDir, labels=labels,
                                                    progress=TaskRunner.progressReporter(task, label), **options)
        else:
            with slicer.util.tryWithErrorDisplay(_("Could not read the cases."), waitCursor=True):
                cases = [self.logic.caseFromNodes(c["case_id"], c["patient_id"], c["volume"], c["segmentation"])
                         if c["kind"] == "nodes" else
                         self.logic.caseFromFiles(c["case_id"], c["patient_id"], c["images"], c["label"])
                         for c in self._exportCases]

            def work(task):
                return self.logic.exportDataset(cases, rawDir, progress=TaskRunner.progressReporter(task, label),
                                                **options)

        self._tasks.start(work, self._onExported, name="export", dialogTitle=_("Export"), dialogText=label)

    def _onExported(self, task) -> None:
        """Called when the dataset is written: say where, and use it for training."""
        from slicer.i18n import tr as _


        ok, summary = TaskRunner.result(task, _("The dataset was not exported."))
        if not ok:
            return
        self.ui.exportStatusLabel.text = _(
            "{dataset}: {train} training case(s) in {folds} fold(s), {test} test case(s).").format(
            dataset=summary["dataset_dir"], train=summary["n_train"], folds=summary["folds"], test=summary["n_test"])
        self.ui.exportStatusLabel.toolTip = "\n".join(summary["notes"])
        self.ui.datasetPathLineEdit.currentPath = summary["dataset_dir"]
