"""Training backends, each building its job from the generic runner's steps.

- ``registry``: the backends by name and ``start_training()``: what the panel and `dicomteam train` start.
- ``nnunet``: nnU-Net v2's own commands as a job, its log parsed into progress.
- ``monai``: quick MONAI training: architectures, the trainer run inside a job, preprocessing, prediction.
"""
