"""DICOM SEG of each flavour made by dcmqi's converters (the ones Slicer bundles) and by highdicom.

- ``dcmqi_seg``: ``itkimage2segimage`` from a label image (written with SimpleITK on the source
  series' own grid) and dcmqi's metadata JSON; BINARY (1-bit frames) or ``labelmap`` (SOP class
  1.2.840.10008.5.1.4.1.1.66.7).
- ``dcmqi_read``: ``segimage2itkimage``, dcmqi's reader: one NRRD per segment (voxel value = segment
  number) or one label map, on the encoded slices only.
- ``highdicom_seg``: ``highdicom.seg.Segmentation`` of each type: BINARY, FRACTIONAL, overlapping
  segments, LABELMAP (16-bit when a segment number is above 255; 8-bit with a palette, RLE).

Segments carry the codes of issue 11's cases: a type modifier (right kidney) and an anatomic
region (a mass in the liver).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from corpus import need_tool

SEGMENTS = [  # (label value, label, category, type, type modifier, region)
    (1, "Liver", ("123037004", "SCT", "Anatomical Structure"), ("10200004", "SCT", "Liver"), None, None),
    (2, "Kidney right", ("123037004", "SCT", "Anatomical Structure"), ("64033007", "SCT", "Kidney"),
     ("24028007", "SCT", "Right"), None),
    (3, "Mass", ("49755003", "SCT", "Morphologically Altered Structure"), ("4147007", "SCT", "Mass"), None,
     ("10200004", "SCT", "Liver")),
]


def _code(triple):
    return {"CodeValue": triple[0], "CodingSchemeDesignator": triple[1], "CodeMeaning": triple[2]}


def dcmqi_metadata(values=(1, 2, 3), files=None) -> dict:
    """dcmqi's segmentation JSON: ``files`` [[label value of each SEGMENTS entry in that input image]...]
    (default: one image holding ``values``)."""
    files = files or [list(values)]
    attributes = []
    segments = iter(SEGMENTS)
    for file_values in files:
        attributes.append(_attributes(file_values, segments))
    return {"ContentCreatorName": "Reader1", "ClinicalTrialSeriesID": "S1", "ClinicalTrialTimePointID": "1",
            "SeriesDescription": "dcmqi corpus", "SeriesNumber": "300", "InstanceNumber": "1",
            "segmentAttributes": attributes}


def _attributes(values, segments) -> list:
    attributes = []
    for value, (_, label, category, prop_type, modifier, region) in zip(values, segments):
        item = {"labelID": int(value), "SegmentLabel": label, "SegmentAlgorithmType": "MANUAL",
                "SegmentedPropertyCategoryCodeSequence": _code(category),
                "SegmentedPropertyTypeCodeSequence": _code(prop_type), "recommendedDisplayRGBValue": [200, 100, 50]}
        if modifier:
            item["SegmentedPropertyTypeModifierCodeSequence"] = _code(modifier)
        if region:
            item["AnatomicRegionSequence"] = _code(region)
        attributes.append(item)
    return attributes


def label_image_on(source_folder, labels_kji: np.ndarray, path) -> Path:
    """A label image on the source series' grid as SimpleITK/GDCM reads it (so dcmqi maps every slice)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(source_folder)))
    ct = reader.Execute()
    image = sitk.GetImageFromArray(labels_kji.astype(np.int16))
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(path), useCompression=True)
    return Path(path)


def _run(args: list, what: str) -> str:
    result = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}")
    return result.stdout


def dcmqi_seg(out, source_folder, labels_kji, *, labelmap: bool = False, skip_empty: bool = True) -> Path:
    """itkimage2segimage: a SEG of ``labels_kji`` (values 1, 2, 3 = SEGMENTS) made on ``source_folder``; a list
    of label arrays gives one input image each (segments of different images may overlap)."""
    out = Path(out)
    arrays = labels_kji if isinstance(labels_kji, list) else [labels_kji]
    images = [label_image_on(source_folder, a, out.with_suffix(f".labels{n}.nrrd")) for n, a in enumerate(arrays)]
    meta = out.with_suffix(".json")
    meta.write_text(json.dumps(dcmqi_metadata(files=[sorted(int(v) for v in np.unique(a) if v) for a in arrays])))
    image = ",".join(str(p) for p in images)
    args = [need_tool("itkimage2segimage"), "--inputImageList", image, "--inputDICOMDirectory",
            str(source_folder), "--inputMetadata", str(meta), "--outputDICOM", str(out),
            "--skip", "1" if skip_empty else "0"]
    if labelmap:
        args += ["--segmentationType", "labelmap"]
    _run(args, "itkimage2segimage")
    return out


def dcmqi_read(seg_path, out_folder, *, merge: bool = False) -> tuple[list, dict]:
    """segimage2itkimage: ([output NRRD paths in order], dcmqi's metadata JSON)."""
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    args = [need_tool("segimage2itkimage"), "--inputDICOM", str(seg_path), "--outputDirectory", str(out_folder),
            "--prefix", "seg", "--outputType", "nrrd"]
    if merge:
        args.append("--mergeSegments")
    _run(args, "segimage2itkimage")
    files = sorted(out_folder.glob("seg-*.nrrd"), key=lambda p: int(p.stem.split("-")[-1]))
    return files, json.loads((out_folder / "seg-meta.json").read_text(encoding="utf-8"))


def highdicom_seg(out, source_paths, pixels, kind: str, *, numbers=(1, 2, 3), palette: bool = False) -> Path:
    """A highdicom SEG: ``kind`` BINARY, FRACTIONAL or LABELMAP; ``pixels``: (K, J, I) segment numbers, or
    (K, J, I, S) masks/fractions; frames follow the source instances sorted by position."""
    import highdicom as hd
    import pydicom

    sources = sorted((pydicom.dcmread(p) for p in source_paths), key=lambda d: float(d.ImagePositionPatient[2]))
    descriptions = []
    for number, (_, label, category, prop_type, modifier, region) in zip(numbers, SEGMENTS):
        d = hd.seg.SegmentDescription(
            segment_number=int(number), segment_label=label,
            segmented_property_category=hd.sr.CodedConcept(*category),
            segmented_property_type=hd.sr.CodedConcept(*prop_type), algorithm_type="MANUAL",
            anatomic_regions=[hd.sr.CodedConcept(*region)] if region else None,
            display_color=None if palette else hd.color.CIELabColor(50.0, 20.0, 10.0 * int(number % 5)))
        if modifier:
            d.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept(*modifier)]
        descriptions.append(d)
    extra = {}
    if kind == "FRACTIONAL":
        extra = {"fractional_type": "PROBABILITY", "max_fractional_value": 255}
    if palette:
        colors = ["black"] + ["red", "green", "blue"][:len(numbers)]
        extra = {"palette_color_lut_transformation": hd.PaletteColorLUTTransformation.from_colors(
            colors, first_mapped_value=0), "transfer_syntax_uid": pydicom.uid.RLELossless, "omit_empty_frames": False}
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=kind, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=5, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="corpus", manufacturer_model_name="corpus", software_versions="0", device_serial_number="0",
        **extra)
    seg.save_as(out)
    return Path(out)
