"""Remote SAM: prompt latency and propagation through the project server on loopback vs in-process.

Same backend, same device, same run: a project holding the shared CT is served on 127.0.0.1
with the SAM plugin (``--sam-device``, ``--sam-backends``); the in-process segmenter loads the
same backend on the same device.  Figures:
- prompt -> mask on a slice whose embedding is cached (both sides), median of ``--prompts``
  jittered boxes, timed alternately; remote adds HTTP, JSON, the mask bits and float16 logits.
  Goal: remote adds <= 15 ms per prompt.
- embedding per slice (in-process ``set_image``, median; the server runs the same model).
- propagation of the liver from one box on the middle slice through all 20 slices with no
  embedding cached (a new window each repeat makes every embedding new on both sides), best of
  ``--repeat``, and the 30-slice estimate.
The machine may be shared: runs alternate between remote and in-process, best/median as said.

    python benchmarks/bench_sam_remote.py [--device cpu|cuda] [--backend litemedsam] [--prompts 30] [--repeat 2]
The last line prints remote, in-process and the difference / ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ct_abdomen"
LABELS = [{"name": "liver", "value": 1, "color": [0.86, 0.55, 0.44]}]


def make_project(folder: Path) -> str:
    """A project with the shared CT as case 'ct1', assigned to annotator alice; returns her token."""
    from DicomTeamAnnotateLib.store import admin

    labels = folder / "labels.json"
    labels.write_text(json.dumps(LABELS), encoding="utf-8")
    admin.init_project(folder / "project", "bench", labels)
    admin.add_case(folder / "project", "ct1", DATA / "dicom", "P001")
    token = admin.add_member(folder / "project", "alice", "annotator")
    admin.assign(folder / "project", "ct1", "alice")
    return token


def liver_mask(volume):
    """The reference liver on the case image's grid (aligned by physical geometry)."""
    from DicomTeamAnnotateLib.core.geometry import resample_like
    from DicomTeamAnnotateLib.io.volumes import read_volume

    ref = read_volume(DATA / "organs.nii.gz")
    value = json.loads((DATA / "organs.json").read_text(encoding="utf-8"))["labels"]["liver"]
    return resample_like(ref.array, ref.geometry, volume.geometry, label=True) == value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    parser.add_argument("--backend", default="litemedsam")
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import requests

    from DicomTeamAnnotateLib.io.volumes import read_volume
    from DicomTeamAnnotateLib.store.server import BackgroundServer
    from SamPromptLib import server_plugin
    from SamPromptLib.backends import create_backend
    from SamPromptLib.planes import bounding_box
    from SamPromptLib.propagate import Prompt
    from SamPromptLib.segmenter import SamSegmenter

    options = argparse.Namespace(sam_device=args.device, sam_backends=args.backend, sam_cache_mb=2048)
    with tempfile.TemporaryDirectory() as tmp:
        token = make_project(Path(tmp))
        with BackgroundServer(Path(tmp) / "project", plugins={"sam": server_plugin}, options=options) as server:
            r = requests.get(f"{server.url}/api/v1/cases/ct1/image", headers={"Authorization": f"Bearer {token}"},
                             timeout=120)
            (Path(tmp) / "ct1.nrrd").write_bytes(r.content)
            image = read_volume(Path(tmp) / "ct1.nrrd")  # what the annotator has: the store's image
            liver = liver_mask(image)
            t = time.perf_counter()
            local = SamSegmenter(image, create_backend(args.backend, device=args.device), window=(40, 400))
            load_s = time.perf_counter() - t
            remote = SamSegmenter(image, "remote", window=(40, 400), store=server.url, case="ct1", user="alice",
                                  token=token, model=args.backend, precompute=False)
            print(f"backend {args.backend} on {args.device} (in-process: {local.backend.name}, loaded in {load_s:.1f} s; "
                  f"server: {remote.backend.describe()['model']} on {remote.backend.device}); loopback 127.0.0.1")
            box = bounding_box(liver[10])
            for seg in (local, remote):  # embeddings of slice 10 computed and cached on each side
                seg.segment_slice("axial", 10, box=box)
                seg.segment_slice("axial", 10, box=box)
            prompt = {"remote": [], "in-process": []}
            for n in range(args.prompts):
                jitter = (n % 5) - 2
                b = (box[0] + jitter, box[1], box[2], box[3] - jitter)
                for name, seg in (("remote", remote), ("in-process", local)):
                    t = time.perf_counter()
                    seg.segment_slice("axial", 10, box=b)
                    prompt[name].append(time.perf_counter() - t)
            images = [local.slice_image("axial", k) for k in range(20)]
            embed = []
            for k in range(1, 7):
                local.backend.set_image(images[k])
                if args.device == "cuda":
                    import torch

                    torch.cuda.synchronize()
                t = time.perf_counter()
                local.backend.set_image(images[k])
                if args.device == "cuda":
                    torch.cuda.synchronize()
                embed.append(time.perf_counter() - t)
            prop = {"remote": [], "in-process": []}
            slices = 0
            for r in range(args.repeat):
                window = (40.0 + r + 1, 400.0)  # new window: no embedding cached on either side
                for name, kwargs in (("remote", {"store": server.url, "case": "ct1", "user": "alice", "token": token,
                                                 "model": args.backend, "precompute": False}),
                                     ("in-process", {})):
                    seg = SamSegmenter(image, "remote" if name == "remote" else local.backend, window=window, **kwargs)
                    t = time.perf_counter()
                    out = seg.propagate("axial", {10: Prompt(box=box)}, "both")
                    prop[name].append(time.perf_counter() - t)
                    slices = len(out)
    pr, pl = statistics.median(prompt["remote"]), statistics.median(prompt["in-process"])
    gr, gl = min(prop["remote"]), min(prop["in-process"])
    e = statistics.median(embed)
    print(f"prompt->mask (cached embedding, median of {args.prompts}): remote {1000 * pr:.1f} ms, in-process "
          f"{1000 * pl:.1f} ms")
    print(f"embedding per slice ({args.device}, median of {len(embed)}): {e:.3f} s")
    print(f"propagation of {slices} slices, nothing cached (best of {args.repeat}): remote {gr:.2f} s "
          f"(30 slices ~ {30 * gr / slices:.2f} s), in-process {gl:.2f} s (30 slices ~ {30 * gl / slices:.2f} s)")
    print(f"remote: prompt {1000 * pr:.1f} ms, propagation {gr:.2f} s | in-process: prompt {1000 * pl:.1f} ms, "
          f"propagation {gl:.2f} s | remote adds {1000 * (pr - pl):.1f} ms per prompt (goal <= 15 ms), propagation "
          f"remote/in-process {gr / gl:.2f}x ({args.device}, {args.backend})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
