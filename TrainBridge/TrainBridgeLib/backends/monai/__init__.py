"""The MONAI backend: architectures, the trainer run inside a job, preprocessing, prediction.

- ``job``: the MONAI training job: train, predict the held-out test set, evaluate it (runner steps).
- ``models``: the MONAI architectures offered for quick training, built from a JSON-able config.
- ``trainer``: quick MONAI training on an exported nnU-Net dataset, run inside a job (resumable).
- ``preprocessing``: resampling and intensity normalisation shared by the trainer, the predictor and ``infer.py``.
- ``predict``: predictions of a folder of images by a trained model (MONAI sliding window, or nnU-Net's predictor).
"""
