"""A synthetic abdominal CT phantom with a known label map, and a writer for it as a DICOM series.

The phantom is a body ellipse (skin-side fat, soft tissue) holding smooth, slightly deformed
ellipsoids: liver, spleen, both kidneys (in perirenal fat), the spine, the aorta and the lung
bases above a domed diaphragm.  Intensities are realistic Hounsfield units, edges get a little
partial-volume blur and the image gets noise.  Every shape is defined in coordinates normalised
to the field of view, so any ``shape``/``spacing`` gives the same anatomy; ``seed`` varies sizes,
positions, deformation and noise so that different seeds act as different patients.

World frame: LPS (x to the patient's left, y to posterior, z to superior), axial slices, the
volume centred on the world origin.  Arrays are ``[k, j, i]``.
"""
from __future__ import annotations

import datetime
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation
from DicomTeamAnnotateLib.core.volume import Volume

# Label values of the ground truth (stable: other modules and tests rely on them).
LABEL_VALUES = {
    "liver": 1, "spleen": 2, "kidney_left": 3, "kidney_right": 4, "bone": 5, "aorta": 6,
    "lung_left": 7, "lung_right": 8,
}

# SNOMED CT codes, as "SCHEME^CODE^Meaning" (what Segment.terminology accepts).
TERMINOLOGY = {
    "liver": "SCT^10200004^Liver", "spleen": "SCT^78961009^Spleen",
    "kidney_left": "SCT^18639004^Left kidney", "kidney_right": "SCT^9846003^Right kidney",
    "bone": "SCT^421060004^Vertebral column", "aorta": "SCT^15825003^Aorta",
    "lung_left": "SCT^44029006^Left lung", "lung_right": "SCT^3341006^Right lung",
}

COLORS = {
    "liver": (0.86, 0.55, 0.44), "spleen": (0.62, 0.36, 0.57), "kidney_left": (0.73, 0.41, 0.30),
    "kidney_right": (0.73, 0.45, 0.33), "bone": (0.95, 0.84, 0.57), "aorta": (0.88, 0.25, 0.25),
    "lung_left": (0.77, 0.89, 0.95), "lung_right": (0.72, 0.85, 0.93),
}

# Mean HU per tissue (non-contrast soft tissue, contrast-enhanced aorta).
HU = {
    "air": -1000, "lung": -850, "fat": -100, "soft_tissue": 40, "muscle": 50, "liver": 60,
    "spleen": 50, "kidney": 30, "bone": 750, "disc": 80, "aorta": 150,
}


@dataclass
class Phantom:
    """A synthetic CT: ``volume`` (int16 HU, LPS), ``labels`` (uint8 [k, j, i]) and their names."""

    volume: Volume
    labels: np.ndarray
    label_values: dict
    seed: int = 0
    patient_id: str = "PHANTOM-0000"
    extra: dict = field(default_factory=dict)

    def segmentation(self):
        """The ground truth as a Segmentation (one layer, names, colours, SNOMED terminology)."""
        segments = [Segment(name=name, label_value=value, color=COLORS.get(name, (0.5, 0.5, 0.5)),
                            terminology=TERMINOLOGY.get(name))
                    for name, value in self.label_values.items()]
        return Segmentation.from_labelmap(self.labels, self.volume.geometry, segments)

    def label_volume(self) -> Volume:
        """The ground-truth label map as a Volume (uint8) on the image grid."""
        return Volume(self.labels.copy(), self.volume.geometry,
                      {"label_values": dict(self.label_values), "patient_id": self.patient_id})


# ----- shapes ------------------------------------------------------------------------------------
def _ellipsoid(u, v, w, centre, radii, wobble=None):
    """Implicit ellipsoid value (<= 1 inside); ``wobble`` deforms it smoothly."""
    r = ((u - centre[0]) / radii[0]) ** 2 + ((v - centre[1]) / radii[1]) ** 2 + ((w - centre[2]) / radii[2]) ** 2
    if wobble is not None:
        a, f, p = wobble  # amplitude, 3 frequencies, 3 phases: a smooth low-frequency bump field
        r = r * (1.0 + a * np.sin(f[0] * u + p[0]) * np.sin(f[1] * v + p[1]) * np.sin(f[2] * w + p[2]))
    return r


def _cylinder(u, v, centre, radii):
    return ((u - centre[0]) / radii[0]) ** 2 + ((v - centre[1]) / radii[1]) ** 2


def make_phantom(seed: int = 0, shape=(48, 96, 96), spacing=(1.5, 1.5, 3.0), *, noise_hu: float | None = None,
                 blur_voxels: float = 0.6, patient_id: str | None = None) -> Phantom:
    """Build a phantom: ``shape`` is (K, J, I), ``spacing`` mm along (i, j, k); one seed, one patient."""
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 2:
        raise ValueError(f"phantom shape must be (K, J, I) with each >= 2, got {shape}")
    spacing = tuple(float(s) for s in spacing)
    rng = np.random.default_rng(seed)
    nk, nj, ni = shape
    size = (ni, nj, nk)
    origin = tuple(-(n - 1) * s / 2.0 for n, s in zip(size, spacing))
    geometry = Geometry(size=size, spacing=spacing, origin=origin)

    # normalised coordinates in [-1, 1] across the field of view: u to patient left, v posterior, w superior
    w, v, u = np.meshgrid(np.linspace(-1, 1, nk), np.linspace(-1, 1, nj), np.linspace(-1, 1, ni),
                          indexing="ij", sparse=True)

    def jitter(scale):
        return 1.0 + rng.uniform(-scale, scale)

    def shift(scale):
        return rng.uniform(-scale, scale)

    def wobble(amplitude=0.25):
        return (amplitude * rng.uniform(0.4, 1.0), rng.uniform(1.5, 3.5, 3), rng.uniform(0, 2 * np.pi, 3))

    hu = np.full(shape, HU["air"], dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)

    body_r = (0.86 * jitter(0.05), 0.66 * jitter(0.05))
    body = np.broadcast_to(_cylinder(u, v, (0.0, 0.02), body_r) <= 1.0, shape)
    hu[body] = HU["fat"]
    fat_ring = 0.07 * jitter(0.3)
    wall_r = (body_r[0] - fat_ring, body_r[1] - fat_ring)
    hu[np.broadcast_to(_cylinder(u, v, (0.0, 0.02), wall_r) <= 1.0, shape)] = HU["muscle"]
    cavity_r = (wall_r[0] - 0.05, wall_r[1] - 0.05)
    inner = np.broadcast_to(_cylinder(u, v, (0.0, 0.02), cavity_r) <= 1.0, shape)
    hu[inner] = HU["fat"] + 10  # mesenteric / retroperitoneal fat

    # diaphragm: a dome in w; above it (superior) the thorax: mediastinal soft tissue and the lungs
    dome_top = 0.35 + shift(0.08)
    diaphragm_w = dome_top + 0.35 * (u ** 2 + (v - 0.05) ** 2)
    thorax = inner & (w > diaphragm_w)
    hu[thorax] = HU["soft_tissue"]
    for name, side in (("lung_left", 1.0), ("lung_right", -1.0)):
        lung = (_ellipsoid(u, v, w, (side * 0.36 + shift(0.03), 0.05, 1.0), (0.27 * jitter(0.06), 0.42, 1.2),
                           wobble(0.15)) <= 1.0) & thorax
        hu[lung] = HU["lung"]
        labels[lung] = LABEL_VALUES[name]

    # bowel loops: unlabelled soft-tissue blobs in the anterior abdomen (organs paint over them)
    for _ in range(10):
        c = (rng.uniform(-0.5, 0.5), rng.uniform(-0.45, 0.15), rng.uniform(-1.0, 0.3))
        r = rng.uniform(0.07, 0.14)
        blob = (_ellipsoid(u, v, w, c, (r, r * rng.uniform(0.7, 1.2), r * 2.5)) <= 1.0) & inner & (w <= diaphragm_w)
        hu[blob] = HU["soft_tissue"] - 10

    def paint(name, mask, value):
        mask = mask & inner
        hu[mask] = value
        if name:
            labels[mask] = LABEL_VALUES[name]
        elif name == "":
            labels[mask] = 0

    liver_c = (-0.32 + shift(0.04), -0.05 + shift(0.04), 0.10 + shift(0.06))
    liver = _ellipsoid(u, v, w, liver_c, (0.40 * jitter(0.08), 0.40 * jitter(0.08), 0.42 * jitter(0.08)),
                       wobble()) <= 1.0
    liver &= w <= diaphragm_w
    paint("liver", liver, HU["liver"])

    spleen_c = (0.44 + shift(0.03), 0.20 + shift(0.03), 0.15 + shift(0.06))
    spleen = _ellipsoid(u, v, w, spleen_c, (0.15 * jitter(0.1), 0.22 * jitter(0.1), 0.26 * jitter(0.1)),
                        wobble()) <= 1.0
    spleen &= w <= diaphragm_w
    paint("spleen", spleen, HU["spleen"])

    for name, side in (("kidney_left", 1.0), ("kidney_right", -1.0)):
        c = (side * 0.30 + shift(0.03), 0.32 + shift(0.03), -0.30 + side * 0.05 + shift(0.06))
        radii = (0.12 * jitter(0.1), 0.13 * jitter(0.1), 0.30 * jitter(0.1))
        perirenal = _ellipsoid(u, v, w, c, tuple(r * 1.5 for r in radii)) <= 1.0
        paint(None, perirenal & (labels == 0), HU["fat"])
        paint(name, _ellipsoid(u, v, w, c, radii, wobble(0.15)) <= 1.0, HU["kidney"])

    # spine: paraspinal muscle, then vertebral bodies separated by discs, along z
    spine_c = (shift(0.01), 0.48 + shift(0.02))
    spine_r = 0.085 * jitter(0.08)
    muscle = np.broadcast_to(_cylinder(u, v, (spine_c[0], spine_c[1] + 0.10), (0.26, 0.10)) <= 1.0, shape)
    paint(None, muscle & (labels == 0), HU["muscle"])
    vertebra = np.broadcast_to(_cylinder(u, v, spine_c, (spine_r, spine_r * 0.9)) <= 1.0, shape)
    level_mm = 30.0 * jitter(0.05)  # vertebral level height; a disc takes a fifth of it
    z_mm = (w + 1.0) / 2.0 * (nk - 1) * spacing[2]
    disc = ((z_mm + rng.uniform(0, level_mm)) % level_mm) < 0.2 * level_mm
    paint("bone", vertebra & ~np.broadcast_to(disc, shape), HU["bone"])
    paint("", vertebra & np.broadcast_to(disc, shape), HU["disc"])
    canal = np.broadcast_to(_cylinder(u, v, (spine_c[0], spine_c[1] + spine_r * 1.6), (spine_r * 0.45,) * 2) <= 1.0,
                            shape)
    ring = np.broadcast_to(_cylinder(u, v, (spine_c[0], spine_c[1] + spine_r * 1.6), (spine_r * 0.85,) * 2) <= 1.0,
                           shape)
    paint("bone", ring & ~canal & ~np.broadcast_to(disc, shape), HU["bone"])
    paint("", canal, HU["soft_tissue"])

    aorta_c = (spine_c[0] + 0.07 + shift(0.02), spine_c[1] - spine_r - 0.08)
    aorta_r = 0.055 * jitter(0.1)
    aorta = np.broadcast_to(_cylinder(u, v, aorta_c, (aorta_r, aorta_r)) <= 1.0, shape)
    paint(None, np.broadcast_to(_cylinder(u, v, aorta_c, (aorta_r * 1.5,) * 2) <= 1.0, shape) & (labels == 0),
          HU["fat"])
    paint("aorta", aorta, HU["aorta"])

    if blur_voxels > 0:  # partial volume at edges, as a scanner's point spread function gives
        hu = ndimage.gaussian_filter(hu, blur_voxels)
    sigma = float(noise_hu) if noise_hu is not None else float(rng.uniform(8.0, 14.0))
    if sigma > 0:
        hu = hu + rng.normal(0.0, sigma, shape).astype(np.float32)
    array = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    pid = patient_id or f"PHANTOM-{seed:04d}"
    volume = Volume(array, geometry, {"modality": "CT", "patient_id": pid, "description": "synthetic CT phantom",
                                      "window_center": 40.0, "window_width": 400.0})
    return Phantom(volume=volume, labels=labels, label_values=dict(LABEL_VALUES), seed=seed, patient_id=pid,
                   extra={"noise_hu": sigma})


# ----- DICOM -------------------------------------------------------------------------------------
def _ds(value: float) -> str:
    """A DS string (<= 16 characters) for a float."""
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def write_phantom_dicom(phantom: Phantom, out_dir, patient_id: str | None = None,
                        series_description: str = "Synthetic CT phantom", *, series_number: int = 1,
                        study_uid: str | None = None, series_uid: str | None = None,
                        shuffle_names: bool = True) -> list[Path]:
    """Write the phantom as a CT Image Storage series (one file per slice); return the paths.

    UIDs are derived from the patient id and description (same phantom, same UIDs) unless
    given.  Stored values are HU + 1024 (unsigned) with RescaleIntercept -1024, as many
    scanners write them.  File names are shuffled so that name order is not slice order.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid = patient_id or phantom.patient_id
    geometry = phantom.volume.geometry.to_lps()
    d = geometry.direction_matrix
    row_dir, col_dir = d[:, 0], d[:, 1]
    study_uid = study_uid or generate_uid(entropy_srcs=[pid, "study"])
    series_uid = series_uid or generate_uid(entropy_srcs=[pid, "series", series_description, str(series_number)])
    frame_uid = generate_uid(entropy_srcs=[pid, "frame"])
    now = datetime.datetime(2024, 1, 1, 12, 0, 0)
    stored = (phantom.volume.array.astype(np.int32) + 1024).clip(0, 4095).astype(np.uint16)  # 12-bit CT
    nk = stored.shape[0]
    order = list(range(nk))
    if shuffle_names:
        random.Random(f"{pid}-{series_uid}").shuffle(order)
    tag = hashlib.sha1(series_uid.encode()).hexdigest()[:6]  # several series can share one folder
    paths = []
    for k in range(nk):
        sop_uid = generate_uid(entropy_srcs=[series_uid, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.AccessionNumber = ""
        ds.Modality = "CT"
        ds.Manufacturer = "DicomTeamAnnotate phantom"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "Synthetic abdomen"
        ds.SeriesDescription = series_description
        ds.PatientName = pid
        ds.PatientID = pid
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.KVP = "120"
        ds.SliceThickness = _ds(geometry.spacing[2])
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        position = geometry.index_to_world((0, 0, k))
        ds.ImagePositionPatient = [_ds(x) for x in position]
        ds.ImageOrientationPatient = [_ds(x) for x in (*row_dir, *col_dir)]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(position[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        # PixelSpacing is (row spacing = along j, column spacing = along i)
        ds.PixelSpacing = [_ds(geometry.spacing[1]), _ds(geometry.spacing[0])]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        path = out_dir / f"IM{tag}_{order[k]:05d}.dcm"
        with atomic_path(path) as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        paths.append(path)
    return paths
