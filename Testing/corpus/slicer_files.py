"""Slicer's ``.seg.nrrd`` made by Slicer's own code (slicer-core), and its legacy layouts.

- ``write_slicer_seg``: ``vtkMRMLSegmentationStorageNode`` writes segments given as shared
  labelmap layers (``vtkOrientedImageData`` in RAS, one image object per layer, label values as
  Slicer keeps them, terminology entries as tags); ``crop=True`` is Slicer's "crop to minimum
  extent" (a non-zero ``Segmentation_ReferenceImageExtentOffset``).
- ``read_with_slicer``: the same storage node reads a file back; every segment as its RAS voxel
  centres, label value, colour and terminology (the independent reader of the tests).
- ``write_legacy_4d``: the 4D-spatial layout of SlicerRT's writer for Slicer 4.4-4.5 (ITK
  ``Image<unsigned char, 4>``: RAS numbers, ``Segmentation_Extent``), written with SimpleITK.
- ``write_legacy_46``: Slicer 4.6-4.9 (teem: one component per segment, the axis kind chosen by
  the count: complex, RGB-color, RGBA-color, list), written with pynrrd.

Terminology strings below are the ones Slicer's terminology navigator writes.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np

ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"
REGIONS = "Anatomic codes - DICOM master list"
STRUCTURE = "SCT^123037004^Anatomical Structure"


def terminology(type_code: str, modifier: str = "^^", region: str = "^^", region_modifier: str = "^^",
                category: str = STRUCTURE, context: str = ANATOMY) -> str:
    """A Slicer TerminologyEntry (7 fields, codes 'SCHEME^VALUE^Meaning')."""
    return f"{context}~{category}~{type_code}~{modifier}~{REGIONS}~{region}~{region_modifier}"


RIGHT_LUNG = terminology("SCT^39607008^Lung", "SCT^24028007^Right")
LEFT_LUNG = terminology("SCT^39607008^Lung", "SCT^7771000^Left")
LIVER = terminology("SCT^10200004^Liver")
# a mass in the liver: the same type in another region is another structure
LIVER_MASS = terminology("SCT^4147007^Mass", region="SCT^10200004^Liver",
                         category="SCT^49755003^Morphologically Altered Structure")
# Slicer 5.10+: a term picked from a colour table carries the table's name as its context, and
# colour tables end the entry with '~'
LIVER_FROM_COLOR_TABLE = "GenericAnatomyColors~" + LIVER.split("~", 1)[1] + "~"


def _slicer():
    import slicer

    return slicer


def _image(array_kji: np.ndarray, ijk_to_ras: np.ndarray):
    import vtk
    from vtk.util import numpy_support

    slicer = _slicer()
    image = slicer.vtkOrientedImageData()
    k, j, i = array_kji.shape
    image.SetExtent(0, i - 1, 0, j - 1, 0, k - 1)
    vtk_type = {np.dtype(np.uint8): vtk.VTK_UNSIGNED_CHAR, np.dtype(np.uint16): vtk.VTK_UNSIGNED_SHORT}
    image.AllocateScalars(vtk_type[array_kji.dtype], 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = array_kji.ravel()
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(ijk_to_ras[r, c]))
    image.SetImageToWorldMatrix(m)
    return image


def write_slicer_seg(path, ijk_to_ras: np.ndarray, layers: list, *, crop: bool = False, compress: bool = True):
    """Write with Slicer's storage node.  ``layers``: [(label array (K, J, I) uint8/uint16, [segment dicts])];
    a segment dict: id, name, value, color (0..1), terminology (optional)."""
    slicer = _slicer()
    scene = slicer.vtkMRMLScene()
    node = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(node)
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName("Binary labelmap")
    for array, segments in layers:
        image = _image(np.ascontiguousarray(array), ijk_to_ras)  # one object per layer: a shared labelmap
        for s in segments:
            segment = slicer.vtkSegment()
            segment.SetName(s["name"])
            segment.SetColor(*s["color"])
            segment.SetLabelValue(int(s["value"]))
            if s.get("terminology"):
                segment.SetTag("TerminologyEntry", s["terminology"])
            segment.AddRepresentation("Binary labelmap", image)
            segmentation.AddSegment(segment, s["id"])
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    storage.SetUseCompression(int(compress))
    storage.SetCropToMinimumExtent(bool(crop))
    if not storage.WriteData(node):
        raise RuntimeError(f"Slicer could not write {path}")
    return path


def read_with_slicer(path) -> dict:
    """{segment name: {id, value, color, terminology, ras (N, 3) sorted voxel centres}} as Slicer reads ``path``."""
    import vtk
    from vtk.util import numpy_support

    slicer = _slicer()
    scene = slicer.vtkMRMLScene()
    node = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(node)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        raise RuntimeError(f"Slicer could not read {path}")
    segmentation = node.GetSegmentation()
    out = {}
    for n in range(segmentation.GetNumberOfSegments()):
        seg_id = segmentation.GetNthSegmentID(n)
        segment = segmentation.GetSegment(seg_id)
        image = segment.GetRepresentation("Binary labelmap")
        e = image.GetExtent()
        dims = (e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
        points = np.zeros((0, 3))
        if min(dims) > 0 and image.GetPointData().GetScalars() is not None:
            array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims)
            k, j, i = np.nonzero(array == segment.GetLabelValue())
            m = vtk.vtkMatrix4x4()
            image.GetImageToWorldMatrix(m)
            matrix = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
            ijk = np.column_stack([i + e[0], j + e[2], k + e[4], np.ones(len(i))])
            points = (ijk @ matrix.T)[:, :3]
        tag = vtk.reference("")
        term = str(tag) if segment.GetTag("TerminologyEntry", tag) else None
        if term and "~SCT^85756007^Tissue~SCT^85756007^Tissue~^^~" in term:
            term = None  # Slicer's default entry of untyped segments
        out[segment.GetName()] = {"id": seg_id, "value": segment.GetLabelValue(), "color": segment.GetColor(),
                                  "terminology": term, "ras": sorted_points(points)}
    return out


def slicer_read_in_subprocess(path) -> subprocess.CompletedProcess:
    """Read ``path`` with slicer-core in a child process (it aborts the process on bzip2 NRRD)."""
    code = ("import sys, slicer\n"
            "scene = slicer.vtkMRMLScene(); node = slicer.vtkMRMLSegmentationNode(); scene.AddNode(node)\n"
            "st = slicer.vtkMRMLSegmentationStorageNode(); scene.AddNode(st); st.SetFileName(sys.argv[1])\n"
            "print('read', st.ReadData(node), node.GetSegmentation().GetNumberOfSegments())\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          encoding="utf-8", errors="replace", timeout=120)


def sorted_points(points: np.ndarray) -> np.ndarray:
    """Rows sorted (rounded to 1e-6 mm) so that two voxel sets compare as arrays."""
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    return points[np.lexsort(np.round(points, 6).T[::-1])]


# ----- legacy layouts -------------------------------------------------------------------------------
def write_legacy_4d(path, masks: dict, *, origin_ras=(10.0, 20.0, 30.0), spacing=(1.0, 1.0, 2.0),
                    extent_start=(2, 3, 1), colors: dict | None = None):
    """SlicerRT's 4D-spatial file: ``masks`` {name: bool (K, J, I)} in the file's index frame, whose voxel
    (0, 0, 0) is voxel ``extent_start`` (i, j, k) of an image at ``origin_ras`` (RAS numbers, as written)."""
    import SimpleITK as sitk

    names = list(masks)
    stack = np.stack([masks[n] for n in names]).astype(np.uint8)  # (segment, k, j, i)
    image = sitk.GetImageFromArray(stack, isVector=False)          # a 4D scalar image, not a vector one
    image.SetOrigin((*origin_ras, 0.0))
    image.SetSpacing((*spacing, 1.0))
    k, j, i = stack.shape[1:]
    x0, y0, z0 = extent_start
    extent = f"{x0} {x0 + i - 1} {y0} {y0 + j - 1} {z0} {z0 + k - 1}"
    meta = {"Segmentation_Extent": extent, "Segmentation_MasterRepresentation": "Binary labelmap",
            "Segmentation_ConversionParameters": "", "Segmentation_ContainedRepresentationNames": "Binary labelmap|"}
    for n, name in enumerate(names):
        rgb = (colors or {}).get(name, (1.0, 0.0, 0.0))
        meta.update({f"Segment{n}_ID": f"Segment_{n + 1}", f"Segment{n}_Name": name,
                     f"Segment{n}_DefaultColor": " ".join(f"{c:g}" for c in rgb),
                     f"Segment{n}_Extent": extent, f"Segment{n}_Tags": ""})
    for key, value in meta.items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def write_legacy_46(path, masks: dict, *, origin_lps=(-10.0, -20.0, 30.0), spacing=(1.0, 1.0, 2.0)):
    """Slicer 4.6-4.9: one component per segment on the fastest axis, its kind by count; ``DefaultColor``."""
    import nrrd

    kinds = {2: "complex", 3: "RGB-color", 4: "RGBA-color"}
    names = list(masks)
    data = np.stack([masks[n] for n in names], axis=-1).astype(np.uint8)  # (k, j, i, segment): segment fastest
    header = {"type": "unsigned char", "space": "left-posterior-superior", "encoding": "gzip",
              "kinds": [kinds.get(len(names), "list"), "domain", "domain", "domain"],
              "space directions": np.vstack([np.full(3, np.nan), np.diag(spacing).astype(float)]),
              "space origin": np.array(origin_lps, dtype=float),
              "Segmentation_MasterRepresentation": "Binary labelmap",
              "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
              "Segmentation_ReferenceImageExtentOffset": "0 0 0"}
    for n, name in enumerate(names):
        k, j, i = np.nonzero(masks[name])
        header.update({f"Segment{n}_ID": f"Segment_{n + 1}", f"Segment{n}_Name": name,
                       f"Segment{n}_DefaultColor": "0 0.5 1",
                       f"Segment{n}_Extent": f"{i.min()} {i.max()} {j.min()} {j.max()} {k.min()} {k.max()}",
                       f"Segment{n}_Tags": ""})
    nrrd.write(str(path), np.ascontiguousarray(data), header, index_order="C")
    return path
