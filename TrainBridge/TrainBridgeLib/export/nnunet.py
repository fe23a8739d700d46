"""Export cases to nnU-Net v2's raw layout, with patient-level splits and a provenance record.

    nnUNet_raw/DatasetXXX_Name/
        dataset.json                     channel_names, labels (0 + consecutive), numTraining, file_ending
        imagesTr/{case}_{0000}.nii.gz    one file per channel
        labelsTr/{case}.nii.gz           single-layer label map, values 0..N
        imagesTs/ labelsTs/              the held-out test set (never in a fold)
        cases.json                       case -> patient, sources, split, fold
        splits_final.json                copy of the folds (nnU-Net reads the one in nnUNet_preprocessed)
        trainbridge.json                 how the export was made (ontology source values, seed, ...)
    nnUNet_preprocessed/DatasetXXX_Name/splits_final.json

The dataset is assembled in a hidden sibling folder and renamed into place at the end, so
nnU-Net (or a second export) never sees a half-written dataset; every file is fsynced first (in a
background thread, overlapping the next case's compression) so that the rename never publishes
empty files after a crash.
"""
from __future__ import annotations

import datetime
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from DicomTeamAnnotateLib.core.geometry import to_sitk
from DicomTeamAnnotateLib.core.segmentation import Segmentation, union_of_segments
from DicomTeamAnnotateLib.io.seg_nrrd import read_seg_nrrd_segments
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, read_sidecar
from TrainBridgeLib.export.cases import (
    CaseInput,
    LabelDef,
    label_array,
    label_source_values,
    load_channels,
    load_label_names,
    parse_label_names,
)
from TrainBridgeLib.export.preflight import PreflightError, check_case
from TrainBridgeLib.export.splits import Splits, check_splits, extend_splits, make_splits, write_splits_final

FILE_ENDING = ".nii.gz"
FIRST_FREE_ID = 500  # nnU-Net's published datasets use low ids; start above them to avoid clashes
_DATASET_DIR = re.compile(r"^Dataset(\d{3})_(.+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass
class ExportResult:
    """What an export wrote: the dataset folder, its id, labels, splits and per-case records."""

    dataset_dir: Path
    dataset_id: int
    name: str
    labels: dict  # dataset.json "labels"
    splits: Splits
    cases: dict  # cases.json content
    preprocessed_dir: Path
    splits_final_path: Path
    notes: list = field(default_factory=list)

    @property
    def dataset_name(self) -> str:
        return self.dataset_dir.name


def used_dataset_ids(*roots) -> set:
    """Dataset ids already taken in any of the given nnU-Net folders (raw, preprocessed, results)."""
    used = set()
    for root in roots:
        if root and Path(root).is_dir():
            for p in Path(root).iterdir():
                m = _DATASET_DIR.match(p.name)
                if m:
                    used.add(int(m[1]))
    return used


def find_free_dataset_id(*roots) -> int:
    """The smallest free id from 500 up (then from 1) across the given folders."""
    used = used_dataset_ids(*roots)
    for i in list(range(FIRST_FREE_ID, 1000)) + list(range(1, FIRST_FREE_ID)):
        if i not in used:
            return i
    raise ValueError("no free nnU-Net dataset id left (1..999 all used)")


def default_preprocessed_dir(raw_dir) -> Path:
    """``$nnUNet_preprocessed`` when set, else ``nnUNet_preprocessed`` beside the raw folder."""
    env = os.environ.get("nnUNet_preprocessed")
    return Path(env) if env else Path(raw_dir).resolve().parent / "nnUNet_preprocessed"


def safe_case_id(text: str) -> str:
    """A case id usable in nnU-Net file names (letters, digits, '-', '_')."""
    out = re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)).strip("_")
    if not out:
        raise ValueError(f"case id {text!r} has no usable character")
    return out


def guess_channel_name(volume) -> str:
    """'CT' for CT images (modality tag, or Hounsfield-like values), else 'image' (z-score in nnU-Net)."""
    modality = str(volume.metadata.get("Modality") or volume.metadata.get("modality") or "").upper()
    if modality:
        return "CT" if modality == "CT" else modality
    arr = volume.array
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) <= -500:
        return "CT"
    return "image"


def _resolve_labels(cases: list, labels) -> list[LabelDef]:
    """The ontology: given (list/dict/path), else the values/segment names found in the labels."""
    if labels is not None:
        if isinstance(labels, (str, Path)):
            return load_label_names(labels)
        if isinstance(labels, list) and labels and isinstance(labels[0], LabelDef):
            return list(labels)
        return parse_label_names(labels)
    values, segment_lists, where = {}, [], []  # label maps: value -> (name, terminology); segmentations: segments
    for c in cases:
        if c.label is None:
            continue
        src = c.label
        if isinstance(src, (str, Path)) and str(src).lower().endswith(".seg.nrrd"):
            # the segments are in the header: the voxels are read once, when the case is written
            header_segments = read_seg_nrrd_segments(src)
            if header_segments is not None:
                segment_lists.append(header_segments)
                where.append(f"case '{c.case_id}': field 'label'")
                continue
            src = read_segmentation(src)
        if isinstance(src, Segmentation):
            segment_lists.append(src.segments)
            where.append(f"case '{c.case_id}': field 'label'")
            continue
        # a label map's names come from its sidecar JSON (organs.nii.gz -> organs.json), else label_<v>
        named, _, terms = read_sidecar(src) if isinstance(src, (str, Path)) else ({}, {}, {})
        for v in sorted(label_source_values(src, c.case_id)):
            entry = (named.get(v, f"label_{v}"), terms.get(named.get(v)))
            if values.setdefault(v, entry)[0] != entry[0]:
                raise ValueError(f"case '{c.case_id}': label value {v} is '{entry[0]}' here but "
                                 f"'{values[v][0]}' in an earlier case: give the label names")
    if segment_lists and values:
        raise ValueError("labels mix named segmentations and bare label maps: give the label names")
    if segment_lists:
        # one label per structure (terminology entry, else name): left and right lung stay two labels
        return [LabelDef(s.name, None, s.terminology, s.color) for s in union_of_segments(segment_lists, where)]
    return [LabelDef(name, v, term) for v, (name, term) in sorted(values.items())]


def _fsync(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Syncer:
    """fsync of written files in one background thread, overlapping the next case's compression.

    The folder rename at the end is only safe once every file is on disk; ``wait`` makes sure.
    """

    def __init__(self, enabled: bool):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=1) if enabled else None
        self.pending = []

    def add(self, path: Path) -> None:
        if self.pool is not None:
            self.pending.append(self.pool.submit(_fsync, path))

    def wait(self) -> None:
        if self.pool is not None:
            for f in self.pending:
                f.result()
            self.pool.shutdown()


def _write_image(array: np.ndarray, geometry, path: Path, syncer: _Syncer) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(to_sitk(array, geometry), str(path), True)
    syncer.add(path)


def _source_text(src) -> str:
    return str(src) if isinstance(src, (str, Path)) else f"<{type(src).__name__} in memory>"


def export_nnunet(cases: list, out_dir, name: str, *, labels=None, dataset_id: int | None = None,
                  test_fraction: float = 0.2, folds: int = 5, seed: int = 0, stratify_by: str | None = None,
                  channel_names: list | None = None, preprocessed_dir=None, overwrite: bool = False,
                  drop_unknown_labels: bool = False, fsync: bool = True, progress=None,
                  previous_splits: Splits | None = None) -> ExportResult:
    """Write ``cases`` (CaseInput list) as ``out_dir/DatasetXXX_name``; see the module docstring.

    ``labels``: the ontology ({name: source value}, a list of {name, value, terminology}, or a
    JSON file); output values are 1..N in order of source value.  ``progress(done, total, case)``
    is called after each case.  ``previous_splits``: an earlier export's splits that every case it
    holds keeps (``extend_splits``: a retrained model is tested on the same patients).
    """
    if not _NAME.match(name or ""):
        raise ValueError(f"dataset name {name!r}: use letters, digits, '-' and '_' only")
    if not cases:
        raise ValueError("no cases to export")
    out_dir = Path(out_dir)
    preprocessed_dir = Path(preprocessed_dir) if preprocessed_dir else default_preprocessed_dir(out_dir)
    ids = [safe_case_id(c.case_id) for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate case id(s) after cleaning: {', '.join(dupes)}")
    cases = [CaseInput(i, str(c.patient_id), list(c.images), c.label, dict(c.attributes), dict(c.source))
             for i, c in zip(ids, cases)]
    ontology = _resolve_labels(cases, labels)
    if not ontology:
        raise ValueError("no labels: give label names or labels with at least one structure")

    # ----- splits (labelled cases only; unlabelled ones can only be test images) --------------------
    labelled = [c for c in cases if c.label is not None]
    strata = None
    if stratify_by:
        strata = {c.case_id: c.attributes.get(stratify_by) for c in labelled}
        missing = [c for c, v in strata.items() if v is None]
        if missing:
            raise ValueError(f"case(s) {missing[:10]} have no attribute '{stratify_by}' to stratify by")
    if previous_splits is not None:
        splits = extend_splits(previous_splits, {c.case_id: c.patient_id for c in labelled},
                               test_fraction=test_fraction, seed=seed, strata=strata)
    else:
        splits = make_splits({c.case_id: c.patient_id for c in labelled}, test_fraction=test_fraction, folds=folds,
                             seed=seed, strata=strata)
    splits.test = sorted(splits.test + [c.case_id for c in cases if c.label is None])
    for c in cases:
        splits.patient_of.setdefault(c.case_id, c.patient_id)
    problems = check_splits(splits)
    if problems:  # cannot happen with make_splits; a guard for hand-made splits
        raise ValueError("; ".join(problems))

    # ----- dataset folder ------------------------------------------------------------------------
    results_env = os.environ.get("nnUNet_results")
    if dataset_id is None:
        dataset_id = find_free_dataset_id(out_dir, preprocessed_dir, results_env)
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"dataset id must be in 1..999, got {dataset_id}")
    dataset_id = int(dataset_id)
    folder_name = f"Dataset{dataset_id:03d}_{name}"
    final = out_dir / folder_name
    for root in (out_dir, preprocessed_dir):
        for p in (root.iterdir() if root.is_dir() else []):
            m = _DATASET_DIR.match(p.name)
            if m and int(m[1]) == dataset_id and p.name != folder_name:
                raise ValueError(f"dataset id {dataset_id} is already used by {p}")
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final}: already exists (choose another name/id, or overwrite)")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}.", suffix=".partial", dir=str(out_dir)))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a dataset is shared like any folder
    try:
        records, names_of_channels, notes = _write_cases(cases, tmp, ontology, splits, channel_names,
                                                         drop_unknown_labels, fsync, progress)
        labels_json = {"background": 0, **{d.name: v for v, d in enumerate(ontology, start=1)}}
        n_train = sum(1 for r in records.values() if r["split"] == "train")
        write_json_atomic(tmp / "dataset.json", {
            "name": name, "description": "Exported by DicomTeamAnnotate TrainBridge",
            "channel_names": {str(i): n for i, n in enumerate(names_of_channels)},
            "labels": labels_json, "numTraining": n_train, "numTest": len(records) - n_train,
            "file_ending": FILE_ENDING,
        })
        write_json_atomic(tmp / "cases.json", records)
        write_json_atomic(tmp / "splits.json", splits.to_dict())
        write_splits_final(splits, tmp)
        write_json_atomic(tmp / "trainbridge.json", {
            "dataset_id": dataset_id, "name": name, "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "preprocessed_dir": str(preprocessed_dir.resolve()), "seed": seed, "folds": len(splits.folds),
            "test_fraction": test_fraction, "stratify_by": stratify_by,
            "label_source": [{"name": d.name, "value": v, "source_value": d.source_value, "terminology": d.terminology}
                             for v, d in enumerate(ontology, start=1)],
        })
        old = None
        if final.exists():  # overwrite: move the old dataset aside first, so the swap is two renames
            old = out_dir / f".{folder_name}.{os.getpid()}.old"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    pre = preprocessed_dir / folder_name
    splits_final = write_splits_final(splits, pre)
    return ExportResult(final, dataset_id, name, labels_json, splits, records, preprocessed_dir.resolve(),
                        splits_final, notes)


def _write_cases(cases, root: Path, ontology, splits: Splits, channel_names, drop_unknown, fsync, progress):
    """Load, check and write every case; returns (cases.json records, channel names, notes)."""
    syncer = _Syncer(fsync)
    try:
        return _write_all(cases, root, ontology, splits, channel_names, drop_unknown, syncer, progress)
    finally:
        syncer.wait()


def _write_all(cases, root: Path, ontology, splits: Splits, channel_names, drop_unknown, syncer, progress):
    test = set(splits.test)
    records, notes = {}, []
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir()
    expected = len(channel_names) if channel_names else None
    for n, case in enumerate(cases, start=1):
        channels = load_channels(case.images, case.case_id)
        if expected is None:
            expected = len(channels)
            channel_names = [guess_channel_name(v) for v in channels]
        ref = channels[0].geometry
        label, case_notes = (None, [])
        if case.label is not None:
            label, case_notes = label_array(case.label, ontology, ref, case.case_id, drop_unknown=drop_unknown)
        problems = check_case(case.case_id, channels, label, len(ontology), expected)
        if problems:
            raise PreflightError(problems, "export stopped")
        split = "test" if case.case_id in test else "train"
        images_dir, labels_dir = ("imagesTs", "labelsTs") if split == "test" else ("imagesTr", "labelsTr")
        files = []
        for c, vol in enumerate(channels):
            rel = f"{images_dir}/{case.case_id}_{c:04d}{FILE_ENDING}"
            _write_image(vol.array, vol.geometry, root / rel, syncer)
            files.append(rel)
        label_rel = None
        if label is not None:
            label_rel = f"{labels_dir}/{case.case_id}{FILE_ENDING}"
            _write_image(label, ref, root / label_rel, syncer)
        notes += [f"case '{case.case_id}': {t}" for t in case_notes]
        records[case.case_id] = {
            "patient_id": case.patient_id, "split": split, "fold": splits.fold_of(case.case_id),
            "images": files, "label": label_rel,
            # a store export names the store objects, not the temporary download paths
            "source_images": case.source.get("images") or [_source_text(s) for s in case.images],
            "source_label": case.source.get("label") or _source_text(case.label),
            "attributes": case.attributes, "source": case.source, "geometry": ref.to_lps().to_dict(),
            "notes": case_notes,
        }
        if progress:
            progress(n, len(cases), case.case_id)
    return records, channel_names, notes
