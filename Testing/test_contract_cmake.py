"""Contract: the extension's CMake files package every file of every module, and nothing absent.

No Slicer build runs here, so these checks stand in for what CMake would refuse at configure
time (a listed file that does not exist) and what it would silently drop (an unlisted file).
When a test fails it prints the exact lines to add; ``python Testing/contract_support.py cmake``
prints them for all modules and ``... cmake --write`` rewrites the lists.
"""
from __future__ import annotations

import re

import contract_support as cs
import pytest

TOP = cs.ROOT / "CMakeLists.txt"


def _top_text() -> str:
    return cs._strip_cmake_comments(TOP.read_text(encoding="utf-8"))


@pytest.mark.parametrize("var", ["EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
                                 "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                                 "EXTENSION_DEPENDS"])
def test_extension_metadata_is_set(var):
    match = re.search(rf'set\(\s*{var}\s+"([^"]*)"\s*\)', _top_text())
    assert match, f"CMakeLists.txt: set({var} \"...\") missing"
    # the Extensions Index's checker refuses an empty value (check_description_files.py)
    assert match.group(1).strip(), f"CMakeLists.txt: {var} is empty"
    if var == "EXTENSION_SCREENSHOTURLS":  # each a picture this repository holds, at its main-branch address
        prefix = "https://raw.githubusercontent.com/DicomTeamAnnotate/SlicerDicomTeamAnnotate/main/"
        for url in match.group(1).split():
            assert url.startswith(prefix) and (cs.ROOT / url[len(prefix):]).is_file(), f"no such picture: {url}"
    if var in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL"):
        assert match.group(1).startswith("https://"), f"{var} must be an https URL"


def test_top_level_cmake_is_a_slicer_extension():
    text = _top_text()
    assert re.search(r"project\(\s*DicomTeamAnnotate\s*\)", text)
    for needed in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                   "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert needed in text, f"CMakeLists.txt lacks {needed}"
    subdirs = re.findall(r"add_subdirectory\(\s*(\S+?)\s*\)", text)
    assert subdirs == list(cs.MODULES), f"add_subdirectory for each module, in order: got {subdirs}"
    with_cmake = sorted(p.parent.name for p in cs.ROOT.glob("*/CMakeLists.txt"))
    assert sorted(subdirs) == with_cmake, "every folder with a CMakeLists.txt must be added (and only those)"


def test_files_that_extension_packaging_requires_exist():
    # Slicer_EXTENSION_CPACK stops with FATAL_ERROR when README or LICENSE are missing.
    assert (cs.ROOT / "README.md").is_file(), "README.md missing (EXTENSION_README_FILE)"
    license_text = (cs.ROOT / "LICENSE.txt").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text, "LICENSE.txt must hold the full Apache-2.0 text"
    icon = cs.ROOT / "Resources" / "DicomTeamAnnotate.png"
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("module", cs.MODULES)
def test_cmake_lists_every_file_of_the_module(module):
    problems = cs.cmake_problems(module)
    if any(problems.values()):
        pytest.fail("\n" + cs.describe_cmake_problems(module, problems), pytrace=False)


@pytest.mark.parametrize("module", cs.MODULES)
def test_cmake_builds_a_scripted_module_with_generic_tests(module):
    cm = cs.parse_module_cmake(module)
    assert cm["name"] == module, f"{module}/CMakeLists.txt: MODULE_NAME is {cm['name']!r}"
    call = cm["build_call"]
    assert call is not None, f"{module}/CMakeLists.txt: no slicerMacroBuildScriptedModule(...)"
    assert call[:2] == ["NAME", "${MODULE_NAME}"]
    assert "SCRIPTS" in call and "${MODULE_PYTHON_SCRIPTS}" in call
    assert "RESOURCES" in call and "${MODULE_PYTHON_RESOURCES}" in call
    assert "WITH_GENERIC_TESTS" in call
    assert f"{module}.py" in cm["scripts"]
    for rel in (f"Resources/UI/{module}.ui", f"Resources/Icons/{module}.png"):
        assert rel in cm["resources"], f"{module}: {rel} must be packaged"


def test_no_two_modules_install_a_file_to_one_path(tmp_path):
    """All modules' scripts and resources land in one qt-scripted-modules folder: names must not collide
    (four Resources/requirements.txt once did: whichever was copied last was every module's)."""
    from slicer_harness.layout import install_extension

    target = install_extension(cs.ROOT, tmp_path)
    assert (target / "DicomTeamAnnotate.py").is_file() and (target / "SegmentEditorSamPromptLib").is_dir()


def test_cmake_check_reports_unlisted_and_absent_files(tmp_path):
    """The checker itself: an unlisted Lib file and a listed-but-absent file are both named, as CMake lines."""
    module = "Fake"
    (tmp_path / module / f"{module}Lib").mkdir(parents=True)
    (tmp_path / module / f"{module}.py").write_text("", encoding="utf-8")
    (tmp_path / module / f"{module}Lib" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / module / f"{module}Lib" / "new_file.py").write_text("", encoding="utf-8")
    (tmp_path / module / f"{module}Lib" / "__pycache__").mkdir()
    (tmp_path / module / f"{module}Lib" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (tmp_path / module / "Testing").mkdir()
    (tmp_path / module / "Testing" / "test_x.py").write_text("", encoding="utf-8")
    (tmp_path / module / "CMakeLists.txt").write_text(
        "set(MODULE_NAME Fake)\n"
        "set(MODULE_PYTHON_SCRIPTS\n  ${MODULE_NAME}.py\n  ${MODULE_NAME}Lib/__init__.py\n  "
        "${MODULE_NAME}Lib/gone.py # removed\n  )\n"
        "set(MODULE_PYTHON_RESOURCES\n  )\n", encoding="utf-8")
    problems = cs.cmake_problems(module, root=tmp_path)
    assert problems["missing_scripts"] == ["FakeLib/new_file.py"]
    assert problems["listed_but_absent"] == ["FakeLib/gone.py"]
    text = cs.describe_cmake_problems(module, problems)
    assert "  ${MODULE_NAME}Lib/new_file.py" in text and "  ${MODULE_NAME}Lib/gone.py" in text
