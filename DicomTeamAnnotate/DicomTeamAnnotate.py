"""DicomTeamAnnotate: the hub module, and the core library (DicomTeamAnnotateLib) of all four modules.

Connect to a team project (a shared folder or the project server), see my worklist, open a case
(download, volume, three-plane layout, window preset, a segmentation with the project's label
ontology), autosave drafts locally, submit or reopen; a reviewer sees every annotator's versions.
Also: load a DICOM folder or ZIP through the project's own ingestion, add cases from DICOMweb.

What the panel does lives in Qt-free panel models (DicomTeamAnnotateLib/slicer/hub_panel.py and
its sections); this file's widget only binds Qt widgets to them. The logic below is what the
models (and Slicer's Python console) call.
"""
import logging
import os
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from DicomTeamAnnotateLib.core.tasks import BackgroundTask
from DicomTeamAnnotateLib.core.windowing import load_presets
from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom
from DicomTeamAnnotateLib.dicom.ingest import ingest
from DicomTeamAnnotateLib.pacs import PacsError
from DicomTeamAnnotateLib.pacs.dicomweb import check_url, remember_password
from DicomTeamAnnotateLib.slicer.connection import CASE_ATTRIBUTE, set_current_effort, set_current_store
from DicomTeamAnnotateLib.slicer.effort_observer import EffortObserver
from DicomTeamAnnotateLib.slicer.hub_panel import HubPanel
from DicomTeamAnnotateLib.slicer.mrml import (
    apply_window_to_display_node,
    node_to_segmentation,
    node_to_volume,
    segmentation_to_node,
    volume_to_node,
)
from DicomTeamAnnotateLib.slicer.packages import SEGMENTATION_FILES, Installer, require, slicer_version_problem
from DicomTeamAnnotateLib.slicer.qt_binding import bind_path, fill_combo, fill_table, selected_row_id, set_text
from DicomTeamAnnotateLib.slicer.ui import SlicerUi
from DicomTeamAnnotateLib.slicer.view_panel import CUSTOM_PRESET
from DicomTeamAnnotateLib.store import admin
from DicomTeamAnnotateLib.store.dicomweb_import import import_dicomweb
from DicomTeamAnnotateLib.store.interface import is_url
from DicomTeamAnnotateLib.worklist import session as case_session
from DicomTeamAnnotateLib.worklist.effort import EffortTracker, compare_segmentations
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue
from DicomTeamAnnotateLib.worklist.rows import connect, flush_queue, offline_status, reopen_case, worklist_rows
from DicomTeamAnnotateLib.worklist.session import CaseSession

VERSION_ATTRIBUTE = "DicomTeamAnnotate.VersionId"


#
# DicomTeamAnnotate
#


class DicomTeamAnnotate(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        """Called when Slicer discovers the module at startup."""
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DICOM Team Annotate")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "DICOM Team Annotate")]
        self.parent.dependencies = []
        self.parent.contributors = ["DicomTeamAnnotate contributors"]
        self.parent.helpText = _("""
Team annotation of DICOM volumes (needs 3D Slicer 5.12 or newer). <b>Project</b>: connect to a project
folder (local or on a shared drive) or to a project server (URL, user and token; the token is kept in the OS
keyring or in Slicer's settings, never in the scene). <b>Worklist</b>: my cases and their state; <b>Open</b>
downloads the case, shows it in three linked planes with the project's window preset and creates a
segmentation with the project's labels. Drafts are autosaved locally; <b>Submit</b> pushes a version to the
project; pushes made offline are queued and sent when the store is back. A reviewer sees every annotator's
versions. <b>Load DICOM</b>: read a folder or ZIP through the project's ingestion (rejected files are listed
with the reason). <b>Add cases from DICOMweb</b> (administrators): query a PACS, retrieve the matching series
and add each as a case of a project folder, copied or by reference (the password stays in the OS keyring).
Python packages a feature needs (pynrrd, DICOM decoders) are installed at its first use, after you confirm.
Headless twin: <code>dicomteam status|pull|push|versions</code>.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer's scripted module template (Jean-Christophe Fillion-Robin, Kitware Inc.; Andras Lasso,
PerkLab; Steve Pieper, Isomics, Inc.; NIH grant 3P41RR013218-12S1), pydicom, pylibjpeg and SimpleITK.
""")


#
# DicomTeamAnnotateParameterNode
#


@parameterNodeWrapper
class DicomTeamAnnotateParameterNode:
    """
    The parameters of the panel, saved with the scene (credentials never are).

    volume - The volume the window preset and the three-plane layout apply to.
    windowPreset - Name of the last applied window preset ('custom' uses customLevel/customWidth).
    customLevel - Window centre (HU) of the custom preset.
    customWidth - Window width (HU) of the custom preset.
    autosave - Write a local draft of the open case's segmentation periodically.
    autosaveSeconds - Seconds between autosaves.
    """

    volume: vtkMRMLScalarVolumeNode
    windowPreset: str = "soft tissue"
    # the ranges of the .ui file: without them Slicer's GUI connector resets the spin boxes to -inf..inf
    customLevel: Annotated[float, WithinRange(-5000.0, 50000.0)] = 40.0
    customWidth: Annotated[float, WithinRange(1.0, 100000.0)] = 400.0
    autosave: bool = True
    autosaveSeconds: Annotated[int, WithinRange(5, 3600)] = 60


#
# DicomTeamAnnotateWidget
#


class DicomTeamAnnotateWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: binds the .ui widgets to the Qt-free HubPanel (DicomTeamAnnotateLib/slicer/hub_panel.py)."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self.panel = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        problem = slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion)
        if problem:  # one clear message instead of a failure inside a click
            self.layout.addWidget(qt.QLabel(problem))
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DicomTeamAnnotate.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DicomTeamAnnotateLogic()
        ui = SlicerUi()
        self.panel = HubPanel(self.logic, ui, Installer(_("DICOM Team Annotate"), ui))
        p = self.panel
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Project
        self.ui.storeLocationLineEdit.connect("textChanged(QString)", p.project.set_location)
        self.ui.userLineEdit.connect("textChanged(QString)", p.project.set_user)
        self.ui.tokenLineEdit.connect("textChanged(QString)", p.project.set_token)
        self.ui.rememberTokenCheckBox.connect("toggled(bool)", p.project.set_remember_token)
        bind_path(self.ui.workFolderLineEdit, p.project.set_work_folder)
        self.ui.browseStoreButton.connect("clicked(bool)", lambda: p.project.browse_store())
        self.ui.connectButton.connect("clicked(bool)", lambda: p.project.connect())
        self.ui.forgetTokenButton.connect("clicked(bool)", lambda: p.project.forget_token())
        self.ui.syncNowButton.connect("clicked(bool)", lambda: p.project.sync_now())
        # Worklist and versions
        fill_combo(self.ui.stateFilterComboBox, p.worklist.state_choices(), "all")
        self.ui.stateFilterComboBox.connect("currentIndexChanged(int)",
                                            lambda i: p.worklist.set_state_filter(self.ui.stateFilterComboBox.itemData(i)))
        fill_combo(self.ui.orderComboBox, p.worklist.order_choices(), "first")
        self.ui.orderComboBox.connect("currentIndexChanged(int)",
                                      lambda i: p.worklist.set_order(self.ui.orderComboBox.itemData(i)))
        self.ui.textFilterLineEdit.connect("textChanged(QString)", p.worklist.set_text_filter)
        self.ui.refreshWorklistButton.connect("clicked(bool)", lambda: p.worklist.refresh())
        self.ui.worklistTableWidget.connect("itemSelectionChanged()",
                                            lambda: p.worklist.select_case(selected_row_id(self.ui.worklistTableWidget)))
        self.ui.worklistTableWidget.connect("cellDoubleClicked(int,int)", lambda row, column: p.case.open_selected())
        self.ui.openCaseButton.connect("clicked(bool)", lambda: p.case.open_selected())
        self.ui.refreshVersionsButton.connect("clicked(bool)", lambda: p.worklist.refresh_versions())
        self.ui.versionsTableWidget.connect("itemSelectionChanged()",
                                            lambda: p.worklist.select_version(selected_row_id(self.ui.versionsTableWidget)))
        self.ui.loadVersionButton.connect("clicked(bool)", lambda: p.worklist.load_version())
        # Current case
        self.ui.messageLineEdit.connect("textChanged(QString)", p.case.set_message)
        self.ui.editSegmentationButton.connect("clicked(bool)", lambda: p.case.edit_segmentation())
        self.ui.saveVersionButton.connect("clicked(bool)", lambda: p.case.push(submit=False))
        self.ui.submitButton.connect("clicked(bool)", lambda: p.case.push(submit=True))
        self.ui.reopenButton.connect("clicked(bool)", lambda: p.case.reopen())
        self.ui.autosaveCheckBox.connect("toggled(bool)", self._autosaveChanged)
        self.ui.autosaveSecondsSpinBox.connect("valueChanged(int)", self._autosaveChanged)
        # Load DICOM
        bind_path(self.ui.inputPathLineEdit, p.dicom.set_path)
        self.ui.browseZipButton.connect("clicked(bool)", lambda: p.dicom.browse_zip())
        self.ui.loadButton.connect("clicked(bool)", lambda: p.dicom.load())
        # Add cases from DICOMweb (administrators)
        bind_path(self.ui.dicomwebProjectPathLineEdit, lambda path: p.dicomweb.set(project_dir=path))
        for name, field in (("dicomwebUrlLineEdit", "url"), ("dicomwebUserLineEdit", "user"),
                            ("dicomwebPasswordLineEdit", "password"), ("dicomwebPatientLineEdit", "patient"),
                            ("dicomwebStudyLineEdit", "study"), ("dicomwebSeriesLineEdit", "series")):
            getattr(self.ui, name).connect("textChanged(QString)", lambda text, f=field: p.dicomweb.set(**{f: text}))
        self.ui.dicomwebReferenceCheckBox.connect("toggled(bool)", lambda on: p.dicomweb.set(reference=on))
        self.ui.dicomwebRememberPasswordCheckBox.connect("toggled(bool)",
                                                         lambda on: p.dicomweb.set(remember_password=on))
        self.ui.dicomwebImportButton.connect("clicked(bool)", lambda: p.dicomweb.run_import())
        # View
        self.ui.windowPresetComboBox.clear()
        for name, tip in p.view.presets:
            self.ui.windowPresetComboBox.addItem(name)
            self.ui.windowPresetComboBox.setItemData(self.ui.windowPresetComboBox.count - 1, tip, qt.Qt.ToolTipRole)
        self.ui.windowPresetComboBox.connect("activated(int)",
                                             lambda i: p.view.choose_preset(self.ui.windowPresetComboBox.itemText(i)))
        self.ui.customLevelSpinBox.connect("valueChanged(double)", lambda v: p.view.set_custom_window(level=v))
        self.ui.customWidthSpinBox.connect("valueChanged(double)", lambda v: p.view.set_custom_window(width=v))
        self.ui.threePlaneLayoutButton.connect("clicked(bool)", lambda: p.view.three_planes())

        p.on_change(self.refresh)
        self.initializeParameterNode()
        p.restore()
        self._autosaveChanged()
        self.refresh()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self.panel is not None:
            self.panel.stop()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        if self.panel is not None:
            self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module (autosave keeps running meanwhile)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: keep the open case's work as a draft first."""
        self.panel.case.scene_closing()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()
        self.refresh()

    def initializeParameterNode(self) -> None:
        """Called from setup() and enter(): make sure the parameter node exists and is observed."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.volume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.volume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        """Called by initializeParameterNode() and on scene close: connect the GUI to a parameter node."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)
        self._parameterNode = inputParameterNode
        self.panel.set_parameters(inputParameterNode)
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" property in the .ui file are connected here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)
        self.refresh()

    def _autosaveChanged(self, *args) -> None:
        """Called when the autosave check box or interval change."""
        self.panel.case.set_autosave(self.ui.autosaveCheckBox.checked, self.ui.autosaveSecondsSpinBox.value)

    def refresh(self, caller=None, event=None) -> None:
        """Called when the panel model or the parameter node changes: copy its outputs to the widgets."""
        p = self.panel
        if p is None:
            return
        project, worklist, case, dicom, dicomweb, view = p.project, p.worklist, p.case, p.dicom, p.dicomweb, p.view
        set_text(self.ui.storeLocationLineEdit, project.location)
        set_text(self.ui.userLineEdit, project.user)
        set_text(self.ui.tokenLineEdit, project.token)
        self.ui.rememberTokenCheckBox.checked = project.remember_token
        if self.ui.workFolderLineEdit.currentPath != project.work_folder and project.work_folder:
            self.ui.workFolderLineEdit.currentPath = project.work_folder
        self.ui.tokenLineEdit.enabled = project.is_server
        self.ui.rememberTokenCheckBox.enabled = project.is_server
        self.ui.connectButton.enabled = project.can_connect
        self.ui.connectionStatusLabel.text = project.status_text
        self.ui.offlineBannerFrame.visible = project.banner_visible
        self.ui.offlineBannerLabel.text = project.banner_text
        self.ui.offlineBannerLabel.toolTip = project.offline_reason
        self.ui.syncNowButton.enabled = project.connected and not p.tasks.busy

        cells = worklist.worklist_cells()
        fill_table(self.ui.worklistTableWidget, [c for _id, c in cells], [i for i, _c in cells],
                   worklist.selected_case_id)
        self.ui.worklistStatusLabel.text = worklist.status_text
        self.ui.refreshWorklistButton.enabled = worklist.can_refresh
        self.ui.openCaseButton.enabled = worklist.can_open
        vcells = worklist.version_cells()
        fill_table(self.ui.versionsTableWidget, [c for _id, c in vcells], [i for i, _c in vcells],
                   worklist.selected_version_id)
        self.ui.refreshVersionsButton.enabled = worklist.can_refresh
        self.ui.loadVersionButton.enabled = worklist.can_load_version

        self.ui.currentCaseLabel.text = case.status_text
        for button in (self.ui.saveVersionButton, self.ui.submitButton, self.ui.editSegmentationButton):
            button.enabled = case.can_edit
        self.ui.reopenButton.enabled = case.can_reopen
        set_text(self.ui.messageLineEdit, case.message)

        if self.ui.inputPathLineEdit.currentPath != dicom.path:  # Browse (ZIP) chose it in the panel
            self.ui.inputPathLineEdit.currentPath = dicom.path
        self.ui.loadButton.enabled = dicom.can_load
        self.ui.loadButton.toolTip = dicom.load_tooltip
        self.ui.loadSummaryLabel.text = dicom.summary_text
        fill_table(self.ui.issuesTableWidget, dicom.report_rows)
        self.ui.issuesTableWidget.visible = bool(dicom.report_rows)

        self.ui.dicomwebImportButton.enabled = dicomweb.can_import
        if dicomweb.project_dir and self.ui.dicomwebProjectPathLineEdit.currentPath != dicomweb.project_dir:
            self.ui.dicomwebProjectPathLineEdit.currentPath = dicomweb.project_dir
        set_text(self.ui.dicomwebUrlLineEdit, dicomweb.url)
        set_text(self.ui.dicomwebUserLineEdit, dicomweb.user)
        set_text(self.ui.dicomwebPasswordLineEdit, dicomweb.password)
        self.ui.dicomwebReferenceCheckBox.checked = dicomweb.reference
        self.ui.dicomwebSummaryLabel.text = dicomweb.summary_text
        fill_table(self.ui.dicomwebResultsTableWidget, dicomweb.result_cells())
        self.ui.dicomwebResultsTableWidget.visible = bool(dicomweb.results)

        preset = self._parameterNode.windowPreset if self._parameterNode else ""
        index = self.ui.windowPresetComboBox.findText(preset)
        if index >= 0 and index != self.ui.windowPresetComboBox.currentIndex:
            self.ui.windowPresetComboBox.setCurrentIndex(index)
        self.ui.windowPresetComboBox.enabled = view.has_volume and bool(view.presets)
        self.ui.windowPresetComboBox.toolTip = view.presets_error or self.ui.windowPresetComboBox.toolTip
        self.ui.customLevelSpinBox.enabled = view.has_volume and view.custom
        self.ui.customWidthSpinBox.enabled = view.has_volume and view.custom
        self.ui.threePlaneLayoutButton.enabled = view.has_volume


#
# DicomTeamAnnotateLogic
#


class DicomTeamAnnotateLogic(ScriptedLoadableModuleLogic):
    """Project, cases, drafts, versions, DICOM loading, windowing and layout; usable without the panel.

    Methods marked "any thread" do no MRML/Qt work and run on a worker; the others belong on the
    main thread. Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("DicomTeamAnnotate")
        logic.setStore(logic.connect("/data/project", "alice")["store"])
        session = logic.loadCase(logic.fetchCase("c1", logic.defaultWorkFolder()))
        logic.showCase(session)
        # ... segment in the Segment Editor ...
        logic.afterPush(session, logic.pushSegmentation(session, logic.currentSegmentation(session), submit=True))
    """

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        self.store = None  # the connected project store (other modules use it too)
        self.session = None  # the case open for work (CaseSession)
        self._effortObserver = None  # tells the open case's EffortTracker what Slicer reports
        self.queue = None  # OfflineQueue; None: the default location ($DICOMTEAM_HOME)

    def getParameterNode(self):
        """Called by the widget: the module's parameter node, wrapped."""
        return DicomTeamAnnotateParameterNode(super().getParameterNode())

    # ----- project store ----------------------------------------------------------------------

    @staticmethod
    def isServer(location) -> bool:
        """True when ``location`` is a server URL (which needs a token), False for a folder."""
        return is_url(str(location or "").strip())

    @staticmethod
    def defaultWorkFolder() -> str:
        """Where cases are downloaded and drafts kept: Slicer's cache folder, else ~/.cache."""
        app = getattr(slicer, "app", None)
        base = app.cachePath if app is not None else os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "DicomTeamAnnotate", "work")

    @staticmethod
    def connect(location, user, token=None, **options) -> dict:
        """Any thread: open the store and check the credentials; {'store', 'project', 'whoami'}.

        ``options`` go to the HTTP client (cache, timeout, retry_window_s, connect_window_s).
        """
        if not str(location or "").strip() or not str(user or "").strip():
            raise ValueError("a store location (folder or URL) and a user name are needed")
        store = connect(str(location).strip(), str(user).strip(), token, **options)
        return {"store": store, "project": store.project(), "whoami": store.whoami()}

    def setStore(self, store, role=None) -> None:
        """Use ``store`` from now on (the previous one is closed; the open case keeps its own); ``role``: mine
        in the project (from ``connect``'s whoami), for the other panels to offer only what it allows."""
        previous = self.store
        if previous is not None and previous is not store and (self.session is None or self.session.store is not previous):
            previous.close()
        self.store = store
        set_current_store(store, role)  # the other modules' panels work on this project (read on the main thread)

    def requireStore(self):
        """The connected store, or a clear error."""
        if self.store is None:
            raise RuntimeError("not connected to a project store: connect first")
        return self.store

    def worklistRows(self, state="all", text="", order="first") -> list:
        """Any thread: my cases with state, filtered, in ``order`` ('first', 'random' or 'uncertainty': the
        cases the model is least sure of first; see worklist.rows.worklist_rows)."""
        return worklist_rows(self.requireStore(), state, text, queue=self.queue, order=order)

    def offlineStatus(self) -> dict:
        """{'queued': n, 'items': [...]}: pushes waiting for this store (local disk only)."""
        return offline_status(self.requireStore(), queue=self.queue)

    def flushQueue(self) -> dict:
        """Any thread: send the queued pushes now; {'sent', 'failed', 'remaining'}."""
        return flush_queue(self.requireStore(), queue=self.queue)

    def listVersions(self, caseId) -> list:
        """Any thread: the versions of a case I may see (a reviewer: every annotator's)."""
        return self.requireStore().list_versions(caseId)

    def reopen(self, caseId) -> dict:
        """Any thread: my submitted case back to 'in progress'; returns the case's states."""
        return reopen_case(self.requireStore(), caseId)

    # ----- opening a case -----------------------------------------------------------------------

    def fetchCase(self, caseId, workDir, progress=None):
        """Any thread: download the case and read the image, my latest version and my draft.

        Returns a ``worklist.session.FetchedCase`` (its files, the project's labels and window preset,
        the image as a Volume, my version and my draft as Segmentations, where the case starts from).
        """
        require(SEGMENTATION_FILES, _("DICOM Team Annotate"))
        return case_session.fetch_case(self.requireStore(), caseId, workDir, progress=progress)

    @staticmethod
    def draftIsNewer(fetched) -> bool:
        """True when the local draft was written after my latest version was created."""
        return fetched.draft_is_newer()

    @staticmethod
    def withOntology(seg, labels, geometry):
        """``seg`` (or an empty segmentation on ``geometry``) holding a segment for every project label.

        Existing segments keep their voxels, names and colours; a label is matched by terminology
        code or by name (case-insensitive); missing labels are added empty with the project's
        name, colour and terminology.
        """
        return case_session.with_ontology(seg, labels, geometry)

    def loadCase(self, fetched, useDraft=False, scene=None):
        """Main thread: volume and segmentation nodes of a fetched case; the project's window preset.

        Returns the CaseSession (also kept as ``self.session``).
        """
        case, store = fetched.case, fetched.store
        caseId = case["case_id"]
        volume = fetched.volume
        previous = self.session
        if previous is not None and previous.alive() and previous.case_id == caseId:
            # opened again: the new nodes replace the old ones (the caller saved their draft first)
            self.closeCase()
            for node in (previous.segmentation_node, previous.volume_node):
                node.GetScene().RemoveNode(node)
        volumeNode = volume_to_node(volume, scene, name=caseId)
        volumeNode.SetAttribute(CASE_ATTRIBUTE, caseId)
        preset = fetched.window_preset
        if preset:
            try:
                apply_window_to_display_node(volumeNode, preset)
            except ValueError as exc:  # a preset name this Slicer does not know: keep the header's window
                logging.warning(f"DicomTeamAnnotate: project window preset not applied: {exc}")
        if useDraft and fetched.draft_segmentation is not None:
            seg, source = fetched.draft_segmentation, "draft"
        elif fetched.version_segmentation is not None:
            # my latest version, or (none yet) the model's prediction: my next push descends from it
            seg, source = fetched.version_segmentation, ("prediction" if fetched.start == "prediction" else "version")
        else:
            seg, source = None, "new"
        seg = self.withOntology(seg, fetched.labels, volume.geometry)
        segNode = segmentation_to_node(seg, scene, reference_volume_node=volumeNode,
                                       name=f"{caseId} - {store.user}")
        segNode.SetAttribute(CASE_ATTRIBUTE, caseId)
        version = fetched.version
        session = CaseSession(store, caseId, fetched.work_dir, fetched.image_path, volume.geometry,
                              fetched.labels, version["id"] if version else None, volumeNode, segNode, source)
        if version:
            segNode.SetAttribute(VERSION_ATTRIBUTE, version["id"])
        if source != "draft":
            session.saved_digest = self.segmentationDigest(seg)  # unchanged content is not re-saved as a draft
        session.prediction = fetched.prediction if source == "prediction" else None
        # effort: counted from now (the nodes exist, so their own making is not counted as work)
        session.effort = EffortTracker(start=source, start_version=session.parent)
        session.effort_start = seg
        self.closeCase()  # the previous case's effort stops here
        self._effortObserver = EffortObserver(session.effort, segNode, segNode.GetScene())
        set_current_effort(session.effort, segNode)  # the SAM effect counts its prompts there
        self.session = session
        return session

    def closeCase(self) -> None:
        """Main thread: the open case is no longer worked on (another case opened, the scene closed)."""
        if self._effortObserver is not None:
            self._effortObserver.stop()
            self._effortObserver = None
        set_current_effort(None)
        self.session = None

    def showCase(self, session) -> None:
        """Main thread, application only: three linked planes on the case, segmentation shown."""
        self.setThreePlaneLayout(session.volume_node)
        displayNode = session.segmentation_node.GetDisplayNode()
        if displayNode is not None:
            displayNode.SetVisibility(True)

    @staticmethod
    def editInSegmentEditor(session) -> None:
        """Main thread, application only: the Segment Editor on the case's segmentation and volume."""
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor
        editor.setSegmentationNode(session.segmentation_node)
        editor.setSourceVolumeNode(session.volume_node)

    # ----- drafts and pushes -----------------------------------------------------------------------

    @staticmethod
    def segmentationDigest(seg) -> str:
        """A digest of voxels and segment names/values/colours: tells whether anything changed."""
        return case_session.segmentation_digest(seg)

    @staticmethod
    def currentSegmentation(session):
        """Main thread: the case's segmentation node as a Segmentation on the case image's grid."""
        if not session.alive():
            raise RuntimeError(f"the nodes of case {session.case_id} are no longer in the scene")
        return node_to_segmentation(session.segmentation_node, reference_geometry=session.geometry)

    def draftSnapshot(self, session):
        """Main thread: (segmentation, digest) when it changed since the last save, else None."""
        seg = self.currentSegmentation(session)
        digest = self.segmentationDigest(seg)
        return None if digest == session.saved_digest else (seg, digest)

    @staticmethod
    def writeDraft(session, seg, digest):
        """Any thread: write the draft .seg.nrrd atomically; returns its path."""
        require(SEGMENTATION_FILES, _("DICOM Team Annotate"))
        return case_session.write_draft(session, seg, digest)

    def saveDraft(self, session):
        """Main thread, synchronous: write the draft if the segmentation changed; its path, or None."""
        snapshot = self.draftSnapshot(session)
        return None if snapshot is None else self.writeDraft(session, *snapshot)

    @staticmethod
    def effortCounts(session) -> dict | None:
        """Main thread: the time and actions the work on the case took so far (worklist.effort)."""
        return session.effort.counts() if session.effort is not None else None

    def pushSegmentation(self, session, seg, message="", submit=False, progress=None, effort=None) -> dict:
        """Any thread: push ``seg`` as my new version (and submit); queued when the store is unreachable.

        ``effort``: the session's counts (``effortCounts``); the voxels changed since the start are added
        here (seconds on a large case, hence on the worker) and the record is stored with the version.
        """
        require(SEGMENTATION_FILES, _("DICOM Team Annotate"))
        meta = None
        if effort is not None:
            try:
                effort = {**effort, **compare_segmentations(session.effort_start, seg)}
            except Exception as exc:  # never a reason not to send the work itself
                logging.warning(f"DicomTeamAnnotate: effort comparison skipped: {exc}")
                effort = {**effort, "comparison_error": str(exc)}
            meta = {"effort": effort}
        return case_session.push_segmentation(session, seg, message, submit=submit, progress=progress,
                                              queue=self.queue, meta=meta)

    @staticmethod
    def afterPush(session, version) -> None:
        """Main thread: the next push descends from this version; a sent push makes the draft obsolete."""
        session.parent = version["id"]
        if not version.get("queued"):
            session.draft_path.unlink(missing_ok=True)
            session.saved_digest = version.get("digest", session.saved_digest)
        if session.segmentation_node is not None:
            session.segmentation_node.SetAttribute(VERSION_ATTRIBUTE, version["id"])

    # ----- versions ------------------------------------------------------------------------------------

    def fetchVersion(self, version, workDir) -> tuple:
        """Any thread: download one version and read it; (version, Segmentation)."""
        require(SEGMENTATION_FILES, _("DICOM Team Annotate"))
        return case_session.fetch_version(self.requireStore(), version, workDir)

    def loadVersion(self, version, seg, scene=None):
        """Main thread: a segmentation node of another version (on the open case's volume when it matches)."""
        session = self.session
        reference = None
        if session is not None and session.alive() and session.case_id == version["case_id"]:
            reference = session.volume_node
        node = segmentation_to_node(seg, scene, reference_volume_node=reference,
                                    name=f"{version['case_id']} - {version['author']} ({version['kind']} {version['id']})")
        node.SetAttribute(CASE_ATTRIBUTE, version["case_id"])
        node.SetAttribute(VERSION_ATTRIBUTE, version["id"])
        return node

    # ----- adding cases from DICOMweb (admin) ------------------------------------------------------

    def importFromDicomweb(self, projectDir, url, user=None, password=None, patient=None, study=None, series=None,
                           reference=False, progress=None, cacheDir=None) -> dict:
        """Any thread: add each matching image series of a DICOMweb server as a case of a folder project.

        Blank filters are ignored; a blank password means ``$DICOMWEB_PASSWORD`` or the OS keyring's.
        ``progress(seriesIndex, seriesCount, done, total)`` is called after each instance; an exception
        raised there (TaskCancelled) stops the import: cases added before stay, and the retrieved
        instances stay in the cache for the next import. Returns {'added', 'skipped', 'results'}
        (store.dicomweb_import's per-series summaries); PacsError names the failing step.
        """
        def optional(value):
            value = str(value or "").strip()
            return value or None

        projectDir = optional(projectDir)
        if projectDir is None or self.isServer(projectDir):
            raise ValueError(f"adding cases needs the project folder itself, not {projectDir or 'nothing'!r} "
                             "(a project server's administrator runs `dicomteam project import-dicomweb` on its folder)")
        stopped = []  # the exception the progress callback raised (Cancel), if any

        def report(*args):
            try:
                progress(*args)
            except BaseException as exc:
                stopped.append(exc)
                raise

        try:
            results = import_dicomweb(projectDir, check_url(optional(url) or ""), study=optional(study),
                                      series=optional(series), patient=optional(patient), user=optional(user),
                                      password=password or None, reference=bool(reference), cache_dir=cacheDir,
                                      callback=report if progress is not None else None)
        except PacsError:
            # The streamed WADO-RS retrieval wraps whatever its loop raises, the callback's TaskCancelled
            # included, as a "damaged instance" PacsError: a Cancel must stay a Cancel, not become an error.
            if stopped:
                raise stopped[0] from None
            raise
        return {"added": [r for r in results if r["status"] == "added"],
                "skipped": [r for r in results if r["status"] != "added"], "results": results}

    @staticmethod
    def rememberDicomwebPassword(url, user, password) -> None:
        """Keep a DICOMweb password in the OS keyring (never in the scene or Slicer's settings)."""
        if not str(user or "").strip() or not password:
            raise ValueError("a user name and a password are needed to remember a password")
        remember_password(str(url).strip(), str(user).strip(), password)

    # ----- DICOM ingestion -------------------------------------------------------------------------

    @staticmethod
    def ingest(paths):
        """Read DICOM files/folders/ZIPs with DicomTeamAnnotateLib.dicom.ingest (no MRML; any thread)."""
        return ingest([os.fspath(p) for p in paths])

    def ingestTask(self, task, paths, readingText="", doneText=""):
        """The worker of startIngest(): ingest() reports no progress and cannot be interrupted,
        so the dialog is a busy indicator and Cancel discards the result once the files are read."""
        task.report(None, readingText)
        result = self.ingest(paths)
        task.report(1.0, doneText)  # raises TaskCancelled if the user cancelled meanwhile
        return result

    def startIngest(self, paths):
        """Start ingest() on a worker thread; the caller polls the returned BackgroundTask."""
        reading, done = _("Reading DICOM files..."), _("Creating volumes...")  # translated on the main thread
        return BackgroundTask(lambda task: self.ingestTask(task, paths, reading, done), name="DICOM ingest").start()

    @staticmethod
    def seriesNodeName(series) -> str:
        """A readable node name: series description (or modality and number), then the series id's tail."""
        meta = series.metadata or {}
        number = meta.get("series_number")
        label = meta.get("description") or " ".join(
            t for t in (meta.get("modality"), f"series {number}" if number else "") if t) or "DICOM"
        sid = str(series.series_id)
        return f"{label} [{sid[-8:]}]" if sid else label

    def createVolumeNodes(self, result, failures=None):
        """Main thread: one scalar volume node per ingested series (geometry from the adapter).

        With a ``failures`` list, a series that cannot become a node is recorded there as
        (series id, message) and the others still load; without it the error is raised.
        """
        nodes = []
        for series in result.series:
            try:
                node = volume_to_node(series.volume, slicer.mrmlScene, name=self.seriesNodeName(series))
            except Exception as exc:
                if failures is None:
                    raise
                logging.exception(f"DicomTeamAnnotate: series {series.series_id} could not be loaded")
                failures.append((str(series.series_id), str(exc)))
                continue
            node.SetAttribute("DicomTeamAnnotate.SeriesId", str(series.series_id))
            nodes.append(node)
        return nodes

    def loadDicom(self, paths):
        """Ingest and create the nodes on the calling (main) thread; return (nodes, ingest result)."""
        result = self.ingest(paths)
        return self.createVolumeNodes(result), result

    @staticmethod
    def reportRows(result):
        """[(kind, file or series, reason)]: rejected files first, then each series' warnings."""
        rows = [("rejected", os.fspath(path), str(reason)) for path, reason in result.rejected]
        for series in result.series:
            rows += [("warning", str(series.series_id), str(w)) for w in series.warnings]
        return rows

    # ----- viewing --------------------------------------------------------------------------------

    @staticmethod
    def windowPresets():
        """{name: (level, width)} from DicomTeamAnnotateLib.core.windowing (Resources/window_presets.json)."""
        return load_presets()

    def applyWindowPreset(self, volumeNode, preset, customLevel=None, customWidth=None):
        """Apply a preset name (or 'custom' with level/width) to the volume's display; return (level, width)."""
        if volumeNode is None:
            raise ValueError("no volume selected")
        if preset == CUSTOM_PRESET:
            return apply_window_to_display_node(volumeNode, CUSTOM_PRESET, customLevel, customWidth)
        return apply_window_to_display_node(volumeNode, preset)

    @staticmethod
    def showVolume(volumeNode) -> None:
        """Show the volume as background of every slice view and fit the views to it."""
        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)

    def setThreePlaneLayout(self, volumeNode=None) -> None:
        """Four-up layout (axial, sagittal, coronal, 3D) with linked slice views, aligned to the volume."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        orientations = {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}
        for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
            orientation = orientations.get(sliceNode.GetLayoutName())
            if orientation is None:
                continue
            sliceNode.SetOrientation(orientation)
            if volumeNode is not None:
                # Annotation happens on the voxel grid: align each view with the volume's closest axis,
                # so an oblique acquisition is not cut obliquely (Slicer's "Rotate to volume plane").
                sliceNode.RotateToVolumePlane(volumeNode)
        for compositeNode in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            if compositeNode.GetLayoutName() in orientations:
                compositeNode.SetLinkedControl(True)
        if volumeNode is not None:
            self.showVolume(volumeNode)


#
# DicomTeamAnnotateTest
#


class DicomTeamAnnotateTest(ScriptedLoadableModuleTest):
    """In-Slicer test (run by Slicer's self-test and by ctest in an extension build)."""

    def setUp(self):
        """Called before each test: start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Called by Slicer's 'Reload and Test' and ctest: run every test of this module."""
        self.setUp()
        self.test_LoadPhantomSeries()
        self.setUp()
        self.test_RejectedFilesAreReported()
        self.setUp()
        self.test_ProjectRoundTrip()
        self.setUp()
        self.test_LoadDicomThroughThePanel()

    def _writePhantomSeries(self, folder):
        """A synthetic CT series (known geometry) written by DicomTeamAnnotateLib.demo.phantom."""
        phantom = make_phantom(seed=0, shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0))
        write_phantom_dicom(phantom, folder)
        return phantom

    def test_LoadPhantomSeries(self):
        """Ingest a DICOM folder, check voxels and geometry of the node, apply a preset and the layout."""
        import tempfile

        import numpy as np

        self.delayDisplay("Starting the test")
        logic = DicomTeamAnnotateLogic()
        with tempfile.TemporaryDirectory() as folder:
            phantom = self._writePhantomSeries(folder)
            nodes, result = logic.loadDicom([folder])
        self.assertEqual(len(nodes), 1)
        self.assertEqual(result.rejected, [])
        volume = node_to_volume(nodes[0])
        expected = phantom.volume
        np.testing.assert_array_equal(volume.array, expected.array)
        np.testing.assert_allclose(volume.geometry.origin, expected.geometry.to_lps().origin, atol=1e-4)
        np.testing.assert_allclose(volume.geometry.spacing, expected.geometry.spacing, atol=1e-4)

        level, width = logic.applyWindowPreset(nodes[0], "lung")
        display = nodes[0].GetDisplayNode()
        self.assertAlmostEqual(display.GetWindow(), width)
        self.assertAlmostEqual(display.GetLevel(), level)

        logic.setThreePlaneLayout(nodes[0])
        layoutNode = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
        self.assertEqual(layoutNode.GetViewArrangement(), slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(red.GetBackgroundVolumeID(), nodes[0].GetID())
        self.assertTrue(red.GetLinkedControl())
        self.delayDisplay("Test passed")

    def test_LoadDicomThroughThePanel(self):
        """The panel's main action as a user does it: choose a DICOM folder, press Load, get the volume shown."""
        import tempfile

        widget = slicer.util.getModuleWidget("DicomTeamAnnotate")
        with tempfile.TemporaryDirectory() as folder:
            phantom = self._writePhantomSeries(folder)
            widget.ui.inputPathLineEdit.currentPath = folder
            self.assertTrue(widget.ui.loadButton.enabled)
            widget.ui.loadButton.click()
            while widget.panel.tasks.busy:  # ingestion runs on a worker; the panel polls it from the main thread
                slicer.app.processEvents()
        nodes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        self.assertEqual(len(nodes), 1)
        self.assertEqual(slicer.util.arrayFromVolume(nodes[0]).shape, phantom.volume.array.shape)
        self.assertTrue(widget.ui.loadSummaryLabel.text.startswith("Loaded 1 volume(s) from 1 series"))
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(red.GetBackgroundVolumeID(), nodes[0].GetID())
        self.delayDisplay("Test passed")

    def test_RejectedFilesAreReported(self):
        """A non-DICOM file beside the series is reported with a reason and does not stop the load."""
        import tempfile

        logic = DicomTeamAnnotateLogic()
        with tempfile.TemporaryDirectory() as folder:
            self._writePhantomSeries(folder)
            junk = os.path.join(folder, "notes.txt")
            with open(junk, "w", encoding="utf-8") as f:
                f.write("not a DICOM file")
            nodes, result = logic.loadDicom([folder])
        self.assertEqual(len(nodes), 1)
        rows = logic.reportRows(result)
        self.assertTrue(any(kind == "rejected" and item.endswith("notes.txt") and reason for kind, item, reason in rows))
        self.delayDisplay("Test passed")

    def test_ProjectRoundTrip(self):
        """A folder project: open a case with the ontology, draw, autosave, submit, reopen; a reviewer sees it."""
        import tempfile
        from pathlib import Path

        import numpy as np

        # a case's segmentation files need pynrrd, which Slicer does not ship: installed first, as at first use
        self.assertTrue(Installer(_("DICOM Team Annotate"), SlicerUi()).ensure(SEGMENTATION_FILES))
        phantom = make_phantom(seed=0, shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0))
        labels = [{"name": "liver", "value": 1, "color": [0.9, 0.5, 0.4], "terminology": "SCT^10200004^Liver"},
                  {"name": "spleen", "value": 2, "color": [0.6, 0.3, 0.6]}]
        with tempfile.TemporaryDirectory() as tmp:
            project, work = Path(tmp) / "project", Path(tmp) / "work"
            admin.init_project(project, "Test", labels)
            admin.add_case(project, "c1", phantom.volume, "P1")
            admin.add_member(project, "alice", "annotator")
            admin.add_member(project, "rev", "reviewer")
            admin.assign(project, "c1", "alice")

            logic = DicomTeamAnnotateLogic()
            logic.queue = OfflineQueue(Path(tmp) / "queue")  # not the user's own offline queue
            logic.setStore(logic.connect(str(project), "alice")["store"])
            session = logic.loadCase(logic.fetchCase("c1", work))
            logic.showCase(session)
            segmentation = session.segmentation_node.GetSegmentation()
            self.assertEqual([segmentation.GetNthSegment(i).GetName() for i in range(2)], ["liver", "spleen"])
            self.assertIsNone(logic.saveDraft(session), "nothing drawn yet: no draft")

            seg = logic.currentSegmentation(session)
            drawn = seg.with_masks({"liver": phantom.labels == phantom.label_values["liver"]})
            segmentation_to_node(drawn, reference_volume_node=session.volume_node, node=session.segmentation_node)
            self.assertTrue(logic.saveDraft(session).is_file())
            version = logic.pushSegmentation(session, logic.currentSegmentation(session), submit=True)
            logic.afterPush(session, version)
            self.assertEqual(logic.worklistRows()[0]["state"], "submitted")
            self.assertEqual(logic.reopen("c1")["annotators"]["alice"], "in_progress")

            logic.setStore(logic.connect(str(project), "rev")["store"])
            versions = logic.listVersions("c1")
            self.assertEqual([v["author"] for v in versions], ["alice"])
            node = logic.loadVersion(*logic.fetchVersion(versions[0], work))
            liver = node.GetSegmentation().GetSegmentIdBySegmentName("liver")
            self.assertEqual(int(np.count_nonzero(slicer.util.arrayFromSegmentBinaryLabelmap(node, liver, session.volume_node))),
                             int(np.count_nonzero(phantom.labels == phantom.label_values["liver"])))
        self.delayDisplay("Test passed")
