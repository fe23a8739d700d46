"""ConsensusReview logic (Qt-free): agreement, consensus, annotator bias, review queue, adjudication.

    metrics       Dice, HD95, ASSD, NSD, volumes of two masks (shared with TrainBridge); empty-mask policy
    surface       boundary voxels and surface distances in mm (scipy distance transforms)
    inputs        N annotations onto the reference grid, segments matched by terminology/name
    voting        majority vote (stated tie policy), vote counts, disagreement maps
    patterns      decision-pattern tables (what makes STAPLE fast)
    staple        binary and multi-label STAPLE, same answers as ITK/SimpleITK
    consensus     run_consensus(inputs, method) -> ConsensusResult (+ audit record)
    agreement     pairwise matrices and per-annotator figures per label
    bias          per-annotator bias and flags for annotators systematically off
    review_queue  cases sorted by lowest agreement, review thresholds
    outputs       the files of `dicomteam consensus --out DIR`
    report        HTML + PNG reports, CSV
    store_case    consensus inputs from the project store
    adjudication  publish the reviewer's ground truth with its audit record
    simulate      simulated readers (demo, tests);  lidc: the LIDC multi-reader data;  demo: `make demo` part
    cli           `dicomteam consensus`
"""
