"""The MONAI backend: architectures (``models``), the trainer run inside a job, preprocessing, prediction."""
