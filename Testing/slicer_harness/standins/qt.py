"""A stand-in for PythonQt's ``qt`` module: the classes the extension uses, with PythonQt's idioms.

What it keeps of PythonQt and Qt (the behaviours the extension's code depends on):
- properties read and written as attributes (``button.enabled = False``, ``lineEdit.text``);
- signals connected by signature string (``w.connect("clicked(bool)", slot)``); an unknown
  signature raises here (PythonQt prints an error and the click then does nothing);
- a slot gets no more arguments than it accepts;
- setting a property emits the signal Qt emits (``setText`` -> ``textChanged``, ``setValue`` ->
  ``valueChanged`` when the value changes, ``setCurrentIndex`` -> ``currentIndexChanged``);
- ``QProgressDialog.close()`` emits ``canceled()`` (``QProgressDialog::closeEvent``); ``value`` at
  the maximum resets and hides the dialog while ``autoReset``/``autoClose`` (Qt's defaults);
- ``QTimer`` runs only in the harness's event loop, on the main thread (``app.process_events``);
- ``QUiLoader`` builds the widget tree of a Designer .ui file (object names, properties, dynamic
  properties such as ``SlicerParameterName``, layouts, ``<connections>``); an unknown widget class
  in a .ui file raises.
Every call is checked to happen on the main thread (see ``threadguard``).
"""
from __future__ import annotations

import inspect
import itertools
import time
import xml.etree.ElementTree as ET

import threadguard

# ----- the event loop's timers (the harness app drives them) --------------------------------------
_timers: list = []


def _active_timers():
    return [t for t in _timers if t._active]


class _Namespace:
    def __init__(self, **values):
        self.__dict__.update(values)


class Qt:
    """The Qt namespace's enums the extension uses."""
    DisplayRole, DecorationRole, EditRole, ToolTipRole, UserRole = 0, 1, 2, 3, 256
    ItemIsSelectable, ItemIsEditable, ItemIsEnabled, ItemIsUserCheckable = 1, 2, 32, 16
    Unchecked, PartiallyChecked, Checked = 0, 1, 2
    AlignLeft, AlignRight, AlignHCenter, AlignVCenter, AlignCenter = 1, 2, 4, 128, 132
    WaitCursor, ArrowCursor, CrossCursor, PointingHandCursor = 3, 0, 2, 13
    Horizontal, Vertical = 1, 2
    NoFocus, StrongFocus = 0, 11
    KeepAspectRatio, SmoothTransformation = 1, 1
    red, green, blue, black, white, gray, darkGray = 7, 8, 9, 2, 3, 5, 4


def _accepts(slot) -> int | None:
    """How many positional arguments ``slot`` takes (None: any number)."""
    try:
        sig = inspect.signature(slot)
    except (TypeError, ValueError):
        return None
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


class QObject:
    """A QObject: children, object name, dynamic properties, signals by signature."""

    SIGNALS = frozenset({"destroyed()", "objectNameChanged(QString)"})
    _ids = itertools.count()

    def __init__(self, parent=None):
        threadguard.check("qt." + type(self).__name__)
        object.__setattr__(self, "_slots", {})
        object.__setattr__(self, "_children", [])
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_dynamic", {})
        object.__setattr__(self, "objectName", "")
        object.__setattr__(self, "_deleted", False)
        if parent is not None:
            self.setParent(parent)

    # PythonQt exposes objectName also as ``name`` (slicer.util.childWidgetVariables uses it)
    @property
    def name(self):
        return self.objectName

    @name.setter
    def name(self, value):
        self.objectName = value

    def setObjectName(self, name):
        self.objectName = name

    def className(self):
        return type(self).__name__

    def setParent(self, parent):
        if self._parent is not None and self in self._parent._children:
            self._parent._children.remove(self)
        object.__setattr__(self, "_parent", parent)
        if parent is not None:
            parent._children.append(self)

    def parent(self):
        return self._parent

    def children(self):
        return list(self._children)

    def findChildren(self, cls=None):
        out, stack = [], list(self._children)
        while stack:
            c = stack.pop(0)
            if cls is None or isinstance(c, cls):
                out.append(c)
            stack.extend(c._children)
        return out

    def setProperty(self, name, value):
        self._dynamic[name] = value
        return True

    def property(self, name):
        if name in self._dynamic:
            return self._dynamic[name]
        return getattr(self, name, None)

    def dynamicPropertyNames(self):
        return list(self._dynamic)

    def deleteLater(self):
        self._deleted = True
        if self._parent is not None:
            self.setParent(None)

    def blockSignals(self, block):
        previous = getattr(self, "_blocked", False)
        object.__setattr__(self, "_blocked", bool(block))
        return previous

    def signalsBlocked(self):
        return getattr(self, "_blocked", False)

    @classmethod
    def _all_signals(cls):
        out = set()
        for klass in cls.__mro__:
            out |= set(getattr(klass, "SIGNALS", ()))
        return out

    def connect(self, signal, slot):
        """PythonQt's ``obj.connect("signal(types)", callable)``."""
        threadguard.check(f"qt.{type(self).__name__}.connect")
        signature = signal.replace(" ", "")
        if signature not in self._all_signals():
            raise AttributeError(f"{type(self).__name__} ({self.objectName or 'unnamed'}) has no signal "
                                 f"{signal!r}; it has {sorted(self._all_signals())}")
        self._slots.setdefault(signature, []).append(slot)
        return True

    def disconnect(self, signal, slot=None):
        signature = signal.replace(" ", "")
        slots = self._slots.get(signature, [])
        if slot is None:
            slots.clear()
        elif slot in slots:
            slots.remove(slot)
        return True

    def emit(self, signal, *args):
        """Emit ``signal`` (the harness: a user's click, a timer's timeout)."""
        threadguard.check(f"qt.{type(self).__name__}.emit")
        signature = signal.replace(" ", "")
        if signature not in self._all_signals():
            raise AttributeError(f"{type(self).__name__} has no signal {signal!r}")
        if getattr(self, "_blocked", False):
            return
        for slot in list(self._slots.get(signature, [])):
            n = _accepts(slot)
            slot(*(args if n is None else args[:n]))

    def connected(self, signal) -> int:
        """How many slots are connected to ``signal`` (harness only)."""
        return len(self._slots.get(signal.replace(" ", ""), []))


class QWidget(QObject):
    SIGNALS = frozenset({"customContextMenuRequested(QPoint)", "windowTitleChanged(QString)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.enabled = True
        self.visible = parent is None and False or True
        self.toolTip = ""
        self.windowTitle = ""
        self.styleSheet = ""
        self.minimumWidth = 0
        self.maximumWidth = 16777215
        self._layout = None

    # -- the properties/methods widgets share
    def setEnabled(self, value):
        self.enabled = bool(value)

    def isEnabled(self):
        return self.enabled

    def setVisible(self, value):
        self.visible = bool(value)

    def show(self):
        self.visible = True

    def hide(self):
        self.visible = False

    def isVisible(self):
        return self.visible

    def setToolTip(self, text):
        self.toolTip = str(text)

    def setWindowTitle(self, text):
        self.windowTitle = str(text)

    def setStyleSheet(self, text):
        self.styleSheet = str(text)

    def setLayout(self, layout):
        self._layout = layout
        layout.setParent(self)

    def layout(self):
        return self._layout

    def update(self):
        pass

    def repaint(self):
        pass

    def setFocus(self):
        pass

    def setSizePolicy(self, *args):
        pass

    def setMinimumWidth(self, w):
        self.minimumWidth = w

    def setMaximumWidth(self, w):
        self.maximumWidth = w

    def setMinimumHeight(self, h):
        pass

    def setMaximumHeight(self, h):
        pass

    def setFixedWidth(self, w):
        pass

    def setFixedHeight(self, h):
        pass

    def setMRMLScene(self, scene):
        self.mrmlScene = scene
        self.emit("mrmlSceneChanged(vtkMRMLScene*)", scene) if "mrmlSceneChanged(vtkMRMLScene*)" in \
            self._all_signals() else None

    def close(self):
        self.visible = False
        return True


class QFrame(QWidget):
    NoFrame, Box, Panel, StyledPanel, HLine, VLine = 0, 1, 2, 6, 4, 5
    Plain, Raised, Sunken = 16, 32, 48

    def setFrameShape(self, shape):
        pass

    def setFrameShadow(self, shadow):
        pass


class QMainWindow(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.objectName = "qSlicerMainWindow"
        self._status = QStatusBar(self)

    def statusBar(self):
        return self._status


class QStatusBar(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.messages = []

    def showMessage(self, message, timeout=0):
        self.messages.append(str(message))

    def currentMessage(self):
        return self.messages[-1] if self.messages else ""


class QLabel(QFrame):
    SIGNALS = frozenset({"linkActivated(QString)", "linkHovered(QString)"})

    def __init__(self, text="", parent=None):
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self.text = str(text)
        self.wordWrap = False
        self.openExternalLinks = False
        self.textFormat = 0
        self.pixmap = None

    def setText(self, text):
        self.text = str(text)

    def setWordWrap(self, value):
        self.wordWrap = bool(value)

    def setPixmap(self, pixmap):
        self.pixmap = pixmap

    def clear(self):
        self.text = ""


class QAbstractButton(QWidget):
    SIGNALS = frozenset({"clicked()", "clicked(bool)", "pressed()", "released()", "toggled(bool)"})

    def __init__(self, text="", parent=None):
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        object.__setattr__(self, "_checked", False)
        self.text = str(text)
        self.checkable = False
        self.icon = None

    @property
    def checked(self):
        return self._checked

    @checked.setter
    def checked(self, value):
        value = bool(value)
        if value != self._checked:
            object.__setattr__(self, "_checked", value)
            self.emit("toggled(bool)", value)

    def setChecked(self, value):
        self.checked = value

    def isChecked(self):
        return self.checked

    def setText(self, text):
        self.text = str(text)

    def setCheckable(self, value):
        self.checkable = bool(value)

    def setIcon(self, icon):
        self.icon = icon

    def click(self):
        """A user's click: nothing when disabled or hidden (Qt delivers no click to a disabled button)."""
        if not self.enabled:
            return False
        if self.checkable:
            self.checked = not self.checked
        self.emit("clicked(bool)", self.checked)
        self.emit("clicked()")
        return True


class QPushButton(QAbstractButton):
    pass


class QToolButton(QAbstractButton):
    pass


class QCheckBox(QAbstractButton):
    SIGNALS = frozenset({"stateChanged(int)"})

    def __init__(self, text="", parent=None):
        super().__init__(text, parent)
        self.checkable = True

    @QAbstractButton.checked.setter
    def checked(self, value):
        value = bool(value)
        if value != self._checked:
            object.__setattr__(self, "_checked", value)
            self.emit("toggled(bool)", value)
            self.emit("stateChanged(int)", Qt.Checked if value else Qt.Unchecked)


class QLineEdit(QWidget):
    SIGNALS = frozenset({"textChanged(QString)", "textEdited(QString)", "editingFinished()", "returnPressed()"})
    Normal, NoEcho, Password = 0, 1, 2

    def __init__(self, text="", parent=None):
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        object.__setattr__(self, "_text", str(text))
        self.placeholderText = ""
        self.echoMode = QLineEdit.Normal
        self.readOnly = False

    @property
    def text(self):
        return self._text

    @text.setter
    def text(self, value):
        value = str(value)
        if value != self._text:
            object.__setattr__(self, "_text", value)
            self.emit("textChanged(QString)", value)

    def setText(self, value):
        self.text = value

    def clear(self):
        self.text = ""

    def setPlaceholderText(self, value):
        self.placeholderText = value

    def setEchoMode(self, mode):
        self.echoMode = mode

    def setReadOnly(self, value):
        self.readOnly = bool(value)

    def type_text(self, value):
        """The harness: the user types ``value`` (textEdited, textChanged, editingFinished)."""
        self.text = value
        self.emit("textEdited(QString)", value)
        self.emit("editingFinished()")


class QPlainTextEdit(QWidget):
    SIGNALS = frozenset({"textChanged()"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plainText = ""
        self.readOnly = False

    def setPlainText(self, text):
        self.plainText = str(text)
        self.emit("textChanged()")

    def appendPlainText(self, text):
        self.plainText = (self.plainText + "\n" if self.plainText else "") + str(text)
        self.emit("textChanged()")

    def toPlainText(self):
        return self.plainText

    def clear(self):
        self.setPlainText("")

    def setReadOnly(self, value):
        self.readOnly = bool(value)


class QComboBox(QWidget):
    SIGNALS = frozenset({"currentIndexChanged(int)", "currentIndexChanged(QString)", "activated(int)",
                         "currentTextChanged(QString)", "editTextChanged(QString)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        object.__setattr__(self, "_items", [])  # [text, {role: value}]
        object.__setattr__(self, "_index", -1)
        self.editable = False

    @property
    def count(self):
        return len(self._items)

    @property
    def currentIndex(self):
        return self._index

    @currentIndex.setter
    def currentIndex(self, index):
        index = int(index)
        if not -1 <= index < len(self._items):
            index = -1
        if index != self._index:
            object.__setattr__(self, "_index", index)
            self.emit("currentIndexChanged(int)", index)
            self.emit("currentIndexChanged(QString)", self.currentText)
            self.emit("currentTextChanged(QString)", self.currentText)

    def setCurrentIndex(self, index):
        self.currentIndex = index

    @property
    def currentText(self):
        return self._items[self._index][0] if self._index >= 0 else ""

    def setCurrentText(self, text):
        index = self.findText(text)
        if index >= 0:
            self.currentIndex = index

    @property
    def currentData(self):
        return self.itemData(self._index)

    def addItem(self, text, userData=None):
        self._items.append([str(text), {Qt.UserRole: userData}])
        if self._index < 0:
            self.currentIndex = 0

    def addItems(self, texts):
        for t in texts:
            self.addItem(t)

    def insertItem(self, index, text, userData=None):
        self._items.insert(index, [str(text), {Qt.UserRole: userData}])
        if self._index < 0:
            self.currentIndex = 0

    def clear(self):
        self._items.clear()
        self.currentIndex = -1

    def itemText(self, index):
        return self._items[index][0] if 0 <= index < len(self._items) else ""

    def itemData(self, index, role=Qt.UserRole):
        return self._items[index][1].get(role) if 0 <= index < len(self._items) else None

    def setItemData(self, index, value, role=Qt.UserRole):
        self._items[index][1][role] = value

    def setItemText(self, index, text):
        self._items[index][0] = str(text)

    def findText(self, text):
        for i, (t, _) in enumerate(self._items):
            if t == text:
                return i
        return -1

    def findData(self, data, role=Qt.UserRole):
        for i, (_, d) in enumerate(self._items):
            if d.get(role) == data:
                return i
        return -1

    def removeItem(self, index):
        del self._items[index]
        if self._index >= len(self._items):
            self.currentIndex = len(self._items) - 1

    def choose(self, index):
        """The harness: the user picks item ``index`` (activated + currentIndexChanged)."""
        self.currentIndex = index
        self.emit("activated(int)", index)


class _SpinBase(QWidget):
    _type = float
    _signal = "valueChanged(double)"

    def __init__(self, parent=None):
        super().__init__(parent)
        object.__setattr__(self, "_value", self._type(0))
        self.minimum = self._type(0)
        self.maximum = self._type(99)
        self.singleStep = self._type(1)
        self.suffix = ""
        self.prefix = ""

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        v = self._type(min(max(self._type(v), self.minimum), self.maximum))
        if v != self._value:
            object.__setattr__(self, "_value", v)
            self.emit(self._signal, v)

    def setValue(self, v):
        self.value = v

    def setMinimum(self, v):
        self.minimum = self._type(v)
        if self.value < self.minimum:
            self.value = self.minimum

    def setMaximum(self, v):
        self.maximum = self._type(v)
        if self.value > self.maximum:
            self.value = self.maximum

    def setRange(self, lo, hi):
        self.setMinimum(lo)
        self.setMaximum(hi)

    def setSingleStep(self, v):
        self.singleStep = self._type(v)

    def setSuffix(self, s):
        self.suffix = s


class QSpinBox(_SpinBase):
    _type = int
    _signal = "valueChanged(int)"
    SIGNALS = frozenset({"valueChanged(int)", "valueChanged(QString)", "editingFinished()"})


class QDoubleSpinBox(_SpinBase):
    SIGNALS = frozenset({"valueChanged(double)", "valueChanged(QString)", "editingFinished()"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.decimals = 2

    def setDecimals(self, d):
        self.decimals = int(d)


class QSlider(_SpinBase):
    _type = int
    _signal = "valueChanged(int)"
    SIGNALS = frozenset({"valueChanged(int)", "sliderMoved(int)", "sliderReleased()"})


class QProgressBar(QWidget):
    SIGNALS = frozenset({"valueChanged(int)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.minimum, self.maximum, self.value = 0, 100, -1
        self.format = "%p%"
        self.textVisible = True

    def setValue(self, v):
        self.value = int(v)
        self.emit("valueChanged(int)", self.value)

    def setMaximum(self, v):
        self.maximum = int(v)

    def setMinimum(self, v):
        self.minimum = int(v)

    def setRange(self, lo, hi):
        self.minimum, self.maximum = int(lo), int(hi)

    def setFormat(self, f):
        self.format = f

    def reset(self):
        self.value = -1


class QTableWidgetItem:
    """A table cell: text, data by role, flags, tool tip."""

    def __init__(self, text=""):
        threadguard.check("qt.QTableWidgetItem")
        self._data = {Qt.DisplayRole: str(text)}
        self._flags = Qt.ItemIsSelectable | Qt.ItemIsEnabled | Qt.ItemIsEditable
        self.foreground = None
        self.background = None

    def text(self):
        return self._data.get(Qt.DisplayRole, "")

    def setText(self, text):
        self._data[Qt.DisplayRole] = str(text)

    def data(self, role):
        return self._data.get(role)

    def setData(self, role, value):
        self._data[role] = value

    def setToolTip(self, text):
        self._data[Qt.ToolTipRole] = str(text)

    def toolTip(self):
        return self._data.get(Qt.ToolTipRole, "")

    def flags(self):
        return self._flags

    def setFlags(self, flags):
        self._flags = flags

    def setForeground(self, brush):
        self.foreground = brush

    def setBackground(self, brush):
        self.background = brush

    def setTextAlignment(self, alignment):
        pass

    def setCheckState(self, state):
        self._data["checkState"] = state

    def checkState(self):
        return self._data.get("checkState", Qt.Unchecked)


class _HeaderView(QObject):
    Interactive, Stretch, Fixed, ResizeToContents = 0, 1, 2, 3

    def setSectionResizeMode(self, *args):
        pass

    def setStretchLastSection(self, value):
        pass

    def setVisible(self, value):
        pass

    def resizeSections(self, *args):
        pass


class QAbstractItemView:
    NoEditTriggers, SelectRows, SingleSelection, ExtendedSelection, NoSelection = 0, 1, 1, 3, 0


class QTableWidget(QFrame):
    SIGNALS = frozenset({"itemSelectionChanged()", "cellDoubleClicked(int,int)", "cellClicked(int,int)",
                         "cellChanged(int,int)", "currentCellChanged(int,int,int,int)",
                         "itemChanged(QTableWidgetItem*)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        object.__setattr__(self, "_rows", 0)
        object.__setattr__(self, "_columns", 0)
        object.__setattr__(self, "_cells", {})
        object.__setattr__(self, "_current", -1)
        object.__setattr__(self, "_headers", [])
        object.__setattr__(self, "_hh", _HeaderView(self))
        object.__setattr__(self, "_vh", _HeaderView(self))
        self.sortingEnabled = False

    @property
    def rowCount(self):
        return self._rows

    @rowCount.setter
    def rowCount(self, n):
        self.setRowCount(n)

    @property
    def columnCount(self):
        return self._columns

    @columnCount.setter
    def columnCount(self, n):
        self.setColumnCount(n)

    def setRowCount(self, n):
        n = int(n)
        object.__setattr__(self, "_rows", n)
        for key in [k for k in self._cells if k[0] >= n]:
            del self._cells[key]
        if self._current >= n:
            self._set_current(-1)

    def setColumnCount(self, n):
        object.__setattr__(self, "_columns", int(n))

    def setHorizontalHeaderLabels(self, labels):
        object.__setattr__(self, "_headers", list(labels))
        if self._columns < len(labels):
            self.setColumnCount(len(labels))

    def horizontalHeaderLabels(self):
        return list(self._headers)

    def horizontalHeaderItem(self, column):
        return QTableWidgetItem(self._headers[column]) if 0 <= column < len(self._headers) else None

    def horizontalHeader(self):
        return self._hh

    def verticalHeader(self):
        return self._vh

    def setItem(self, row, column, item):
        if not (0 <= row < self._rows and 0 <= column < self._columns):
            raise IndexError(f"{self.objectName}: cell ({row}, {column}) outside {self._rows} x {self._columns}")
        self._cells[(row, column)] = item

    def item(self, row, column):
        return self._cells.get((row, column))

    def clearContents(self):
        self._cells.clear()

    def clear(self):
        self._cells.clear()
        self._headers = []

    def currentRow(self):
        return self._current

    def _set_current(self, row):
        if row != self._current:
            object.__setattr__(self, "_current", row)
            self.emit("itemSelectionChanged()")

    def setCurrentCell(self, row, column):
        self._set_current(row)

    def selectRow(self, row):
        self._set_current(row)

    def clearSelection(self):
        self._set_current(-1)

    def selectionModel(self):
        table = self

        class _Selection:
            def hasSelection(self):
                return table._current >= 0

        return _Selection()

    def selectedItems(self):
        return [v for (r, _), v in sorted(self._cells.items()) if r == self._current]

    def setSortingEnabled(self, value):
        self.sortingEnabled = bool(value)

    def setEditTriggers(self, value):
        pass

    def setSelectionBehavior(self, value):
        pass

    def setSelectionMode(self, value):
        pass

    def resizeColumnsToContents(self):
        pass

    def resizeRowsToContents(self):
        pass

    def setColumnWidth(self, column, width):
        pass

    def scrollToItem(self, item):
        pass

    def double_click(self, row, column=0):
        """The harness: the user double-clicks a cell."""
        self._set_current(row)
        self.emit("cellDoubleClicked(int,int)", row, column)

    def rows(self) -> list[list[str]]:
        """The harness: the table's texts, row by row."""
        return [[(self._cells.get((r, c)).text() if self._cells.get((r, c)) else "") for c in range(self._columns)]
                for r in range(self._rows)]


class QListWidget(QFrame):
    SIGNALS = frozenset({"itemSelectionChanged()", "currentRowChanged(int)"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self._items = []

    def addItem(self, text):
        self._items.append(str(text))

    def addItems(self, texts):
        self._items.extend(str(t) for t in texts)

    def clear(self):
        self._items.clear()
        self.setCurrentRow(-1)  # QListWidget::clear: no current item any more

    @property
    def count(self):
        return len(self._items)

    def item(self, row):
        return QTableWidgetItem(self._items[row]) if 0 <= row < len(self._items) else None

    @property
    def currentRow(self):
        return getattr(self, "_current_row", -1)

    def setCurrentRow(self, row):
        """QListWidget::setCurrentRow (the user selects a row): currentRowChanged(int) when it changes."""
        row = int(row) if 0 <= int(row) < len(self._items) else -1
        if row != self.currentRow:
            object.__setattr__(self, "_current_row", row)
            self.emit("currentRowChanged(int)", row)


# ----- layouts -----------------------------------------------------------------------------------
class QLayout(QObject):
    def __init__(self, parent=None):
        super().__init__(None)
        self._items = []
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def addWidget(self, widget, *args):
        owner = self.parent()
        if owner is not None:
            widget.setParent(owner)
        self._items.append(widget)

    def addLayout(self, layout, *args):
        layout.setParent(self.parent() or self)
        self._items.append(layout)

    def addStretch(self, *args):
        pass

    def addSpacing(self, *args):
        pass

    def addItem(self, item):
        pass

    def setContentsMargins(self, *args):
        pass

    def setSpacing(self, *args):
        pass

    def insertWidget(self, index, widget, *args):
        self.addWidget(widget)

    def count(self):
        return len(self._items)

    def removeWidget(self, widget):
        if widget in self._items:
            self._items.remove(widget)


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QGridLayout(QLayout):
    pass


class QFormLayout(QLayout):
    def addRow(self, label, field=None):
        if field is None:
            (self.addLayout if isinstance(label, QLayout) else self.addWidget)(label)
            return
        if isinstance(label, str):
            label = QLabel(label)
        self.addWidget(label)
        (self.addLayout if isinstance(field, QLayout) else self.addWidget)(field)


class QSpacerItem:
    def __init__(self, *args):
        pass


class QSizePolicy:
    Fixed, Minimum, Maximum, Preferred, Expanding, MinimumExpanding, Ignored = 0, 1, 4, 5, 7, 3, 13

    def __init__(self, *args):
        pass


# ----- timers and the application ----------------------------------------------------------------
class QTimer(QObject):
    SIGNALS = frozenset({"timeout()"})

    def __init__(self, parent=None):
        super().__init__(parent)
        self.interval = 0
        self.singleShot = False
        self._active = False
        self._due = 0.0
        _timers.append(self)

    def setInterval(self, ms):
        self.interval = int(ms)

    def setSingleShot(self, value):
        self.singleShot = bool(value)

    def start(self, ms=None):
        threadguard.check("qt.QTimer.start")
        if ms is not None:
            self.interval = int(ms)
        self._active = True
        self._due = time.monotonic() + self.interval / 1000.0

    def stop(self):
        threadguard.check("qt.QTimer.stop")
        self._active = False

    def isActive(self):
        return self._active

    def _fire(self):
        if self.singleShot:
            self._active = False
        else:
            self._due = time.monotonic() + self.interval / 1000.0
        self.emit("timeout()")

    @staticmethod
    def _singleShot(ms, callback):
        timer = QTimer()
        timer.setSingleShot(True)
        timer.connect("timeout()", callback)
        timer.start(ms)
        return timer


# QTimer.singleShot(ms, callable) is static in Qt, while a timer object has a 'singleShot' property.
class _SingleShotDescriptor:
    def __get__(self, obj, objtype=None):
        if obj is None:
            return QTimer._singleShot
        return obj.__dict__.get("singleShot", False)

    def __set__(self, obj, value):
        obj.__dict__["singleShot"] = bool(value)


QTimer.singleShot = _SingleShotDescriptor()


def process_due_timers(now=None) -> int:
    """Fire the timers that are due, on the calling (main) thread; how many fired."""
    now = time.monotonic() if now is None else now
    fired = 0
    for timer in list(_timers):
        if timer._active and timer._due <= now and not timer._deleted:
            timer._fire()
            fired += 1
    return fired


class QApplication(QObject):
    @staticmethod
    def processEvents(*args):
        threadguard.check("qt.QApplication.processEvents")
        process_due_timers()

    @staticmethod
    def setOverrideCursor(cursor):
        pass

    @staticmethod
    def restoreOverrideCursor():
        pass

    @staticmethod
    def overrideCursor():
        return None


QCoreApplication = QApplication


class QSettings(QObject):
    """Slicer's application settings: one store for every QSettings() made in a run."""

    _store: dict = {}

    def value(self, key, default=None):
        threadguard.check("qt.QSettings.value")
        return QSettings._store.get(key, default)

    def setValue(self, key, value):
        threadguard.check("qt.QSettings.setValue")
        QSettings._store[key] = value

    def contains(self, key):
        return key in QSettings._store

    def remove(self, key):
        for k in [k for k in QSettings._store if k == key or k.startswith(key + "/")]:
            del QSettings._store[k]

    def allKeys(self):
        return sorted(QSettings._store)

    def sync(self):
        pass


# ----- dialogs -----------------------------------------------------------------------------------
class QDialog(QWidget):
    SIGNALS = frozenset({"accepted()", "rejected()", "finished(int)"})
    Accepted, Rejected = 1, 0

    def exec_(self):
        return QDialog.Accepted

    def accept(self):
        self.visible = False
        self.emit("accepted()")

    def reject(self):
        self.visible = False
        self.emit("rejected()")


class QProgressDialog(QDialog):
    """Qt's progress dialog, with the two behaviours that bite: close() emits canceled(), and
    reaching the maximum resets (and hides) it while autoReset/autoClose are on (the defaults)."""

    SIGNALS = frozenset({"canceled()"})
    instances: list = []  # every dialog made in the run (the harness inspects them)

    def __init__(self, parent=None):
        super().__init__(parent)
        QProgressDialog.instances.append(self)
        object.__setattr__(self, "_value", 0)
        self.minimum, self.maximum = 0, 100
        self.labelText = ""
        self.minimumDuration = 4000
        self.autoClose = True
        self.autoReset = True
        self.modal = False
        self.wasCanceled = False
        self.closed_count = 0

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        object.__setattr__(self, "_value", int(v))
        if self.maximum and int(v) >= self.maximum and self.autoReset:
            object.__setattr__(self, "_value", -1)
            if self.autoClose:
                self.visible = False

    def setValue(self, v):
        self.value = v

    def setLabelText(self, text):
        self.labelText = str(text)

    def setMaximum(self, v):
        self.maximum = int(v)

    def setMinimum(self, v):
        self.minimum = int(v)

    def setRange(self, lo, hi):
        self.minimum, self.maximum = int(lo), int(hi)

    def setCancelButton(self, button):
        pass

    def setCancelButtonText(self, text):
        pass

    def setWindowModality(self, modality):
        pass

    def setMinimumDuration(self, ms):
        self.minimumDuration = int(ms)

    def setAutoClose(self, value):
        self.autoClose = bool(value)

    def setAutoReset(self, value):
        self.autoReset = bool(value)

    def cancel(self):
        """The user's Cancel button."""
        self.wasCanceled = True
        self.emit("canceled()")

    def close(self):
        # QProgressDialog::closeEvent: "emit canceled(); QDialog::closeEvent(e);"
        self.closed_count += 1
        self.emit("canceled()")
        self.visible = False
        return True


class QMessageBox(QDialog):
    """A message box answered by the scenario: ``answers`` (a queue of buttons), else the "go ahead" button
    (Yes when the box has one, else Ok). Every box shown is recorded in ``shown``."""

    Ok, Cancel, Yes, No, Close, Retry = 0x400, 0x400000, 0x4000, 0x10000, 0x200000, 0x80000
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4
    answers: list = []
    shown: list = []

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = ""
        self.informativeText = ""
        self.detailedText = ""
        self.icon = QMessageBox.NoIcon
        self.standardButtons = QMessageBox.Ok
        self.dontShowAgainSettingsKey = ""

    def exec_(self):
        threadguard.check("qt.QMessageBox.exec_")
        if QMessageBox.answers:
            answer = QMessageBox.answers.pop(0)
        else:
            answer = QMessageBox.Yes if int(self.standardButtons) & QMessageBox.Yes else QMessageBox.Ok
        QMessageBox.shown.append({"text": str(self.text), "title": str(self.windowTitle), "icon": int(self.icon),
                                  "answer": int(answer)})
        return answer


class QFileDialog(QObject):
    """File dialogs answer from a queue the scenario fills (``QFileDialog.answers``); empty: cancelled."""

    answers: list = []
    ShowDirsOnly = 1

    @staticmethod
    def _answer():
        threadguard.check("qt.QFileDialog")
        return QFileDialog.answers.pop(0) if QFileDialog.answers else ""

    @staticmethod
    def getOpenFileName(*args, **kw):
        return QFileDialog._answer()

    @staticmethod
    def getSaveFileName(*args, **kw):
        return QFileDialog._answer()

    @staticmethod
    def getExistingDirectory(*args, **kw):
        return QFileDialog._answer()

    @staticmethod
    def getOpenFileNames(*args, **kw):
        answer = QFileDialog._answer()
        return answer if isinstance(answer, list) else ([answer] if answer else [])


# ----- painting and resources ----------------------------------------------------------------------
class QColor:
    def __init__(self, *args):
        self.args = args

    def name(self):
        return str(self.args[0]) if self.args and isinstance(self.args[0], str) else "#000000"


class QBrush:
    def __init__(self, color=None):
        self.color = color


class QIcon:
    def __init__(self, path=""):
        self.path = str(path)

    def isNull(self):
        return not self.path


class QPixmap:
    def __init__(self, path=""):
        self.path = str(path)

    def isNull(self):
        return not self.path

    def scaled(self, *args):
        return self


class QCursor:
    def __init__(self, *args):
        self.args = args


class QSize:
    def __init__(self, w=0, h=0):
        self.w, self.h = w, h

    def width(self):
        return self.w

    def height(self):
        return self.h


class QPoint:
    def __init__(self, x=0, y=0):
        self._x, self._y = x, y

    def x(self):
        return self._x

    def y(self):
        return self._y


class QPointF(QPoint):
    pass


class QVector3D:
    def __init__(self, x=0.0, y=0.0, z=0.0):
        self._v = [float(x), float(y), float(z)]

    def x(self):
        return self._v[0]

    def y(self):
        return self._v[1]

    def z(self):
        return self._v[2]


class QUrl:
    def __init__(self, url=""):
        self.url = str(url)

    @staticmethod
    def fromLocalFile(path):
        return QUrl("file://" + str(path))

    def toString(self):
        return self.url


class QDesktopServices:
    opened: list = []

    @staticmethod
    def openUrl(url):
        QDesktopServices.opened.append(url.toString() if hasattr(url, "toString") else str(url))
        return True


class QFile:
    ReadOnly = 1

    def __init__(self, path):
        self.path = str(path)

    def exists(self):
        import os

        return os.path.isfile(self.path)

    def open(self, mode):
        return self.exists()

    def close(self):
        pass


class QVariant:
    def __init__(self, value=None):
        self.value = value


# ----- Designer .ui files ------------------------------------------------------------------------
_WIDGET_CLASSES: dict = {}


def register_widget_classes(**classes):
    """Widget classes a .ui file may name (ctk and qMRML classes are added by the harness)."""
    _WIDGET_CLASSES.update(classes)


register_widget_classes(QWidget=QWidget, QFrame=QFrame, QLabel=QLabel, QPushButton=QPushButton,
                        QToolButton=QToolButton, QCheckBox=QCheckBox, QLineEdit=QLineEdit,
                        QPlainTextEdit=QPlainTextEdit, QComboBox=QComboBox, QSpinBox=QSpinBox,
                        QDoubleSpinBox=QDoubleSpinBox, QSlider=QSlider, QProgressBar=QProgressBar,
                        QTableWidget=QTableWidget, QListWidget=QListWidget)
_LAYOUT_CLASSES = {"QVBoxLayout": QVBoxLayout, "QHBoxLayout": QHBoxLayout, "QGridLayout": QGridLayout,
                   "QFormLayout": QFormLayout}


def _property_value(element):
    child = list(element)[0]
    tag, text = child.tag, child.text or ""
    if tag == "string":
        return text
    if tag == "bool":
        return text.strip() == "true"
    if tag == "number":
        return int(text)
    if tag == "double":
        return float(text)
    if tag == "enum":
        return text
    if tag == "stringlist":
        return [s.text or "" for s in child.findall("string")]
    return None


# property name in a .ui file -> how the stand-in applies it
def _apply_property(widget, name, value):
    if value is None:
        return
    setter = {"minimum": "setMinimum", "maximum": "setMaximum", "value": "setValue", "text": "setText",
              "checked": "setChecked", "decimals": "setDecimals", "singleStep": "setSingleStep",
              "currentPath": "setCurrentPath", "collapsed": "setCollapsed"}.get(name)
    if setter and hasattr(widget, setter):
        # a .ui file's values are set while the widget is built: no one is connected yet
        getattr(widget, setter)(value)
    elif name in ("enabled", "toolTip", "windowTitle", "placeholderText", "checkable", "wordWrap", "suffix",
                  "readOnly", "nodeTypes", "noneEnabled", "addEnabled", "removeEnabled", "renameEnabled",
                  "showChildNodeTypes", "filters", "nameFilters", "format", "textVisible", "echoMode",
                  "selectNodeUponCreation", "editEnabled", "baseName", "showHidden", "visible", "title",
                  "contentsFrameShape", "settingKey", "prefix"):
        setattr(widget, name, value)


class QUiLoader(QObject):
    """Build the widget tree of a Designer .ui file."""

    def load(self, qfile, parent=None):
        threadguard.check("qt.QUiLoader.load")
        root = ET.parse(qfile.path).getroot()
        top = root.find("widget")
        names: dict = {}
        widget = self._widget(top, parent, names)
        for connection in root.findall("connections/connection"):
            sender = names[connection.findtext("sender")]
            receiver = names[connection.findtext("receiver")]
            slot = connection.findtext("slot").split("(")[0]
            sender.connect(connection.findtext("signal"), getattr(receiver, slot))
        return widget

    def _widget(self, element, parent, names):
        cls_name = element.get("class")
        cls = _WIDGET_CLASSES.get(cls_name)
        if cls is None:
            raise RuntimeError(f"the .ui file uses widget class {cls_name!r}, which this Slicer does not provide")
        widget = cls(parent) if parent is not None else cls()
        widget.objectName = element.get("name", "")
        names[widget.objectName] = widget
        for prop in element.findall("property"):
            value = _property_value(prop)
            if prop.get("stdset") == "0":
                widget.setProperty(prop.get("name"), value)
            else:
                _apply_property(widget, prop.get("name"), value)
        columns = element.findall("column")
        if columns and isinstance(widget, QTableWidget):
            widget.setHorizontalHeaderLabels([c.findtext("property/string") or "" for c in columns])
        for child in element:
            if child.tag == "widget":
                self._widget(child, widget, names)
            elif child.tag == "layout":
                self._layout(child, widget, names)
        return widget

    def _layout(self, element, owner, names):
        layout = _LAYOUT_CLASSES[element.get("class")](None)
        layout.objectName = element.get("name", "")
        layout.setParent(owner)
        if owner._layout is None:
            owner._layout = layout
        names[layout.objectName] = layout
        for item in element.findall("item"):
            for child in item:
                if child.tag == "widget":
                    layout._items.append(self._widget(child, owner, names))
                elif child.tag == "layout":
                    layout._items.append(self._layout(child, owner, names))
        return layout
