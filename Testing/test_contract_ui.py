"""Contract: each module's .ui file is valid Qt Designer XML that its widget code can rely on.

``slicer.util.childWidgetVariables`` turns every named widget of the .ui into ``self.ui.<name>``;
a name used in the code but absent from the .ui only fails when a user opens the panel, so it
is checked here by parsing both.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

import contract_support as cs
import pytest

# Widget classes Qt's QUiLoader creates itself; any other class must be declared in <customwidgets>.
QT_CLASSES_PREFIX = "Q"


def _ui(module):
    return ET.parse(cs.ui_path(module)).getroot()


@pytest.mark.parametrize("module", cs.MODULES)
def test_ui_file_is_designer_xml_with_a_qmrmlwidget_on_top(module):
    root = _ui(module)  # raises ParseError on malformed XML
    assert root.tag == "ui" and root.get("version") == "4.0"
    assert root.findtext("class") == module
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget" and top.get("name") == module, \
        "Slicer's convention: the top widget is a qMRMLWidget named after the module"
    names = cs.ui_object_names(root)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"{module}.ui: objectNames used twice: {duplicates}"


@pytest.mark.parametrize("module", cs.MODULES)
def test_ui_custom_widgets_are_declared(module):
    root = _ui(module)
    declared = {cw.findtext("class") for cw in root.iter("customwidget")}
    used = set(cs.ui_widget_classes(root).values())
    undeclared = sorted(c for c in used if not c.startswith(QT_CLASSES_PREFIX) and c not in declared)
    assert not undeclared, f"{module}.ui: custom widget classes not in <customwidgets>: {undeclared}"


@pytest.mark.parametrize("module", cs.MODULES)
def test_mrml_widgets_receive_the_scene(module):
    """Each qMRML widget gets the scene through the top widget's mrmlSceneChanged signal (template rule)."""
    root = _ui(module)
    mrml_widgets = {name for name, cls in cs.ui_widget_classes(root).items()
                    if cls.startswith("qMRML") and name != module}
    connected = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("sender") == module and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert mrml_widgets <= connected, f"{module}.ui: connect mrmlSceneChanged to {sorted(mrml_widgets - connected)}"


@pytest.mark.parametrize("module", cs.MODULES)
def test_every_self_ui_name_exists_in_the_ui_file(module):
    """In the module file and in its panel section files (XLib/panel_*.py) alike."""
    used = {path: cs.ui_names_used(cs.parse(path)) for path in cs.widget_sources(module)}
    assert any(used.values()), f"{module}: no self.ui.<name> anywhere: is the panel built from the .ui file?"
    available = set(cs.ui_object_names(_ui(module)))
    missing = {path.relative_to(cs.ROOT).as_posix(): sorted(names - available) for path, names in used.items()
               if names - available}
    assert not missing, f"self.ui names that {module}.ui has no objectName for: {missing}"


@pytest.mark.parametrize("module", cs.MODULES)
def test_parameter_bound_widgets_name_real_parameters(module):
    bindings = cs.ui_parameter_bindings(_ui(module))
    parameters = cs.parameter_names(cs.parse(cs.module_source(module)), module)
    unknown = {w: p for w, p in bindings.items() if p not in parameters}
    assert not unknown, f"{module}.ui: SlicerParameterName not in {module}ParameterNode: {unknown}"


@pytest.mark.parametrize("module", cs.MODULES)
def test_widget_loads_its_ui_through_resource_path(module):
    source = cs.module_source(module).read_text(encoding="utf-8")
    assert f'slicer.util.loadUI(self.resourcePath("UI/{module}.ui"))' in source


def test_ui_name_check_catches_a_missing_widget():
    """The checker itself: a self.ui name absent from the XML is found."""
    code = cs.ast.parse("class W:\n    def setup(self):\n        self.ui.applyButton.enabled = self.ui.other.checked\n")
    xml = ET.fromstring('<ui version="4.0"><widget class="qMRMLWidget" name="M">'
                        '<widget class="QPushButton" name="applyButton"/></widget></ui>')
    assert cs.ui_names_used(code) - set(cs.ui_object_names(xml)) == {"other"}
