"""Bring N annotators' segmentations of one case onto the case's reference grid.

Segments are matched across annotators by the core's one matcher (``match_segments``): by
terminology entry (category, type, type modifier, region, region modifier: "right lung" and
"left lung" share a type code and stay two labels), else by name, never by label value (one
annotator's liver may be value 3, another's value 1).  Two inputs that cannot be matched
unambiguously stop the consensus with a message naming the file and the segments.  Annotations on a
different grid of the same physical space are resampled (nearest neighbour) onto the reference;
an annotation that cannot be placed on it (drawn voxels outside the reference image, or no
physical overlap at all) is refused with a message naming the file and the mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry, check_drawn_inside
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, match_segments, union_of_segments
from DicomTeamAnnotateLib.dicom.ingest import load_image
from DicomTeamAnnotateLib.io.segmentations import read_segmentation


@dataclass
class ConsensusInputs:
    """N annotators' binary masks per label, all on ``geometry``; annotators in input order."""

    geometry: Geometry
    annotators: list[str]
    sources: list[str]
    labels: list[Segment]                      # name, colour, terminology of each matched label
    masks: dict[str, np.ndarray]               # label name -> bool (N, K, J, I)
    notes: list[str] = field(default_factory=list)   # resampling done, labels missing for someone

    def label(self, name: str) -> Segment:
        for s in self.labels:
            if s.name == name:
                return s
        raise KeyError(f"no label '{name}' (labels: {', '.join(s.name for s in self.labels)})")

    def provenance(self) -> dict:
        """What went in, for the consensus record."""
        return {"annotators": list(self.annotators), "sources": list(self.sources),
                "labels": [s.name for s in self.labels], "geometry": self.geometry.to_dict(),
                "notes": list(self.notes)}


def find_segment(seg: Segmentation, label: Segment) -> Segment | None:
    """The segment of ``seg`` that is ``label`` (terminology entry, else name; see ``match_segments``)."""
    return seg.find(label)


def same_label(a: Segment, b: Segment) -> bool:
    """Whether two segments are the same structure (``Segment.matches``)."""
    return a.matches(b)


def check_placeable(seg: Segmentation, reference: Geometry, source: str) -> None:
    """Raise ValueError (naming ``source``) when ``seg``'s drawn voxels do not fall inside ``reference``."""
    if not seg.geometry.same_grid(reference):
        check_drawn_inside(np.any(seg.layers != 0, axis=0), seg.geometry, reference, source)


def align_segmentations(segmentations: list[Segmentation], annotators: list[str], reference: Geometry | None = None,
                        sources: list[str] | None = None, labels: list[Segment] | None = None) -> ConsensusInputs:
    """Resample every segmentation onto ``reference`` (default: the first one's grid) and match segments.

    ``labels`` (e.g. the project's label list) fixes which labels are compared and their order;
    by default every label any annotator drew, in order of first appearance.  An annotator who
    has no segment for a label counts as having drawn nothing for it (noted in ``notes``).
    """
    if len(segmentations) < 2:
        raise ValueError(f"consensus needs at least two annotations, got {len(segmentations)}")
    if len(annotators) != len(segmentations):
        raise ValueError("one annotator name per segmentation is needed")
    sources = list(sources or annotators)
    reference = reference or segmentations[0].geometry
    notes = []
    aligned = []
    for seg, source in zip(segmentations, sources):
        check_placeable(seg, reference, source)
        if not seg.geometry.same_grid(reference):
            notes.append(f"{source}: resampled onto the reference grid ({'; '.join(seg.geometry.differences(reference))})")
            seg = seg.resampled(reference)
        aligned.append(seg)
    if labels is None:
        labels = union_of_segments([seg.segments for seg in aligned], sources)
    if not labels:
        raise ValueError("none of the annotations has any segment")
    masks = {label.name: np.zeros((len(aligned),) + reference.shape, dtype=bool) for label in labels}
    for n, (seg, source) in enumerate(zip(aligned, sources)):
        matches = match_segments(list(labels), seg.segments, what=source)
        for label, match in zip(labels, matches):
            if match is None:
                notes.append(f"{source}: has no segment '{label.name}'; counted as empty")
            else:
                masks[label.name][n] = seg.mask(match.name)
        left_out = [s.name for s in seg.segments if not any(s is m for m in matches)]
        if left_out:
            notes.append(f"{source}: segment(s) {', '.join(left_out)} are not among the labels compared; left out")
    return ConsensusInputs(reference, list(annotators), sources, list(labels), masks, notes)


def annotator_name(path) -> str:
    """A readable annotator name from a file name: 'alice.seg.nrrd' -> 'alice'."""
    name = Path(path).name
    for suffix in (".seg.nrrd", ".nii.gz", ".nrrd", ".nii", ".nhdr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def read_reference_image(path):
    """A reference image as a Volume: a volume file or a DICOM series folder/file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such reference image")
    return load_image(path)


def read_reference_geometry(path) -> Geometry:
    """Geometry of a reference image: a volume file or a DICOM series folder/file."""
    return read_reference_image(path).geometry


def load_annotations(paths, reference=None, annotators: list[str] | None = None,
                     names: dict | None = None, labels: list[Segment] | None = None) -> ConsensusInputs:
    """Read .seg.nrrd / label-map files and align them (``reference``: a Geometry or an image path).

    ``names`` ({label value: name}) names the values of plain label maps; ``annotators``
    defaults to the file names without their suffix (made unique).
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such annotation file")
    if reference is not None and not isinstance(reference, Geometry):
        reference = read_reference_geometry(reference)
    segs = [read_segmentation(p, names=names) for p in paths]
    if annotators is None:
        annotators = unique_names([annotator_name(p) for p in paths])
    return align_segmentations(segs, annotators, reference, [str(p) for p in paths], labels)


def unique_names(names: list[str]) -> list[str]:
    """Make names unique by appending #2, #3 ... to repeats (two files both called 'seg')."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out
