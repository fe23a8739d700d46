"""The annotation loop: a trained model pre-annotates the project's cases through the store, and the
project retrains when enough new adjudicated cases came in.

- ``models``: what a model is to the loop (identity, labels, fit check, prediction + uncertainty).
- ``model_folder``: what a folder holds as a model (kind, backend, why not), from its small files only.
- ``backends``: MONAI jobs and exported models, nnU-Net jobs and model folders, ``open_model()``.
- ``preannotate``: predictions pushed as versions of kind `prediction` (resumable, cancellable).
- ``retrain``: ``dicomteam train --store ... --when-new N`` with the earlier patient-level splits kept.
- ``demo``: `make demo`'s loop step (round 2 pre-annotated, corrected, effort per round).
"""
