"""First-use packages (DicomTeamAnnotateLib/slicer/packages.py): what each feature asks for, and what it holds.

The installation itself (Slicer's pip_ensure, the PyTorch extension, testing mode) runs inside the
Slicer harness (Testing/test_slicer_*.py); here the rules every feature's list must keep.
"""
from __future__ import annotations

import importlib

import pytest
from packaging.requirements import Requirement

from DicomTeamAnnotateLib.slicer import packages
from DicomTeamAnnotateLib.slicer.packages import Feature, held_versions, missing_requirements, write_constraints

FEATURE_MODULES = ("DicomTeamAnnotateLib.slicer.packages", "SamPromptLib.requirements",
                   "ConsensusReviewLib.requirements", "TrainBridgeLib.requirements")


def _features():
    out = []
    for name in FEATURE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        out += [(f"{name}.{attr}", value) for attr, value in vars(module).items() if isinstance(value, Feature)]
    return out


FEATURES = _features()


def test_missing_requirements_checks_presence_and_version():
    assert missing_requirements(["numpy>=1.0"]) == []
    assert missing_requirements(["numpy>=999"]) == ["numpy>=999"]
    assert missing_requirements(["no-such-package-xyz>=1"]) == ["no-such-package-xyz>=1"]
    assert missing_requirements(['numpy>=999; python_version < "3"']) == []  # not for this Python


@pytest.mark.parametrize("name,feature", FEATURES, ids=[n for n, _f in FEATURES])
def test_features_use_lower_bounds_and_never_ask_for_slicers_packages(name, feature):
    """Installing must never replace what Slicer ships (numpy, SimpleITK, pydicom...) nor torch (PyTorch extension)."""
    bundled = {p.lower().replace("_", "-") for p in packages.SLICER_BUNDLED + packages.TORCH_PACKAGES}
    assert feature.purpose
    for text in feature.requirements:
        req = Requirement(text)
        assert req.name.lower().replace("_", "-") not in bundled, f"{name}: {req.name} is Slicer's (or torch)"
        assert req.specifier and all(s.operator == ">=" for s in req.specifier), f"{name}: '{text}': a >= bound"


@pytest.mark.parametrize("name,feature", FEATURES, ids=[n for n, _f in FEATURES])
def test_the_development_environment_has_every_feature(name, feature):
    """The test environment runs every feature (the harness checks they install into a bare Slicer)."""
    assert packages.Installer.missing(feature) == []


def test_constraints_hold_slicers_packages_at_their_installed_versions(tmp_path):
    path = write_constraints(str(tmp_path))
    pins = dict(line.strip().split("==") for line in open(path, encoding="utf-8") if line.strip())
    assert pins["numpy"] == held_versions()["numpy"] and "SimpleITK" in pins and "pydicom" in pins
    if "torch" in held_versions():
        assert pins["torch"] == held_versions()["torch"]


def test_an_older_slicer_gets_one_message_saying_which_version_and_why():
    assert packages.slicer_version_problem(5, 12) is None and packages.slicer_version_problem(6, 0) is None
    message = packages.slicer_version_problem(5, 10)
    assert "5.12" in message and "5.10" in message and "pip_ensure" in message


def test_every_package_slicer_bundles_is_held():
    """The held list is Slicer 5.12's bundled distributions (the harness's pins, read from Slicer's SuperBuild)."""
    from packaging.utils import canonicalize_name
    from slicer_harness.environment import slicer_pins

    held = {canonicalize_name(n) for n in packages.SLICER_BUNDLED}
    missing = sorted(n for n in map(canonicalize_name, slicer_pins()) if n not in held)
    assert not missing, f"Slicer bundles these, an install could replace them: {missing}"
