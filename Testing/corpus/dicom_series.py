"""Classic (one file per slice) DICOM series written by other tools than this project.

- ``write_pydicom_series``: pydicom datasets built field by field (CT or MR, any orientation,
  12-bit signed or unsigned stored values in 16-bit words, rescale), optionally re-encoded
  in a transfer syntax with pydicom's own encoders (``encode_series``).
- ``write_gdcm_series``: SimpleITK's ``ImageFileWriter`` (GDCM) writing one slice per file with
  the position and orientation tags, as SimpleITK's DICOM-series example does.
- ``read_gdcm_series``: SimpleITK's ``ImageSeriesReader`` (GDCM), the independent reader.

Geometry is given as (size, spacing, origin, 3x3 direction columns) in LPS, as DICOM has it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Transfer syntaxes pydicom 3 can both write and decode here (lossless ones give the original back).
LOSSLESS_SYNTAXES = {
    "ExplicitVRLittleEndian": "1.2.840.10008.1.2.1",
    "ImplicitVRLittleEndian": "1.2.840.10008.1.2",
    "ExplicitVRBigEndian": "1.2.840.10008.1.2.2",
    "DeflatedExplicitVRLittleEndian": "1.2.840.10008.1.2.1.99",
    "RLELossless": "1.2.840.10008.1.2.5",
    "JPEGLSLossless": "1.2.840.10008.1.2.4.80",
    "JPEG2000Lossless": "1.2.840.10008.1.2.4.90",
}


def _uid():
    from pydicom.uid import generate_uid

    return generate_uid()


def write_pydicom_series(folder, pixels: np.ndarray, *, spacing=(0.7, 0.8, 2.5), origin=(-10.0, -20.0, 30.0),
                         direction=np.eye(3), modality: str = "CT", bits_stored: int = 16, signed: bool = True,
                         slope: float = 1.0, intercept: float = 0.0, shuffle: bool = True) -> list[Path]:
    """One file per slice of ``pixels`` (K, J, I) stored values; ``spacing`` (i, j, k) mm; returns the paths.

    ``direction`` columns are the LPS directions of i (along a row), j (down a column) and k.
    Files are named in a shuffled order, so that nobody can rely on names.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.asarray(direction, dtype=float)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    study, series, frame = _uid(), _uid(), _uid()
    order = np.random.default_rng(7).permutation(len(pixels)) if shuffle else np.arange(len(pixels))
    paths = []
    for k in range(len(pixels)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, _uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Corpus^Test", "CORPUS1", "", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240101", "120000", "", "1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = modality, 3, k + 1, "Corpus"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        position = np.asarray(origin, dtype=float) + direction[:, 2] * spacing[2] * k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # (between rows, between columns)
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = pixels.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
        ds.PixelRepresentation = int(signed)
        if modality == "CT" or slope != 1.0 or intercept != 0.0:
            ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:g}", f"{slope:g}"
        ds.PixelData = _packed(pixels[k], bits_stored, signed).tobytes()
        path = folder / f"img{order[k]:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _packed(plane: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """16-bit words holding ``bits_stored``-bit values (two's complement of that width when signed; the
    bits above left as a scanner may leave them: sign-extended)."""
    plane = np.asarray(plane, dtype=np.int64)
    low, high = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    if plane.min() < low or plane.max() > high:
        raise ValueError(f"values {plane.min()}..{plane.max()} do not fit {bits_stored} bits")
    return plane.astype(np.int16 if signed else np.uint16)


def encode_series(paths, syntax_uid: str, out_folder) -> list[Path]:
    """The same series re-encoded with pydicom in another transfer syntax (files in ``out_folder``)."""
    import pydicom
    from pydicom.uid import UID

    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    out = []
    uid = UID(syntax_uid)
    for path in paths:
        ds = pydicom.dcmread(path)
        target = out_folder / Path(path).name
        if uid.is_compressed:
            ds.compress(uid)
            ds.save_as(target, enforce_file_format=True)
        else:
            little = uid != "1.2.840.10008.1.2.2"
            if not little:  # pydicom writes the pixel bytes as they are: big-endian words are swapped here
                ds.PixelData = np.frombuffer(ds.PixelData, dtype="<u2").astype(">u2").tobytes()
            ds.file_meta.TransferSyntaxUID = uid
            pydicom.dcmwrite(target, ds, implicit_vr=uid == "1.2.840.10008.1.2", little_endian=little,
                             force_encoding=True)
        out.append(target)
    return out


def write_gdcm_series(folder, pixels: np.ndarray, *, spacing, origin, direction) -> list[Path]:
    """SimpleITK/GDCM: a 3D image cut into slices, each written with its position and orientation tags."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.asarray(direction, dtype=float)
    image = sitk.GetImageFromArray(pixels)
    image.SetSpacing([float(v) for v in spacing])
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection([float(v) for v in direction.ravel()])
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid, study_uid, frame_uid = _uid(), _uid(), _uid()
    iop = "\\".join(f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1]))
    paths = []
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (("0008|0060", "CT"), ("0020|000e", series_uid), ("0020|000d", study_uid),
                           ("0020|0052", frame_uid), ("0008|0018", _uid()), ("0020|0013", str(k + 1)),
                           ("0020|0037", iop), ("0020|0032", "\\".join(f"{v:.6f}" for v in position)),
                           ("0018|0050", f"{spacing[2]:g}"), ("0010|0020", "CORPUS-GDCM"),
                           ("0028|0030", f"{spacing[1]:g}\\{spacing[0]:g}")):
            plane.SetMetaData(tag, value)
        path = folder / f"slice{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(plane)
        paths.append(path)
    return paths


def read_gdcm_series(folder):
    """(array (K, J, I), origin, spacing, 3x3 direction) as SimpleITK/GDCM's series reader gives them."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    return (sitk.GetArrayFromImage(image), np.array(image.GetOrigin()), np.array(image.GetSpacing()),
            np.array(image.GetDirection()).reshape(3, 3))
