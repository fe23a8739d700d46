"""How long the DicomTeamAnnotate panel's autosave holds the GUI, on the shared abdominal CT's organ map.

Ours: the main-thread part of an autosave (DicomTeamAnnotateLogic.draftSnapshot: the segmentation
node read into arrays on the case grid, plus the change digest); writing the .seg.nrrd happens on a
worker thread and is reported separately. Peer: saving the same segmentation node the plain Slicer
way, synchronously on the main thread (vtkMRMLSegmentationStorageNode.WriteData, compressed .seg.nrrd).
Headless with slicer-core (real MRML nodes and storage node). Last line: ours, peer, ratio.

    python benchmarks/bench_gui_autosave.py [--repeat 3] [--stack K]

``--stack K`` repeats the organ map K times along the slice axis (20 -> 20K slices) to show a
full-length CT's figure.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing"))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stack", type=int, default=1, help="repeat the organ map K times along k")
    args = parser.parse_args(argv)

    import gui_support

    M = gui_support.load_module("DicomTeamAnnotate")
    import numpy as np
    import slicer

    from DicomTeamAnnotateLib.core.volume import Volume
    from DicomTeamAnnotateLib.io.segmentations import read_segmentation
    from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node, volume_to_node

    organs = ROOT.parent / "shared" / "data" / "ct_abdomen" / "organs.nii.gz"
    if not organs.exists():
        print(f"no data: {organs}")
        return 2
    seg = read_segmentation(organs)
    if args.stack > 1:
        from dataclasses import replace

        from DicomTeamAnnotateLib.core.segmentation import Segmentation

        size = (seg.geometry.size[0], seg.geometry.size[1], seg.geometry.size[2] * args.stack)
        seg = Segmentation(np.tile(seg.layers, (1, args.stack, 1, 1)), replace(seg.geometry, size=size), seg.segments)
    image = Volume(np.zeros(seg.geometry.shape, dtype=np.int16), seg.geometry)
    volume_node = volume_to_node(image, name="ct")
    seg_node = segmentation_to_node(seg, reference_volume_node=volume_node, name="organs")
    session = M.CaseSession(store=None, case_id="ct", work_dir=None, image_path=None, geometry=seg.geometry,
                            labels=[], parent=None, volume_node=volume_node, segmentation_node=seg_node,
                            source="version")
    logic = M.DicomTeamAnnotateLogic()
    snapshot = {}

    def ours():
        snapshot["value"] = logic.draftSnapshot(session)

    ours_best, ours_median = best_of(ours, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd

        write_best, _ = best_of(lambda: write_seg_nrrd(snapshot["value"][0], Path(tmp) / "draft.seg.nrrd"), args.repeat)
        storage = slicer.vtkMRMLSegmentationStorageNode()
        slicer.mrmlScene.AddNode(storage)
        storage.SetFileName(str(Path(tmp) / "peer.seg.nrrd"))
        storage.SetUseCompression(True)

        def peer():
            if not storage.WriteData(seg_node):
                raise RuntimeError("Slicer's storage node could not write the segmentation")

        peer_best, peer_median = best_of(peer, args.repeat)
    size = "x".join(str(s) for s in seg.geometry.size)
    print(f"segmentation: {len(seg.segments)} segments on {size} voxels, {seg.layers.shape[0]} layer(s)")
    print(f"ours: main-thread pause per autosave (snapshot + digest): best {ours_best:.3f} s, median {ours_median:.3f} s")
    print(f"ours: .seg.nrrd write on the worker thread (GUI not held): best {write_best:.3f} s")
    print(f"peer: Slicer storage node WriteData on the main thread: best {peer_best:.3f} s, median {peer_median:.3f} s")
    print(f"GUI pause per autosave: ours {ours_best:.3f} s, peer {peer_best:.3f} s, ratio {peer_best / ours_best:.1f}x "
          f"shorter (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
