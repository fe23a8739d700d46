"""Other views of an exported nnU-Net dataset, all with the same patient-level splits:

* ``write_monai_datalist``: MONAI's decathlon-style JSON (``load_decathlon_datalist`` reads it),
  each training item with its ``fold`` (the fold where it is a validation case), test items apart;
* ``write_seg_nrrd_folder``: every label map as a Slicer ``.seg.nrrd`` with the label names;
* ``write_coco_slices``: 2D slices as PNG + COCO JSON (RLE masks per label), each image with its
  slice's physical position and orientation (DICOM-style, LPS) so 2D results map back to 3D.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path, write_json_atomic
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, default_color
from DicomTeamAnnotateLib.core.windowing import apply_window
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import read_volume

ENDING = ".nii.gz"


def _dataset(dataset_dir) -> tuple:
    d = Path(dataset_dir)
    meta = json.loads((d / "dataset.json").read_text(encoding="utf-8"))
    cases = json.loads((d / "cases.json").read_text(encoding="utf-8"))
    return d, meta, cases


def _label_names(meta: dict) -> dict:
    return {int(v): n for n, v in meta["labels"].items()}


def write_monai_datalist(dataset_dir, out_path=None) -> Path:
    """MONAI datalist JSON (paths relative to the dataset folder); default ``dataset_monai.json`` inside it."""
    d, meta, cases = _dataset(dataset_dir)
    training, test = [], []
    for case, rec in sorted(cases.items()):
        images = rec["images"] if len(rec["images"]) > 1 else rec["images"][0]
        item = {"image": images, "case_id": case, "patient_id": rec["patient_id"]}
        if rec.get("label"):
            item["label"] = rec["label"]
        if rec["split"] == "test":
            test.append(item)
        else:
            item["fold"] = rec["fold"]
            training.append(item)
    out = Path(out_path) if out_path else d / "dataset_monai.json"
    write_json_atomic(out, {
        "name": meta.get("name", d.name), "description": "nnU-Net export with patient-level folds (item 'fold' = "
        "the fold in which the item is a validation case)", "modality": meta["channel_names"],
        "labels": {str(v): n for v, n in sorted(_label_names(meta).items())},
        "numTraining": len(training), "numTest": len(test), "training": training, "test": test,
    })
    return out


def write_seg_nrrd_folder(dataset_dir, out_dir) -> list[Path]:
    """Each case's label map as ``out_dir/{case}.seg.nrrd`` (segment names, colours, terminology)."""
    d, meta, cases = _dataset(dataset_dir)
    terms = {}
    if (d / "trainbridge.json").exists():
        src = json.loads((d / "trainbridge.json").read_text(encoding="utf-8")).get("label_source", [])
        terms = {s["name"]: s.get("terminology") for s in src}
    segments = [Segment(name=n, label_value=v, color=default_color(v - 1), terminology=terms.get(n))
                for v, n in sorted(_label_names(meta).items()) if v != 0]
    out = []
    for case, rec in sorted(cases.items()):
        if not rec.get("label"):
            continue
        vol = read_volume(d / rec["label"])
        arr, geometry = vol.array, vol.geometry
        present = set(np.unique(arr).tolist())
        seg = Segmentation.from_labelmap(arr.astype(np.uint8), geometry,
                                         [s for s in segments if s.label_value in present] or segments[:0])
        seg.metadata.update({"case_id": case, "patient_id": rec["patient_id"], "split": rec["split"]})
        out.append(write_seg_nrrd(seg, Path(out_dir) / f"{case}.seg.nrrd"))
    return out


def rle_encode(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE of a 2D boolean mask (column-major runs, starting with background)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def rle_decode(rle: dict) -> np.ndarray:
    """Inverse of ``rle_encode``."""
    h, w = rle["size"]
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for c in rle["counts"]:
        if value:
            flat[pos:pos + c] = True
        pos += c
        value = not value
    return flat.reshape((h, w), order="F")


def _to_uint8(arr: np.ndarray, channel_name: str, window) -> np.ndarray:
    if str(channel_name).upper() == "CT":
        level, width = window
    else:  # no standard window for MRI etc.: the volume's 0.5-99.5 percentile range
        lo, hi = np.percentile(arr, [0.5, 99.5])
        level, width = (lo + hi) / 2.0, max(float(hi - lo), 1e-6)
    return apply_window(arr, level, width)


def _write_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(str(tmp), format="PNG")


def write_coco_slices(dataset_dir, out_dir, *, window=(40.0, 400.0), only_labeled: bool = False,
                      splits=("train", "test")) -> Path:
    """Axial slices as PNGs and ``out_dir/coco.json``; returns the JSON path.

    Each image carries ``case_id``, ``patient_id``, ``split``, ``fold``, ``slice_index`` and the
    slice's ``image_position_lps`` (world position of its first pixel), ``image_orientation_lps``
    (row and column directions) and ``pixel_spacing`` [row, column] in mm.  Masks are COCO RLE.
    """
    d, meta, cases = _dataset(dataset_dir)
    out = Path(out_dir)
    names = _label_names(meta)
    channel_names = [meta["channel_names"][k] for k in sorted(meta["channel_names"], key=int)]
    categories = [{"id": v, "name": n, "supercategory": "anatomy"} for v, n in sorted(names.items()) if v != 0]
    images, annotations = [], []
    for case, rec in sorted(cases.items()):
        if rec["split"] not in splits:
            continue
        chans = [read_volume(d / p) for p in rec["images"]]
        geometry = chans[0].geometry
        label = read_volume(d / rec["label"]).array if rec.get("label") else None
        axis = 2 - geometry.plane_axis("axial")  # array axis of the slices
        vols = [np.moveaxis(_to_uint8(ch.array, channel_names[c], window), axis, 0) for c, ch in enumerate(chans)]
        lab = np.moveaxis(label, axis, 0) if label is not None else None
        idx_axes = [a for a in (0, 1, 2) if a != 2 - axis]  # index axes (i, j, k) spanning the slice
        col_axis, row_axis = idx_axes[0], idx_axes[1]  # image columns run along the lower index axis
        g = geometry.to_lps()
        for s in range(vols[0].shape[0]):
            if only_labeled and (lab is None or not lab[s].any()):
                continue
            files = []
            for c, v in enumerate(vols):
                name = f"images/{case}_{s:04d}" + (f"_{c:04d}" if len(vols) > 1 else "") + ".png"
                _write_png(np.ascontiguousarray(v[s]), out / name)
                files.append(name)
            ijk0 = [0.0, 0.0, 0.0]
            ijk0[2 - axis] = float(s)
            image_id = len(images) + 1
            images.append({
                "id": image_id, "file_name": files[0], "channel_files": files, "width": int(vols[0].shape[2]),
                "height": int(vols[0].shape[1]), "case_id": case, "patient_id": rec["patient_id"],
                "split": rec["split"], "fold": rec.get("fold"), "slice_index": s, "slice_axis": "ijk"[2 - axis],
                "image_position_lps": [float(x) for x in g.index_to_world(ijk0)],
                "image_orientation_lps": [float(x) for x in list(g.direction_matrix[:, col_axis])
                                          + list(g.direction_matrix[:, row_axis])],
                "pixel_spacing": [g.spacing[row_axis], g.spacing[col_axis]], "slice_thickness": g.spacing[2 - axis],
            })
            if lab is None:
                continue
            for v in np.unique(lab[s]):
                if v == 0:
                    continue
                m = lab[s] == v
                rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id, "category_id": int(v), "iscrowd": 0,
                    "area": int(m.sum()), "bbox": [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
                                                   int(rows[-1] - rows[0] + 1)],
                    "segmentation": rle_encode(m),
                })
    path = out / "coco.json"
    write_json_atomic(path, {"info": {"description": f"{d.name}: axial slices", "version": "1.0"},
                             "images": images, "annotations": annotations, "categories": categories}, indent=None)
    return path
