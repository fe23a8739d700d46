"""Trained models users take elsewhere: export (TorchScript / ONNX / checkpoint + manifest) and inference.

- ``export``: a trained MONAI model as a checkpoint, TorchScript or ONNX, plus a manifest checked against PyTorch.
- ``bundle``: a MONAI job's model as a MONAI Bundle (MONAI Label, MONAI Deploy, `monai.bundle run`).
- ``nnunet_results``: an nnU-Net job's model in nnU-Net's own results layout (nnUNetv2_predict, SlicerNNUnet).
- ``infer``: an exported model run on a new image (manifest + ONNX / TorchScript / PyTorch file).
"""
