"""Requirements installed at first use in Slicer: parsing and the 'what is missing' check (real metadata)."""
from __future__ import annotations

import importlib.metadata

import contract_support as cs
import pytest

from DicomTeamAnnotateLib.slicer.packages import missing_requirements, read_requirements


def test_read_requirements_skips_comments_blank_lines_and_options(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\nnumpy>=1.0  # inline\n-c constraints.txt\nscipy>=1.0; python_version >= '3'\n")
    assert read_requirements(path) == ["numpy>=1.0", "scipy>=1.0; python_version >= '3'"]


def test_missing_requirements_checks_presence_and_version():
    numpy_version = importlib.metadata.version("numpy")
    assert missing_requirements([f"numpy>={numpy_version}"]) == []
    assert missing_requirements(["numpy>=9999"]) == ["numpy>=9999"]
    assert missing_requirements(["no-such-package-dicomteam>=1.0"]) == ["no-such-package-dicomteam>=1.0"]
    assert missing_requirements(["no-such-package-dicomteam>=1.0; sys_platform == 'nonexistent'"]) == []


@pytest.mark.parametrize("module", cs.MODULES)
def test_the_development_environment_satisfies_each_module(module):
    # `pip install -e .[all,test]` installs everything a module would install in Slicer.
    path = cs.module_dir(module) / "Resources" / "requirements.txt"
    assert missing_requirements(read_requirements(path)) == []


def test_slicers_pip_ensure_is_found_under_either_module_name(monkeypatch):
    """Current Slicer: slicer.pydeps; its first releases with pip_ensure: slicer.packaging; neither
    (slicer-core, older Slicer): None, and ensure_requirements asks and pip-installs itself."""
    import sys
    import types

    from DicomTeamAnnotateLib.slicer.packages import dependency_helper

    assert dependency_helper() is None  # the slicer-core wheel has neither

    def module(name, complete):
        m = types.ModuleType(name)
        if complete:
            m.pip_ensure = m.load_requirements = lambda *a, **k: None
        monkeypatch.setitem(sys.modules, name, m)
        return m

    old = module("slicer.packaging", complete=True)
    assert dependency_helper() is old
    new = module("slicer.pydeps", complete=True)
    assert dependency_helper() is new
    module("slicer.pydeps", complete=False)  # a module of that name without pip_ensure does not count
    assert dependency_helper() is old
