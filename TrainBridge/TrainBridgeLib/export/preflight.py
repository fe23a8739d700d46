"""Pre-flight checks of an nnU-Net raw dataset, mirroring ``nnUNetv2_plan_and_preprocess
--verify_dataset_integrity`` but naming the case and the field of every failure, and stricter
where nnU-Net only warns (origin and direction mismatches are misalignments, not style).

``check_case`` runs on in-memory arrays during export (no file is read twice);
``check_dataset`` runs on any folder on disk (someone else's export, a hand-edited one).
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from TrainBridgeLib.export.splits import read_splits_final

REQUIRED_KEYS = ("labels", "channel_names", "numTraining", "file_ending")
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Problem:
    """One failed check: which case (empty for the whole dataset), which field, what is wrong."""

    case: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"case '{self.case}'" if self.case else "dataset"
        return f"{where}: {self.field}: {self.message}"


class PreflightError(ValueError):
    """Raised when a dataset fails its checks; ``problems`` lists every failure."""

    def __init__(self, problems: list, context: str = ""):
        self.problems = list(problems)
        head = f"{context}: " if context else ""
        lines = [str(p) for p in self.problems[:20]]
        more = f"\n... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{head}{len(self.problems)} pre-flight problem(s):\n" + "\n".join(lines) + more)


def check_case(case_id: str, channels: list, label: np.ndarray | None, n_labels: int,
               expected_channels: int) -> list[Problem]:
    """Checks of one case in memory: channel count, shapes, grids, NaN, label values 0..n_labels."""
    problems = []
    if len(channels) != expected_channels:
        problems.append(Problem(case_id, "channels", f"{len(channels)} channel(s), the dataset has {expected_channels}"))
    ref = channels[0].geometry if channels else None
    for c, vol in enumerate(channels):
        if vol.array.dtype.kind == "f" and np.isnan(vol.array).any():
            problems.append(Problem(case_id, f"image channel {c}", f"{int(np.isnan(vol.array).sum())} NaN voxel(s)"))
        if c and not vol.geometry.same_grid(ref):
            problems.append(Problem(case_id, f"image channel {c}", "grid differs from channel 0: "
                                    + "; ".join(vol.geometry.differences(ref))))
    if label is not None and ref is not None:
        if tuple(label.shape) != tuple(ref.shape):
            problems.append(Problem(case_id, "label shape", f"{label.shape} != image {ref.shape}"))
        top = int(label.max(initial=0))
        if top > n_labels:
            present = np.flatnonzero(np.bincount(label.ravel()))
            bad = [int(v) for v in present if v > n_labels]
            problems.append(Problem(case_id, "label values", f"{bad} not in dataset.json labels 0..{n_labels}"))
    return problems


def _header(path: Path):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def _grid_problems(case: str, field: str, a, b) -> list[Problem]:
    """Compare two image headers field by field (shape, spacing, origin, direction)."""
    out = []
    if a.GetSize() != b.GetSize():
        out.append(Problem(case, f"{field} shape", f"{b.GetSize()} != image {a.GetSize()}"))
    for name, get in (("spacing", "GetSpacing"), ("origin", "GetOrigin"), ("direction", "GetDirection")):
        va, vb = np.array(getattr(a, get)()), np.array(getattr(b, get)())
        if not np.allclose(va, vb, rtol=1e-5, atol=1e-4):
            out.append(Problem(case, f"{field} {name}", f"{tuple(np.round(vb, 5))} != image {tuple(np.round(va, 5))}"))
    return out


def _cases_in(folder: Path, ending: str) -> dict:
    """{case: {channel index: path}} of the ``{case}_{XXXX}{ending}`` files in ``folder``."""
    out: dict = defaultdict(dict)
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if not p.name.endswith(ending) or p.name.startswith("."):
            continue
        m = _CHANNEL_FILE.match(p.name[: -len(ending)])
        if m:
            out[m["case"]][int(m["channel"])] = p
    return out


def check_dataset(dataset_dir, *, folds: int | None = None, splits_path=None, read_data: bool = True) -> list[Problem]:
    """All checks of an nnU-Net raw dataset folder; returns the problems (empty when it is sound)."""
    import SimpleITK as sitk

    root = Path(dataset_dir)
    problems: list[Problem] = []
    try:
        meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [Problem("", "dataset.json", f"cannot read ({exc})")]
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        return [Problem("", "dataset.json", f"missing key(s) {missing}")]
    values = sorted(int(v) for v in meta["labels"].values())
    if not values or values[0] != 0 or values != list(range(len(values))):
        problems.append(Problem("", "dataset.json labels", f"values must be 0 (background), 1, 2, ... got {values}"))
    n_labels = len(values) - 1
    n_channels = len(meta["channel_names"])
    ending = meta["file_ending"]
    train = _cases_in(root / "imagesTr", ending)
    test = _cases_in(root / "imagesTs", ending)
    if len(train) != int(meta["numTraining"]):
        problems.append(Problem("", "numTraining",
                                f"dataset.json says {meta['numTraining']}, imagesTr holds {len(train)} case(s)"))
    for folder, cases, label_dir in (("imagesTr", train, root / "labelsTr"), ("imagesTs", test, root / "labelsTs")):
        for case, chans in sorted(cases.items()):
            if sorted(chans) != list(range(n_channels)):
                problems.append(Problem(case, "channels", f"{folder} has channel(s) {sorted(chans)}, "
                                        f"dataset.json names {n_channels}"))
                continue
            label_path = label_dir / f"{case}{ending}"
            if not label_path.exists():
                if folder == "imagesTr":
                    problems.append(Problem(case, "label", f"missing {label_path.relative_to(root)}"))
                continue
            headers = [_header(chans[c]) for c in range(n_channels)]
            for c in range(1, n_channels):
                problems += _grid_problems(case, f"channel {c}", headers[0], headers[c])
            problems += _grid_problems(case, "label", headers[0], _header(label_path))
            if read_data:
                seg = sitk.GetArrayFromImage(sitk.ReadImage(str(label_path)))
                found = np.unique(seg)
                bad = [v.item() for v in found if not (float(v).is_integer() and 0 <= v <= n_labels)]
                if bad:
                    problems.append(Problem(case, "label values", f"{bad} not in dataset.json labels 0..{n_labels}"))
                for c in range(n_channels):
                    img = sitk.GetArrayFromImage(sitk.ReadImage(str(chans[c])))
                    if img.dtype.kind == "f" and np.isnan(img).any():
                        problems.append(Problem(case, f"image channel {c}", "contains NaN"))
    labels_tr = root / "labelsTr"
    if labels_tr.is_dir():
        for p in sorted(labels_tr.glob(f"*{ending}")):
            if p.name[: -len(ending)] not in train and not p.name.startswith("."):
                problems.append(Problem(p.name[: -len(ending)], "label", "labelsTr file has no image in imagesTr"))
    problems += _check_splits(root, train, test, folds, splits_path)
    return problems


def _check_splits(root: Path, train: dict, test: dict, folds: int | None, splits_path) -> list[Problem]:
    """Splits exist for the wanted folds, name only training cases, and keep test cases out."""
    path = Path(splits_path) if splits_path else root / "splits_final.json"
    if not path.exists():
        need = max(folds or 5, 2)
        if len(train) < need:
            return [Problem("", "numTraining", f"{len(train)} training case(s): too few for {need} folds")]
        return []
    try:
        splits = read_splits_final(path)
    except ValueError as exc:
        return [Problem("", "splits_final.json", str(exc))]
    out = []
    if folds and len(splits) < folds:
        out.append(Problem("", "splits_final.json", f"{len(splits)} fold(s), {folds} wanted"))
    for k, fold in enumerate(splits):
        if not fold["train"] or not fold["val"]:
            out.append(Problem("", f"splits_final.json fold {k}", "empty train or val list"))
        for case in sorted(set(fold["train"]) | set(fold["val"])):
            if case in test:
                out.append(Problem(case, f"splits_final.json fold {k}", "a test case is in a training fold"))
            elif case not in train:
                out.append(Problem(case, f"splits_final.json fold {k}", "not in imagesTr"))
    return out
