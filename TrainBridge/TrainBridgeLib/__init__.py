"""TrainBridge logic (Qt-free): from the project's adjudicated cases to a trained model and its scores.

Packages in pipeline order, as nnU-Net names its stages:

- ``export``: cases in (files or the project store), patient-level ``splits``, the nnU-Net v2 raw
  dataset (``nnunet``) with its ``preflight`` checks, and ``other_formats`` (MONAI datalist,
  COCO slices, .seg.nrrd folders).
- ``jobs``: background jobs (``runner``: a detached supervisor that knows no backend),
  ``training`` (what the panel and ``dicomteam train`` start), ``progress`` (curves).
- ``backends``: the training backends, each registering its job steps: ``nnunet`` (nnU-Net's own
  commands) and ``monai`` (models, trainer, preprocessing, predictor).
- ``evaluation``: Dice / HD95 / NSD per case and label (``evaluate``), what the panel shows
  (``review``).
- ``models``: model export (TorchScript / ONNX / checkpoint with a manifest) and ``infer``.
- ``loop``: the annotation loop: pre-annotation through the store (``preannotate``), retraining
  when N new adjudicated cases came in (``retrain``), the models it opens (``backends``).
- ``mrml``: the comparison view's MRML adapter; ``panel_*``: the panel's sections;
  ``cli``: `dicomteam export-nnunet|train|jobs|evaluate|export-model|preannotate`; ``demo``.
"""
