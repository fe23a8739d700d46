"""A stand-in for Slicer's ``slicer.ScriptedLoadableModule`` (Base/Python/slicer/ScriptedLoadableModule.py).

Behaviour kept from Slicer 5.12:
- ``ScriptedLoadableModule(parent)`` sets ``moduleName`` (the class name), fills ``parent`` with empty
  metadata, takes the icon from ``Resources/Icons/<Name>.svg|png`` beside the module file and
  registers ``runTest`` in ``slicer.selfTests``;
- ``resourcePath(f)`` is ``<folder of the module file>/Resources/f`` (the widget's goes through
  ``slicer.util.modulePath``, i.e. ``slicer.modules.<name>.path``);
- ``ScriptedLoadableModuleWidget(parent)`` takes ``parent.layout()`` and does not call ``setup()``
  when it has a parent; it calls ``cleanup()`` when the module manager unloads the module;
- ``ScriptedLoadableModuleLogic.getParameterNode()`` is the scene's singleton
  ``vtkMRMLScriptedModuleNode`` tagged with the module name (attribute ``ModuleName``);
- ``ScriptedLoadableModuleTest`` is a ``unittest.TestCase`` with ``delayDisplay``.
``from slicer.ScriptedLoadableModule import *`` gives the names Slicer's does.
"""
import importlib
import logging
import os
import unittest

import ctk
import qt
import slicer
import vtk


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = self.__class__.__name__
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = ["Unknown"]
        parent.helpText = ""
        parent.acknowledgementText = ""
        folder = os.path.dirname(parent.path)
        for extension in (".svg", ".png"):
            icon = os.path.join(folder, "Resources", "Icons", self.moduleName + extension)
            if os.path.isfile(icon):
                parent.icon = qt.QIcon(icon)
                break
        if not hasattr(slicer, "selfTests"):
            slicer.selfTests = {}
        slicer.selfTests[self.moduleName] = self.runTest

    def resourcePath(self, filename):
        return os.path.join(os.path.dirname(self.parent.path), "Resources", filename)

    def runTest(self, msec=100, **kwargs):
        module = importlib.import_module(self.__module__)
        testCase = getattr(module, self.moduleName + "Test")()
        testCase.messageDelay = msec
        testCase.runTest(**kwargs)


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Widget"):
            self.moduleName = self.moduleName[:-6]
        self.developerMode = slicer.util.settingsValue("Developer/DeveloperMode", False,
                                                       converter=slicer.util.toBool)
        if not parent:
            self.parent = slicer.qMRMLWidget()
            self.parent.setLayout(qt.QVBoxLayout())
            self.parent.setMRMLScene(slicer.mrmlScene)
        else:
            self.parent = parent
        self.layout = self.parent.layout()
        if not parent:
            self.setup()
            self.parent.show()
        slicer.app.moduleManager().connect("moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded)

    def resourcePath(self, filename):
        return os.path.join(os.path.dirname(slicer.util.modulePath(self.moduleName)), "Resources", filename)

    def _onModuleAboutToBeUnloaded(self, moduleName):
        if moduleName == self.moduleName:
            self.cleanup()
            slicer.app.moduleManager().disconnect("moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded)

    def cleanup(self):
        pass

    def setup(self):
        pass

    def enter(self):
        pass

    def exit(self):
        pass


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Logic"):
            self.moduleName = self.moduleName[:-5]
        self.isSingletonParameterNode = True

    def getParameterNode(self):
        if self.isSingletonParameterNode:
            node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node:
                return node
        node = self.createParameterNode()
        return slicer.mrmlScene.AddNode(node)

    def createParameterNode(self):
        node = slicer.vtkMRMLScriptedModuleNode()
        if self.isSingletonParameterNode:
            node.SetSingletonTag(self.moduleName)
        node.SetName(slicer.mrmlScene.GenerateUniqueName(self.moduleName))
        node.SetAttribute("ModuleName", self.moduleName)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messageDelay = 50

    def delayDisplay(self, message, requestedDelay=None, msec=None):
        logging.info(message)

    def takeScreenshot(self, name, description, type=-1):
        pass

    def runTest(self):
        raise NotImplementedError


__all__ = ["ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
           "ScriptedLoadableModuleTest", "ctk", "importlib", "logging", "os", "qt", "slicer", "unittest", "vtk"]
