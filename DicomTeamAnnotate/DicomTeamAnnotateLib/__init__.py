"""The core library of all four DicomTeamAnnotate modules (Qt-free, importable in plain Python).

Subpackages, lowest layer first (an arrow points only to a layer above it in this list):

- ``core``: what everything shares: Geometry, Volume, Segmentation, window presets, atomic
  writes, hashing, overlap/surface metrics, background tasks.
- ``io``: files: volumes (.nrrd/.nii/.mha), Slicer's .seg.nrrd, label maps with sidecars.
- ``dicom``: DICOM ingestion: headers, frames, grouping and sorting, geometry, pixel decoding.
- ``pacs``: DICOMweb client (QIDO/WADO/STOW), DICOM SEG export and import, PACS references.
- ``store``: the shared project store: model and rules, folder store, HTTP server and client,
  blobs, events, the SQL index, administration.
- ``worklist``: the annotator's side of the store: my worklist, a case on my disk, drafts,
  pushes and the offline queue, effort records.
- ``slicer``: the only code that touches Slicer: MRML adapters, first-use package installs,
  the panels' task runner and sections.
- ``cli``: the `dicomteam` command (one registry; other modules plug in by entry point).
- ``demo``: the phantom, a team round trip, the loop's phantom project and `make demo`'s driver.

Data: ``Resources/window_presets.json``, the CT window presets (read by ``core.windowing``).

The module Libs (SamPromptLib, ConsensusReviewLib, TrainBridgeLib) import from here, never
from each other.
"""
