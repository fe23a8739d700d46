"""`make demo`: data the project makes itself, and the end-to-end run on it.

- ``phantom``: a synthetic abdominal CT with a known label map, written as a DICOM series.
- ``team``: a team round trip on a phantom project (two annotators, one reviewer).
- ``loop_project``: the annotation loop's phantom project: cases, simulated annotators, adjudication.
- ``simulated_annotator``: corrects a starting segmentation slice by slice toward the truth.
- ``driver``: runs every step (the other modules' steps plug in by entry point).
- ``__main__``: ``python -m DicomTeamAnnotateLib.demo`` runs the driver.
"""
