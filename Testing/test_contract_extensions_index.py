"""The draft Extensions Index entry (Utilities/ExtensionsIndex/DicomTeamAnnotate.json) keeps the index's rules.

Slicer/ExtensionsIndex: one <ExtensionName>.json per extension, schema
slicer-extension-catalog-entry-schema-v1.0.2 (draft-07): required $schema, category and scm_url, no
other keys than the schema's, tier 1..5; build_dependencies names the extensions this one needs.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "Utilities" / "ExtensionsIndex" / "DicomTeamAnnotate.json"
ALLOWED = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
           "dicom_support_rule", "build_subdirectory", "enabled", "tier"}


def _cmake(var: str) -> str:
    return re.search(rf'set\({var}\s+"([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")).group(1)


def test_entry_follows_the_catalog_schema():
    entry = json.loads(ENTRY.read_text(encoding="utf-8"))
    assert {"$schema", "category", "scm_url"} <= set(entry) <= ALLOWED
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
    assert entry.get("scm_type", "git") in ("git", "local")
    assert all(isinstance(d, str) for d in entry["build_dependencies"])


def test_entry_agrees_with_the_extension_cmake():
    """The catalog names the same repository, category and dependencies as CMakeLists.txt."""
    entry = json.loads(ENTRY.read_text(encoding="utf-8"))
    assert entry["category"] == _cmake("EXTENSION_CATEGORY")
    assert entry["scm_url"].removesuffix(".git") == _cmake("EXTENSION_HOMEPAGE")
    assert entry["build_dependencies"] == _cmake("EXTENSION_DEPENDS").split()
