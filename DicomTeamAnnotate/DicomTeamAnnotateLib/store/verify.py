"""``dicomteam project verify``: is a project folder (and the server's SQL index) sound?

Headless only (the command line; not packaged for Slicer): it compares the event files with the
server's SQL index, which Slicer never loads.
"""
from __future__ import annotations

from pathlib import Path

from DicomTeamAnnotateLib.store.admin import check_reference
from DicomTeamAnnotateLib.store.folder import FolderCatalog
from DicomTeamAnnotateLib.store.model import InvalidInput
from DicomTeamAnnotateLib.store.sqlindex import SqlIndex


def verify_project(project_dir, db_url: str | None = None) -> list[str]:
    """Consistency problems (empty list when sound): event files readable, blobs present and intact,
    version ids claimed by their own records, no blob that nothing references, index == events.

    Run it on a quiet project: a push in flight has a claim and a blob before its event.
    Events not yet in the server's index are reported; the server imports them when it starts.
    """
    catalog = FolderCatalog(project_dir)
    catalog.refresh()
    problems = [f"events/{name}: {problem} (the record is skipped by every reader)"
                for name in catalog.events.names() if (problem := catalog.events.problem(name))]
    referenced = set()
    for case in catalog.cases():
        if case.get("reference") is not None:  # reference mode: the pixels live in the PACS, not here
            try:
                check_reference(case["reference"])
            except InvalidInput as exc:
                problems.append(f"case {case['case_id']}: {exc}")
        elif not catalog.blobs.verify(case["image_sha256"]):
            problems.append(f"case {case['case_id']}: image blob {case['image_sha256']} missing or corrupt")
        referenced.add(case.get("image_sha256"))
    versions = {v["id"]: v for v in catalog.versions()}
    for v in versions.values():
        referenced.add(v["sha256"])
        if not catalog.blobs.verify(v["sha256"]):
            problems.append(f"version {v['id']}: blob {v['sha256']} missing or corrupt")
    for vid, claimed in catalog.events.claims().items():
        if vid not in versions:
            problems.append(f"version {vid}: its id was claimed but no readable event records it (an interrupted "
                            "push, or a damaged event file)")
        elif claimed != versions[vid]:
            problems.append(f"version {vid}: the event's record differs from the one that claimed the id")
    root = catalog.blobs.root
    for path in sorted(root.glob("*/*")) if root.is_dir() else []:
        if path.name not in referenced:
            problems.append(f"blob {path.name}: referenced by no case or version (left by an interrupted push)")
    index_file = Path(project_dir) / "index.sqlite"
    if db_url or index_file.exists():
        problems += _index_problems(project_dir, db_url, versions)
    return problems


def _index_problems(project_dir, db_url, versions: dict) -> list[str]:
    """Where the server's index differs from the event files (versions compared field by field)."""
    index = SqlIndex(project_dir, db_url, sync=False)  # the index as it is, before any import
    try:
        indexed = {v["id"]: v for v in index.versions()}
    finally:
        index.close()
    problems = [f"version {vid}: in the index but not in the event files" for vid in sorted(set(indexed) - set(versions))]
    problems += [f"version {vid}: in the event files but not in the index" for vid in sorted(set(versions) - set(indexed))]
    for vid in sorted(set(indexed) & set(versions)):
        fields = sorted(k for k in set(indexed[vid]) | set(versions[vid]) if indexed[vid].get(k) != versions[vid].get(k))
        if fields:
            problems.append(f"version {vid}: the index and the event files disagree on {', '.join(fields)}")
    return problems
