"""Annotation effort without humans: NoC@85 / NoC@90 of SAM on the shared CT, from nothing vs from a prediction.

NoC@X, the interactive-segmentation literature's standard: the number of prompts a simulated
annotator needs until the organ's 3D Dice with the reference reaches X (capped at ``--max-prompts``;
a capped organ counts the cap).  The annotator: each next prompt goes on the axial slice with the
largest error (reference XOR current mask); where the reference has the organ there, the prompt is
a box around it (LiteMedSAM takes boxes; a click becomes box growth), and where it has none, the
slice is erased (one editor operation, counted as a prompt).  Through SamPromptLib's public API
(``SamSegmenter`` + ``PromptSession``, backend ``litemedsam``) exactly as the Segment Editor effect
uses it: from nothing, the first box is propagated through the volume; every correction (from nothing or
from a prediction) is propagated from its slice to the next prompted slice when that raises the 3D
Dice, else kept on its slice alone (a user who sees a propagation undo good work undoes it).

Starting points: SAM alone (an empty segmentation: "the peer", what annotators had before the
loop) and SAM from a model's prediction.  No model trained on CT ships with the project (the
demo's model knows phantoms), so the prediction is SIMULATED with the errors models make: the
reference eroded by ``--erode`` pixels in-plane (a shrunken boundary) with the organ's first and
last slice missed; its own Dice is printed beside it.  Organs: liver, spleen, stomach and aorta
(the goal's organs; the shared CT's reference has no kidneys, they are not in its 20 slices), and
the inferior vena cava beside them (the fifth large organ it has; thin, the hardest for a box).

    python benchmarks/bench_effort.py [--max-prompts 20] [--erode 2] [--backend litemedsam]

The last line prints ours (SAM from a prediction) and the peer (SAM alone): mean NoC@90 and the ratio.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from bench_sam import DATA, load  # the shared CT, its reference label map on the CT's grid, {organ: value}

# The organs present in the shared CT (its reference has no kidneys: they lie below its 20 slices),
# then the fifth large organ it does have, reported beside them (thin: the hardest for a box prompt).
GOAL_ORGANS = ("liver", "spleen", "stomach", "aorta")
ORGANS = GOAL_ORGANS + ("inferior_vena_cava",)
THRESHOLDS = (0.85, 0.90)




def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


def simulated_prediction(truth: np.ndarray, erode: int) -> np.ndarray:
    """The reference with a model's typical errors: boundary shrunk by ``erode`` px, first and last slice missed."""
    from scipy import ndimage

    out = np.zeros_like(truth)
    ks = np.flatnonzero(truth.any(axis=(1, 2)))
    for k in ks[1:-1]:
        out[k] = ndimage.binary_erosion(truth[k], iterations=erode) if erode else truth[k]
    return out


def box_of(mask2d: np.ndarray) -> tuple:
    from SamPromptLib.planes import bounding_box

    return bounding_box(mask2d)


def error_click(have: np.ndarray, want: np.ndarray) -> tuple:
    """((column, row), positive): the point of the slice's largest error region farthest from its border
    (the interactive-segmentation protocol's click), positive where the organ was missed."""
    from scipy import ndimage

    missed, extra = want & ~have, have & ~want
    region_of, count = ndimage.label(missed | extra)
    sizes = ndimage.sum(np.ones_like(region_of), region_of, index=range(1, count + 1))
    largest = region_of == (int(np.argmax(sizes)) + 1)
    depth = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return (float(col), float(row)), bool(missed[row, col])


def _apply(current: np.ndarray, results: dict, erased: set) -> np.ndarray:
    """``current`` with the slices of ``results`` ({slice: SliceResult}) replaced (erased slices stay empty)."""
    out = current.copy()
    for k, r in results.items():
        if int(k) not in erased:
            out[int(k)] = r.mask
    return out


def run_annotator(segmenter, truth: np.ndarray, start: np.ndarray | None, max_prompts: int) -> dict:
    """Prompts until Dice >= each threshold: {'noc': {0.85: n, 0.9: n}, 'dice': [Dice after each prompt]}."""
    from SamPromptLib.segmenter import PromptSession

    session = PromptSession(segmenter, "axial")
    current = np.zeros_like(truth) if start is None else start.copy()
    erased: set = set()
    curve = [dice(current, truth)]
    noc = {t: (0 if curve[0] >= t else None) for t in THRESHOLDS}
    attempts: dict = {}  # slice -> prompts placed there (a box first, then a click in its error region)
    for n in range(1, max_prompts + 1):
        if all(v is not None for v in noc.values()):
            break
        errors = np.logical_xor(current, truth).reshape(truth.shape[0], -1).sum(axis=1)
        # the worst slice the annotator can still improve (a slice whose box and click both changed nothing
        # is left for the next worst: repeating the same prompt there would give the same mask)
        order = [int(k) for k in np.argsort(-errors, kind="stable") if errors[k] > 0 and attempts.get(int(k), 0) < 2]
        if not order:
            break
        k = order[0]
        attempts[k] = attempts.get(k, 0) + 1
        if not truth[k].any():  # nothing of the organ here: erase what is there
            current[k] = False
            erased.add(k)
            session.remove_anchor(k)
        else:
            erased.discard(k)
            first = not session.anchors
            if attempts[k] == 1:
                result = session.prompt(k, box=box_of(truth[k]))
            else:  # the box was placed already: a click at the centre of the largest error region
                point, positive = error_click(current[k], truth[k])
                result = session.add_point(k, point, positive=positive)
            only_slice = _apply(current, {k: result}, erased)
            if first and start is None:  # SAM alone: the first box is propagated both ways
                current = _apply(only_slice, session.propagate("both"), erased)
            else:  # a correction: propagated from its slice when that helps (a user undoes one that does not)
                propagated = _apply(only_slice, session.propagate("both", start=k), erased)
                current = propagated if dice(propagated, truth) > dice(only_slice, truth) else only_slice
        curve.append(dice(current, truth))
        for t in THRESHOLDS:
            if noc[t] is None and curve[-1] >= t:
                noc[t] = n
    return {"noc": {t: (v if v is not None else max_prompts) for t, v in noc.items()},
            "capped": {t: v is None for t, v in noc.items()}, "dice": curve}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--max-prompts", type=int, default=20)
    p.add_argument("--erode", type=int, default=2, help="pixels the simulated prediction's boundary is shrunk by")
    p.add_argument("--backend", default="litemedsam")
    args = p.parse_args(argv)
    if not (DATA / "dicom").is_dir():
        print(f"bench_effort: shared CT not found at {DATA}", file=sys.stderr)
        return 2
    from SamPromptLib.segmenter import SamSegmenter

    ct, labels, values = load()
    segmenter = SamSegmenter(ct, args.backend)
    t0 = time.perf_counter()
    rows = []
    print(f"{'organ':<20} {'start':<22} {'start Dice':>10} {'NoC@85':>7} {'NoC@90':>7}  Dice after each prompt")
    for organ in ORGANS:
        truth = labels == values[organ]
        prediction = simulated_prediction(truth, args.erode)
        for name, start in (("SAM alone (empty)", None), ("SAM from prediction", prediction)):
            r = run_annotator(segmenter, truth, start, args.max_prompts)
            rows.append({"organ": organ, "start": name, **r})
            flags = {t: "+" if r["capped"][t] else "" for t in THRESHOLDS}
            print(f"{organ:<20} {name:<22} {r['dice'][0]:>10.3f} {r['noc'][0.85]:>6}{flags[0.85]:1} "
                  f"{r['noc'][0.9]:>6}{flags[0.9]:1}  {' '.join(f'{d:.2f}' for d in r['dice'][1:])}", flush=True)
    means = {}
    for label, organs in ((f"mean of {len(GOAL_ORGANS)}", GOAL_ORGANS), (f"mean of {len(ORGANS)}", ORGANS)):
        for name in ("SAM alone (empty)", "SAM from prediction"):
            for t in THRESHOLDS:
                means[(label, name, t)] = float(np.mean([r["noc"][t] for r in rows
                                                         if r["start"] == name and r["organ"] in organs]))
            print(f"{label:<20} {name:<22} {'':>10} {means[(label, name, 0.85)]:>7.2f} {means[(label, name, 0.9)]:>7.2f}")
    print(f"(+: not reached within {args.max_prompts} prompts, counted as {args.max_prompts}; backend {args.backend}; "
          f"{time.perf_counter() - t0:.0f} s; mean of 4: {', '.join(GOAL_ORGANS)} (the goal's organs the CT has); "
          f"goal for SAM alone: mean NoC@90 <= 3)")
    label = f"mean of {len(GOAL_ORGANS)}"
    ours, peer = means[(label, "SAM from prediction", 0.9)], means[(label, "SAM alone (empty)", 0.9)]
    print(f"mean NoC@90 over {', '.join(GOAL_ORGANS)}: ours (SAM from a prediction) {ours:.2f}, peer (SAM alone) "
          f"{peer:.2f}, ratio ours/peer {ours / peer if peer else float('nan'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
