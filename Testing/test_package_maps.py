"""Every package of the four Libs carries a map of its folder in its ``__init__.py`` docstring.

A package is a folder with an ``__init__.py`` under DicomTeamAnnotateLib, SamPromptLib, ConsensusReviewLib or
TrainBridgeLib (the Lib folder itself included). Its docstring names each of its modules (``name.py``, ``__main__``
included, ``__init__`` not) and each of its subpackages as ``name`` (double backticks), one line each.

What counts as naming a module (the rule the maps are written to):

- A *module reference* is a double-backticked bare lowercase identifier (``[a-z_][a-z0-9_]*``) not followed
  directly by ``(``: ``volumes``, ``seg_nrrd``, ``__main__``. It must be a module or a subpackage of that very
  folder, so an entry for a file that moved or was renamed fails as stale.
- Anything else between double backticks is free text and is not checked: a dotted name (``core.metrics``,
  ``backends.remote``, ``cli.py``), a path (``routes/``), a call (``create_app()``, or a name whose closing
  backticks are followed directly by an opening parenthesis), a name that starts with a capital (a class or a
  constant: ``Store``, ``BACKENDS``; module files are lowercase), anything with a space or punctuation. So a map
  refers to a module outside its folder with a dot, and to a function with ``()``.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB_DIRS = (ROOT / "DicomTeamAnnotate" / "DicomTeamAnnotateLib", ROOT / "SamPrompt" / "SamPromptLib",
            ROOT / "ConsensusReview" / "ConsensusReviewLib", ROOT / "TrainBridge" / "TrainBridgeLib")

SPAN = re.compile(r"``([^`\n]+?)``")
MODULE_REFERENCE = re.compile(r"[a-z_][a-z0-9_]*")


def package_dirs() -> list[Path]:
    found = []
    for base in LIB_DIRS:
        for init in sorted(base.rglob("__init__.py")):
            if "__pycache__" not in init.parts:
                found.append(init.parent)
    return found


def members(folder: Path) -> set[str]:
    """The names a package's map must list: its modules (not ``__init__``) and its subpackages."""
    modules = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
    subpackages = {p.name for p in folder.iterdir()
                   if p.is_dir() and p.name != "__pycache__" and (p / "__init__.py").is_file()}
    return modules | subpackages


def module_references(doc: str) -> set[str]:
    """The double-backticked names of a docstring that refer to a module of its own folder (see the rule above)."""
    names = set()
    for match in SPAN.finditer(doc):
        name = match.group(1)
        if MODULE_REFERENCE.fullmatch(name) and not doc.startswith("(", match.end()):
            names.add(name)
    return names


def test_the_rule_reads_references_as_documented():
    doc = ("- ``volumes``: files. ``core.metrics``, ``routes/``, ``cli.py``, ``create_app()``, ``serve``(x),\n"
           "``Store``, ``BACKENDS``, ``two words``, ``__main__`` and ``seg_nrrd`` (a module).")
    assert module_references(doc) == {"volumes", "__main__", "seg_nrrd"}


def test_every_lib_has_its_packages():
    assert all(base.is_dir() and (base / "__init__.py").is_file() for base in LIB_DIRS)
    assert len(package_dirs()) > len(LIB_DIRS)


@pytest.mark.parametrize("folder", package_dirs(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_package_docstring_maps_its_folder(folder: Path):
    init = folder / "__init__.py"
    where = init.relative_to(ROOT).as_posix()
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")), clean=False)
    assert doc, f"{where}: no module docstring (it must map the package's modules and subpackages)"
    named = module_references(doc)
    present = members(folder)
    missing = sorted(present - named)
    stale = sorted(named - present)
    problems = [f"{where}: module or subpackage not named as ``{name}`` in the docstring" for name in missing]
    problems += [f"{where}: the docstring names ``{name}``, but there is no {name}.py or {name}/ package beside it "
                 "(stale entry; write something outside the folder with a dot, a function with ())"
                 for name in stale]
    assert not problems, "\n".join(problems)
