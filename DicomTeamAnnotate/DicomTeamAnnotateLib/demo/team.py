"""A small team round trip for `make demo`: a phantom project, two annotators, one reviewer.

``team_round_trip(out_dir)``: init a project from the phantom (its DICOM series through our
ingestion), add two annotators and a reviewer, serve it on 127.0.0.1, let both annotators
push their segmentation, and have the reviewer list (and fetch) both.  Returns a summary that
is also written to ``out_dir/team_round_trip.json``.
"""
from __future__ import annotations

import logging
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.demo.phantom import COLORS, TERMINOLOGY, make_phantom, write_phantom_dicom
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.store import admin
from DicomTeamAnnotateLib.store.interface import open_store

log = logging.getLogger(__name__)


def _labels(phantom) -> list[dict]:
    return [{"name": n, "value": v, "color": list(COLORS.get(n, (0.5, 0.5, 0.5))), "terminology": TERMINOLOGY.get(n)}
            for n, v in phantom.label_values.items()]


def _annotator_segmentation(phantom, shift: int):
    """The phantom's truth with the liver moved by ``shift`` voxels: two readers that disagree a little."""
    import numpy as np


    labels = phantom.labels.copy()
    liver = labels == phantom.label_values["liver"]
    labels[liver] = 0
    labels[np.roll(liver, shift, axis=2) & (labels == 0)] = phantom.label_values["liver"]
    truth = phantom.segmentation()
    return Segmentation.from_labelmap(labels, phantom.volume.geometry, truth.segments)


def team_round_trip(out_dir, *, use_server: bool = True) -> dict:
    """Run the round trip in ``out_dir``; returns {'project', 'store', 'versions', 'reviewer_sees'}."""
    import shutil
    import tempfile


    out = Path(out_dir)
    project = out / "team_project"
    if project.exists():
        shutil.rmtree(project)
    out.mkdir(parents=True, exist_ok=True)
    phantom = make_phantom(seed=11, shape=(24, 64, 64), spacing=(2.0, 2.0, 4.0), patient_id="PHANTOM-TEAM")
    with tempfile.TemporaryDirectory(prefix="dicomteam-demo-") as tmp:
        tmp = Path(tmp)
        write_phantom_dicom(phantom, tmp / "dicom", patient_id=phantom.patient_id)
        admin.init_project(project, "Phantom team demo", _labels(phantom))
        admin.add_case(project, "phantom-01", tmp / "dicom", phantom.patient_id)
        tokens = {u: admin.add_member(project, u, r) for u, r in
                  (("ann1", "annotator"), ("ann2", "annotator"), ("rev", "reviewer"))}
        for user in ("ann1", "ann2"):
            admin.assign(project, "phantom-01", user)
        server = None
        if use_server:
            from DicomTeamAnnotateLib.store.server import BackgroundServer  # lazy: FastAPI only when serving

            server = BackgroundServer(project)
        try:
            location = server.url if server else project

            def store(user):
                options = {"cache": tmp / "cache"} if server else {}
                return open_store(location, user, tokens[user], **options)

            pushed = {}
            for user, shift in (("ann1", 0), ("ann2", 2)):
                path = write_seg_nrrd(_annotator_segmentation(phantom, shift), tmp / f"{user}.seg.nrrd")
                v = store(user).push_version("phantom-01", path, message=f"{user}'s reading")
                store(user).set_state("phantom-01", "submitted")
                pushed[user] = v["id"]
            reviewer = store("rev")
            versions = reviewer.list_versions("phantom-01")
            for v in versions:
                reviewer.fetch_version(v["id"], out / f"phantom-01.{v['author']}.seg.nrrd")
            summary = {"project": str(project), "store": str(location), "pushed": pushed,
                       "reviewer_sees": [{"id": v["id"], "author": v["author"], "sha256": v["sha256"]}
                                         for v in versions],
                       "case_state": reviewer.states("phantom-01")["state"]}
        finally:
            if server:
                server.stop()
    write_json_atomic(out / "team_round_trip.json", summary)
    log.info("team round trip: reviewer sees %d versions of phantom-01 (%s)", len(summary["reviewer_sees"]),
             ", ".join(v["author"] for v in summary["reviewer_sees"]))
    return summary


if __name__ == "__main__":
    import json
    import sys

    logging.basicConfig(level=logging.INFO)
    print(json.dumps(team_round_trip(sys.argv[1] if len(sys.argv) > 1 else "demo-output"), indent=2))
