"""Enhanced multi-frame MR and CT with several frame types at one position, written with pydicom.

The layout is the one Philips writes for a B0 field map (magnitude "M" and "B0 MAP" frames at the
same positions, per-frame rescale), a dual-echo acquisition (one frame type, two effective echo
times) and a dual-energy CT (two CT frame types): Shared Functional Groups for orientation and
pixel measures, Per-frame Functional Groups for position, frame content (StackID,
InStackPositionNumber, DimensionIndexValues), frame type, echo and rescale.  Frames are stored
in the order given (``order``: the type varies fastest, or slowest), as scanners differ.

``write_enhanced`` returns the truth: {volume name (the FrameType values that differ, or the echo
time): (K, J, I) real-world values} in slice order along the normal, so a test compares what it
reads with what was written.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FrameKind:
    """One kind of frame: its FrameType, complex component, rescale and echo time."""

    frame_type: tuple
    complex_component: str = "MAGNITUDE"
    intercept: float = 0.0
    slope: float = 1.0
    echo_time: float = 4.6


FIELD_MAP = (FrameKind(("ORIGINAL", "PRIMARY", "M", "NONE")),
             FrameKind(("ORIGINAL", "PRIMARY", "B0 MAP", "NONE"), "PHASE", -500.0, 0.5))
DUAL_ECHO = (FrameKind(("ORIGINAL", "PRIMARY", "M", "NONE"), echo_time=4.6),
             FrameKind(("ORIGINAL", "PRIMARY", "M", "NONE"), echo_time=6.9))
DUAL_ENERGY_CT = (FrameKind(("ORIGINAL", "PRIMARY", "AXIAL", "NONE"), intercept=-1024.0),
                  FrameKind(("DERIVED", "SECONDARY", "AXIAL", "IODINE"), intercept=0.0, slope=0.1))


def _seq(**fields):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    for key, value in fields.items():
        setattr(item, key, value)
    return Sequence([item])


def write_enhanced(path, kinds=FIELD_MAP, *, modality: str = "MR", n_slices: int = 4, rows: int = 6, cols: int = 7,
                   spacing=(1.5, 1.25), dz: float = 3.0, order: str = "type-fastest",
                   type_dimension: bool = True, seed: int = 0) -> dict:
    """Write one enhanced file; returns {volume name: (K, J, I) real-world values} (see ``volume_names``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.tag import Tag
    from pydicom.uid import EnhancedCTImageStorage, EnhancedMRImageStorage, ExplicitVRLittleEndian, generate_uid

    sop_class = EnhancedMRImageStorage if modality == "MR" else EnhancedCTImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Enhanced^Corpus", "ENH1", modality
    ds.Manufacturer = "Philips Medical Systems" if modality == "MR" else "Corpus"
    ds.SeriesNumber, ds.InstanceNumber = 401, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MIXED", "MIXED"]
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    dim_uid = generate_uid()

    def dimension(pointer, group):
        item = Dataset()
        item.DimensionOrganizationUID = dim_uid
        item.DimensionIndexPointer, item.FunctionalGroupPointer = Tag(pointer), Tag(group)
        return item

    frame_type_seq = "MRImageFrameTypeSequence" if modality == "MR" else "CTImageFrameTypeSequence"
    pointers = [dimension("StackID", "FrameContentSequence"), dimension("InStackPositionNumber", "FrameContentSequence")]
    if type_dimension:  # a third dimension that tells the kinds apart (legal; Philips often uses a private one)
        if modality != "MR":
            pointers.append(dimension("FrameType", frame_type_seq))
        elif len({k.frame_type for k in kinds}) == 1:
            pointers.append(dimension("EffectiveEchoTime", "MREchoSequence"))
        else:
            pointers.append(dimension("ComplexImageComponent", frame_type_seq))
    ds.DimensionOrganizationSequence = _seq(DimensionOrganizationUID=dim_uid)
    ds.DimensionIndexSequence = Sequence(pointers)
    shared = Dataset()
    shared.PlaneOrientationSequence = _seq(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    shared.PixelMeasuresSequence = _seq(PixelSpacing=list(spacing), SliceThickness=dz, SpacingBetweenSlices=dz)
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    slots = [(s, t) for s in range(n_slices) for t in range(len(kinds))] if order == "type-fastest" \
        else [(s, t) for t in range(len(kinds)) for s in range(n_slices)]
    stored = np.random.default_rng(seed).integers(0, 4096, (len(kinds), n_slices, rows, cols)).astype(np.uint16)
    frames, pixels = [], []
    for s, t in slots:
        kind = kinds[t]
        frame = Dataset()
        index = [1, s + 1] + ([t + 1] if type_dimension else [])
        frame.FrameContentSequence = _seq(StackID="1", InStackPositionNumber=s + 1, DimensionIndexValues=index)
        frame.PlanePositionSequence = _seq(ImagePositionPatient=[-7.5, -5.0, 20.0 + s * dz])
        fields = {"FrameType": list(kind.frame_type), "PixelPresentation": "MONOCHROME",
                  "VolumetricProperties": "VOLUME", "VolumeBasedCalculationTechnique": "NONE"}
        if modality == "MR":
            fields.update(ComplexImageComponent=kind.complex_component, AcquisitionContrast="UNKNOWN")
            frame.MREchoSequence = _seq(EffectiveEchoTime=kind.echo_time)
        setattr(frame, frame_type_seq, _seq(**fields))
        frame.PixelValueTransformationSequence = _seq(RescaleIntercept=kind.intercept, RescaleSlope=kind.slope,
                                                      RescaleType="US" if modality == "MR" else "HU")
        frames.append(frame)
        pixels.append(stored[t, s])
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return {name: stored[t].astype(np.float64) * k.slope + k.intercept for t, (name, k) in
            enumerate(zip(volume_names(kinds), kinds))}


def volume_names(kinds) -> list[str]:
    """What the volumes of ``kinds`` are called: the FrameType values that differ ('B0_MAP'), else the echo time."""
    types = [k.frame_type for k in kinds]
    if len(set(types)) == len(types):
        differ = [i for i in range(len(types[0])) if len({t[i] for t in types}) > 1]
        return ["_".join(t[i] for i in differ).replace(" ", "_") for t in types]
    return [f"{k.echo_time:g}" for k in kinds]
