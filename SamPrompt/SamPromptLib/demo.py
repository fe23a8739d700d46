"""Demo: segment an organ of the synthetic phantom from one box, propagate, write a picture.

    python -m SamPromptLib.demo --out demo-output [--organ liver]

Writes ``sam_<organ>.nii.gz`` (0/1 label map on the phantom's grid) and ``sam_<organ>.png``
(axial, coronal and sagittal planes through the organ with the result overlaid), and returns
the 3D Dice against the phantom's own label.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.metrics import dice
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.core.windowing import render_mpr_png
from DicomTeamAnnotateLib.demo.phantom import make_phantom
from DicomTeamAnnotateLib.io.volumes import write_volume
from SamPromptLib.planes import bounding_box
from SamPromptLib.segmenter import SamSegmenter


def run_demo(out_dir, organ: str = "liver", seed: int = 0) -> dict:
    """Segment ``organ`` of ``make_phantom(seed)`` from one box on its middle slice; write mask + PNG."""

    phantom = make_phantom(seed=seed)
    if organ not in phantom.label_values:
        raise ValueError(f"organ must be one of {', '.join(phantom.label_values)}, got {organ!r}")
    truth = phantom.labels == phantom.label_values[organ]
    k = int(np.flatnonzero(truth.any(axis=(1, 2))).mean())
    box = bounding_box(truth[k])
    segmenter = SamSegmenter(phantom.volume)
    mask = segmenter.segment("axial", k, box=box, propagate=True)
    score = float(dice(mask.array.astype(bool), truth))
    out_dir = Path(out_dir)
    mask_path = write_volume(mask, out_dir / f"sam_{organ}.nii.gz")
    centre = phantom.volume.geometry.index_to_world(np.argwhere(mask.array)[:, ::-1].mean(axis=0)) \
        if mask.array.any() else None
    labels = Segmentation.from_masks({f"{organ} (SAM)": mask.array.astype(bool)}, mask.geometry,
                                     colors={f"{organ} (SAM)": (1.0, 0.55, 0.1)})
    png_path = render_mpr_png(phantom.volume, out_dir / f"sam_{organ}.png", segmenter.window, point=centre,
                              labels=labels, title=f"SAM Prompt ({segmenter.backend.name}): {organ} from one box "
                                                   f"on slice {k}, propagated; Dice {score:.3f}")
    return {"organ": organ, "slice": k, "box": box, "dice": score, "mask": str(mask_path), "png": str(png_path),
            "slices": mask.metadata["sam_slices"], "stops": segmenter.last_stops}


def demo_step(out, ctx: dict) -> str:
    """`make demo`'s SAM step (entry point ``dicomteam.demo``): one line for the summary."""
    summary = run_demo(out / "sam", organ="liver")
    return (f"{summary['organ']} from one box on slice {summary['slice']}: 3D Dice {summary['dice']:.3f}; "
            f"picture {summary['png']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output")
    parser.add_argument("--organ", default="liver")
    args = parser.parse_args(argv)
    result = run_demo(args.out, args.organ)
    print(f"SAM demo: {result['organ']} from one box on slice {result['slice']}: Dice {result['dice']:.3f}; "
          f"wrote {result['mask']} and {result['png']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
