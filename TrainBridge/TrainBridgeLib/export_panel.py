"""The Export section of the TrainBridge panel: which cases become the nnU-Net dataset, and 'Export dataset'.

The cases are the connected project's latest adjudicated (or annotation) versions, or a list made of
scene nodes or files, each with its patient id (the splits keep a patient's cases together). Scene
nodes are read on the main thread; the project's versions are downloaded and the dataset is written
on a worker (atomically: a cancelled or failed export leaves no dataset folder).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from DicomTeamAnnotateLib.core.tasks import TaskCancelled
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section
from DicomTeamAnnotateLib.slicer.tasks import TaskRunner
from TrainBridgeLib.requirements import export_feature

SOURCES = ("store", "nodes", "files")
VERSION_KINDS = ("adjudicated", "annotation")


class ExportSection(Section):
    """The case source, the case list and the dataset export."""

    def __init__(self, panel):
        """Defaults: the project's adjudicated versions, the dataset under Slicer's cache folder."""
        super().__init__(panel)
        self.source = "store"
        self.kind = "adjudicated"
        self.cases: list[dict] = []  # [{'case_id', 'patient_id', 'kind': 'nodes'|'files', ...}]
        self.selected_case = -1
        self.patient = ""
        self.raw_folder = self.logic.defaultFolder("nnUNet_raw")
        self.monai_json = False
        self.stratify = ""
        self.status_text = ""
        self.status_tooltip = ""

    # ----- choices and inputs ---------------------------------------------------------------------
    @staticmethod
    def source_choices() -> list[tuple[str, str]]:
        """(key, text) of the case sources."""
        return [("store", _("Project: adjudicated versions")), ("nodes", _("Segmentation nodes")), ("files", _("Files"))]

    @staticmethod
    def kind_choices() -> list[tuple[str, str]]:
        """(key, text) of the version kinds a project export reads."""
        return [(kind, kind) for kind in VERSION_KINDS]

    def set_source(self, source) -> None:
        """'store', 'nodes' or 'files'."""
        if source not in SOURCES:
            raise ValueError(f"case source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.source = source
        self.changed()

    def set_kind(self, kind) -> None:
        """'adjudicated' or 'annotation'."""
        self.kind = str(kind)

    def set_patient(self, text) -> None:
        """The patient id of the next case added (blank: from the volume's or file's name)."""
        self.patient = str(text).strip()

    def select_case(self, row) -> None:
        """The row selected in the case list (-1: none)."""
        self.selected_case = int(row)
        self.changed()

    def set_raw_folder(self, path) -> None:
        """The nnUNet_raw folder the dataset is written to."""
        self.raw_folder = str(path or "")
        self.changed()

    def set_monai_json(self, value) -> None:
        """Also write a MONAI datalist."""
        self.monai_json = bool(value)

    def set_stratify(self, text) -> None:
        """A case attribute (site, scanner) the test set and folds keep balanced ('' : none)."""
        self.stratify = str(text).strip()

    # ----- outputs --------------------------------------------------------------------------------
    @property
    def store_text(self) -> str:
        """Which project the export reads (the connection is made in DICOM Team Annotate)."""
        store = self.panel.store
        if store is None:
            return _("Not connected: connect to the project in DICOM Team Annotate.")
        return _("Project {location} as {user}: each case's latest adjudicated version.").format(
            location=store.location, user=store.user)

    @property
    def case_cells(self) -> list[tuple[str, ...]]:
        """The case list's cells: case id, patient, image, label."""
        return [(c["case_id"], c["patient_id"], c["image_text"], c["label_text"]) for c in self.cases]

    @property
    def dataset_name(self) -> str:
        """The dataset's name (the parameter node's)."""
        return str(self.panel.parameter("datasetName", "")).strip()

    @property
    def can_add_node_case(self) -> bool:
        """A volume and a segmentation are chosen."""
        return bool(self.panel.parameter("caseVolume", None) and self.panel.parameter("caseSegmentation", None))

    @property
    def can_remove(self) -> bool:
        """A case of the list is selected."""
        return 0 <= self.selected_case < len(self.cases)

    @property
    def can_export(self) -> bool:
        """'Export dataset' can be used now."""
        has_cases = self.panel.store is not None if self.source == "store" else bool(self.cases)
        return has_cases and bool(self.dataset_name) and bool(self.raw_folder) and not self.busy

    # ----- the case list --------------------------------------------------------------------------
    def _next_case_id(self) -> str:
        """case_000, case_001, ... (the first not in the list)."""
        used = {c["case_id"] for c in self.cases}
        n = 0
        while f"case_{n:03d}" in used:
            n += 1
        return f"case_{n:03d}"

    def add_node_case(self) -> None:
        """'Add case': the chosen volume and segmentation nodes, with the patient id."""
        volume, segmentation = self.panel.parameter("caseVolume", None), self.panel.parameter("caseSegmentation", None)
        if volume is None or segmentation is None:
            self.ui.error(_("Choose a volume and a segmentation first."))
            return
        patient = self.patient or volume.GetName()
        self.cases.append({"case_id": self._next_case_id(), "patient_id": patient, "kind": "nodes", "volume": volume,
                           "segmentation": segmentation, "image_text": volume.GetName(),
                           "label_text": segmentation.GetName()})
        self.patient = ""
        self.changed()

    def add_file_case(self) -> None:
        """'Add case files...': an image and its label file, with the patient id."""
        image = self.ui.choose_file(_("Image of the case"), "",
                                    _("Images (*.nrrd *.nii *.nii.gz *.mha *.dcm);;All files (*)"))
        if not image:
            return
        label = self.ui.choose_file(_("Label of the case"), os.path.dirname(image),
                                    _("Segmentations (*.seg.nrrd *.nrrd *.nii *.nii.gz)"))
        if not label:
            return
        patient = self.patient or Path(image).name.split(".")[0]
        self.cases.append({"case_id": self._next_case_id(), "patient_id": patient, "kind": "files", "images": [image],
                           "label": label, "image_text": image, "label_text": label})
        self.patient = ""
        self.changed()

    def remove_case(self) -> None:
        """'Remove': drop the selected case from the list."""
        if self.can_remove:
            del self.cases[self.selected_case]
        self.selected_case = -1
        self.changed()

    def scene_closing(self) -> None:
        """Node cases go with the scene; file cases stay."""
        self.cases = [c for c in self.cases if c["kind"] != "nodes"]
        self.selected_case = -1

    # ----- export ---------------------------------------------------------------------------------
    def export(self) -> None:
        """'Export dataset': cases read here (nodes: MRML), downloaded and written on a worker."""
        if not self.can_export:
            return
        paths = [p for c in self.cases if c["kind"] == "files" for p in (*c["images"], c["label"])]
        if not self.panel.installer.ensure(export_feature(self.source, paths)):
            return
        p = self.panel.parameter
        options = {"name": self.dataset_name, "dataset_id": p("datasetId", 0) or None, "folds": p("folds", 5),
                   "test_fraction": p("testFraction", 0.2), "monai_json": self.monai_json,
                   "stratify_by": self.stratify or None}
        raw_dir, logic = self.raw_folder, self.logic
        label, downloading = _("Exporting the dataset..."), _("Downloading the cases...")
        if self.source == "store":
            store, kind = self.panel.store, self.kind

            def work(task):
                """Worker: download the versions and images, write the dataset."""
                task.report(None, downloading)
                os.makedirs(raw_dir, exist_ok=True)
                # the downloads are needed only until written as NIfTI; same disk as the dataset
                with tempfile.TemporaryDirectory(prefix=".store-download-", dir=raw_dir) as tmp:
                    cases, labels = logic.casesFromStore(tmp, kind=kind, store=store)
                    return logic.exportDataset(cases, raw_dir, labels=labels,
                                               progress=TaskRunner.progress_reporter(task, label), **options)
        else:
            try:
                with self.ui.busy():
                    cases = [logic.caseFromNodes(c["case_id"], c["patient_id"], c["volume"], c["segmentation"])
                             if c["kind"] == "nodes" else
                             logic.caseFromFiles(c["case_id"], c["patient_id"], c["images"], c["label"])
                             for c in self.cases]
            except (ValueError, OSError) as exc:
                self.ui.error(_("Could not read the cases: {error}").format(error=exc))
                return

            def work(task):
                """Worker: write the dataset of the cases read on the main thread."""
                task.report(0.0, label)
                return logic.exportDataset(cases, raw_dir, progress=TaskRunner.progress_reporter(task, label),
                                           **options)

        self.status_text = label
        self.tasks.start(work, self._exported, name="export", title=_("Export"), text=label)
        self.changed()

    def _exported(self, task) -> None:
        """The export ended (main thread): the dataset becomes the training dataset, or why not."""
        ok, summary = self.panel.result(task, _("The dataset was not exported."))
        if not ok:
            self.status_text = (_("Export cancelled: no dataset was written.") if isinstance(summary, TaskCancelled)
                                else _("The dataset was not exported."))
            self.status_tooltip = ""
            self.changed()
            return
        self.status_text = _("{dataset}: {train} training case(s) in {folds} fold(s), {test} test case(s).").format(
            dataset=summary["dataset_dir"], train=summary["n_train"], folds=summary["folds"], test=summary["n_test"])
        self.status_tooltip = "\n".join(summary["notes"])
        self.panel.training.set_dataset(summary["dataset_dir"])
        self.changed()
