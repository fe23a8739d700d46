"""Write + read a large .seg.nrrd: ours (segio, pynrrd) against Slicer's vtkMRMLSegmentationStorageNode.

The segmentation is the shared multi-organ label map (512 x 512 x 20, 31 segments) stacked to
``--slices`` slices (default 300, a full abdominal CT), plus one overlapping segment so that the
file has two layers.  Both sides write and read the same segmentation in the same run (Slicer's
side through slicer-core's storage node, from a segmentation node built once beforehand); best of
``--repeat`` runs.  The last line prints both times (write + read) and the ratio ours / Slicer.

    python benchmarks/bench_segio.py [--slices 300] [--repeat 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ORGANS = ROOT.parent / "shared" / "data" / "ct_abdomen" / "organs.nii.gz"


def build(slices: int):
    from DicomTeamAnnotateLib.core.geometry import Geometry
    from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
    from DicomTeamAnnotateLib.io import segmentations as segio

    base = segio.read_segmentation(ORGANS)
    reps = -(-slices // base.geometry.size[2])
    layer = np.concatenate([base.layers[0]] * reps, axis=0)[:slices]
    g = base.geometry
    geometry = Geometry(size=(g.size[0], g.size[1], slices), spacing=g.spacing, origin=g.origin, direction=g.direction)
    overlap = np.zeros_like(layer)
    overlap[layer == base.segment("liver").label_value] = 1  # a second layer, as overlapping segments give
    segments = list(base.segments) + [Segment("liver_lesion_zone", 1, (1.0, 0.2, 0.2), layer=1)]
    return Segmentation(np.stack([layer, overlap]), geometry, segments)


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    if not ORGANS.exists():
        print(f"missing test data: {ORGANS}", file=sys.stderr)
        return 2
    import slicer

    from DicomTeamAnnotateLib.io import segmentations as segio
    from DicomTeamAnnotateLib.slicer import mrml

    seg = build(args.slices)
    scene = slicer.vtkMRMLScene()
    node = mrml.segmentation_to_node(seg, scene)
    with tempfile.TemporaryDirectory() as tmp:
        ours_path, theirs_path = Path(tmp) / "ours.seg.nrrd", Path(tmp) / "slicer.seg.nrrd"
        ours_write = best(lambda: segio.write_seg_nrrd(seg, ours_path), args.repeat)
        ours_read = best(lambda: segio.read_segmentation(ours_path), args.repeat)

        def slicer_write():
            storage = slicer.vtkMRMLSegmentationStorageNode()
            scene.AddNode(storage)
            storage.SetFileName(str(theirs_path))
            assert storage.WriteData(node) == 1

        def slicer_read():
            target = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
            storage = slicer.vtkMRMLSegmentationStorageNode()
            scene.AddNode(storage)
            storage.SetFileName(str(theirs_path))
            assert storage.ReadData(target) == 1

        theirs_write = best(slicer_write, args.repeat)
        theirs_read = best(slicer_read, args.repeat)
        check = segio.read_segmentation(theirs_path, reference=seg.geometry)
        assert all(np.array_equal(check.mask(n), seg.mask(n)) for n in ("liver", "spleen", "liver_lesion_zone"))
        sizes = ours_path.stat().st_size / 1e6, theirs_path.stat().st_size / 1e6
    voxels = int(np.prod(seg.geometry.size))
    print(f"segmentation: {seg.geometry.size} x {seg.layers.shape[0]} layers = {voxels * seg.layers.shape[0] / 1e6:.0f} "
          f"M voxels, {len(seg.segments)} segments")
    print(f"ours:   write {ours_write:.2f} s, read {ours_read:.2f} s, file {sizes[0]:.1f} MB")
    print(f"Slicer: write {theirs_write:.2f} s, read {theirs_read:.2f} s, file {sizes[1]:.1f} MB")
    ours, theirs = ours_write + ours_read, theirs_write + theirs_read
    print(f"seg.nrrd write+read: ours {ours:.2f} s, Slicer storage node {theirs:.2f} s, ratio {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
