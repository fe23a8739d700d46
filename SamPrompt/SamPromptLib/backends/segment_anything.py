"""Meta's Segment Anything (ViT-B/L/H) from a checkpoint file the user gives.

Points (positive/negative), boxes, both, a mask prompt (the previous low-resolution logits,
as SAM was trained for iterative refinement) and multimask output.  Input: the windowed slice
as 0..255 RGB (grey in three channels), longest side resized to 1024, normalised by SAM's
pixel mean/std and padded (``Sam.preprocess``).  No weights ship with this project and none
are downloaded: give the path of e.g. ``sam_vit_b_01ec64.pth``.  ``allow_untrained=True``
builds the network without weights (for tests of the plumbing only: its masks are noise).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from SamPromptLib.backends import Embedding, Prediction, SamBackend
from SamPromptLib.backends.litemedsam import file_sha256, to_unit_image
from SamPromptLib.backends.sam_common import DECODER_INPUTS, decoder_feeds, finish, make_prompt_decoder
from SamPromptLib.preprocess import plan_resize, resize_slice

log = logging.getLogger(__name__)
MODEL_TYPES = ("vit_b", "vit_l", "vit_h")


class SegmentAnythingBackend(SamBackend):
    """SAM ViT-B/L/H in PyTorch (CPU, CUDA or MPS)."""

    supports_box = True
    supports_points = True
    supports_mask_input = True
    image_size = 1024

    def __init__(self, checkpoint=None, model_type: str = "vit_b", device: str = "cpu",
                 allow_untrained: bool = False, threads: int | None = None):
        import torch
        from segment_anything import sam_model_registry

        if model_type not in MODEL_TYPES:
            raise ValueError(f"SAM model type must be one of {MODEL_TYPES}, got {model_type!r}")
        if checkpoint is None and not allow_untrained:
            raise ValueError(f"sam-{model_type} needs a checkpoint file (--checkpoint, e.g. sam_{model_type}_*.pth "
                             f"from Meta's segment-anything release); nothing is downloaded")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"{checkpoint}: no such checkpoint file")
        self.name = f"sam-{model_type}"
        if threads:
            torch.set_num_threads(int(threads))
        try:
            sam = sam_model_registry[model_type](checkpoint=None if checkpoint is None else str(checkpoint))
        except (RuntimeError, KeyError) as exc:
            raise ValueError(f"{checkpoint}: not a SAM {model_type} checkpoint ({str(exc).splitlines()[0]})") from None
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.weights_sha256 = None if checkpoint is None else file_sha256(checkpoint)
        self.model_type, self.device, self.runtime = model_type, device, "torch"
        self._sam = sam.eval().to(device)
        self._decoder = make_prompt_decoder(self._sam).to(device)

    def set_image(self, image: np.ndarray, spacing=None) -> Embedding:
        """Embed one slice (see SamBackend.set_image)."""
        import torch

        unit = to_unit_image(image)
        plan = plan_resize(unit.shape, self.image_size, spacing)
        rgb = np.repeat(resize_slice(unit, plan)[None] * np.float32(255.0), 3, axis=0)
        with torch.inference_mode():
            x = self._sam.preprocess(torch.from_numpy(rgb)[None].to(self.device))
            features = self._sam.image_encoder(x).float().cpu().numpy()
        return Embedding(features, plan, self.name)

    def predict(self, embedding: Embedding, box=None, points=None, labels=None, mask_input=None,
                multimask: bool = False) -> Prediction:
        """Masks for box and/or point prompts, optionally refined from ``mask_input`` (see SamBackend.predict)."""
        import torch

        self.check_prompts(box, points, labels)
        feeds = decoder_feeds(embedding.features, embedding.plan, box, points, labels, mask_input)
        with torch.inference_mode():
            out = self._decoder(*(torch.from_numpy(feeds[k]).to(self.device) for k in DECODER_INPUTS))
        low_res, iou = (t.float().cpu().numpy() for t in out)
        return finish(low_res, iou, embedding.plan, multimask=multimask)

    def describe(self) -> dict:
        return {**super().describe(), "name": self.name, "runtime": "torch", "device": self.device,
                "checkpoint": self.checkpoint, "sha256": self.weights_sha256,
                "trained": self.checkpoint is not None}
