"""NRRD, NIfTI and label-map files written by other tools (pynrrd, nibabel, or by hand as teem's
format page documents them), and damaged ones.

- ``write_nrrd``: pynrrd in each encoding it writes (raw, gzip, bzip2, ascii), attached or with a
  detached header (``.nhdr`` + data file), little- or big-endian.
- ``write_nrrd_by_hand``: header text plus payload bytes, for what pynrrd does not write: hex
  encoding, ``byte skip: -1``, a 'gzip' stream cut short, a negative byte skip.
- ``write_nifti``: nibabel; big-endian (the header's endianness AND a dtype, or nibabel silently
  writes little-endian float), qform only, sform only.
- ``freesurfer_labels``: an aparc+aseg-like label map (int32, values up to 2035) and its names.

Geometry arguments: ``directions`` rows are the world vectors of i, j, k (NRRD's 'space
directions'), ``origin`` the world position of voxel (0, 0, 0), in the named space.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

LPS = "left-posterior-superior"
# a few of FreeSurfer's aparc+aseg values (FreeSurferColorLUT.txt)
FREESURFER = {2: "Left-Cerebral-White-Matter", 17: "Left-Hippocampus", 41: "Right-Cerebral-White-Matter",
              53: "Right-Hippocampus", 1035: "ctx-lh-insula", 2035: "ctx-rh-insula"}


def write_nrrd(path, data_kji: np.ndarray, *, encoding: str = "raw", directions=np.eye(3), origin=(0.0, 0.0, 0.0),
               space: str = LPS, detached: bool = False, endian: str = "little", extra: dict | None = None) -> Path:
    """pynrrd: ``data_kji`` (K, J, I) written with i fastest; returns the header's path."""
    import nrrd

    header = {"space": space, "space directions": np.asarray(directions, dtype=float),
              "space origin": np.asarray(origin, dtype=float), "encoding": encoding, "endian": endian,
              "kinds": ["domain"] * 3, **(extra or {})}
    nrrd.write(str(path), np.ascontiguousarray(data_kji), header, index_order="C", detached_header=detached)
    return Path(path)


def write_nrrd_by_hand(path, fields: dict, payload: bytes, *, data_file: bytes | None = None) -> Path:
    """'NRRD0004' + ``fields`` + a blank line + ``payload`` (``data_file``: bytes of a detached 'x.raw' beside it)."""
    path = Path(path)
    lines = ["NRRD0004"] + [f"{k}: {v}" for k, v in fields.items()]
    if data_file is not None:
        (path.parent / "x.raw").write_bytes(data_file)
        lines.append("data file: x.raw")
    path.write_bytes(("\n".join(lines) + "\n\n").encode() + payload)
    return path


def basic_fields(data_kji: np.ndarray, type_name: str, encoding: str) -> dict:
    """The fields teem needs for an axis-aligned LPS volume with unit spacing."""
    k, j, i = data_kji.shape
    return {"type": type_name, "dimension": 3, "space": LPS, "sizes": f"{i} {j} {k}",
            "space directions": "(1,0,0) (0,1,0) (0,0,1)", "kinds": "domain domain domain",
            "endian": "little", "encoding": encoding, "space origin": "(0,0,0)"}


def gzip_bytes(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def write_nifti(path, data_kji: np.ndarray, affine_ras: np.ndarray, *, big_endian: bool = False,
                transform: str = "sform") -> Path:
    """nibabel: ``transform`` 'sform' (nibabel's default: sform 2, qform 0), 'qform' (qform 1 only) or 'both'."""
    import nibabel as nib

    data = np.ascontiguousarray(np.transpose(data_kji, (2, 1, 0)))  # nibabel's (i, j, k)
    header = nib.Nifti1Header(endianness=">" if big_endian else "<")
    header.set_data_dtype(data.dtype)
    image = nib.Nifti1Image(data, affine_ras, header=header)
    if transform in ("qform", "both"):
        image.set_qform(affine_ras, code=1)
    if transform == "qform":
        image.set_sform(None, code=0)
    nib.save(image, str(path))
    return Path(path)


def freesurfer_labels(shape=(8, 10, 12)) -> tuple[np.ndarray, dict]:
    """(int32 label map (K, J, I) with FreeSurfer's values, {value: name})."""
    labels = np.zeros(shape, np.int32)
    for n, value in enumerate(FREESURFER):
        labels[n % shape[0], 1 + n:3 + n, 2:4 + n] = value
    return labels, dict(FREESURFER)
