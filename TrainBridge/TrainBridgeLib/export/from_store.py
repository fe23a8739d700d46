"""Cases from a project store (folder or server) for export: each case's image and its chosen version.

By default the latest adjudicated version of each case (cases without one are skipped and
reported); ``versions`` {case_id: version_id} picks versions explicitly.  The project's label
list is the ontology, so segments are matched by terminology code, then by name.
"""
from __future__ import annotations

import logging
from pathlib import Path

from DicomTeamAnnotateLib.store import open_store
from DicomTeamAnnotateLib.store.model import choose_version
from TrainBridgeLib.export.cases import CaseInput

log = logging.getLogger(__name__)


def _attributes(case: dict) -> dict:
    """Case attributes usable for stratification (site, scanner, ...: see store.admin.case_attributes)."""
    return dict(case.get("attributes") or {})


def cases_from_store(location, user: str, token: str | None = None, *, kind: str = "adjudicated",
                     versions: dict | None = None, work_dir, case_ids: list | None = None) -> tuple:
    """(CaseInput list with downloaded files, project label list); skipped cases are logged."""
    work_dir = Path(work_dir)
    store = open_store(location, user, token)
    try:
        project = store.project()
        cases, skipped = [], []
        for case in store.list_cases():
            cid = case["case_id"]
            if case_ids is not None and cid not in case_ids:
                continue
            if versions and cid in versions:
                version = store.get_version(versions[cid])
                if version["case_id"] != cid:
                    raise ValueError(f"case '{cid}': version {versions[cid]} belongs to case '{version['case_id']}'")
            else:
                version = choose_version(store.list_versions(cid), kind)
            if version is None:
                skipped.append(cid)
                continue
            image = store.fetch_image(cid, work_dir / "images" / cid)
            label = store.fetch_version(version["id"], work_dir / "labels" / f"{cid}.seg.nrrd")
            cases.append(CaseInput(cid, case["patient_id"], [image], label, attributes=_attributes(case),
                                   source={"store": str(location), "version_id": version["id"],
                                           "images": [f"{location} case {cid} image {case.get('image_sha256')}"],
                                           "label": f"{location} version {version['id']}",
                                           "author": version.get("author"), "kind": version.get("kind"),
                                           "version_sha256": version.get("sha256"),
                                           "image_sha256": case.get("image_sha256")}))
    finally:
        store.close()
    if skipped:
        log.warning("%d case(s) without a %s version were skipped: %s", len(skipped), kind, ", ".join(skipped[:20]))
    if not cases:
        raise ValueError(f"{location}: no case has a{'n' if kind[0] in 'aeiou' else ''} {kind} version to export")
    labels = [{"name": d["name"], "value": d["value"], "terminology": d.get("terminology"), "color": d.get("color")}
              for d in project["labels"]]
    return cases, labels
