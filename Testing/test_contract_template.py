"""Contract: each module file follows Slicer's scripted-module template (checked on the AST).

X(ScriptedLoadableModule), XParameterNode (@parameterNodeWrapper), XWidget(ScriptedLoadableModuleWidget,
VTKObservationMixin) with the template's life-cycle methods, XLogic(ScriptedLoadableModuleLogic)
that never touches widgets, XTest(ScriptedLoadableModuleTest); one docstring per method;
user-visible text through ``_()``.
"""
from __future__ import annotations

import ast

import pytest

import contract_support as cs

WIDGET_METHODS = ("setup", "cleanup", "enter", "exit", "onSceneStartClose", "onSceneEndClose",
                  "initializeParameterNode", "setParameterNode")
TEXT_PROPERTIES = {"text", "toolTip", "labelText", "windowTitle", "placeholderText", "statusTip"}
MESSAGE_FUNCTIONS = {"errorDisplay", "warningDisplay", "infoDisplay", "messageBox", "confirmOkCancelDisplay",
                     "confirmYesNoDisplay", "tryWithErrorDisplay", "showStatusMessage", "createProgressDialog"}


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
        assert cs.base_names(classes[name]) == bases, f"{name} bases: {cs.base_names(classes[name])}, want {bases}"
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


@pytest.mark.parametrize("module", cs.MODULES)
def test_user_visible_strings_go_through_translation(module):
    bare = []
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (isinstance(target, ast.Attribute) and target.attr in TEXT_PROPERTIES
                        and isinstance(node.value, (ast.Constant, ast.JoinedStr))
                        and not (isinstance(node.value, ast.Constant) and node.value.value in ("", None))):
                    bare.append(f"line {node.lineno}: .{target.attr} = literal")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            values = list(node.args[:1]) + [k.value for k in node.keywords if k.arg in ("labelText", "windowTitle")]
            if name in MESSAGE_FUNCTIONS and any(isinstance(v, (ast.Constant, ast.JoinedStr)) for v in values):
                bare.append(f"line {node.lineno}: {name}(literal)")
    assert not bare, f"{module}.py: untranslated user-visible text: {bare}"


@pytest.mark.parametrize("module", cs.MODULES)
def test_logic_never_touches_widgets(module):
    logic = cs.top_level_classes(_tree(module))[f"{module}Logic"]
    touches = []
    for node in ast.walk(logic):
        if isinstance(node, ast.Attribute) and node.attr == "ui" and isinstance(node.value, ast.Name):
            touches.append(f"line {node.lineno}: {node.value.id}.ui")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("qt", "ctk"):
            touches.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in MESSAGE_FUNCTIONS - {"tryWithErrorDisplay"}:
            touches.append(f"line {node.lineno}: {node.attr}")
    assert not touches, f"{module}Logic touches the GUI: {touches}"


def test_samprompt_registers_its_effect_on_startup_only_if_the_file_exists():
    """SegmentEditorExtraEffects' pattern: connect startupCompleted() to a guarded registration."""
    tree = _tree("SamPrompt")
    init = _methods(cs.top_level_classes(tree)["SamPrompt"])["__init__"]
    connects = [n for n in ast.walk(init) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "connect" and n.args and isinstance(n.args[0], ast.Constant)
                and n.args[0].value == "startupCompleted()"]
    assert connects and isinstance(connects[0].args[1], ast.Name)
    hook = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == connects[0].args[1].id)
    source = ast.get_source_segment(cs.module_source("SamPrompt").read_text(), hook)
    assert "effectSourcePath()" in source and "return False" in source
    assert "qSlicerSegmentEditorScriptedEffect" in source and "setPythonSource" in source and ".register()" in source
    finder = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "effectSourcePath")
    finder_source = ast.get_source_segment(cs.module_source("SamPrompt").read_text(), finder)
    assert "os.path.isfile(EFFECT_SOURCE)" in finder_source
    assert 'os.path.join(MODULE_DIR, "SamPromptLib", "SegmentEditorEffect.py")' in cs.module_source(
        "SamPrompt").read_text()
