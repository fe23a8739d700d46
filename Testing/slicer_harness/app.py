"""The application: load the laid-out extension in Slicer 5.12's order, emit startupCompleted, open panels.

Order (Base/QTGUI/qSlicerApplicationHelper.hxx, qSlicerScriptedLoadableModuleFactory.cxx,
qSlicerModuleFactoryManager.cxx, qSlicerScriptedLoadableModule.cxx):
1. registration: every top-level ``*.py`` of a module path is a module (a first line ``#!`` marks a
   CLI); its folder is APPENDED to sys.path;
2. instantiation, alphabetically: the file is run as module ``<Name>`` through
   ``spec_from_file_location`` into ``sys.modules`` (an already-imported module of that name is
   reused), then ``<Name>(parent)`` is constructed;
3. loading, dependencies first: ``X.setup()`` if the class has it; a module without a title fails;
   ``slicer.modules.<name>`` is set;
4. ``startupCompleted()`` once the event loop runs;
5. a panel is built on first use: ``XWidget(parent)`` then ``setup()``.
Run inside the harness's Slicer environment (see ``run.py``).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time
import types
from pathlib import Path

STANDINS = Path(__file__).resolve().parent / "standins"

# Slicer's application-level Python modules that slicer-core lacks: module name -> stand-in file.
_STANDIN_MODULES = {
    "slicer.ScriptedLoadableModule": "ScriptedLoadableModule.py",
    "slicer.i18n": "i18n.py",
    "slicer.parameterNodeWrapper": "parameterNodeWrapper.py",
    "slicer.packaging": "slicer_packaging.py",
    "SegmentEditorEffects": "SegmentEditorEffects.py",
}


class _StandInFinder(importlib.abc.MetaPathFinder):
    """Imports the stand-ins under Slicer's module names, when (and only when) code imports them."""

    def __init__(self, extra: dict):
        self.files = {**_STANDIN_MODULES, **extra}

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.files:
            return importlib.util.spec_from_file_location(fullname, STANDINS / self.files[fullname])
        return None


class ModuleLoadError(Exception):
    """A module Slicer would list under 'The following modules failed to be instantiated / loaded'."""


class SlicerApp:
    """One Slicer session: the stand-ins installed, a real MRML scene, the extension's modules loaded."""

    def __init__(self, work_dir: Path, *, pytorch_extension: bool = True, slicer_version: tuple = (5, 12)):
        self.work_dir = Path(work_dir)
        self.failed: dict[str, str] = {}
        extra = {"PyTorchUtils": "PyTorchUtils.py"} if pytorch_extension else {}
        sys.path.insert(0, str(STANDINS))  # qt, ctk, threadguard, slicer_app
        finder = _StandInFinder(extra)
        if tuple(slicer_version) < (5, 12):
            del finder.files["slicer.packaging"]  # Base/Python/slicer/packaging.py is new in 5.12
        sys.meta_path.insert(0, finder)
        import qt  # noqa: F401  (the stand-in, before anything imports Slicer's util)
        import slicer
        import slicer_app
        import threadguard

        self.slicer, self.threadguard = slicer, threadguard
        slicer.mrmlScene = slicer.vtkMRMLScene()
        self._register_converters()
        slicer_app.install(slicer, str(self.work_dir / "home"), str(self.work_dir / "cache"))
        self.app = slicer.app
        self.app.majorVersion, self.app.minorVersion = (int(v) for v in slicer_version)
        self.app.layoutManager()  # the main window's views exist from startup, as in Slicer
        threadguard.watch_worker_threads()

    def _register_converters(self):
        factory = self.slicer.vtkSegmentationConverterFactory.GetInstance()
        have = {rule.GetClassName() for rule in factory.GetConverterRules()}
        for name in ("vtkBinaryLabelmapToClosedSurfaceConversionRule", "vtkClosedSurfaceToBinaryLabelmapConversionRule",
                     "vtkClosedSurfaceToFractionalLabelmapConversionRule",
                     "vtkFractionalLabelmapToClosedSurfaceConversionRule"):
            if name not in have:
                factory.RegisterConverterRule(getattr(self.slicer, name)())

    # ----- modules ------------------------------------------------------------------------------------
    def load_extension(self, *module_paths) -> list[str]:
        """Register, instantiate and load every module of ``module_paths``; the names loaded."""
        import slicer_app

        found = {}
        for folder in module_paths:
            folder = str(Path(folder).resolve())
            for entry in sorted(os.listdir(folder)):
                path = os.path.join(folder, entry)
                if not entry.endswith(".py") or not os.path.isfile(path):
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    if fh.readline().startswith("#!"):
                        continue  # a scripted CLI
                found[entry.split(".")[0]] = path
            if folder not in sys.path:
                sys.path.append(folder)  # appendPythonPaths: appended, not prepended
        manager = self.app.moduleManager()
        for name in sorted(found):  # QMap order: case-sensitive alphabetical
            try:
                module = sys.modules.get(name)
                if module is None or not hasattr(module, name):
                    module = slicer_app.load_source_as_module(name, found[name])
                wrapper = slicer_app.qSlicerScriptedLoadableModule(name, found[name], module)
                wrapper.instance = getattr(module, name)(wrapper)
                setattr(self.slicer.modules, name + "Instance", wrapper.instance)
                manager.modules[name] = wrapper
            except Exception as exc:
                self.failed[name] = f"instantiation failed: {type(exc).__name__}: {exc}"
        loaded = []
        for name in sorted(found):
            if name in manager.modules and self._load(name, set()):
                loaded.append(name)
        return loaded

    def _load(self, name, visiting) -> bool:
        manager = self.app.moduleManager()
        module = manager.modules.get(name)
        if module is None:
            self.failed.setdefault(name, "not found")
            return False
        if getattr(module, "loaded", False):
            return True
        if name in visiting:
            return True  # Slicer does not detect cycles either
        visiting.add(name)
        for dependency in module.dependencies:
            if not self._load(dependency, visiting):
                self.failed[name] = f"dependency {dependency} failed"
                return False
        try:
            if hasattr(module.instance, "setup"):
                module.instance.setup()
        except Exception as exc:
            self.failed[name] = f"setup failed: {type(exc).__name__}: {exc}"
            return False
        if not module.title:
            self.failed[name] = "Failed to retrieve module title"
            return False
        module.loaded = True
        setattr(self.slicer.modules, name.lower(), module)
        setattr(self.slicer.moduleNames, name, name)
        manager.emit("moduleLoaded(QString)", name)
        return True

    def startup_completed(self) -> None:
        self.app.emit("startupCompleted()")
        self.process_events()

    def panel(self, name):
        """The module's Python widget, built on first use (the user opens the module)."""
        self.app.mainWindow.moduleSelector().selectModule(name)
        return self.app.moduleManager().module(name).widgetRepresentation().self()

    # ----- the event loop -------------------------------------------------------------------------------
    def process_events(self, until=None, timeout: float = 60.0, step: float = 0.01) -> bool:
        """Run timers on this (main) thread until ``until()`` is true (or once, without it)."""
        import qt

        deadline = time.monotonic() + timeout
        while True:
            qt.process_due_timers()
            if until is None or until():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(step)

    def violations(self) -> list[str]:
        return list(self.threadguard.violations)

    def close_scene(self) -> None:
        self.slicer.mrmlScene.Clear(0)


def as_namespace(d: dict) -> types.SimpleNamespace:
    return types.SimpleNamespace(**d)
