"""Trained models users take elsewhere: export (TorchScript / ONNX / checkpoint + manifest) and inference."""
