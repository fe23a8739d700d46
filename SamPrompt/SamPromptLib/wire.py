"""The JSON form of prompts, masks and slice results between the remote backend and the server.

Arrays travel as base64 inside JSON (one documented shape for the OpenAPI spec, no second
content type): masks bit-packed (``np.packbits``; a 512 x 512 mask is 32 KiB) and the model's
low-resolution logits (256 x 256) as float16, with the resize plan.  The receiver rebuilds the
slice-grid logits from those exactly as the model's postprocessing does (``logits_to_slice``)
instead of receiving 1 MiB of them: 4x less to send and decode per slice.  The mask is sent
as bits, so float16 rounding never flips a pixel: every rebuilt logit is kept on its mask's
side of 0.
"""
from __future__ import annotations

import base64

import numpy as np

from SamPromptLib.backends import Prediction
from SamPromptLib.preprocess import ResizePlan, logits_to_slice
from SamPromptLib.propagate import Prompt, SliceResult

MAX_SIDE = 8192  # a slice side larger than this is not a medical image: refuse before allocating


def pack_bits(mask: np.ndarray) -> dict:
    """A bool array as {'shape', 'bits'}."""
    mask = np.asarray(mask, dtype=bool)
    return {"shape": list(mask.shape), "bits": base64.b64encode(np.packbits(mask, axis=None).tobytes()).decode()}


def _shape(doc: dict, what: str) -> tuple:
    shape = doc.get("shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(n, int) and 0 < n <= MAX_SIDE for n in shape):
        raise ValueError(f"{what}: field 'shape' must be a list of sizes in 1..{MAX_SIDE}, got {shape!r}")
    return tuple(shape)


def unpack_bits(doc: dict, what: str = "mask") -> np.ndarray:
    """The bool array of ``pack_bits``; ValueError naming ``what`` when it does not fit its shape."""
    shape = _shape(doc, what)
    raw = np.frombuffer(base64.b64decode(doc.get("bits", ""), validate=True), dtype=np.uint8)
    size = int(np.prod(shape))
    if raw.size != (size + 7) // 8:
        raise ValueError(f"{what}: {raw.size} bytes of bits do not fit shape {list(shape)}")
    return np.unpackbits(raw, count=size).astype(bool).reshape(shape)


def pack_float16(array: np.ndarray) -> dict:
    """A float array as {'shape', 'float16'} (half precision: logits need no more to draw a mask)."""
    array = np.asarray(array, dtype=np.float16)
    return {"shape": list(array.shape), "float16": base64.b64encode(array.tobytes()).decode()}


def unpack_float16(doc: dict, what: str = "logits") -> np.ndarray:
    """The float32 array of ``pack_float16``."""
    shape = _shape(doc, what)
    raw = np.frombuffer(base64.b64decode(doc.get("float16", ""), validate=True), dtype=np.float16)
    if raw.size != int(np.prod(shape)):
        raise ValueError(f"{what}: {raw.size} values do not fit shape {list(shape)}")
    return raw.astype(np.float32).reshape(shape)


def logits_on_mask_side(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Logits with every value on its mask's side of 0 (mask = logits > 0 holds exactly)."""
    tiny = np.float32(1e-6)
    return np.where(mask, np.maximum(logits, tiny), np.minimum(logits, 0.0)).astype(np.float32)


def prompt_to_json(prompt: Prompt) -> dict:
    """{'box', 'points', 'labels'} of a Prompt (None where absent)."""
    return {"box": None if prompt.box is None else [float(v) for v in prompt.box],
            "points": None if prompt.points is None else [[float(a), float(b)] for a, b in prompt.points],
            "labels": None if prompt.labels is None else [int(v) for v in prompt.labels]}


def plan_to_json(plan: ResizePlan) -> dict:
    """How the slice maps onto the model input (for rebuilding the slice-grid logits)."""
    return {"original": list(plan.original), "resized": list(plan.resized), "target": int(plan.target)}


def plan_from_json(doc: dict) -> ResizePlan:
    try:
        original, resized, target = tuple(int(v) for v in doc["original"]), tuple(int(v) for v in doc["resized"]), \
            int(doc["target"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"plan: expected original, resized and target sizes, got {doc!r}") from None
    if len(original) != 2 or len(resized) != 2 or not 0 < target <= MAX_SIDE:
        raise ValueError(f"plan: expected 2D sizes, got {doc!r}")
    return ResizePlan(original, resized, target)


def _slice_logits(low_res: np.ndarray, plan: ResizePlan, masks: np.ndarray) -> np.ndarray:
    logits = logits_to_slice(low_res, plan)
    if logits.shape != masks.shape:
        raise ValueError(f"masks {masks.shape} do not fit the plan's slice {plan.original}")
    return logits_on_mask_side(logits, masks)


def prediction_to_json(prediction: Prediction, plan: ResizePlan) -> dict:
    """A Prediction's masks (bits), scores and low-resolution logits (float16), with its plan."""
    return {"masks": pack_bits(prediction.masks), "scores": [float(s) for s in prediction.scores],
            "low_res_logits": pack_float16(prediction.low_res_logits), "plan": plan_to_json(plan)}


def prediction_from_json(doc: dict) -> Prediction:
    """The Prediction of ``prediction_to_json`` (masks exact, logits to float16 precision)."""
    masks = unpack_bits(doc["masks"], "masks")
    low_res = unpack_float16(doc["low_res_logits"], "low_res_logits")
    scores = np.asarray(doc["scores"], dtype=np.float32)
    if not masks.ndim == 3 or not masks.shape[0] == scores.shape[0] == low_res.shape[0]:
        raise ValueError(f"prediction: masks {masks.shape}, scores {scores.shape} and low-resolution logits "
                         f"{low_res.shape} do not agree")
    logits = _slice_logits(low_res, plan_from_json(doc["plan"]), masks)
    return Prediction(masks=masks, scores=scores, low_res_logits=low_res, logits=logits)


def result_to_json(result: SliceResult, plan: ResizePlan) -> dict:
    """One propagated slice: index, source, score, mask (bits), low-resolution logits (float16), plan."""
    return {"index": int(result.index), "source": result.source, "score": float(result.score),
            "mask": pack_bits(result.mask), "low_res_logits": pack_float16(result.low_res_logits),
            "plan": plan_to_json(plan)}


def result_from_json(doc: dict) -> SliceResult:
    """The SliceResult of ``result_to_json`` (its mask exactly the server's)."""
    mask = unpack_bits(doc["mask"], f"slice {doc.get('index')} mask")
    low_res = unpack_float16(doc["low_res_logits"], "low_res_logits")
    logits = _slice_logits(low_res[None], plan_from_json(doc["plan"]), mask[None])[0]
    return SliceResult(int(doc["index"]), logits, float(doc["score"]), low_res, str(doc["source"]))
