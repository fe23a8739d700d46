"""The Python packages each ConsensusReview feature needs in Slicer, installed at its first use.

Slicer 5.12 bundles neither pynrrd (every .seg.nrrd read or written: project versions, annotators'
files, the consensus file, a published ground truth) nor matplotlib (the HTML report's pictures).
The panel asks the core's ``Installer`` for one ``Feature`` per click, made here from what that
click will really do, so a user is asked once, and only for what the click needs.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.packages import NIFTI_FILES, REPORTS, SEGMENTATION_FILES, Feature


def combined(purpose: str, *features: Feature) -> Feature:
    """One feature asking for every requirement of ``features`` (each once, in order)."""
    requirements = tuple(dict.fromkeys(r for f in features for r in f.requirements))
    return Feature(purpose, requirements, needs_torch=any(f.needs_torch for f in features))


def consensus_feature(source: str, writes_outputs: bool, paths=()) -> Feature:
    """What 'Compute consensus' needs: segmentation files read from a project or files, written to a folder
    (the consensus .seg.nrrd), the report's pictures, NIfTI label maps among the files; segmentation nodes
    without a folder need nothing."""
    parts = []
    if source in ("store", "files") or writes_outputs:
        parts.append(SEGMENTATION_FILES)
    if writes_outputs:
        parts.append(REPORTS)
    if source == "files" and any(str(p).lower().endswith((".nii", ".nii.gz")) for p in paths):
        parts.append(NIFTI_FILES)
    return combined(_("computing a consensus"), *parts)


# 'Build queue' reads every case's versions (.seg.nrrd) and writes the project report (pictures)
REVIEW_QUEUE = combined(_("building the review queue"), SEGMENTATION_FILES, REPORTS)
# 'Publish ground truth' writes the adjudicated .seg.nrrd and the store checks it
PUBLISH = combined(_("publishing the ground truth"), SEGMENTATION_FILES)
