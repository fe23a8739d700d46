"""Contract: Lib modules import in plain Python without the heavy packages; module files import little.

Slicer's generic module test loads every module in a fresh Slicer where torch,
segment-anything, monai or nnunetv2 are not installed yet (they come at first use), so a
module-level import of them breaks the whole extension. Here each Lib import runs for real in a
fresh interpreter with an import hook that behaves as if those packages were absent and records
which file asked for one (even when the file catches the ImportError). The module files
themselves are loaded the way Slicer loads them, in Slicer's own Python, by the harness
(Testing/test_slicer_*.py); here only their module-level imports are checked against what Slicer has.
"""
from __future__ import annotations

import contract_support as cs
import pytest

SLICER_SHIPS = {"numpy", "scipy", "simpleitk", "pydicom", "requests", "pillow", "packaging", "vtk",
                "dicomweb-client", "highdicom"}


def _describe(result) -> str:
    heavy = ", ".join(f"{a['module']} (imported by {a['by']})" for a in result["heavy_attempts"])
    return "; ".join(t for t in (result["error"], heavy and f"heavy module-level import: {heavy}") if t)


@pytest.fixture(scope="module")
def lib_report():
    return cs.run_import_check("import-libs")


@pytest.mark.parametrize("name", cs.lib_modules())
def test_lib_module_imports_in_plain_python_without_heavy_packages(name, lib_report):
    result = lib_report["results"].get(name)
    assert result is not None, f"{name} was not checked (added after collection?)"
    assert not result["error"] and not result["heavy_attempts"], f"{name}: {_describe(result)}"


@pytest.mark.parametrize("path", [cs.module_source(m) for m in cs.MODULES] + [cs.ROOT / f for f in cs.EFFECT_FILES],
                         ids=lambda p: p.relative_to(cs.ROOT).as_posix())
def test_module_level_imports_are_allow_listed(path):
    """Module files may import at top level only the stdlib, what Slicer provides, and the own Libs."""
    assert not cs.disallowed_top_level_imports(path), "\n".join(cs.disallowed_top_level_imports(path))


@pytest.mark.parametrize("module", cs.MODULES)
def test_lib_files_import_slicer_and_qt_only_inside_functions(module):
    """Lib files (the panel section files included) import in plain Python: qt, ctk, slicer, vtk inside functions."""
    bad = [f"{path.relative_to(cs.ROOT)}:{line}: module-level import of '{name}'"
           for path in cs.lib_files(module)
           for name, line in cs.top_level_imports(cs.parse(path)) if name in cs.SLICER_APP_IMPORTS]
    assert not bad, "\n".join(bad)


def test_the_import_hook_catches_heavy_imports(tmp_path):
    """The checker itself: a plain and a guarded module-level heavy import are both caught; lazy ones are not."""
    plain = tmp_path / "plain_heavy.py"
    plain.write_text("import torch\n", encoding="utf-8")
    guarded = tmp_path / "guarded_heavy.py"
    guarded.write_text("try:\n    from monai.networks import nets\nexcept ImportError:\n    nets = None\n", encoding="utf-8")
    lazy = tmp_path / "lazy_heavy.py"
    lazy.write_text("def run():\n    import nnunetv2\n    return nnunetv2\n", encoding="utf-8")
    report = cs.run_import_check("import-file", plain, guarded, lazy)["results"]
    assert "ModuleNotFoundError" in report[str(plain)]["error"]
    assert [a["module"] for a in report[str(guarded)]["heavy_attempts"]] == ["monai"]
    assert report[str(guarded)]["heavy_attempts"][0]["by"].endswith("guarded_heavy.py:2")
    assert report[str(lazy)] == {"error": None, "heavy_attempts": []}
