"""TrainBridge logic (Qt-free): from the project's adjudicated cases to a trained model and its scores.

Packages in pipeline order, as nnU-Net names its stages:

- ``export``: cases in (files or the project store), patient-level splits, the nnU-Net v2 raw
  dataset with its pre-flight checks, and other formats (MONAI datalist, COCO slices, .seg.nrrd folders).
- ``jobs``: background jobs (a detached supervisor that knows no backend) and progress curves.
- ``backends``: the training backends by name (the trainings the panel and `dicomteam train` start),
  each building its job from the runner's steps: nnU-Net (nnU-Net's own commands) and MONAI (models,
  trainer, preprocessing, predictor).
- ``evaluation``: Dice / HD95 / NSD per case and label, and what the panel shows of it.
- ``models``: model export (TorchScript / ONNX / checkpoint with a manifest, MONAI Bundle, nnU-Net
  results) and inference.
- ``loop``: the annotation loop: pre-annotation through the store, retraining when N new
  adjudicated cases came in, the models it opens.

The panel (Qt-free models of its sections) and its Slicer side:

- ``trainbridge_panel``: the TrainBridge panel: its sections sharing the logic, one task runner, the UI services.
- ``export_panel``: the Export section: which cases become the nnU-Net dataset, 'Export dataset'.
- ``training_panel``: the Training section: start, attach, cancel, resume a job, and its live view.
- ``evaluation_panel``: the Evaluation section: the test-set metrics, the comparison view, the worst slices.
- ``model_panel``: the Model export section: the trained MONAI model as ONNX or TorchScript.
- ``loop_panel``: the Annotation loop section: pre-annotate the project with a model, the effort table.
- ``mrml``: the comparison view's MRML adapter (a test case's prediction beside its ground truth).
- ``requirements``: the packages each feature installs at its first use.

Command line and demo:

- ``cli``: `dicomteam export-nnunet|train|jobs|evaluate|export-model|preannotate`.
- ``demo``: `make demo`'s TrainBridge part: round 1 of the loop and the model it trains.
"""
