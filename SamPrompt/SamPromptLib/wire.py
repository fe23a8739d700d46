"""The JSON form of prompts, masks and slice results between the remote backend and the server.

Arrays travel as base64 inside JSON (one documented shape for the OpenAPI spec, no second
content type): masks bit-packed (``np.packbits``; a 512 x 512 mask is 32 KiB), logits as
float16 (the mask is sent as bits, so the float16 rounding of a logit near 0 never flips a
pixel: ``result_from_json`` keeps every logit on its mask's side of 0).
"""
from __future__ import annotations

import base64

import numpy as np

from SamPromptLib.backends import Prediction
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


def prediction_to_json(prediction: Prediction) -> dict:
    """A Prediction's masks (bits), scores, logits and low-resolution logits (float16)."""
    return {"masks": pack_bits(prediction.masks), "scores": [float(s) for s in prediction.scores],
            "logits": pack_float16(prediction.logits), "low_res_logits": pack_float16(prediction.low_res_logits)}


def prediction_from_json(doc: dict) -> Prediction:
    """The Prediction of ``prediction_to_json`` (masks exact, logits to float16 precision)."""
    masks = unpack_bits(doc["masks"], "masks")
    logits = logits_on_mask_side(unpack_float16(doc["logits"], "logits"), masks)
    low_res = unpack_float16(doc["low_res_logits"], "low_res_logits")
    scores = np.asarray(doc["scores"], dtype=np.float32)
    if not (masks.shape == logits.shape and masks.shape[0] == scores.shape[0] == low_res.shape[0]):
        raise ValueError(f"prediction: masks {masks.shape}, logits {logits.shape}, scores {scores.shape} and "
                         f"low-resolution logits {low_res.shape} do not agree")
    return Prediction(masks=masks, scores=scores, low_res_logits=low_res, logits=logits)


def result_to_json(result: SliceResult) -> dict:
    """One propagated slice: index, source, score, mask (bits), logits and low-resolution logits (float16)."""
    return {"index": int(result.index), "source": result.source, "score": float(result.score),
            "mask": pack_bits(result.mask), "logits": pack_float16(result.logits),
            "low_res_logits": pack_float16(result.low_res_logits)}


def result_from_json(doc: dict) -> SliceResult:
    """The SliceResult of ``result_to_json`` (its mask exactly the server's)."""
    mask = unpack_bits(doc["mask"], f"slice {doc.get('index')} mask")
    logits = unpack_float16(doc["logits"], f"slice {doc.get('index')} logits")
    if logits.shape != mask.shape:
        raise ValueError(f"slice {doc.get('index')}: logits {logits.shape} and mask {mask.shape} differ in shape")
    return SliceResult(int(doc["index"]), logits_on_mask_side(logits, mask), float(doc["score"]),
                       unpack_float16(doc["low_res_logits"], "low_res_logits"), str(doc["source"]))
