"""The SamPrompt panel's logic headless (see gui_support.py) on SamPromptLib.shared, the one home of the
model settings, models, segmenters and embedding cache: a real LiteMedSAM (shipped weights, PyTorch
runtime, CPU) precomputes a volume node's slices, and the effect's own path (its Volume from the
Segment Editor's source image, its window) finds those very embeddings.
"""
from __future__ import annotations

from gui_support import run_scenario


def test_settings_and_whole_volume_precompute_into_the_effects_cache(tmp_path):
    out = run_scenario("samprompt_settings", tmp_path, env={"DICOMTEAM_CACHE_DIR": str(tmp_path / "cache")})
    assert out["defaults"] == {"backend": "litemedsam", "checkpoint": "", "device": "cpu", "cache_mb": 512,
                               "precompute_neighbours": 2}
    assert out["read_back"], "settings read from strings (as QSettings returns them) equal what was written"
    assert out["keys"] == ["SamPrompt/backend", "SamPrompt/cache_mb", "SamPrompt/checkpoint", "SamPrompt/device",
                           "SamPrompt/precompute_neighbours"]
    assert out["cache_bound_after_write"] == 64 * 2**20, "saving the settings resizes the shared cache"
    refusals = out["refusals"]
    assert "setting 'device'" in refusals["{'device': 'tpu'}"]
    assert "unknown SAM backend 'nope'" in refusals["{'backend': 'nope'}"]
    assert "setting 'cache_mb' must be at least 16" in refusals["{'cache_mb': 1}"]
    assert "setting 'precompute_neighbours' must be an integer" in refusals["{'precompute_neighbours': 'x'}"]
    assert "0..50" in refusals["{'precompute_neighbours': 99}"]
    assert "setting 'device'" in out["broken_store"]
    assert "setting 'checkpoint'" in out["sam_without_checkpoint"]
    assert out["sam_segmenter_without_checkpoint"] == out["sam_without_checkpoint"]

    assert out["window"] == [50.0, 350.0], "the node's display window is what the model sees"
    assert out["same_segmenter"], "the model is loaded once per volume and settings"
    assert out["total"] == 4 and out["cached"] == 4 and out["cache_bound"] == 64 * 2**20
    assert out["note_when_all_fit"] == ""
    assert out["effect_same_key"], "the effect's Volume and window give the panel's cache keys"
    assert out["effect_same_segmenter"], "the effect gets the segmenter the panel precomputed with"
    assert out["effect_hit"], "the effect reads the precomputed embedding: no new one computed"
    assert out["queued_then_pending"][0] == 64 and out["queued_then_pending"][1] <= 1
    assert out["note_when_too_small"].startswith("The cache holds 1 of 4 slices")
    assert out["after_resize"][:2] == [128 * 2**20, 1], "a new cache size keeps the loaded model and segmenter"
    assert out["after_backend_change"] == [0, 0, 0], "another backend resets models, segmenters and embeddings"
    assert out["released"] == 0
