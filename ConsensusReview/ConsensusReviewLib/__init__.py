"""ConsensusReview logic (Qt-free): agreement, consensus, annotator bias, review queue, adjudication.

The overlap and surface metrics (Dice, HD95, ASSD, NSD, volumes; the empty-mask policy) are the core's
``DicomTeamAnnotateLib.core.metrics`` and ``DicomTeamAnnotateLib.core.surface``, shared with TrainBridge.

One consensus, in pipeline order:

- ``inputs``: N annotations onto the reference grid, segments matched by terminology/name.
- ``voting``: majority vote (stated tie policy), vote counts, disagreement maps.
- ``patterns``: decision-pattern tables (what makes STAPLE fast).
- ``staple``: binary and multi-label STAPLE, same answers as ITK/SimpleITK.
- ``consensus``: ``run_consensus(inputs, method)`` -> ConsensusResult (+ audit record).

Agreement and review:

- ``agreement``: pairwise matrices and per-annotator figures per label.
- ``bias``: per-annotator bias and flags for annotators systematically off.
- ``review_queue``: cases sorted by lowest agreement, review thresholds.
- ``project_queue``: the review queue of every case of a store, lowest agreement first.

Files and the project store:

- ``outputs``: the files of `dicomteam consensus --out DIR`.
- ``report``: HTML + PNG reports, CSV.
- ``store_case``: consensus inputs from the project store (every annotator's latest version).
- ``adjudication``: publish the reviewer's ground truth with its audit record.

The Slicer side (panel models without Qt; Slicer is imported inside functions):

- ``consensus_panel``: the ConsensusReview panel: four sections, one task runner, the UI services.
- ``inputs_panel``: the Inputs and Method sections: which annotations, which method, 'Compute'.
- ``results_panel``: the Results section: verdict, agreement tables, the map overlay, the report.
- ``queue_panel``: the Review queue section: every project case's agreement, lowest first.
- ``adjudication_panel``: the Adjudication section: the reviewer's final segmentation, start to publication.
- ``mrml``: the MRML adapter: segmentation nodes as inputs, a run's nodes, the map layers.
- ``requirements``: the packages each feature installs at its first use (pynrrd, matplotlib).

Command line and demo:

- ``cli``: `dicomteam consensus`.
- ``simulate``: simulated readers with a known truth (demo, tests).
- ``lidc``: the LIDC-IDRI multi-reader nodule masks and a reader summary.
- ``demo``: `make demo`'s consensus part.
"""
