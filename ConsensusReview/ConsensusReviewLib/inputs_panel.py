"""The Inputs and Method sections of the ConsensusReview panel: which annotations, which method, 'Compute'.

The annotations come from a project case (every annotator's latest version, through the hub
module's connection), from segmentation nodes, or from files. Everything a computation needs is
read on the main thread (widgets' values, parameter node, MRML nodes, the store, translations);
the worker gets plain values: it downloads or aligns the inputs and computes the consensus.
"""
from __future__ import annotations

import os

from ConsensusReviewLib.requirements import consensus_feature
from DicomTeamAnnotateLib.core.tasks import TaskCancelled
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section

SOURCES = ("store", "nodes", "files")
TIE_RULES = ("background", "foreground")


class InputsSection(Section):
    """The annotations to compare (project case, nodes or files), the method and its options, 'Compute'."""

    def __init__(self, panel):
        """Defaults: a project case, STAPLE, outputs under Slicer's cache folder."""
        super().__init__(panel)
        self.source = "store"
        self.cases: list[dict] = []  # [{'case_id', 'state', 'annotators'}] of the connected project
        self.case_id = None
        self.submitted_only = True
        self.nodes: list = []  # the checked segmentation nodes
        self.files: list[str] = []
        self.selected_file = -1
        self.method = "staple"
        self.tie = "background"
        self.hd_mode = "max"
        self.output_folder = self.logic.defaultOutputFolder()
        self.status_text = ""

    # ----- choices --------------------------------------------------------------------------------
    @staticmethod
    def source_choices() -> list[tuple[str, str]]:
        """(key, text) of the input sources."""
        return [("store", _("Project case")), ("nodes", _("Segmentation nodes")), ("files", _("Files"))]

    def method_choices(self) -> list[tuple[str, str]]:
        """(key, description) of the consensus methods."""
        return list(self.logic.methodChoices().items())

    @staticmethod
    def tie_choices() -> list[tuple[str, str]]:
        """(key, text) of the majority vote's tie rules."""
        return [("background", _("half the votes: background")), ("foreground", _("half the votes: foreground"))]

    @staticmethod
    def hd_mode_choices() -> list[tuple[str, str]]:
        """(key, text) of the HD95 definitions."""
        return [("max", _("max of the directed 95th percentiles")),
                ("mean", _("mean of the directed 95th percentiles (SlicerRT)"))]

    def case_choices(self) -> list[tuple[str, str]]:
        """(case id, text) of the project's cases with their state and annotators."""
        out = []
        for row in self.cases:
            annotators = ", ".join(row["annotators"]) or _("no annotator yet")
            state = (row.get("state") or "?").replace("_", " ")
            out.append((row["case_id"], f"{row['case_id']} ({state}; {annotators})"))
        return out

    # ----- inputs ---------------------------------------------------------------------------------
    def set_source(self, source) -> None:
        """'store', 'nodes' or 'files'."""
        if source not in SOURCES:
            raise ValueError(f"input source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.source = source
        self.changed()

    def set_case(self, case_id) -> None:
        """The project case to compute (None: none chosen)."""
        self.case_id = case_id or None
        self.changed()

    def set_submitted_only(self, value) -> None:
        """Only annotators who submitted the case (else every annotator's latest version)."""
        self.submitted_only = bool(value)

    def set_nodes(self, nodes) -> None:
        """The checked segmentation nodes."""
        self.nodes = [n for n in nodes if n is not None]
        self.changed()

    def select_file(self, index) -> None:
        """The file selected in the list (-1: none)."""
        self.selected_file = int(index)
        self.changed()

    def set_method(self, method) -> None:
        """A key of ``method_choices``."""
        self.method = str(method)
        self.changed()

    def set_tie(self, tie) -> None:
        """A key of ``tie_choices``."""
        self.tie = str(tie)

    def set_hd_mode(self, mode) -> None:
        """A key of ``hd_mode_choices``."""
        self.hd_mode = str(mode)

    def set_output_folder(self, path) -> None:
        """Where each case's consensus files and report go ('' : nothing written)."""
        self.output_folder = str(path or "")

    def add_files(self) -> None:
        """'Add...': annotators' .seg.nrrd or label-map files (several at once)."""
        paths = self.ui.choose_files(_("Annotators' segmentations"), "",
                                     _("Segmentations (*.seg.nrrd *.nrrd *.nii *.nii.gz *.nhdr)"))
        self.files += [p for p in paths if p not in self.files]
        self.selected_file = -1  # the list is rebuilt: nothing selected
        self.changed()

    def remove_file(self) -> None:
        """'Remove': drop the selected file from the list."""
        if 0 <= self.selected_file < len(self.files):
            del self.files[self.selected_file]
        self.selected_file = -1
        self.changed()

    # ----- outputs --------------------------------------------------------------------------------
    @property
    def store_text(self) -> str:
        """Which project the reviewer is connected to (the connection is made in DICOM Team Annotate)."""
        store = self.panel.store
        if store is None:
            return _("Not connected: connect to the project in DICOM Team Annotate.")
        return _("Project {location} as {user}.").format(location=store.location, user=store.user)

    @property
    def ready(self) -> bool:
        """The chosen source has what a consensus needs."""
        if self.source == "store":
            return self.panel.connected and self.case_id is not None
        if self.source == "nodes":
            return len(self.nodes) >= 2
        return len(self.files) >= 2

    @property
    def can_compute(self) -> bool:
        """'Compute consensus' can be used now."""
        return self.ready and not self.busy

    @property
    def can_refresh(self) -> bool:
        """'Refresh' (the case list) can be used now."""
        return self.panel.connected and not self.busy

    @property
    def threshold_enabled(self) -> bool:
        """The STAPLE threshold applies to the chosen method."""
        return self.method == "staple"

    @property
    def tie_enabled(self) -> bool:
        """The tie rule applies to the chosen method."""
        return self.method == "majority"

    def options(self) -> dict:
        """The method options as run_consensus takes them (main thread: the parameter node)."""
        return {"threshold": self.panel.parameter("threshold", 0.5), "tie": self.tie,
                "tolerance_mm": self.panel.parameter("toleranceMm", 1.0), "hd_mode": self.hd_mode}

    def thresholds(self) -> dict:
        """The review thresholds (main thread: the parameter node)."""
        p = self.panel.parameter
        return {"min_mean_pairwise_dice": p("minMeanPairwiseDice", 0.8), "max_pairwise_hd95_mm": p("maxPairwiseHd95Mm", 10.0),
                "max_disputed_fraction": p("maxDisputedFraction", 0.3), "min_annotator_dice": p("minAnnotatorDice", 0.7)}

    # ----- actions --------------------------------------------------------------------------------
    def refresh_cases(self) -> None:
        """'Refresh': list the project's cases with their annotators (a reviewer sees every case)."""
        store = self.panel.store
        if store is None or self.busy:
            return
        self.tasks.start(lambda task: self.logic.reviewCases(store=store), self._cases, name="cases")

    def _cases(self, task) -> None:
        """The case list arrived (main thread): keep the chosen case when it is still there."""
        ok, rows = self.panel.result(task, _("Could not list the cases."))
        if ok:
            self.cases = rows
            ids = [r["case_id"] for r in rows]
            if self.case_id not in ids:
                self.case_id = ids[0] if ids else None
        self.changed()

    def compute(self) -> None:
        """'Compute consensus': read the inputs here, then download/align and compute on a worker."""
        if not self.can_compute:
            return
        out_root = self.output_folder or None
        if not self.panel.installer.ensure(consensus_feature(self.source, bool(out_root), self.files)):
            return
        gather, downloading = self._gatherer()
        if gather is None:
            return
        method, options, thresholds = self.method, self.options(), self.thresholds()
        computing = _("Computing the {method} consensus...").format(method=method)
        writing = _("Writing the consensus files and the report...")
        logic = self.logic

        def work(task):
            """Worker: the inputs, the consensus, then (unless cancelled) its files."""
            task.report(None, downloading or computing)
            prepared = gather()
            task.report(None, computing)
            run = logic.runConsensus(prepared, method, options, thresholds)
            task.report(None, writing)  # a Cancel while computing stops here: nothing written, nothing shown
            if out_root:
                folder = os.path.join(out_root, prepared["case_id"] or "consensus")
                run["paths"] = logic.writeConsensusOutputs(run, folder, thresholds)
            return run

        self.status_text = computing
        self.tasks.start(work, self._computed, name="consensus", title=_("Consensus"), text=downloading or computing)
        self.changed()

    def _gatherer(self):
        """(work that returns the prepared inputs, its first progress text); (None, '') after telling why not."""
        reference, logic = self.panel.parameter("referenceVolume", None), self.logic
        if self.source == "nodes":
            try:
                prepared = self.logic.segmentationsFromNodes(list(self.nodes), reference)  # MRML: main thread
            except ValueError as exc:
                self.ui.error(_("Could not read the segmentation nodes: {error}").format(error=exc))
                return None, ""
            return (lambda: {**logic.inputsFromSegmentations(prepared), "reference_node": reference}), ""
        if self.source == "files":
            paths = list(self.files)
            image = self.logic.referenceImage(reference)  # MRML: main thread
            return (lambda: {**logic.inputsFromFiles(paths, image), "reference_node": reference}), ""
        store, case_id, submitted = self.panel.store, self.case_id, self.submitted_only
        work_dir = os.path.join(self.logic.defaultOutputFolder(), "inputs", str(case_id))
        return ((lambda: logic.inputsFromStore(case_id, work_dir, submitted, store=store)),
                _("Downloading the annotations of {case}...").format(case=case_id))

    def _computed(self, task) -> None:
        """The consensus is computed (main thread): the result's nodes, tables, map and adjudication choices."""
        ok, run = self.panel.result(task, _("The consensus could not be computed."))
        if not ok:
            self.status_text = (_("Consensus cancelled.") if isinstance(run, TaskCancelled)
                                else _("Consensus not computed."))
            self.changed()
            return
        result = run["result"]
        self.status_text = _("{method} of {n} annotators ({names}) in {seconds:.1f} s.").format(
            method=result.method, n=len(result.inputs.annotators), names=", ".join(result.inputs.annotators),
            seconds=task.elapsed)
        self.panel.results.show_run(run)
        self.panel.adjudication.run_changed(run)
        self.changed()

    def compute_case(self, case_id) -> None:
        """The review queue's double-click: compute that project case."""
        self.source = "store"
        if case_id not in [c["case_id"] for c in self.cases]:
            self.cases.append({"case_id": case_id, "state": "", "annotators": []})
        self.case_id = case_id
        self.changed()
        self.compute()

    def open_hub(self) -> None:
        """'Open DICOM Team Annotate': the module where the project connection is made."""
        self.ui.show_module("DicomTeamAnnotate")
