"""Shared pytest fixtures: where the shared data lives, and skip-or-fail when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CT_DICOM = SHARED_DATA / "ct_abdomen" / "dicom"
CT_ORGANS = SHARED_DATA / "ct_abdomen" / "organs.nii.gz"
CT_ORGANS_JSON = SHARED_DATA / "ct_abdomen" / "organs.json"
LIDC = SHARED_DATA / "lidc_multirater"


def need(path: Path) -> Path:
    """Return ``path``; skip the test when it is absent, but fail under CI (where it must exist)."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"required test data missing under CI: {path}")
        pytest.skip(f"test data not available: {path} (clone ../shared beside the project)")
    return path


@pytest.fixture(scope="session")
def ct_dicom_dir() -> Path:
    return need(CT_DICOM)


@pytest.fixture(scope="session")
def ct_organs_path() -> Path:
    return need(CT_ORGANS)


@pytest.fixture(scope="session")
def lidc_dir() -> Path:
    return need(LIDC)


@pytest.fixture(scope="session")
def slicer_env(tmp_path_factory) -> dict:
    """The Slicer 5.12 harness environment for this test session (first-use installs land here)."""
    from slicer_support import make_session_env

    return make_session_env(tmp_path_factory.mktemp("slicer-session"))


@pytest.fixture
def fresh_env(tmp_path) -> dict:
    """A Slicer environment of this test alone. The session's is shared, so a test that asserts what a
    first use asks for and installs must not run after another test installed it there."""
    from slicer_support import make_session_env

    return make_session_env(tmp_path / "session")
