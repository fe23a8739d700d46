"""The tree shows the architecture, and imports point one way.

- ``DicomTeamAnnotateLib`` is the core library of all four modules. Its subpackages are layers:
  a file may import its own subpackage and the layers below it (``LAYERS``, lowest first).
- A module Lib (SamPromptLib, ConsensusReviewLib, TrainBridgeLib) imports the core and itself,
  never another module's Lib; the core imports no module Lib.
- No Lib imports a module file (``X.py``: Slicer's GUI layer sits on top).
- No file imports another file's private name (``_name``).
- TrainBridge's job runner knows no training backend.
- pyproject's package list is exactly the folders that are packages.
- The project's own modules are imported at the top of a file; a function-level import of one says
  why on its line or the line above (``# lazy: ...``: a cycle, a heavy package behind it).
- Every ``read_text``/``write_text`` names its encoding (ruff's PLW1514 sees only calls on what it
  knows is a Path; Slicer on Windows would read a project's JSON as cp1252).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
CORE = "DicomTeamAnnotateLib"
MODULE_LIBS = ("SamPromptLib", "ConsensusReviewLib", "TrainBridgeLib")
LIB_DIRS = {CORE: ROOT / "DicomTeamAnnotate" / CORE, "SamPromptLib": ROOT / "SamPrompt" / "SamPromptLib",
            "ConsensusReviewLib": ROOT / "ConsensusReview" / "ConsensusReviewLib",
            "TrainBridgeLib": ROOT / "TrainBridge" / "TrainBridgeLib"}
MODULE_FILES = ("DicomTeamAnnotate", "SamPrompt", "ConsensusReview", "TrainBridge")

# The core's layers, lowest first: a file imports its own layer and those listed before it.
LAYERS = ("core", "io", "dicom", "pacs", "store", "worklist", "slicer", "cli", "demo")


def lib_files():
    for top, base in LIB_DIRS.items():
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" not in path.parts:
                rel = path.relative_to(base).with_suffix("")
                parts = [p for p in rel.parts if p != "__init__"]
                yield top, ".".join([top, *parts]), path


def own_imports(path: Path, module: str):
    """(imported module, imported name or None, line) of every import of the project's packages."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name, node.lineno


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != CORE or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


ALL_FILES = list(lib_files())


def test_the_core_subpackages_are_the_layers():
    found = sorted(p.name for p in LIB_DIRS[CORE].iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert found == sorted(LAYERS)
    loose = sorted(p.name for p in LIB_DIRS[CORE].glob("*.py") if p.name != "__init__.py")
    assert not loose, f"files at the core's root belong in a layer: {loose}"


@pytest.mark.parametrize("top,module,path", ALL_FILES, ids=[m for _, m, _ in ALL_FILES])
def test_imports_point_one_way(top, module, path):
    problems = []
    own_layer = layer_of(module)
    for target, name, line in own_imports(path, module):
        first = target.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line}: imports {target}{'.' + name if name else ''}"
        if first in MODULE_FILES:
            problems.append(f"{where} (a module file: the GUI layer is on top, nothing imports it)")
        if first in MODULE_LIBS and first != top:
            problems.append(f"{where} (another module's Lib: shared things live in the core)")
        if first == CORE and own_layer is not None:
            target_layer = layer_of(target if name is None or layer_of(target) is not None else f"{target}.{name}")
            if target_layer is not None and target_layer > own_layer:
                problems.append(f"{where} (layer {LAYERS[target_layer]} is above {LAYERS[own_layer]})")
        if name and name.startswith("_") and name != "__future__" and target != "__future__":
            problems.append(f"{where} (a private name of another file)")
    assert not problems, "\n".join(problems)


def test_the_job_runner_knows_no_backend():
    """jobs/ is below backends/: a backend builds its job from the runner's steps, never the reverse
    (backends.registry is the one place that names them all)."""
    jobs = LIB_DIRS["TrainBridgeLib"] / "jobs"
    upward = [f"{path.name} imports {target}" for path in sorted(jobs.glob("*.py"))
              for target, _, _ in own_imports(path, f"TrainBridgeLib.jobs.{path.stem}")
              if target.startswith("TrainBridgeLib.backends")]
    assert not upward, upward
    runner = jobs / "runner.py"
    text = runner.read_text(encoding="utf-8")
    assert "nnUNet" not in text and "monai" not in text.lower(), "backend names belong to the backends"


def test_file_names_are_spelled_once():
    """The job folder's file names are constants of the runner, not strings spread over files."""
    offenders = [str(p.relative_to(ROOT)) for _, _, p in ALL_FILES if '"job.json"' in p.read_text(encoding="utf-8")
                 and p.name != "runner.py"]
    assert not offenders


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {m for _, m, p in ALL_FILES if p.name == "__init__.py"}
    assert listed == found


def test_the_effect_folder_holds_the_effect_alone():
    """Slicer loads the effect as a module named after its folder: nothing else may live there or import it."""
    folder = ROOT / "SamPrompt" / "SegmentEditorSamPromptLib"
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == ["SegmentEditorEffect.py"]
    for _, module, path in ALL_FILES:
        assert not [t for t, _, _ in own_imports(path, module) if t.startswith("SegmentEditorSamPromptLib")]


def python_files():
    """The project's own Python files (modules, benchmarks, tests), not the test corpus or build outputs."""
    for top in (*MODULE_FILES, "benchmarks", "Testing"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts and "corpus" not in path.relative_to(ROOT).parts:
                yield path


def test_text_files_name_their_encoding():
    offenders = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("read_text", "write_text")
                    and not any(k.arg == "encoding" for k in node.keywords)
                    and len(node.args) < (2 if node.func.attr == "write_text" else 1)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            # a child's output decoded in the locale's encoding: CI's locale may be ASCII while the child
            # (a UTF-8 stdout) prints tqdm's bars, so text=True fails there and nowhere else
            name = getattr(node.func, "attr", getattr(node.func, "id", "")) if isinstance(node, ast.Call) else ""
            if name in ("run", "Popen", "check_output", "check_call", "call") and any(
                    k.arg in ("text", "universal_newlines") for k in node.keywords):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} (text=True)")
    assert not offenders, "name the encoding (encoding=\"utf-8\"): " + ", ".join(offenders)


def test_no_file_slicer_packages_imports_a_file_it_does_not():
    """What ships to Slicer runs there: no shipped file may import the server, the SQL index, the CLI or the
    demo driver (contract_support.NOT_SHIPPED), which the Slicer package leaves out."""
    from contract_support import MODULES, packaged_files, shipped

    where = {}  # dotted module -> (module folder, path relative to it)
    for _top, dotted, path in lib_files():
        module_folder = path.relative_to(ROOT).parts[0]
        where[dotted] = (module_folder, path.relative_to(ROOT / module_folder).as_posix())
    offenders = []
    for module in MODULES:
        for rel in sorted(packaged_files(module)):
            if not rel.endswith(".py"):
                continue
            path = ROOT / module / rel
            dotted = ".".join(Path(rel).with_suffix("").parts).removesuffix(".__init__")
            for target, name, line in own_imports(path, dotted):
                for candidate in (f"{target}.{name}" if name else None, target):
                    if candidate in where:
                        folder, target_rel = where[candidate]
                        if not shipped(target_rel):
                            offenders.append(f"{module}/{rel}:{line} imports {candidate}")
                        break
    assert not offenders, "\n".join(offenders)


def test_own_modules_are_imported_at_the_top():
    own = (CORE, *MODULE_LIBS, "SegmentEditorSamPromptLib")
    offenders = []
    for path in python_files():
        if path.relative_to(ROOT).parts[0] not in MODULE_FILES:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                         else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                if any(n.split(".")[0] in own for n in names):
                    said = " ".join(lines[max(0, node.lineno - 2):node.end_lineno])
                    if "lazy:" not in said:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "import at the top, or say why not (# lazy: ...): " + ", ".join(offenders)
