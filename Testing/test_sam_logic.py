"""SamPrompt's model-free logic: planes, preprocessing plans, the embedding cache, propagation helpers."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from DicomTeamAnnotateLib.core.geometry import Geometry
from SamPromptLib import planes
from SamPromptLib.backends import Embedding, available_backends, create_backend
from SamPromptLib.cache import EmbeddingCache, Precomputer
from SamPromptLib.preprocess import logits_to_slice, plan_resize, resize_and_pad
from SamPromptLib.propagate import Prompt, Propagator, SliceResult, grow_box, reconcile


def _volume():
    k, j, i = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
    return 100 * k + 10 * j + i  # value encodes (k, j, i)


@pytest.mark.parametrize("plane,index,expected_shape,pixel", [
    ("axial", 2, (5, 6), lambda a, b, s: 100 * s + 10 * b + a),      # rows j, columns i
    ("coronal", 3, (4, 6), lambda a, b, s: 100 * b + 10 * s + a),    # rows k, columns i
    ("sagittal", 1, (4, 5), lambda a, b, s: 100 * b + 10 * a + s),   # rows k, columns j
])
def test_slices_follow_the_in_plane_axes(plane, index, expected_shape, pixel):
    vol = _volume()
    image = planes.extract_slice(vol, plane, index)
    assert image.shape == expected_shape == planes.slice_shape(vol.shape, plane)
    for b in range(image.shape[0]):
        for a in range(image.shape[1]):
            assert image[b, a] == pixel(a, b, index)  # pixel (column A, row B) = voxel of (A, B)
    out = np.zeros_like(vol)
    planes.insert_slice(out, plane, index, image)
    assert np.array_equal(planes.extract_slice(out, plane, index), image) and out.sum() == image.sum()


def test_plane_spacing_counts_and_errors():
    g = Geometry((6, 5, 4), spacing=(0.5, 0.7, 3.0))
    assert planes.pixel_spacing(g, "axial") == (0.7, 0.5)
    assert planes.pixel_spacing(g, "coronal") == (3.0, 0.5)
    assert planes.pixel_spacing(g, "sagittal") == (3.0, 0.7)
    assert [planes.slice_count((4, 5, 6), p) for p in planes.PLANES] == [4, 5, 6]
    with pytest.raises(ValueError, match="outside"):
        planes.extract_slice(_volume(), "axial", 4)
    with pytest.raises(ValueError, match="plane"):
        planes.extract_slice(_volume(), "oblique", 0)
    assert planes.parse_box("9,8,1,2") == (1, 2, 9, 8)
    assert planes.parse_point("3,4,-") == ((3.0, 4.0), 0)
    with pytest.raises(ValueError):
        planes.parse_point("3,4")
    m = np.zeros((5, 6), bool)
    m[1:3, 2:5] = True
    assert planes.bounding_box(m) == (2, 1, 4, 2) and planes.bounding_box(~np.ones_like(m)) is None


def test_resize_plan_keeps_physical_aspect_and_maps_prompts():
    square = plan_resize((512, 512), 256)
    assert square.resized == (256, 256)
    assert np.allclose(square.box_to_model((100, 50, 300, 200)), (50, 25, 150, 100))
    coronal = plan_resize((20, 512), 256, spacing=(2.0, 0.9765625))  # 40 mm x 500 mm
    assert coronal.resized == (20, 256)
    assert np.allclose(coronal.points_to_model([(512, 20)]), [(256, 20)])
    assert plan_resize((20, 512), 256).resized == (10, 256)  # without spacing: pixel aspect


def test_resize_and_pad_and_logits_back_to_the_slice_grid():
    plan = plan_resize((20, 512), 256, spacing=(2.0, 0.9765625))
    image = np.zeros((20, 512), np.float32)
    image[5:15, 100:200] = 0.5
    x = resize_and_pad(image, plan)
    assert x.shape == (3, 256, 256) and x.dtype == np.float32
    assert x.max() == pytest.approx(1.0) and x[:, 20:, :].max() == 0.0  # min-max normalised, padded below
    low_res = np.full((1, 256, 256), -5.0, np.float32)
    low_res[0, 5:15, 50:100] = 5.0  # model pixels = slice rows 5..14, columns 100..199
    logits = logits_to_slice(low_res, plan)
    assert logits.shape == (1, 20, 512)
    mask = logits[0] > 0
    assert mask[10, 150] and not mask[10, 300] and not mask[2, 150]


@pytest.mark.parametrize("shape", [(512, 512), (20, 256), (300, 484), (97, 1024), (333, 777)])
def test_slice_logits_without_torch_equal_torchs(shape, monkeypatch):
    """A remote client in a Slicer without PyTorch rebuilds the slice logits in numpy: the same as torch's."""
    plan = plan_resize(shape, 256)
    low_res = np.random.default_rng(sum(shape)).normal(scale=5.0, size=(3, 256, 256)).astype(np.float32)
    with_torch = logits_to_slice(low_res, plan)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError, as in Slicer without PyTorch
    monkeypatch.setitem(sys.modules, "torch.nn.functional", None)
    without = logits_to_slice(low_res, plan)
    assert without.shape == with_torch.shape == (3, *shape) and without.dtype == np.float32
    assert np.abs(without - with_torch).max() < 1e-4
    assert np.array_equal(without > 0, with_torch > 0)


def test_cache_is_lru_bounded_by_bytes():
    def emb(n_floats):
        return Embedding(np.zeros(n_floats, np.float32), plan=None)

    cache = EmbeddingCache(max_bytes=1000)
    cache.put("a", emb(100))  # 400 bytes
    cache.put("b", emb(100))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", emb(100))           # 1200 > 1000: evicts b, the least recently used
    assert "b" not in cache and "a" in cache and "c" in cache and cache.nbytes == 800
    cache.put("huge", emb(1000))       # larger than the bound: not cached
    assert "huge" not in cache
    cache.set_max_bytes(500)
    assert len(cache) == 1 and cache.stats()["max_bytes"] == 500
    with pytest.raises(ValueError):
        EmbeddingCache(0)


def test_precomputer_fills_the_cache_in_the_background_newest_first():
    cache = EmbeddingCache()
    order, gate = [], threading.Event()

    started = threading.Event()

    def compute(key):
        started.set()
        gate.wait(5)
        order.append(key)
        cache.put(key, Embedding(np.zeros(4, np.float32), plan=None))

    pre = Precomputer(cache, compute)
    try:
        pre.request([1, 2, 3])
        assert started.wait(10)  # the worker holds 1
        pre.request([9, 8], replace=True)  # the user moved: 2, 3 are dropped, 9 is most urgent
        gate.set()
        assert pre.wait_idle(10)
        assert order[0] == 1 and order[1:] == [9, 8]
        pre.request([9, 8, 7])
        assert pre.wait_idle(10) and order[-1] == 7 and order.count(9) == 1
    finally:
        pre.stop()


def test_prompt_validation_and_box_growth():
    assert Prompt(box=(9, 8, 1, 2)).box == (1.0, 2.0, 9.0, 8.0)
    assert Prompt(points=[(1, 2)]).labels == [1]
    with pytest.raises(ValueError):
        Prompt()
    with pytest.raises(ValueError):
        Prompt(points=[(1, 2)], labels=[1, 0])
    assert grow_box((10, 10, 20, 20), 3, 0.1, (100, 100)) == (7, 7, 23, 23)          # 3 px floor
    assert grow_box((10, 10, 110, 60), 3, 0.1, (100, 200)) == (0, 0, 120, 70)        # 10% of 100
    assert grow_box((0, 0, 99, 99), 3, 0.1, (100, 100)) == (0, 0, 99, 99)            # clipped


def test_reconcile_weights_by_distance():
    def res(k, value):
        return SliceResult(k, np.full((2, 2), value, np.float32), 0.9, np.zeros((256, 256), np.float32), "propagated")

    forward = {1: res(1, 4.0), 2: res(2, 4.0), 3: res(3, 4.0)}
    backward = {3: res(3, -4.0), 2: res(2, -4.0)}
    out = reconcile(0, 4, forward, backward)
    assert out[1] is forward[1]                          # only one chain reached it
    assert out[2].logits[0, 0] == pytest.approx(0.0)     # halfway: equal weights
    assert out[3].logits[0, 0] == pytest.approx(-2.0)    # nearer to slice 4: 1/4 forward, 3/4 backward
    assert out[3].source == "reconciled"


def _scripted_model(radius: dict, score: dict, calls: list):
    """A stand-in model (the stop rules are logic, not learning): slice k answers a disk of
    ``radius[k]`` pixels centred in the prompted box, with the quality score ``score[k]``."""
    from SamPromptLib.backends import Prediction

    rows, cols = np.mgrid[:64, :64]

    def predict(k, prompt, mask_input):
        calls.append((k, prompt.box, mask_input))
        a0, b0, a1, b1 = prompt.box
        disk = (cols - (a0 + a1) / 2) ** 2 + (rows - (b0 + b1) / 2) ** 2 <= radius.get(k, 0) ** 2
        logits = np.where(disk, 5.0, -5.0).astype(np.float32)[None]
        return Prediction(disk[None], np.array([score.get(k, 0.9)], np.float32),
                          np.full((1, 256, 256), float(k), np.float32), logits)
    return predict


@pytest.mark.parametrize("radius,score,kept,stop", [
    ({k: 8 for k in range(20)}, {13: 0.3}, [11, 12], "quality score 0.30 < 0.5"),       # the model's own doubt
    ({10: 8, 11: 8, 12: 0}, {}, [11], "mask vanished"),                                 # 1 px left (< 4)
    ({10: 4, 11: 4, 12: 14}, {}, [11], "area jumped (leak)"),                            # x12 area
    ({10: 10, 11: 7, 12: 4, 13: 6, 14: 8}, {}, [11, 12], "area regrew after shrinking"),  # the neighbour organ
])
def test_propagation_stops_where_its_rules_say(radius, score, kept, stop):
    calls = []
    propagator = Propagator(_scripted_model(radius, score, calls), 20)
    out = propagator.run({10: Prompt(box=(22, 22, 42, 42))}, "up")
    assert sorted(out) == [10, *kept]
    (where, reason), = propagator.stops
    assert where == kept[-1] + 1 and reason.startswith(stop)
    # each step is prompted by the previous mask's box grown by the 3 px margin, no mask prompt here
    k, box, mask_input = calls[1]
    assert k == 11 and mask_input is None
    r = radius[10]
    assert box == pytest.approx((32 - r - 3, 32 - r - 3, 32 + r + 3, 32 + r + 3), abs=1.01)


def test_mask_prompts_feed_the_previous_logits_forward():
    calls = []
    propagator = Propagator(_scripted_model({k: 6 for k in range(8)}, {}, calls), 8, mask_prompts=True)
    out = propagator.run({4: Prompt(box=(20, 20, 40, 40))}, "both")
    assert sorted(out) == list(range(8))
    fed = {k: m for k, _, m in calls}
    assert fed[4] is None  # the prompted slice
    assert fed[5][0, 0] == 4.0 and fed[7][0, 0] == 6.0 and fed[3][0, 0] == 4.0 and fed[0][0, 0] == 1.0


def test_backend_registry():
    assert {"litemedsam", "litemedsam-torch", "sam-vit_b"} <= set(available_backends())
    with pytest.raises(ValueError, match="unknown SAM backend"):
        create_backend("nope")


def test_shared_settings_validation():
    from SamPromptLib import shared

    s = shared.model_settings({"cache_mb": "256", "device": "", "checkpoint": None})
    assert s["cache_mb"] == 256 and s["device"] == "cpu" and s["backend"] == "litemedsam" and s["checkpoint"] == ""
    for bad, field in (({"backend": "x"}, "backend"), ({"device": "tpu"}, "device"), ({"cache_mb": "lots"}, "cache_mb"),
                       ({"cache_mb": 1}, "cache_mb")):
        with pytest.raises(ValueError, match=field):
            shared.model_settings(bad)
    assert "cpu" in shared.available_devices()
    cache = shared.shared_cache()
    before = cache.max_bytes
    try:
        assert shared.shared_cache(64 * 1024 * 1024) is cache and cache.max_bytes == 64 * 1024 * 1024
    finally:
        cache.set_max_bytes(before)  # the process-wide cache is shared with the other SAM tests
