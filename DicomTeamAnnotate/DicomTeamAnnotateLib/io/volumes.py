"""Volume files: .nrrd / .nhdr / .nii(.gz) / .mha / .mhd read and written through SimpleITK.

SimpleITK's NRRD and NIfTI IO convert between the file's frame and LPS correctly (NIfTI stores
RAS; ITK converts on read and write).  A NRRD header is checked first (``nrrd_payload``: sizes
without overflow and within bounds, so a hostile header cannot make ITK allocate what it
declares), and NRRD encodings ITK's NrrdIO lacks (bzip2) are read by ``nrrd_payload`` instead.
A NIfTI file is checked to hold the voxels its header declares: ITK fills a truncated .nii or
.nii.gz with zeros and says nothing.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.nrrd_payload import NrrdFile, open_nrrd, read_payload

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def has_volume_suffix(path) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


def read_volume(path) -> Volume:
    """Read a .nrrd / .nii(.gz) / .mha volume; raise ValueError naming the file on failure."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    nf = open_nrrd(path) if file_suffix(path) in (".nrrd", ".nhdr") else None
    if nf is not None and nf.encoding == "bzip2":  # NrrdIO (ITK, Slicer) is built without bzip2
        return nrrd_volume(nf)
    if file_suffix(path) in (".nii", ".nii.gz"):
        problem = nifti_payload_problem(path)
        if problem:
            raise ValueError(f"{path}: {problem}")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: cannot read as a volume ({str(exc).strip().splitlines()[-1]})") from None
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    try:
        return Volume.from_sitk(image, {"source": str(path)})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def nifti_payload_problem(path) -> str | None:
    """Why a single-file NIfTI cannot hold the voxels its header declares (None when it can).

    The header is read by nibabel; a .nii.gz is decompressed as a stream (nothing kept) up to the
    declared length: a gzip stream that ends before it is a cut file.
    """
    import nibabel as nib

    try:
        header = nib.load(str(path)).header
        # a single-file NIfTI's voxels start at vox_offset, never before the 352-byte header (some writers
        # leave the field 0)
        offset = max(int(header["vox_offset"]), header.single_vox_offset)
        need = offset + int(np.prod(header.get_data_shape(), dtype=np.int64)) * np.dtype(header.get_data_dtype()).itemsize
    except Exception as exc:  # nibabel raises ImageFileError, ValueError, EOFError... on a damaged header
        return f"not a readable NIfTI header ({exc})"
    if file_suffix(path) == ".nii":
        have = os.path.getsize(path)
    else:
        have, d = 0, zlib.decompressobj(zlib.MAX_WBITS | 32)
        with open(path, "rb") as fh:
            while have < need:
                chunk = d.unconsumed_tail or fh.read(1 << 22)
                if not chunk:
                    break
                try:
                    have += len(d.decompress(chunk, min(need - have, 1 << 26)))
                except zlib.error as exc:
                    return f"the gzip data is damaged ({exc})"
                if d.eof:  # a file of several gzip members goes on with the next one
                    rest, d = d.unused_data, zlib.decompressobj(zlib.MAX_WBITS | 32)
                    if rest:
                        have += len(d.decompress(rest, max(0, need - have)))
    if have < need:
        return f"the file is cut short: it holds {have} of the {need} bytes its header declares"
    return None


_NRRD_SPACES = {"left-posterior-superior": (1, 1, 1), "lps": (1, 1, 1), "right-anterior-superior": (-1, -1, 1),
                "ras": (-1, -1, 1), "left-anterior-superior": (1, -1, 1), "las": (1, -1, 1)}


def nrrd_volume(nf: NrrdFile) -> Volume:
    """A 3D (or 2D) scalar NRRD read by ``nrrd_payload``, its geometry from the header (LPS)."""
    path, header = nf.path, nf.header
    space = str(header.get("space", "")).strip().lower()
    if space not in _NRRD_SPACES:
        raise ValueError(f"{path}: field 'space' is {header.get('space')!r}; expected a patient space (LPS, RAS, LAS)")
    dim = len(nf.sizes)
    directions = np.asarray(header.get("space directions", []), dtype=float)
    if dim not in (2, 3) or directions.shape != (dim, 3) or not np.all(np.isfinite(directions)):
        raise ValueError(f"{path}: a scalar 2D/3D image with 'space directions' for every axis is expected "
                         f"(dimension {dim}, directions {directions.shape})")
    data = read_payload(nf)
    origin = np.asarray(header.get("space origin", (0.0, 0.0, 0.0)), dtype=float)
    if dim == 2:  # one slice: its normal as the third axis, as SimpleITK's JoinSeries gives
        normal = np.cross(directions[0], directions[1])
        directions = np.vstack([directions, normal / np.linalg.norm(normal)])
        data = data[np.newaxis]
    flip = np.array(_NRRD_SPACES[space], dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = (directions * flip).T   # columns: LPS vectors of i, j, k
    matrix[:3, 3] = origin * flip
    try:
        geometry = Geometry.from_matrix(matrix, tuple(reversed(data.shape)), space="LPS")
        return Volume(data, geometry, {"source": str(path)})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def write_volume(volume: Volume, path, *, compress: bool = True) -> Path:
    """Write atomically (temporary name, fsync, rename) to .nrrd / .nii.gz / .mha."""
    import SimpleITK as sitk

    path = Path(path)
    if not has_volume_suffix(path):
        raise ValueError(f"{path}: unsupported volume file type (use one of {', '.join(VOLUME_SUFFIXES)})")
    with atomic_path(path) as tmp:
        sitk.WriteImage(volume.to_sitk(), str(tmp), compress)
    return path


def file_suffix(path) -> str:
    """'.nii.gz' aware suffix."""
    name = os.path.basename(str(path)).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else os.path.splitext(name)[1]
