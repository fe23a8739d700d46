"""A stand-in for PythonQt's ``ctk`` module (the CTK widgets the extension's .ui files use).

``ctkPathLineEdit`` keeps CTK's rule (Libs/Widgets/ctkPathLineEdit.cpp, updateHasValidInput):
``currentPathChanged`` is emitted only for text its validator accepts, a regular expression made
from the name filters (``.+`` without filters), so clearing the field emits no
``currentPathChanged``, only ``validInputChanged(false)`` when the previous text was valid.
"""
from __future__ import annotations

import fnmatch
import re

import qt


class ctkCollapsibleButton(qt.QAbstractButton):
    SIGNALS = frozenset({"contentsCollapsed(bool)"})

    def __init__(self, parent=None):
        super().__init__("", parent)
        self.collapsed = False
        self.checkable = True

    def setCollapsed(self, value):
        if bool(value) != self.collapsed:
            self.collapsed = bool(value)
            self.emit("contentsCollapsed(bool)", self.collapsed)


class ctkPathLineEdit(qt.QWidget):
    SIGNALS = frozenset({"currentPathChanged(QString)", "validInputChanged(bool)"})
    # ctkPathLineEdit::Filter
    Dirs, Files, Drives, NoSymLinks, AllEntries, Readable, Writable, Executable = 1, 2, 4, 8, 7, 16, 32, 64
    Hidden, System, NoDotAndDotDot = 256, 512, 4096

    def __init__(self, parent=None):
        super().__init__(parent)
        self.filters = self.AllEntries
        self.nameFilters = []
        self.settingKey = ""
        self.showHistoryButton = True
        object.__setattr__(self, "_line", qt.QLineEdit(self))
        object.__setattr__(self, "_valid", False)
        self._line.connect("textChanged(QString)", self._text_changed)

    def _pattern(self) -> str:
        globs = [g for f in (self.nameFilters or []) for g in re.findall(r"\*\.[\w.]+|\*", str(f))]
        if not globs or "*" in globs:
            return ".+"
        return "(" + "|".join(fnmatch.translate(g) for g in globs) + ")"

    def _text_changed(self, text):
        was = self._valid
        object.__setattr__(self, "_valid", re.fullmatch(self._pattern(), text) is not None)
        if self._valid:
            self.emit("currentPathChanged(QString)", text)
        if self._valid != was:
            self.emit("validInputChanged(bool)", self._valid)

    @property
    def currentPath(self):
        return self._line.text

    @currentPath.setter
    def currentPath(self, path):
        self._line.text = str(path)

    def setCurrentPath(self, path):
        self.currentPath = path

    def lineEdit(self):
        return self._line

    def addCurrentPathToHistory(self):
        pass

    def setNameFilters(self, filters):
        self.nameFilters = list(filters)


class ctkSliderWidget(qt.QWidget):
    SIGNALS = frozenset({"valueChanged(double)", "valueIsChanging(double)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        object.__setattr__(self, "_value", 0.0)
        self.minimum, self.maximum, self.singleStep, self.decimals = 0.0, 99.0, 1.0, 2
        self.pageStep = 10.0
        self.tracking = True

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        v = float(min(max(float(v), self.minimum), self.maximum))
        if v != self._value:
            object.__setattr__(self, "_value", v)
            self.emit("valueChanged(double)", v)

    def setValue(self, v):
        self.value = v

    def setMinimum(self, v):
        self.minimum = float(v)

    def setMaximum(self, v):
        self.maximum = float(v)

    def setRange(self, lo, hi):
        self.minimum, self.maximum = float(lo), float(hi)

    def setDecimals(self, d):
        self.decimals = int(d)

    def setSingleStep(self, s):
        self.singleStep = float(s)

    def drag_to(self, values):
        """The harness: the user drags the handle through ``values``."""
        for v in values:
            self.value = v


class ctkMessageBox(qt.QMessageBox):
    pass


qt.register_widget_classes(ctkCollapsibleButton=ctkCollapsibleButton, ctkPathLineEdit=ctkPathLineEdit,
                           ctkSliderWidget=ctkSliderWidget)
