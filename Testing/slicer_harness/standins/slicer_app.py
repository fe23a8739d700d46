"""The application-level objects of Slicer that ``slicer-core`` lacks: ``slicer.app``, the module
manager and scripted modules, the layout manager, the qMRML widgets, and the Segment Editor's effect
factory, scripted effect adaptor and editor widget.

Behaviour kept from Slicer 5.12 (see the harness README for the source files):
- ``slicer.app.testingEnabled()`` is False (a user's session: message boxes appear and the scenario
  answers them, qt.QMessageBox.answers) or True with ``--testing`` (ctest: slicer.util answers them
  itself; note that its confirm boxes then answer ``True == QMessageBox.Ok``, i.e. No);
- a scripted module's widget is created on first use (``widgetRepresentation()``): ``XWidget(parent)``
  on a QWidget with a QVBoxLayout, ``slicer.modules.<Name>Widget`` set, then ``setup()``;
- the layout manager drives the real ``vtkMRMLLayoutLogic`` of slicer-core (slice nodes get their
  orientation only when a layout creates them), and each slice view has a real ``vtkMRMLSliceLogic``;
- ``qSlicerSegmentEditorScriptedEffect.setPythonSource(path)`` loads the effect file as a module
  NAMED AFTER ITS FOLDER and puts it in ``sys.modules`` under that name (replacing whatever was
  there), then instantiates ``<FileStem>Effect``-named class ``SegmentEditorEffect`` with the adaptor;
  the factory refuses a second effect of the same name.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types

import ctk
import numpy as np
import qt
import slicer
import threadguard
import vtk

# ----- qMRML widgets -----------------------------------------------------------------------------


class qMRMLWidget(qt.QWidget):
    SIGNALS = frozenset({"mrmlSceneChanged(vtkMRMLScene*)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mrmlScene = None

    def setMRMLScene(self, scene):
        threadguard.check("qMRMLWidget.setMRMLScene")
        self.mrmlScene = scene
        self.emit("mrmlSceneChanged(vtkMRMLScene*)", scene)


class qMRMLNodeComboBox(qMRMLWidget):
    SIGNALS = frozenset({"currentNodeChanged(vtkMRMLNode*)", "currentNodeChanged(bool)",
                         "currentNodeIDChanged(QString)", "nodeAdded(vtkMRMLNode*)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.nodeTypes = []
        self.noneEnabled = False
        self.addEnabled = True
        self.removeEnabled = True
        self.renameEnabled = False
        self.editEnabled = False
        self.showHidden = False
        self.showChildNodeTypes = True
        self.selectNodeUponCreation = True
        self.baseName = ""
        self._current = None
        self._observer = None

    def _candidates(self):
        if self.mrmlScene is None:
            return []
        out = []
        for cls in self.nodeTypes:
            for i in range(self.mrmlScene.GetNumberOfNodesByClass(cls)):
                node = self.mrmlScene.GetNthNodeByClass(i, cls)
                if self.showHidden or not node.GetHideFromEditors():
                    out.append(node)
        return out

    def setMRMLScene(self, scene):
        if self.mrmlScene is not None and self._observer is not None:
            self.mrmlScene.RemoveObserver(self._observer)
        super().setMRMLScene(scene)
        if scene is not None:
            self._observer = scene.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda *a: self._refresh())
            scene.AddObserver(scene.NodeAddedEvent, lambda *a: self._refresh())
            scene.AddObserver(scene.NodeRemovedEvent, lambda *a: self._refresh())
        self._refresh()

    def _refresh(self):
        candidates = self._candidates()
        if self._current is not None and self._current not in candidates:
            self.setCurrentNode(None)
        if self._current is None and not self.noneEnabled and candidates:
            self.setCurrentNode(candidates[0])

    def currentNode(self):
        return self._current

    def currentNodeID(self):
        return self._current.GetID() if self._current is not None else ""

    def setCurrentNode(self, node):
        threadguard.check("qMRMLNodeComboBox.setCurrentNode")
        if node is not self._current:
            self._current = node
            self.emit("currentNodeChanged(vtkMRMLNode*)", node)
            self.emit("currentNodeChanged(bool)", node is not None)
            self.emit("currentNodeIDChanged(QString)", node.GetID() if node is not None else "")

    def setCurrentNodeID(self, node_id):
        self.setCurrentNode(self.mrmlScene.GetNodeByID(node_id) if node_id else None)

    def nodeCount(self):
        return len(self._candidates())


class qMRMLCheckableNodeComboBox(qMRMLNodeComboBox):
    SIGNALS = frozenset({"checkedNodesChanged()"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.noneEnabled = True
        self._checked = []

    def checkedNodes(self):
        return [n for n in self._checked if n in self._candidates()]

    def setCheckState(self, node, state):
        if state == qt.Qt.Checked and node not in self._checked:
            self._checked.append(node)
        elif state != qt.Qt.Checked and node in self._checked:
            self._checked.remove(node)
        self.emit("checkedNodesChanged()")

    def nodes(self):
        return self._candidates()


qt.register_widget_classes(qMRMLWidget=qMRMLWidget, qMRMLNodeComboBox=qMRMLNodeComboBox,
                           qMRMLCheckableNodeComboBox=qMRMLCheckableNodeComboBox)


# ----- modules -----------------------------------------------------------------------------------


class qSlicerAbstractCoreModule(qt.QObject):
    pass


class qSlicerScriptedLoadableModuleWidget(qMRMLWidget):
    """The QWidget a scripted module's panel lives in; ``self()`` is the Python ``XWidget``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.python_widget = None
        self.isEntered = False  # qSlicerAbstractModuleWidget::isEntered: between enter() and exit()

    def self(self):
        return self.python_widget


class qSlicerScriptedLoadableModule(qSlicerAbstractCoreModule):
    """One scripted module: the Python module object, its ``X(parent)`` instance, its lazy widget."""

    def __init__(self, name, path, python_module):
        super().__init__()
        self.name = name
        self.path = path
        self.python_module = python_module
        self.title = ""
        self.categories = []
        self.dependencies = []
        self.contributors = []
        self.helpText = ""
        self.acknowledgementText = ""
        self.hidden = False
        self.index = -1
        self.icon = None
        self.associatedNodeTypes = []
        self.instance = None
        self._widget = None
        self._logic = None
        self.loaded = False

    def self(self):
        return self.instance

    def logic(self):
        if self._logic is None:
            self._logic = slicer.vtkSlicerScriptedLoadableModuleLogic()
            self._logic.SetMRMLScene(slicer.mrmlScene)
        return self._logic

    def isWidgetRepresentationCreationEnabled(self):
        return hasattr(self.python_module, self.name + "Widget")

    def widgetRepresentation(self):
        """Create the module's panel on first use (Slicer: qSlicerScriptedLoadableModule::createWidgetRepresentation)."""
        threadguard.check(f"module {self.name}.widgetRepresentation")
        if self._widget is None and self.isWidgetRepresentationCreationEnabled():
            host = qSlicerScriptedLoadableModuleWidget()
            host.objectName = self.name + "ModuleWidget"
            host.setLayout(qt.QVBoxLayout())
            widget = getattr(self.python_module, self.name + "Widget")(host)
            setattr(slicer.modules, self.name + "Widget", widget)
            host.python_widget = widget
            self._widget = host
            widget.setup()
            host.setMRMLScene(slicer.mrmlScene)
        return self._widget


class qSlicerModuleManager(qt.QObject):
    SIGNALS = frozenset({"moduleAboutToBeUnloaded(QString)", "moduleLoaded(QString)"})

    def __init__(self):
        super().__init__()
        self.modules = {}

    def module(self, name):
        threadguard.check("moduleManager.module")
        return self.modules.get(name)

    def modulesNames(self):
        return sorted(self.modules)

    def factoryManager(self):
        return self

    def loadedModuleNames(self):
        return [n for n, m in self.modules.items() if getattr(m, "loaded", True)]


class _SegmentEditorModule(qSlicerScriptedLoadableModule):
    """Slicer's Segment Editor module: its widget's ``editor`` is the segment editor widget."""

    def __init__(self):
        super().__init__("SegmentEditor", "", None)
        self.loaded = True
        self.title = "Segment Editor"
        self.dependencies = ["Segmentations"]

    def widgetRepresentation(self):
        if self._widget is None:
            host = qSlicerScriptedLoadableModuleWidget()
            editor = qMRMLSegmentEditorWidget()
            editor.setMRMLScene(slicer.mrmlScene)
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
            editor.setMRMLSegmentEditorNode(node)
            host.python_widget = types.SimpleNamespace(editor=editor, enter=lambda: None, exit=lambda: None)
            self._widget = host
        return self._widget


class _BuiltinModule(qSlicerAbstractCoreModule):
    """A C++ module Slicer always has (Segmentations, Volumes, SegmentEditor): its logic is slicer-core's."""

    def __init__(self, name, logic=None):
        super().__init__()
        self.name = name
        self._logic = logic
        self.path = ""
        self.dependencies = []
        self.loaded = True
        self.title = name

    def logic(self):
        return self._logic


# ----- views and layout --------------------------------------------------------------------------


class qMRMLSliceWidget(qt.QWidget):
    def __init__(self, slice_node, slice_logic):
        super().__init__()
        self._node, self._logic = slice_node, slice_logic

    def mrmlSliceNode(self):
        return self._node

    def sliceLogic(self):
        return self._logic

    def mrmlSliceCompositeNode(self):
        return self._logic.GetSliceCompositeNode()

    def sliceView(self):
        return self

    def forceRender(self):
        pass

    def scheduleRender(self):
        pass

    def sliceController(self):
        return self


class qSlicerLayoutManager(qt.QObject):
    SIGNALS = frozenset({"layoutChanged(int)"})

    def __init__(self, scene):
        super().__init__()
        self.scene = scene
        vtk_slice_presets = slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets
        vtk_slice_presets(scene)
        self._layout_logic = slicer.vtkMRMLLayoutLogic()
        self._layout_logic.SetMRMLScene(scene)
        self._app_logic = slicer.vtkMRMLApplicationLogic()
        self._app_logic.SetMRMLScene(scene)
        self._slice_widgets = {}
        self.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView)

    def layoutLogic(self):
        return self._layout_logic

    def _layout_node(self):
        return self.scene.GetFirstNodeByClass("vtkMRMLLayoutNode")

    @property
    def layout(self):
        return self._layout_node().GetViewArrangement()

    @layout.setter
    def layout(self, value):
        self.setLayout(value)

    def setLayout(self, arrangement):
        threadguard.check("layoutManager.setLayout")
        self._layout_node().SetViewArrangement(int(arrangement))
        self._sync()
        self.emit("layoutChanged(int)", int(arrangement))

    def _sync(self):
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            node = self.scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
            name = node.GetLayoutName()
            if name not in self._slice_widgets:
                logic = slicer.vtkMRMLSliceLogic()
                logic.SetMRMLApplicationLogic(self._app_logic)
                logic.SetMRMLScene(self.scene)
                logic.SetSliceNode(node)
                self._slice_widgets[name] = qMRMLSliceWidget(node, logic)

    def sliceWidget(self, name):
        threadguard.check("layoutManager.sliceWidget")
        self._sync()
        return self._slice_widgets.get(name)

    def sliceViewNames(self):
        self._sync()
        return list(self._slice_widgets)

    def mrmlSliceLogics(self):
        collection = vtk.vtkCollection()
        for w in self._slice_widgets.values():
            collection.AddItem(w.sliceLogic())
        return collection

    def threeDWidget(self, index):
        return None

    def threeDViewCount(self):
        return 0

    def resetThreeDViews(self):
        pass

    def resetSliceViews(self):
        for w in self._slice_widgets.values():
            w.sliceLogic().FitSliceToAll()


# ----- the application -----------------------------------------------------------------------------


class _CommandOptions:
    def __init__(self, testing):
        self.testingEnabled = testing
        self.noMainWindow = False
        self.disablePython = False


class _ModuleSelector(qt.QObject):
    """The main window's module selector: leaving a module calls its widget's exit(), entering enter()."""

    SIGNALS = frozenset({"moduleSelected(QString)"})

    def __init__(self, manager):
        super().__init__()
        self.manager = manager
        self.selected = None

    def selectModule(self, name):
        threadguard.check("moduleSelector.selectModule")
        previous = self.manager.modules.get(self.selected)
        if previous is not None and getattr(previous, "_widget", None) is not None:
            previous._widget.isEntered = False  # qSlicerAbstractModuleWidget::exit(), then the Python exit()
            previous._widget.self().exit()
        module = self.manager.modules[name]
        widget = module.widgetRepresentation() if hasattr(module, "widgetRepresentation") else None
        self.selected = name
        if widget is not None and hasattr(widget, "self"):
            widget.isEntered = True  # qSlicerAbstractModuleWidget::enter(), then the Python enter()
            widget.self().enter()
        self.emit("moduleSelected(QString)", name)


class qSlicerMainWindow(qt.QMainWindow):
    def __init__(self, manager):
        super().__init__()
        self._selector = _ModuleSelector(manager)

    def moduleSelector(self):
        return self._selector


class qSlicerApplication(qt.QObject):
    SIGNALS = frozenset({"startupCompleted()", "aboutToQuit()"})
    majorVersion, minorVersion, patchVersion = 5, 12, 3
    applicationVersion = "5.12.3"
    applicationName = "Slicer"
    organizationName = "NA-MIC"
    organizationDomain = "www.na-mic.org"
    revision = "33914"

    def __init__(self, home, cache):
        super().__init__()
        self.slicerHome = home
        self.cachePath = cache
        self.temporaryPath = os.path.join(cache, "tmp")
        # a user's session by default (message boxes shown and answered by the scenario); ctest's
        # testing mode (``--testing``): slicer.util answers every box itself, as Slicer does then
        self.testing = False
        self._modules = qSlicerModuleManager()
        self.mainWindow = qSlicerMainWindow(self._modules)
        self._layout = None

    def testingEnabled(self):
        return self.testing

    def commandOptions(self):
        return _CommandOptions(self.testing)

    def moduleManager(self):
        return self._modules

    def layoutManager(self):
        threadguard.check("slicer.app.layoutManager")
        if self._layout is None:
            self._layout = qSlicerLayoutManager(slicer.mrmlScene)
        return self._layout

    def topLevelWidgets(self):
        return [self.mainWindow]

    def processEvents(self, *args):
        qt.QApplication.processEvents()

    def pythonConsole(self):
        return None

    def userSettings(self):
        return qt.QSettings()

    def settings(self):
        return qt.QSettings()

    def applicationLogic(self):
        return self.layoutManager()._app_logic

    def mrmlScene(self):
        return slicer.mrmlScene

    def launcherEnvironment(self):
        return {}


# ----- the Segment Editor: effect factory, scripted effect adaptor, editor widget ---------------------


class qSlicerSegmentEditorAbstractEffect(qt.QObject):
    ModificationModeSet, ModificationModeAdd, ModificationModeRemove, ModificationModeRemoveAll = 0, 1, 2, 3
    NotConfirmed, ConfirmedWithoutDialog, ConfirmedWithDialog = 0, 1, 2


class qSlicerSegmentEditorEffectFactory(qt.QObject):
    SIGNALS = frozenset({"effectRegistered(QString)"})
    _instance = None

    def __init__(self):
        super().__init__()
        self._effects = []

    @classmethod
    def instance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def registerEffect(self, effect):
        threadguard.check("qSlicerSegmentEditorEffectFactory.registerEffect")
        if effect is None or not effect.name or any(e.name == effect.name for e in self._effects):
            return False
        self._effects.append(effect)
        self.emit("effectRegistered(QString)", effect.name)
        return True

    def registeredEffects(self):
        return list(self._effects)


def load_source_as_module(module_name, path):
    """qSlicerScriptedUtils::loadSourceAsModule: run the file as module ``module_name`` in sys.modules."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class qSlicerSegmentEditorScriptedEffect(qSlicerSegmentEditorAbstractEffect):
    """The C++ adaptor of a Python effect (qSlicerSegmentEditorScriptedEffect.cxx)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.name = "UnnamedScriptedEffect"
        self.title = ""
        self.perSegment = True
        self.requireSegments = True
        self.showEffectCursorInSliceView = True
        self.showEffectCursorInThreeDView = False
        self._python = None
        self._source = ""
        self._parameters = {}
        self._options = qt.QFrame()
        self._options.setLayout(qt.QFormLayout())
        self._parameter_node = None
        self._editor = None
        self.undo_states = 0
        self.modifications = []
        self.actors = []

    def setPythonSource(self, path):
        threadguard.check("qSlicerSegmentEditorScriptedEffect.setPythonSource")
        self._source = path
        module_name = os.path.basename(os.path.dirname(path))
        class_name = os.path.splitext(os.path.basename(path))[0]
        if not class_name.endswith("Effect"):
            class_name += "Effect"
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if cls is None:
            module = load_source_as_module(module_name, path)
            cls = getattr(module, class_name, None)
        if cls is None:
            raise RuntimeError(f"class {class_name} not found in {path}")
        self._python = cls(self)
        setattr(slicer, module_name, self._python)
        return True

    def pythonSource(self):
        return self._source

    def self(self):
        return self._python

    # what the Python effect calls on its adaptor
    def optionsFrame(self):
        return self._options

    def optionsLayout(self):
        return self._options.layout()

    def addOptionsWidget(self, widget):
        (self._options.layout().addLayout if isinstance(widget, qt.QLayout) else
         self._options.layout().addWidget)(widget)

    def addLabeledOptionsWidget(self, label, widget):
        self._options.layout().addRow(label, widget)

    def parameterSetNode(self):
        return self._parameter_node

    def setParameterSetNode(self, node):
        self._parameter_node = node

    def scene(self):
        return slicer.mrmlScene

    def parameter(self, name):
        return self._parameters.get(name, "")

    def setParameter(self, name, value):
        self._parameters[name] = str(value)

    def setParameterDefault(self, name, value):
        self._parameters.setdefault(name, str(value))

    def integerParameter(self, name):
        return int(self._parameters.get(name, 0) or 0)

    def doubleParameter(self, name):
        return float(self._parameters.get(name, 0) or 0)

    def parameterDefined(self, name):
        return name in self._parameters

    def confirmCurrentSegmentVisible(self):
        return qSlicerSegmentEditorAbstractEffect.ConfirmedWithoutDialog

    def saveStateForUndo(self):
        threadguard.check("scriptedEffect.saveStateForUndo")
        self.undo_states += 1

    def sourceVolumeImageData(self):
        return self._editor._source_image() if self._editor is not None else None

    def modifySelectedSegmentByLabelmap(self, labelmap, mode, *args):
        threadguard.check("scriptedEffect.modifySelectedSegmentByLabelmap")
        self.modifications.append(mode)
        editor_node = self._parameter_node
        segmentation_node = editor_node.GetSegmentationNode()
        segment_id = editor_node.GetSelectedSegmentID()
        merge = (slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
                 if mode == qSlicerSegmentEditorAbstractEffect.ModificationModeSet
                 else slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MAX)
        slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(labelmap, segmentation_node, segment_id,
                                                                            merge)

    def addActor2D(self, view_widget, actor):
        self.actors.append(actor)

    def removeActor2D(self, view_widget, actor):
        if actor in self.actors:
            self.actors.remove(actor)

    def addActor3D(self, view_widget, actor):
        self.actors.append(actor)

    def removeActor3D(self, view_widget, actor):
        if actor in self.actors:
            self.actors.remove(actor)

    def cursorOff(self, view_widget):
        pass

    def cursorOn(self, view_widget):
        pass

    def selectEffect(self, name):
        if self._editor is not None:
            self._editor.setActiveEffectByName(name)

    @staticmethod
    def forceRender(view_widget):
        pass

    @staticmethod
    def scheduleRender(view_widget):
        pass

    @staticmethod
    def xyToIjk(xy, slice_widget, image, parent_transform_node=None):
        """The IJK of a slice-view pixel in ``image`` (qSlicerSegmentEditorAbstractEffect::xyToIjk)."""
        xy_to_ras = slice_widget.mrmlSliceNode().GetXYToRAS()
        ras = [0.0, 0.0, 0.0, 1.0]
        xy_to_ras.MultiplyPoint([float(xy.x()), float(xy.y()), 0.0, 1.0], ras)
        if parent_transform_node is not None:
            to_local = vtk.vtkGeneralTransform()
            parent_transform_node.GetTransformFromWorld(to_local)
            ras[:3] = to_local.TransformPoint(ras[:3])
        m = vtk.vtkMatrix4x4()
        image.GetWorldToImageMatrix(m)
        ijk = [0.0, 0.0, 0.0, 1.0]
        m.MultiplyPoint(ras, ijk)
        return qt.QVector3D(*ijk[:3])

    # the C++ side calling into the Python effect
    def clone_into(self, editor):
        copy = self._python.clone()
        copy._editor = editor
        return copy


class qMRMLSegmentEditorWidget(qMRMLWidget):
    """The Segment Editor widget, as far as effects and tests use it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._node = None
        self._effects = {}
        self._active = None
        self._source = None
        self._aligned, self._aligned_for = None, None  # the aligned source image and what it was made from

    def setMRMLSegmentEditorNode(self, node):
        self._node = node

    def mrmlSegmentEditorNode(self):
        return self._node

    def setSegmentationNode(self, node):
        """As Slicer's widget: a different segmentation deactivates the active effect (setActiveEffect(nullptr))."""
        if self._node.GetSegmentationNode() is node:
            return
        self._node.SetAndObserveSegmentationNode(node)
        self.setActiveEffect(None)

    def setActiveEffect(self, effect):
        threadguard.check("qMRMLSegmentEditorWidget.setActiveEffect")
        if self._active is not None and hasattr(self._active.self(), "deactivate"):
            self._active.self().deactivate()
        self._active = effect
        # as Slicer's widget: the parameter set node holds the active effect's name ("" for none)
        self._node.SetActiveEffectName(effect.name if effect is not None else "")
        if effect is not None and hasattr(effect.self(), "activate"):
            effect.self().activate()

    def segmentationNode(self):
        return self._node.GetSegmentationNode()

    def setSourceVolumeNode(self, node):
        self._source = node
        self._node.SetAndObserveSourceVolumeNode(node)

    setMasterVolumeNode = setSourceVolumeNode

    def sourceVolumeNode(self):
        return self._source

    def setCurrentSegmentID(self, segment_id):
        self._node.SetSelectedSegmentID(segment_id)

    def _source_image(self):
        """The source volume as a vtkOrientedImageData in the segmentation's frame (what Slicer hands an effect).

        As vtkSlicerSegmentEditorLogic::UpdateAlignedSourceVolume: one image, made again only when the source
        node, its transform or the segmentation's transform is another one or was modified after it."""
        node = self._source
        segmentation = self._node.GetSegmentationNode() if self._node is not None else None
        transforms = (node.GetParentTransformNode(), segmentation.GetParentTransformNode() if segmentation else None)
        aligned = self._aligned
        if (aligned is not None and self._aligned_for == (node, *transforms)
                and all(n is None or n.GetMTime() <= aligned.GetMTime() for n in (node, *transforms))):
            return aligned
        image = slicer.vtkOrientedImageData()
        image.ShallowCopy(node.GetImageData())
        m = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(m)
        image.SetImageToWorldMatrix(m)
        self._aligned, self._aligned_for = image, (node, *transforms)
        return image

    def _copy_effects(self):
        for adaptor in qSlicerSegmentEditorEffectFactory.instance().registeredEffects():
            if adaptor.name in self._effects:
                continue
            clone = adaptor.self().clone()
            clone._editor = self
            clone.setParameterSetNode(self._node)
            python = clone.self()
            if hasattr(python, "setMRMLDefaults"):
                python.setMRMLDefaults()
            python.setupOptionsFrame()
            self._effects[clone.name] = clone

    def effectByName(self, name):
        self._copy_effects()
        return self._effects.get(name)

    def setActiveEffectByName(self, name):
        threadguard.check("qMRMLSegmentEditorWidget.setActiveEffectByName")
        self._copy_effects()
        self.setActiveEffect(self._effects.get(name))

    def activeEffect(self):
        return self._active


def install(slicer_module, home, cache):
    """Put the application objects into ``slicer`` and the modules the extension imports into sys.modules."""
    slicer_module.app = qSlicerApplication(home, cache)
    slicer_module.modules = types.SimpleNamespace()
    slicer_module.moduleNames = types.SimpleNamespace()
    slicer_module.selfTests = {}
    for cls in (qMRMLWidget, qMRMLNodeComboBox, qMRMLCheckableNodeComboBox, qSlicerScriptedLoadableModule,
                qSlicerAbstractCoreModule, qSlicerSegmentEditorAbstractEffect, qSlicerSegmentEditorEffectFactory,
                qMRMLSegmentEditorWidget, qMRMLSliceWidget, qSlicerScriptedLoadableModuleWidget):
        setattr(slicer_module, cls.__name__, cls)
    effects = types.ModuleType("qSlicerSegmentationsEditorEffectsPythonQt")
    effects.qSlicerSegmentEditorScriptedEffect = qSlicerSegmentEditorScriptedEffect
    effects.qSlicerSegmentEditorAbstractEffect = qSlicerSegmentEditorAbstractEffect
    sys.modules[effects.__name__] = effects
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLScene(slicer.mrmlScene)
    volumes_logic = slicer.vtkSlicerVolumesLogic()
    volumes_logic.SetMRMLScene(slicer.mrmlScene)
    builtins = {"Segmentations": _BuiltinModule("Segmentations", segmentations_logic),
                "Volumes": _BuiltinModule("Volumes", volumes_logic),
                "SegmentEditor": _SegmentEditorModule(), "Data": _BuiltinModule("Data")}
    for name, module in builtins.items():
        slicer_module.app.moduleManager().modules[name] = module
        setattr(slicer_module.modules, name.lower(), module)
    _ = (ctk, np)
