"""Contract: module files and Lib modules import without the heavy packages, and without Slicer.

Slicer's generic module test loads every module in a fresh Slicer where torch,
segment-anything, monai or nnunetv2 are not installed yet (they come at first use), so a
module-level import of them breaks the whole extension. Here each import runs for real in a
fresh interpreter with an import hook that behaves as if those packages were absent and
records which file asked for one (even when the file catches the ImportError). slicer-core
provides ``slicer``, ``slicer.util`` and ``vtk`` but not Slicer's application modules (qt, ctk,
slicer.i18n, slicer.ScriptedLoadableModule, slicer.parameterNodeWrapper); where they are
missing, small stand-ins are installed for the module-file check only.
"""
from __future__ import annotations

import contract_support as cs
import pytest
import tomllib

SLICER_SHIPS = {"numpy", "scipy", "simpleitk", "pydicom", "requests", "pillow", "packaging", "vtk",
                "dicomweb-client", "highdicom"}


def _describe(result) -> str:
    heavy = ", ".join(f"{a['module']} (imported by {a['by']})" for a in result["heavy_attempts"])
    return "; ".join(t for t in (result["error"], heavy and f"heavy module-level import: {heavy}") if t)


@pytest.fixture(scope="module")
def module_file_report():
    return cs.run_import_check("import-modules")


@pytest.fixture(scope="module")
def lib_report():
    return cs.run_import_check("import-libs")


def test_stand_ins_are_only_used_where_slicer_core_lacks_the_module(module_file_report):
    for name in module_file_report["stood_in"]:
        assert name in cs.APP_MODULES
    assert not module_file_report["heavy_already_loaded"], "heavy modules loaded before the check started"


@pytest.mark.parametrize("module", cs.MODULES)
def test_module_file_imports_without_heavy_packages(module, module_file_report):
    result = module_file_report["results"][module]
    assert not result["error"] and not result["heavy_attempts"], f"{module}.py: {_describe(result)}"


@pytest.mark.parametrize("name", cs.lib_modules())
def test_lib_module_imports_in_plain_python_without_heavy_packages(name, lib_report):
    result = lib_report["results"].get(name)
    assert result is not None, f"{name} was not checked (added after collection?)"
    assert not result["error"] and not result["heavy_attempts"], f"{name}: {_describe(result)}"


@pytest.mark.parametrize("path", [cs.module_source(m) for m in cs.MODULES]
                         + [cs.ROOT / f for f in sorted(cs.APP_ONLY_LIB_FILES) if (cs.ROOT / f).exists()],
                         ids=lambda p: p.relative_to(cs.ROOT).as_posix())
def test_module_level_imports_are_allow_listed(path):
    """Module files may import at top level only the stdlib, what Slicer provides, and the own Libs."""
    assert not cs.disallowed_top_level_imports(path), "\n".join(cs.disallowed_top_level_imports(path))


@pytest.mark.parametrize("module", cs.MODULES)
def test_lib_files_import_slicer_and_qt_only_inside_functions(module):
    """Lib files (the panel section files included) import in plain Python: qt, ctk, slicer, vtk inside functions."""
    bad = [f"{path.relative_to(cs.ROOT)}:{line}: module-level import of '{name}'"
           for path in cs.lib_files(module) if path.relative_to(cs.ROOT).as_posix() not in cs.APP_ONLY_LIB_FILES
           for name, line in cs.top_level_imports(cs.parse(path)) if name in cs.SLICER_APP_IMPORTS]
    assert not bad, "\n".join(bad)


def test_the_import_hook_catches_heavy_imports(tmp_path):
    """The checker itself: a plain and a guarded module-level heavy import are both caught; lazy ones are not."""
    plain = tmp_path / "plain_heavy.py"
    plain.write_text("import torch\n")
    guarded = tmp_path / "guarded_heavy.py"
    guarded.write_text("try:\n    from monai.networks import nets\nexcept ImportError:\n    nets = None\n")
    lazy = tmp_path / "lazy_heavy.py"
    lazy.write_text("def run():\n    import nnunetv2\n    return nnunetv2\n")
    report = cs.run_import_check("import-file", plain, guarded, lazy)["results"]
    assert "ModuleNotFoundError" in report[str(plain)]["error"]
    assert [a["module"] for a in report[str(guarded)]["heavy_attempts"]] == ["monai"]
    assert report[str(guarded)]["heavy_attempts"][0]["by"].endswith("guarded_heavy.py:2")
    assert report[str(lazy)] == {"error": None, "heavy_attempts": []}


def test_parameter_node_stand_in_refuses_unsupported_types(tmp_path):
    """The stand-in for parameterNodeWrapper fails at import on a type Slicer's wrapper cannot store."""
    bad = tmp_path / "bad_parameters.py"
    bad.write_text("from slicer.parameterNodeWrapper import parameterNodeWrapper\n"
                   "@parameterNodeWrapper\nclass P:\n    thing: object\n")
    report = cs.run_import_check("import-file", bad)
    if "slicer.parameterNodeWrapper" not in report["stood_in"]:
        pytest.skip("the real slicer.parameterNodeWrapper is importable here")
    assert "TypeError" in report["results"][str(bad)]["error"]


def _pyproject_requirements() -> dict:
    from packaging.requirements import Requirement

    project = tomllib.loads((cs.ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    out = {}
    for text in texts:
        req = Requirement(text)
        out.setdefault(req.name.lower().replace("_", "-"), set()).add(str(req.specifier))
    return out


@pytest.mark.parametrize("module", cs.MODULES)
def test_requirements_use_lower_bounds_and_never_replace_slicers_packages(module):
    from packaging.requirements import Requirement

    from DicomTeamAnnotateLib.slicer.packages import read_requirements

    known = _pyproject_requirements()
    path = cs.module_dir(module) / "Resources" / "requirements.txt"
    for text in read_requirements(path):
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name not in SLICER_SHIPS, f"{path}: {req.name} ships with Slicer; installing it would replace Slicer's"
        assert all(spec.operator == ">=" for spec in req.specifier) and req.specifier, \
            f"{path}: '{text}': use a '>=' lower bound, no pins"
        assert name in known, f"{path}: {req.name} is not a dependency in pyproject.toml"
        assert str(req.specifier) in known[name], f"{path}: '{text}' differs from pyproject.toml {known[name]}"
