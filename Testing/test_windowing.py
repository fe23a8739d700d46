"""Window presets, 8-bit windowing and the MPR rendering (orientation, aspect ratio, overlay)."""
from __future__ import annotations

import iocases
import numpy as np
import pytest

from DicomTeamAnnotateLib.core import windowing
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.core.volume import Volume

MARKER_CENTRE = np.array([30.0, -30.0, 20.0])  # LPS: patient's left, anterior, superior


def test_presets_are_the_published_values():
    assert windowing.load_presets() == {
        "lung": (-600.0, 1500.0), "soft tissue": (40.0, 400.0), "bone": (300.0, 1500.0),
        "brain": (40.0, 80.0), "mediastinum": (50.0, 350.0), "liver": (60.0, 160.0)}
    assert windowing.preset_names()[-1] == "custom"
    assert windowing.get_preset("Soft_Tissue") == (40.0, 400.0)
    with pytest.raises(ValueError, match="known presets: lung, soft tissue, bone"):
        windowing.get_preset("abdomen")


def test_resolve_window_forms():
    assert windowing.resolve_window("bone") == (300.0, 1500.0)
    assert windowing.resolve_window("custom", level=-50, width=300) == (-50.0, 300.0)
    assert windowing.resolve_window((10, 20)) == (10.0, 20.0)
    assert windowing.resolve_window("-600/1500") == (-600.0, 1500.0)
    assert windowing.resolve_window() == (40.0, 400.0)
    with pytest.raises(ValueError, match="level and a width"):
        windowing.resolve_window("custom", level=40)
    with pytest.raises(ValueError, match="width must be > 0"):
        windowing.resolve_window((40, 0))


def test_apply_window_maps_the_window_onto_0_255():
    level, width = windowing.get_preset("soft tissue")
    hu = np.array([[-1000, -160, 40, 240, 3000], [-159, -60, 140, 239, 41]], dtype=np.int16)
    out = windowing.apply_window(hu, level, width)
    assert out.dtype == np.uint8 and out.shape == hu.shape
    assert out[0].tolist() == [0, 0, 128, 255, 255]
    assert out[1].tolist() == [1, 64, 191, 254, 128]
    big = np.full((5, 1000, 1000), 40, np.int16)  # slab-wise path
    assert (windowing.apply_window(big, level, width) == 128).all()


def _centred_geometry(orientation: str) -> Geometry:
    d = iocases.DIRECTIONS[orientation]
    size, spacing = np.array([40, 36, 30]), np.array([3.0, 3.5, 4.0])
    origin = -d @ (spacing * (size - 1) / 2)  # the volume's centre is the world origin
    return Geometry(size=tuple(size), spacing=tuple(spacing), origin=origin, direction=d.ravel())


def _marker_volume(orientation: str) -> Volume:
    g = _centred_geometry(orientation)
    k, j, i = np.indices(g.shape)
    world = g.index_to_world(np.stack([i, j, k], -1).reshape(-1, 3)).reshape(g.shape + (3,))
    inside = np.all(np.abs(world - MARKER_CENTRE) <= 8.0, axis=-1)
    return Volume(np.where(inside, 1000, -1000).astype(np.int16), g)


@pytest.mark.parametrize("orientation", iocases.ORIENTATIONS)
def test_mpr_planes_are_radiological_whatever_the_acquisition(orientation):
    planes = windowing.mpr_planes(_marker_volume(orientation), "bone", point=MARKER_CENTRE)
    where = {}
    for plane, pg, gray, _ in planes:
        assert pg.spacing[0] == pg.spacing[1]  # square pixels keep the physical aspect ratio
        rows, cols = np.nonzero(gray > 200)
        assert len(rows) > 0, plane
        r, c = rows.mean(), cols.mean()
        world = pg.index_to_world([c, r, 0])
        where[plane] = (c / gray.shape[1], r / gray.shape[0], world)
    # axial: patient's left on the image's right, anterior at the top
    assert where["axial"][0] > 0.55 and where["axial"][1] < 0.45
    # coronal: patient's left on the right, superior at the top
    assert where["coronal"][0] > 0.55 and where["coronal"][1] < 0.45
    # sagittal: anterior on the left, superior at the top
    assert where["sagittal"][0] < 0.45 and where["sagittal"][1] < 0.45
    for plane, (_, _, world) in where.items():
        assert np.allclose(world, MARKER_CENTRE, atol=3.0), (plane, world)


def test_mpr_panels_have_physical_size():
    vol = _marker_volume("axial")
    planes = {p: (pg, gray) for p, pg, gray, _ in windowing.mpr_planes(vol)}
    pg, gray = planes["coronal"]
    height_mm, width_mm = gray.shape[0] * pg.spacing[0], gray.shape[1] * pg.spacing[0]
    assert abs(height_mm - 30 * 4.0) <= pg.spacing[0] and abs(width_mm - 40 * 3.0) <= pg.spacing[0]
    pg, gray = planes["sagittal"]
    assert abs(gray.shape[1] * pg.spacing[0] - 36 * 3.5) <= pg.spacing[0]


def test_label_overlay_and_png(tmp_path):
    vol = _marker_volume("oblique")
    seg = Segmentation.from_masks({"marker": vol.array > 0}, vol.geometry, colors={"marker": (1.0, 0.0, 0.0)})
    planes = windowing.mpr_planes(vol, "bone", point=MARKER_CENTRE, labels=seg, alpha=0.5)
    for plane, _, gray, rgba in planes:
        hit = rgba[..., 3] > 0
        assert hit.any() and np.allclose(rgba[hit, :3], (1.0, 0.0, 0.0)), plane
        # the overlay sits on the bright marker (edges differ: linear vs nearest interpolation)
        assert np.median(gray[hit]) > 200 and (gray[~hit] > 200).mean() < 0.01, plane
    path = windowing.render_mpr_png(vol, tmp_path / "mpr.png", "soft tissue", point=MARKER_CENTRE, labels=seg)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    assert image.shape[1] > 2 * image.shape[0]  # three panels side by side
    reds = (image[..., 0] > 0.6) & (image[..., 1] < 0.45) & (image[..., 2] < 0.45)
    assert reds.sum() > 50
    with pytest.raises(ValueError, match="unknown window preset"):
        windowing.render_mpr_png(vol, tmp_path / "x.png", "nope")
    assert not (tmp_path / "x.png").exists()
