"""The extension's files where Slicer's build puts them.

``slicerMacroBuildScriptedModule`` (without WITH_SUBDIR) hands a module's MODULE_PYTHON_SCRIPTS and
MODULE_PYTHON_RESOURCES to CTK's ``ctkMacroCompilePythonScript``, which copies each file to
``<build>/lib/Slicer-X.Y/qt-scripted-modules/<its path relative to the module folder>``: all modules
of an extension share that one folder (their Resources/ trees are merged), and a file that two
modules list under the same relative path is built twice (Ninja: "multiple rules generate").
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

SCRIPTED_MODULES_DIR = Path("lib") / "Slicer-5.12" / "qt-scripted-modules"


class LayoutError(Exception):
    """The extension cannot be laid out as Slicer's build would (a collision, a listed file missing)."""


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def read_module_cmake(module_dir: Path) -> dict:
    """MODULE_NAME, and the SCRIPTS and RESOURCES of ``slicerMacroBuildScriptedModule``, expanded."""
    text = _strip_comments((module_dir / "CMakeLists.txt").read_text(encoding="utf-8"))
    name = re.search(r"set\(\s*MODULE_NAME\s+(\S+?)\s*\)", text)
    if name is None:
        raise LayoutError(f"{module_dir / 'CMakeLists.txt'}: no set(MODULE_NAME ...)")
    name = name.group(1)

    def listed(var: str) -> list[str]:
        match = re.search(rf"set\(\s*{var}\s+([^)]*)\)", text)
        return [item.replace("${MODULE_NAME}", name) for item in (match.group(1).split() if match else [])]

    call = re.search(r"slicerMacroBuildScriptedModule\(([^)]*)\)", text)
    if call is None:
        raise LayoutError(f"{module_dir / 'CMakeLists.txt'}: no slicerMacroBuildScriptedModule(...)")
    return {"name": name, "scripts": listed("MODULE_PYTHON_SCRIPTS"), "resources": listed("MODULE_PYTHON_RESOURCES"),
            "with_subdir": "WITH_SUBDIR" in call.group(1).split()}


def extension_modules(root: Path) -> list[Path]:
    """The module folders the top-level CMakeLists.txt adds, in order."""
    text = _strip_comments((root / "CMakeLists.txt").read_text(encoding="utf-8"))
    return [root / d for d in re.findall(r"add_subdirectory\(\s*(\S+?)\s*\)", text)]


def install_extension(root: Path, dest: Path) -> Path:
    """Copy every listed file to ``dest/lib/Slicer-5.12/qt-scripted-modules``; that folder.

    Raises LayoutError naming the file and both modules when two modules install the same path,
    and when a listed file does not exist (CMake stops at configure time).
    """
    target = Path(dest) / SCRIPTED_MODULES_DIR
    owners: dict[str, str] = {}
    for module_dir in extension_modules(Path(root)):
        cmake = read_module_cmake(module_dir)
        sub = module_dir.name if cmake["with_subdir"] else ""
        for rel in cmake["scripts"] + cmake["resources"]:
            src = module_dir / rel
            if not src.is_file() and (module_dir / f"{rel}.py").is_file():
                src, rel = module_dir / f"{rel}.py", f"{rel}.py"  # CTK appends a missing .py
            if not src.is_file():
                raise LayoutError(f"{module_dir.name}/CMakeLists.txt lists {rel}, which does not exist")
            out = f"{sub}/{rel}" if sub else rel
            if out in owners:
                raise LayoutError(f"{out}: installed by both {owners[out]} and {cmake['name']} into "
                                  f"{SCRIPTED_MODULES_DIR} (give it a module-unique name)")
            owners[out] = cmake["name"]
            (target / out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / out)
    return target
