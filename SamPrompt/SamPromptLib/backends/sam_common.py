"""What every SAM-architecture backend shares: prompt arrays, the prompt decoder, postprocessing.

LiteMedSAM and Meta's SAM have the same prompt encoder and mask decoder, so one traceable
``prompt decoder`` module serves both, eagerly in PyTorch or exported to ONNX.  It reuses
segment-anything's own ``SamOnnxModel`` point/mask embedding (written for tracing) and returns
all four low-resolution masks with their predicted IoU; choosing and resizing happens here in
numpy, identically for both runtimes.
"""
from __future__ import annotations

import numpy as np

from SamPromptLib.backends import Prediction
from SamPromptLib.preprocess import ResizePlan, logits_to_slice

DECODER_INPUTS = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]
DECODER_OUTPUTS = ["low_res_masks", "iou_predictions"]
LOW_RES = 256  # SAM's low-resolution mask side (mask_input has this size too)


def prompt_arrays(plan: ResizePlan, box=None, points=None, labels=None) -> tuple:
    """(coords (1, N, 2), labels (1, N)) float32 in model pixels, ordered as SAM's prompt encoder does.

    Points first, then the box as two corners labelled 2 and 3; without a box a padding point
    (label -1) is appended, exactly as ``PromptEncoder`` pads.
    """
    coords, labs = [], []
    if points is not None:
        coords.append(plan.points_to_model(points))
        labs.append(np.asarray(labels, dtype=np.float32).reshape(-1))
    if box is not None:
        coords.append(plan.box_to_model(box).reshape(2, 2))
        labs.append(np.array([2.0, 3.0], dtype=np.float32))
    else:
        coords.append(np.zeros((1, 2), dtype=np.float32))
        labs.append(np.array([-1.0], dtype=np.float32))
    return np.concatenate(coords)[None].astype(np.float32), np.concatenate(labs)[None].astype(np.float32)


def mask_prompt(mask_input) -> tuple:
    """(mask_input (1, 1, 256, 256), has_mask_input (1,)) float32 from optional low-res logits."""
    if mask_input is None:
        return np.zeros((1, 1, LOW_RES, LOW_RES), dtype=np.float32), np.zeros(1, dtype=np.float32)
    m = np.asarray(mask_input, dtype=np.float32).reshape(1, 1, LOW_RES, LOW_RES)
    return m, np.ones(1, dtype=np.float32)


def make_prompt_decoder(model):
    """A traceable module: (embedding, coords, labels, mask_input, has_mask) -> (4 low-res masks, 4 IoUs)."""
    import torch
    from segment_anything.utils.onnx import SamOnnxModel

    class PromptDecoder(SamOnnxModel):
        """SamOnnxModel's prompt embedding, without its mask selection and resizing."""

        def __init__(self, sam_like):
            super().__init__(sam_like, return_single_mask=False)
            # A constant: precomputed so neither runtime recomputes the dense positional encoding.
            self.register_buffer("dense_pe", sam_like.prompt_encoder.get_dense_pe().detach().clone())

        @torch.no_grad()
        def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
            sparse = self._embed_points(point_coords, point_labels)
            dense = self._embed_masks(mask_input, has_mask_input)
            return self.model.mask_decoder.predict_masks(image_embeddings=image_embeddings, image_pe=self.dense_pe,
                                                         sparse_prompt_embeddings=sparse,
                                                         dense_prompt_embeddings=dense)

    return PromptDecoder(model).eval()


def decoder_feeds(embedding_features, plan, box, points, labels, mask_input) -> dict:
    """The decoder's named inputs as float32 numpy arrays."""
    coords, labs = prompt_arrays(plan, box, points, labels)
    m, has = mask_prompt(mask_input)
    return dict(zip(DECODER_INPUTS, (np.asarray(embedding_features, dtype=np.float32), coords, labs, m, has)))


def finish(low_res: np.ndarray, iou: np.ndarray, plan: ResizePlan, multimask: bool) -> Prediction:
    """Pick SAM's single-mask output (index 0) or its three multimask outputs; resize to the slice."""
    low_res = np.asarray(low_res, dtype=np.float32)[0]
    iou = np.asarray(iou, dtype=np.float32)[0]
    chosen = slice(1, None) if multimask else slice(0, 1)
    low_res, iou = low_res[chosen], iou[chosen]
    logits = logits_to_slice(low_res, plan)
    return Prediction(masks=logits > 0.0, scores=iou.copy(), low_res_logits=low_res.copy(), logits=logits)
