"""Shared, session-wide state of the SAM tests: the real CT, its reference aligned by physical
geometry, and one LiteMedSAM segmenter whose embedding cache every test file reuses (CI has two
cores: each slice is embedded once per test session)."""
from __future__ import annotations

import json
from functools import cache

import numpy as np

from DicomTeamAnnotateLib.core.geometry import resample_like
from DicomTeamAnnotateLib.io.volumes import read_volume

SOFT_TISSUE = (40.0, 400.0)
ORGANS = ("liver", "spleen", "stomach", "aorta", "inferior_vena_cava")
GOAL_ORGANS = ("liver", "spleen", "stomach", "aorta")


@cache
def ct_case(dicom_dir: str, organs_path: str) -> tuple:
    """(CT Volume from the DICOM folder, reference label array on the CT grid, {organ: label value})."""
    from pathlib import Path

    from DicomTeamAnnotateLib.dicom.ingest import load_dicom_volume

    ct = load_dicom_volume(dicom_dir)
    ref = read_volume(organs_path)
    # By physical position, never by index: the label file may store flipped axes.
    labels = resample_like(ref.array, ref.geometry, ct.geometry, label=True)
    values = json.loads((Path(organs_path).parent / "organs.json").read_text(encoding="utf-8"))["labels"]
    return ct, labels, values


@cache
def ct_segmenter(dicom_dir: str, organs_path: str, backend: str = "litemedsam"):
    """One LiteMedSAM segmenter on the CT, soft-tissue window, shared by all tests: the default backend
    (the INT8 encoder where verified) unless ``backend`` names another (``litemedsam-fp32``: exact)."""
    from SamPromptLib import shared
    from SamPromptLib.segmenter import SamSegmenter

    ct, _, _ = ct_case(dicom_dir, organs_path)
    # The process-wide model and cache, as `dicomteam sam` uses them: the CLI tests reuse the embeddings.
    return SamSegmenter(ct, shared.backend_for({"backend": backend}), window=SOFT_TISSUE,
                        cache=shared.shared_cache())


def one_box_3d_dice(segmenter, labels, values, organs=ORGANS) -> dict:
    """{organ: 3D Dice} of one box on the organ's middle axial slice, propagated both ways."""
    from DicomTeamAnnotateLib.core.metrics import dice
    from SamPromptLib.planes import bounding_box

    out = {}
    for organ in organs:
        mask = organ_mask(labels, values, organ)
        k = middle_slice(mask)
        result = segmenter.segment("axial", k, box=bounding_box(mask[k]), propagate=True)
        out[organ] = dice(result.array.astype(bool), mask)
    return out


def organ_mask(labels: np.ndarray, values: dict, organ: str) -> np.ndarray:
    return labels == values[organ]


def middle_slice(mask: np.ndarray) -> int:
    """The middle axial slice (k) of an organ's extent."""
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    return int(ks[len(ks) // 2])


def sam_project(project_dir, dicom_dir) -> dict:
    """A project holding the shared CT as case 'ct1' (assigned to alice; bob is an annotator without it,
    rev a reviewer); returns {user: token}."""
    from store_support import LABELS

    from DicomTeamAnnotateLib.store import admin

    labels = project_dir.parent / "sam-labels.json"
    labels.write_text(json.dumps(LABELS), encoding="utf-8")
    admin.init_project(project_dir, "SAM", labels)
    admin.add_case(project_dir, "ct1", dicom_dir, "P001")
    tokens = {u: admin.add_member(project_dir, u, r) for u, r in
              (("alice", "annotator"), ("bob", "annotator"), ("rev", "reviewer"))}
    admin.assign(project_dir, "ct1", "alice")
    return tokens


def sam_options(**overrides):
    """`dicomteam serve` options of the SAM plugin, parsed as the server parses them."""
    import argparse

    from SamPromptLib import server_plugin

    parser = argparse.ArgumentParser()
    server_plugin.add_arguments(parser)
    options = parser.parse_args([])
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


SERVER_SCRIPT = """
import sys, time
from DicomTeamAnnotateLib.store.server import BackgroundServer
from SamPromptLib import server_plugin
sys.path.insert(0, sys.argv[2])
import sam_support
server = BackgroundServer(sys.argv[1], plugins={"sam": server_plugin}, options=sam_support.sam_options())
print(server.url, flush=True)
while True:
    time.sleep(1)
"""


def sam_server_process(project_dir):
    """(process, url): the project server with the SAM plugin in a process of its own (to kill it)."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(project_dir), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, encoding="utf-8", errors="replace")
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"the SAM server process did not start (said {url!r})")
    return proc, url
