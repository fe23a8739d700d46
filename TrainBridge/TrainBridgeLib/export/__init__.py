"""Training data out: cases (files or store), patient-level splits, nnU-Net v2 raw datasets and other formats.

- ``cases``: one training case: its image channel(s) and its label, as Volumes on one grid.
- ``from_store``: cases from a project store: each case's image and its chosen (adjudicated) version.
- ``splits``: patient-level splits: a held-out test set kept out of every fold, then k folds.
- ``nnunet``: the nnU-Net v2 raw layout, with the patient-level splits and a provenance record.
- ``preflight``: pre-flight checks of an nnU-Net raw dataset, naming the case and field of every failure.
- ``other_formats``: a MONAI datalist, a .seg.nrrd folder and COCO slices, with the same splits.
"""
