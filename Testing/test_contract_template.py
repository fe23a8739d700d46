"""Contract: each module file follows Slicer's scripted-module template (checked on the AST).

X(ScriptedLoadableModule), XParameterNode (@parameterNodeWrapper), XWidget(ScriptedLoadableModuleWidget,
VTKObservationMixin) with the template's life-cycle methods, XLogic(ScriptedLoadableModuleLogic)
that never touches widgets, XTest(ScriptedLoadableModuleTest); one docstring per method;
user-visible text through ``_()``. A large panel may keep its sections as mixins in
``XLib/panel_*.py`` (base classes of XWidget after the template's two); the same rules apply there.
"""
from __future__ import annotations

import ast

import contract_support as cs
import pytest

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


def _panel_classes(module) -> dict:
    """{class name: (file, ClassDef)} of the classes defined in the module's panel section files."""
    return {name: (path, cls) for path in cs.panel_files(module) for name, cls in cs.top_level_classes(cs.parse(path)).items()}


@pytest.mark.parametrize("module", cs.MODULES)
def test_template_classes_with_their_base_classes(module):
    classes = cs.top_level_classes(_tree(module))
    for suffix, bases in cs.TEMPLATE_BASES.items():
        name = module + suffix
        assert name in classes, f"{module}.py: class {name} missing"
        found = cs.base_names(classes[name])
        if suffix == "Widget":  # the template's two, then the panel's section mixins
            sections = found[len(bases):]
            unknown = [s for s in sections if s not in _panel_classes(module)]
            assert not unknown, f"{name}: bases {unknown} are not classes of {module}Lib/{cs.PANEL_FILE_GLOB}"
            found = found[:len(bases)]
        assert found == bases, f"{name} bases: {cs.base_names(classes[name])}, want {bases} first"
    assert "parameterNodeWrapper" in cs.decorator_names(classes[f"{module}ParameterNode"])


@pytest.mark.parametrize("module", cs.MODULES)
def test_panel_sections_are_plain_mixins_that_shadow_nothing(module):
    """A section has no __init__ (the widget's owns the state) and no method another section or the widget has.

    The widget's bases are searched in order, so a second method of the same name would be silently unused.
    """
    widget = cs.top_level_classes(_tree(module))[f"{module}Widget"]
    panel = _panel_classes(module)
    sections = [(f"{panel[s][0].name}:{s}", panel[s][1]) for s in cs.base_names(widget)[len(cs.TEMPLATE_BASES["Widget"]):]]
    with_init = [where for where, cls in sections if "__init__" in _methods(cls)]
    assert not with_init, f"{module}: panel sections must not define __init__: {with_init}"
    twice = cs.methods_defined_twice([(f"{module}.py:{widget.name}", widget)] + sections)
    assert not twice, f"{module}Widget: methods defined more than once: {twice}"


def test_method_clash_check_catches_a_shadowed_method():
    """The checker itself: a method of a later base class with a name an earlier class has is found."""
    tree = ast.parse("class W:\n    def setup(self): pass\n    def a(self): pass\n"
                     "class S1:\n    def b(self): pass\n    def setup(self): pass\n"
                     "class S2:\n    def b(self): pass\n    def c(self): pass\n")
    classes = cs.top_level_classes(tree)
    assert cs.methods_defined_twice([(n, classes[n]) for n in ("W", "S1", "S2")]) == {"setup": ["W", "S1"],
                                                                                       "b": ["S1", "S2"]}


@pytest.mark.parametrize("module", cs.MODULES)
def test_template_methods_exist_and_each_method_has_a_docstring(module):
    classes = cs.top_level_classes(_tree(module))
    widget = _methods(classes[f"{module}Widget"])
    missing = [m for m in WIDGET_METHODS if m not in widget]
    assert not missing, f"{module}Widget lacks {missing}"
    assert "getParameterNode" in _methods(classes[f"{module}Logic"])
    test = _methods(classes[f"{module}Test"])
    assert "setUp" in test and "runTest" in test and any(n.startswith("test_") for n in test)
    panel = [cls for _path, cls in _panel_classes(module).values()]
    no_doc = [f"{cls.name}.{name}" for cls in list(classes.values()) + panel for name, fn in _methods(cls).items()
              if not ast.get_docstring(fn)]
    assert not no_doc, f"{module}.py and its panel files: methods without a docstring: {no_doc}"
    assert all(ast.get_docstring(cls) for cls in panel), f"{module}: panel classes without a docstring"


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
            values = list(node.args[:1]) + [k.value for k in node.keywords if k.arg in ("labelText", "windowTitle")]
            if name in MESSAGE_FUNCTIONS and any(isinstance(v, (ast.Constant, ast.JoinedStr)) for v in values):
                bare.append(f"line {node.lineno}: {name}(literal)")
    return bare


@pytest.mark.parametrize("module", cs.MODULES)
def test_user_visible_strings_go_through_translation(module):
    """In the module file and in its panel section files alike."""
    bare = []
    for path in cs.widget_sources(module):
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
    assert 'os.path.join(MODULE_DIR, "SegmentEditorSamPromptLib", "SegmentEditorEffect.py")' in cs.module_source(
        "SamPrompt").read_text()
