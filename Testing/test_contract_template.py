"""Contract: each module file follows Slicer's scripted-module template (checked on the AST).

X(ScriptedLoadableModule), XParameterNode (@parameterNodeWrapper), XWidget(ScriptedLoadableModuleWidget,
VTKObservationMixin) with the template's life-cycle methods, XLogic(ScriptedLoadableModuleLogic)
that never touches widgets, XTest(ScriptedLoadableModuleTest); one docstring per method;
user-visible text through ``_()``, in the module file and in the Qt-free panel models its widget
binds (``cs.panel_model_files``). What the panels do at run time is tested inside the Slicer harness
(Testing/test_slicer_*.py).
"""
from __future__ import annotations

import ast

import contract_support as cs
import pytest

WIDGET_METHODS = ("setup", "cleanup", "enter", "exit", "onSceneStartClose", "onSceneEndClose",
                  "initializeParameterNode", "setParameterNode")
TEXT_PROPERTIES = {"text", "toolTip", "labelText", "windowTitle", "placeholderText", "statusTip"}
MESSAGE_FUNCTIONS = {"errorDisplay", "warningDisplay", "infoDisplay", "messageBox", "confirmOkCancelDisplay",
                     "confirmYesNoDisplay", "tryWithErrorDisplay", "showStatusMessage", "createProgressDialog",
                     # the panel models' UI services (DicomTeamAnnotateLib/slicer/ui.py)
                     "error", "status", "confirm", "ask", "info", "say"}
UI_SERVICE_FUNCTIONS = {"error", "status", "confirm", "ask", "info", "say"}


def _on_ui_services(func) -> bool:
    """``self.ui.error(...)``, ``ui.status(...)``, ``self.say(...)``: a call the user sees."""
    if not isinstance(func, ast.Attribute):
        return False
    owner = func.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "ui") or (isinstance(owner, ast.Name) and owner.id in
                                                                         ("ui", "self"))


def _tree(module):
    return cs.parse(cs.module_source(module))


def _is_translated(node) -> bool:
    """``_("...")``, ``translate(ctx, "...")``, or ``_("...").format(...)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        node = node.func.value
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "translate")


def _methods(cls: ast.ClassDef) -> dict:
    return {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


@pytest.mark.parametrize("module", cs.MODULES)
def test_template_classes_with_their_base_classes(module):
    classes = cs.top_level_classes(_tree(module))
    for suffix, bases in cs.TEMPLATE_BASES.items():
        name = module + suffix
        assert name in classes, f"{module}.py: class {name} missing"
        found = cs.base_names(classes[name])
        assert found == bases, f"{name} bases: {cs.base_names(classes[name])}, want {bases} first"
    assert "parameterNodeWrapper" in cs.decorator_names(classes[f"{module}ParameterNode"])


@pytest.mark.parametrize("module", cs.MODULES)
def test_template_methods_exist_and_each_method_has_a_docstring(module):
    classes = cs.top_level_classes(_tree(module))
    widget = _methods(classes[f"{module}Widget"])
    missing = [m for m in WIDGET_METHODS if m not in widget]
    assert not missing, f"{module}Widget lacks {missing}"
    assert "getParameterNode" in _methods(classes[f"{module}Logic"])
    test = _methods(classes[f"{module}Test"])
    assert "setUp" in test and "runTest" in test and any(n.startswith("test_") for n in test)
    no_doc = [f"{cls.name}.{name}" for cls in classes.values() for name, fn in _methods(cls).items()
              if not ast.get_docstring(fn)]
    assert not no_doc, f"{module}.py: methods without a docstring: {no_doc}"
    models = [cls for path in cs.panel_model_files(module) for cls in cs.top_level_classes(cs.parse(path)).values()]
    assert all(ast.get_docstring(cls) for cls in models), f"{module}: panel model classes without a docstring"


@pytest.mark.parametrize("module", cs.MODULES)
def test_module_texts_are_translatable(module):
    init = _methods(cs.top_level_classes(_tree(module))[module])["__init__"]
    assigned = {}
    for node in ast.walk(init):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            target = node.targets[0]
            if isinstance(target.value, ast.Attribute) and target.value.attr == "parent":
                assigned[target.attr] = node.value
    for field in ("title", "helpText", "acknowledgementText"):
        assert field in assigned and _is_translated(assigned[field]), f"{module}: parent.{field} must be _(...)"
    categories = assigned.get("categories")
    assert isinstance(categories, ast.List) and categories.elts and all(_is_translated(e) for e in categories.elts)


def _untranslated(tree) -> list[str]:
    """Where ``tree`` assigns a literal to a text property or passes one to a message function."""
    bare = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (isinstance(target, ast.Attribute) and target.attr in TEXT_PROPERTIES
                        and isinstance(node.value, (ast.Constant, ast.JoinedStr))
                        and not (isinstance(node.value, ast.Constant) and node.value.value in ("", None))):
                    bare.append(f"line {node.lineno}: .{target.attr} = literal")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in UI_SERVICE_FUNCTIONS and not _on_ui_services(func):
                continue  # logging.error(...) and the like are log lines, not what the user reads
            values = list(node.args[:1]) + [k.value for k in node.keywords if k.arg in ("labelText", "windowTitle")]
            if name in MESSAGE_FUNCTIONS and any(isinstance(v, (ast.Constant, ast.JoinedStr)) for v in values):
                bare.append(f"line {node.lineno}: {name}(literal)")
    return bare


@pytest.mark.parametrize("module", cs.MODULES)
def test_user_visible_strings_go_through_translation(module):
    """In the module file and in its panel models alike."""
    bare = []
    for path in [cs.module_source(module)] + cs.panel_model_files(module):
        bare += [f"{path.name} {where}" for where in _untranslated(cs.parse(path))]
    assert not bare, f"{module}: untranslated user-visible text: {bare}"


@pytest.mark.parametrize("module", cs.MODULES)
def test_logic_never_touches_widgets(module):
    logic = cs.top_level_classes(_tree(module))[f"{module}Logic"]
    touches = []
    for node in ast.walk(logic):
        if isinstance(node, ast.Attribute) and node.attr == "ui" and isinstance(node.value, ast.Name):
            touches.append(f"line {node.lineno}: {node.value.id}.ui")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("qt", "ctk"):
            touches.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in MESSAGE_FUNCTIONS - {"tryWithErrorDisplay"} - \
                UI_SERVICE_FUNCTIONS:
            touches.append(f"line {node.lineno}: {node.attr}")
    assert not touches, f"{module}Logic touches the GUI: {touches}"
