"""SamPromptLogic (the panel's logic) headless (see gui_support.py): the model settings as the effect
reads them, and a real LiteMedSAM (shipped weights, PyTorch runtime, CPU) precomputing a volume
node's slices into the cache the effect uses, with the node's display window.
"""
from __future__ import annotations

from gui_support import run_scenario


def test_settings_and_whole_volume_precompute_into_the_shared_cache(tmp_path):
    out = run_scenario("samprompt_settings", tmp_path, env={"DICOMTEAM_CACHE_DIR": str(tmp_path / "cache")})
    assert out["defaults"] == {"backend": "litemedsam", "checkpoint": "", "device": "cpu", "cacheMB": 512,
                               "precomputeNeighbours": 2}
    assert out["read_back"], "settings read from strings (as QSettings returns them) equal what was written"
    assert out["keys"] == ["SamPrompt/backend", "SamPrompt/cacheMB", "SamPrompt/checkpoint", "SamPrompt/device",
                           "SamPrompt/precomputeNeighbours"]
    refusals = out["refusals"]
    assert "device must be one of" in refusals["{'device': 'tpu'}"]
    assert "unknown SAM backend 'nope'" in refusals["{'backend': 'nope'}"]
    assert "at least 16 MB" in refusals["{'cacheMB': 1}"]
    assert "whole numbers" in refusals["{'precomputeNeighbours': 'x'}"]
    assert out["broken_store_gives_defaults"]
    assert "checkpoint" in out["sam_without_checkpoint"]
    assert out["options"] == {"backend": "litemedsam-torch", "checkpoint": None, "device": "cpu",
                              "precompute_neighbours": 3}

    assert out["window"] == [50.0, 350.0], "the node's display window is what the model sees"
    assert out["same_segmenter"], "the model is loaded once per volume and settings"
    assert out["total"] == 4 and out["cached"] == 4 and out["cache_bound"] == 64 * 2**20
    assert out["note_when_all_fit"] == ""
    assert out["effect_hit"], "a segmenter built as the effect builds it reuses the precomputed embeddings"
    assert out["queued_then_pending"][0] == 64 and out["queued_then_pending"][1] <= 1
    assert out["note_when_too_small"].startswith("The cache holds 1 of 4 slices")
    assert out["released"] == 0
