"""A stand-in for ``slicer.parameterNodeWrapper`` (Base/Python/slicer/parameterNodeWrapper/).

Kept from Slicer 5.12:
- ``@parameterNodeWrapper`` reads the class's type hints (``Annotated`` included); each member is a
  property stored in the wrapped ``vtkMRMLScriptedModuleNode`` (a parameter, or a node reference
  for MRML node types); defaults are written for absent parameters when wrapping;
- ``connectGui(gui)`` connects every widget of ``gui`` (``self.ui`` or a widget) whose dynamic
  property ``SlicerParameterName`` names a member, and returns a tag for ``disconnectGui``;
- the GUI connectors set the widget's range from ``WithinRange``, and WITHOUT a range they set
  ``-inf..inf`` (float) or ``-2**31..2**31-1`` (int): a .ui file's range does not survive;
- a member of an MRML node type sets the node combo box's ``nodeTypes``.
"""
from __future__ import annotations

import dataclasses
import typing

import qt
import slicer
import threadguard


@dataclasses.dataclass(frozen=True)
class WithinRange:
    minimum: float
    maximum: float


@dataclasses.dataclass(frozen=True)
class Default:
    value: typing.Any


@dataclasses.dataclass(frozen=True)
class Minimum:
    minimum: float


@dataclasses.dataclass(frozen=True)
class Maximum:
    maximum: float


@dataclasses.dataclass(frozen=True)
class Decimals:
    decimals: int


@dataclasses.dataclass(frozen=True)
class SingleStep:
    step: float


def _split(hint):
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        return base, extras
    return hint, []


def _is_node_type(t) -> bool:
    return isinstance(t, type) and t.__name__.startswith("vtkMRML")


class _Member:
    def __init__(self, name, hint, default):
        self.name = name
        self.type, self.extras = _split(hint)
        given = [e.value for e in self.extras if isinstance(e, Default)]
        if given:
            default = given[0]
        if default is dataclasses.MISSING:
            default = {bool: False, int: 0, float: 0.0, str: ""}.get(self.type)
        self.default = default
        for e in self.extras:
            if isinstance(e, WithinRange) and default is not None and not e.minimum <= default <= e.maximum:
                raise ValueError(f"{name}: default {default} outside {e.minimum}..{e.maximum}")

    def range(self):
        for e in self.extras:
            if isinstance(e, WithinRange):
                return e.minimum, e.maximum
        lo = next((e.minimum for e in self.extras if isinstance(e, Minimum)), None)
        hi = next((e.maximum for e in self.extras if isinstance(e, Maximum)), None)
        return (lo, hi) if lo is not None or hi is not None else None

    def write(self, node, value):
        if _is_node_type(self.type):
            node.SetNodeReferenceID(self.name, value.GetID() if value is not None else None)
            return
        if value is not None and not isinstance(value, self.type) and not (self.type is float and
                                                                            isinstance(value, int)):
            raise TypeError(f"{self.name}: expected {self.type.__name__}, got {type(value).__name__}")
        for e in self.extras:
            if isinstance(e, WithinRange) and not e.minimum <= value <= e.maximum:
                raise ValueError(f"{self.name}: {value} is outside {e.minimum}..{e.maximum}")
        node.SetParameter(self.name, repr(value) if self.type is str else str(value))

    def read(self, node):
        if _is_node_type(self.type):
            return node.GetNodeReference(self.name)
        text = node.GetParameter(self.name)
        if self.type is bool:
            return text == "True"
        if self.type is str:
            import ast

            return ast.literal_eval(text) if text else ""
        return self.type(text) if text != "" else self.default


class _Connector:
    """Widget <-> member, as Slicer's GUI connectors (guiConnectors.py) do it."""

    def __init__(self, wrapper, member, widget):
        self.wrapper, self.member, self.widget = wrapper, member, widget
        cls = type(widget).__name__
        t = member.type
        if _is_node_type(t):
            widget.nodeTypes = [t.__name__]
            self.signal, self.get, self.set = "currentNodeChanged(vtkMRMLNode*)", widget.currentNode, widget.setCurrentNode
        elif t is bool and cls in ("QCheckBox", "QPushButton", "QToolButton", "ctkCollapsibleButton"):
            self.signal, self.get, self.set = "toggled(bool)", lambda: widget.checked, lambda v: widget.setChecked(v)
        elif t is float and cls in ("QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox"):
            lo, hi = member.range() or (float("-inf"), float("inf"))
            widget.minimum, widget.maximum = float("-inf") if lo is None else lo, float("inf") if hi is None else hi
            self.signal, self.get, self.set = "valueChanged(double)", lambda: widget.value, widget.setValue
        elif t is int and cls in ("QSpinBox", "QSlider", "ctkSliderWidget"):
            lo, hi = member.range() or (-(2 ** 31), 2 ** 31 - 1)
            widget.minimum, widget.maximum = -(2 ** 31) if lo is None else int(lo), 2 ** 31 - 1 if hi is None else int(hi)
            self.signal = "valueChanged(int)" if cls != "ctkSliderWidget" else "valueChanged(double)"
            self.get, self.set = (lambda: int(widget.value)), widget.setValue
        elif t is str and cls == "QLineEdit":
            self.signal, self.get, self.set = "textChanged(QString)", lambda: widget.text, widget.setText
        elif t is str and cls == "QComboBox":
            self.signal, self.get, self.set = "currentIndexChanged(int)", lambda: widget.currentText, widget.setCurrentText
        elif t is str and cls == "ctkPathLineEdit":
            self.signal, self.get, self.set = "currentPathChanged(QString)", lambda: widget.currentPath, widget.setCurrentPath
        else:
            raise TypeError(f"no GUI connector for {cls} <-> {getattr(t, '__name__', t)} (member {member.name})")
        widget.connect(self.signal, self.gui_changed)

    def gui_changed(self, *args):
        if self.wrapper._updating_gui:
            return
        setattr(self.wrapper, self.member.name, self.get())

    def show(self):
        self.set(getattr(self.wrapper, self.member.name))

    def disconnect(self):
        self.widget.disconnect(self.signal, self.gui_changed)


def parameterNodeWrapper(cls=None, **kwargs):
    def wrap(klass):
        hints = typing.get_type_hints(klass, include_extras=True)
        members = {name: _Member(name, hint, klass.__dict__.get(name, dataclasses.MISSING))
                   for name, hint in hints.items()}

        def __init__(self, parameterNode, prefix=None):
            threadguard.check("parameterNodeWrapper")
            object.__setattr__(self, "parameterNode", parameterNode)
            object.__setattr__(self, "_connections", {})
            object.__setattr__(self, "_updating_gui", False)
            for m in members.values():
                if not _is_node_type(m.type) and not parameterNode.GetParameter(m.name) and m.default is not None:
                    m.write(parameterNode, m.default)

        def connectGui(self, gui):
            widgets = gui.findChildren() if isinstance(gui, qt.QObject) else list(vars(gui).values())
            mapping = {}
            for w in widgets:
                name = w.property("SlicerParameterName") if hasattr(w, "property") else None
                if name:
                    if name not in members:
                        raise ValueError(f"widget {w.objectName}: SlicerParameterName {name!r} is not a parameter")
                    mapping[name] = w
            return self.connectParametersToGui(mapping)

        def connectParametersToGui(self, mapping):
            connectors = [_Connector(self, members[name], widget) for name, widget in mapping.items()]
            tag = len(self._connections) + 1
            self._connections[tag] = connectors
            object.__setattr__(self, "_updating_gui", True)
            try:
                for c in connectors:
                    c.show()
            finally:
                object.__setattr__(self, "_updating_gui", False)
            return tag

        def disconnectGui(self, tag):
            for c in self._connections.pop(tag, []):
                c.disconnect()

        def _refresh_gui(self):
            object.__setattr__(self, "_updating_gui", True)
            try:
                for connectors in self._connections.values():
                    for c in connectors:
                        c.show()
            finally:
                object.__setattr__(self, "_updating_gui", False)

        def AddObserver(self, event, callback, priority=0.0):
            return self.parameterNode.AddObserver(event, callback, priority)

        def RemoveObserver(self, tag):
            self.parameterNode.RemoveObserver(tag)

        def make_property(m):
            def getter(self):
                threadguard.check(f"parameter node {m.name}")
                return m.read(self.parameterNode)

            def setter(self, value):
                threadguard.check(f"parameter node {m.name}")
                m.write(self.parameterNode, value)
                if not self._updating_gui:
                    self._refresh_gui()
            return property(getter, setter)

        namespace = {"__init__": __init__, "connectGui": connectGui, "connectParametersToGui": connectParametersToGui,
                     "disconnectGui": disconnectGui, "_refresh_gui": _refresh_gui, "AddObserver": AddObserver,
                     "RemoveObserver": RemoveObserver, "__doc__": klass.__doc__,
                     "allParameters": property(lambda self: {n: getattr(self, n) for n in members})}
        for m in members.values():
            namespace[m.name] = make_property(m)
        for name, value in klass.__dict__.items():
            if callable(value) and not name.startswith("__"):
                namespace[name] = value
        return type(klass.__name__, (), namespace)

    return wrap(cls) if cls is not None else wrap


def isParameterNodeWrapper(obj) -> bool:
    return hasattr(obj, "parameterNode") and hasattr(obj, "connectGui")


_ = slicer  # the real module imports slicer for the node classes
