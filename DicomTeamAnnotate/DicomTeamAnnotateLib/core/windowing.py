"""CT window presets and headless rendering: a window to 8-bit, three MPR planes to a PNG.

Presets live in ``Resources/window_presets.json`` (level = window centre, width, in HU).  The
mapping is Slicer's display mapping (``vtkImageMapToWindowLevelColors``): values from
``level - width/2`` to ``level + width/2`` map linearly onto 0..255, below/above clamp; so a
PNG rendered here looks like the slice view in Slicer with the same preset.

MPR planes are resampled in world space (LPS) through a point, whatever the volume's
orientation (axial, sagittal, coronal or oblique acquisition), on square pixels, and drawn in
radiological convention: axial and coronal show the patient's right on the image's left,
axial has anterior up, coronal and sagittal have superior up, sagittal has anterior left.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.atomic import atomic_path
from DicomTeamAnnotateLib.core.geometry import Geometry, resample_image, to_sitk
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.core.volume import Volume

PRESETS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "window_presets.json"
CUSTOM = "custom"
DEFAULT_PRESET = "soft tissue"

# World (LPS) axes of each plane's image columns (left->right) and rows (top->bottom).
_PLANE_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),      # columns R->L, rows A->P
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),   # columns R->L, rows S->I
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # columns A->P, rows S->I
}
_PLANE_LETTERS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


@lru_cache(maxsize=4)
def _load(path: str) -> tuple:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = doc["presets"]
        out = []
        for n, e in enumerate(entries):
            level, width = float(e["level"]), float(e["width"])
            if width <= 0:
                raise ValueError(f"preset {n} ('{e.get('name')}'): field 'width' must be > 0, got {width}")
            out.append((str(e["name"]), level, width))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: invalid window presets ({exc})") from None
    return tuple(out)


def load_presets(path=None) -> dict:
    """{name: (level, width)} of the window presets, in file order ('custom' is not listed)."""
    return {name: (level, width) for name, level, width in _load(str(path or PRESETS_FILE))}


def preset_names(path=None) -> list[str]:
    """Preset names as shown to users, followed by 'custom'."""
    return list(load_presets(path)) + [CUSTOM]


def get_preset(name: str, path=None) -> tuple:
    """(level, width) of a preset by name (case, spaces, '_' and '-' ignored)."""
    presets = load_presets(path)
    for preset, lw in presets.items():
        if _key(preset) == _key(name):
            return lw
    if _key(name) == CUSTOM:
        raise ValueError("window preset 'custom' needs a level and a width (e.g. resolve_window('custom', 40, 400))")
    raise ValueError(f"unknown window preset {name!r}; known presets: {', '.join(presets)}, {CUSTOM}")


def resolve_window(preset=None, level=None, width=None) -> tuple:
    """(level, width) from a preset name, a (level, width) pair, 'LEVEL/WIDTH', or 'custom' + level + width."""
    if preset is None or _key(str(preset)) == CUSTOM:
        if level is None or width is None:
            if preset is None and level is None and width is None:
                return get_preset(DEFAULT_PRESET)
            raise ValueError("a custom window needs both a level and a width")
        lw = (float(level), float(width))
    elif isinstance(preset, (tuple, list)):
        if len(preset) != 2:
            raise ValueError(f"a window is (level, width), got {preset!r}")
        lw = (float(preset[0]), float(preset[1]))
    elif isinstance(preset, str) and re.fullmatch(r"\s*-?\d+(\.\d*)?\s*/\s*\d+(\.\d*)?\s*", preset):
        lw = tuple(float(v) for v in preset.split("/"))
    else:
        lw = get_preset(preset)
    if not np.isfinite(lw).all() or lw[1] <= 0:
        raise ValueError(f"window width must be > 0 and values finite, got level {lw[0]} width {lw[1]}")
    return lw


def apply_window(array, level: float, width: float) -> np.ndarray:
    """Map intensities to uint8: [level - width/2, level + width/2] -> [0, 255], clamped (Slicer's mapping)."""
    if width <= 0:
        raise ValueError(f"window width must be > 0, got {width}")
    array = np.asarray(array)
    out = np.empty(array.shape, dtype=np.uint8)
    lower, scale = level - width / 2.0, 255.0 / width
    flat_in, flat_out = array.reshape(-1), out.reshape(-1)
    step = 1 << 22  # work in slabs so a large CT never needs a full float copy
    for start in range(0, flat_in.size, step):
        chunk = (flat_in[start:start + step].astype(np.float32) - np.float32(lower)) * np.float32(scale)
        np.clip(chunk, 0, 255, out=chunk)
        flat_out[start:start + step] = np.rint(chunk)
    return out


# ----- MPR rendering --------------------------------------------------------------------------
def _plane_geometry(volume_geometry: Geometry, plane: str, point: np.ndarray, max_pixels: int) -> Geometry:
    """A one-slice grid in LPS through ``point`` covering the volume's extent, on square pixels."""
    g = volume_geometry.to_lps()
    u, v = (np.array(a) for a in _PLANE_AXES[plane])
    n = np.cross(u, v)
    corners = np.array([[i, j, k] for i in (-0.5, g.size[0] - 0.5) for j in (-0.5, g.size[1] - 0.5)
                        for k in (-0.5, g.size[2] - 0.5)])
    world = g.index_to_world(corners)
    u0, u1 = (world @ u).min(), (world @ u).max()
    v0, v1 = (world @ v).min(), (world @ v).max()
    pixel = max(min(g.spacing), (u1 - u0) / max_pixels, (v1 - v0) / max_pixels)
    nu, nv = max(1, int(np.ceil((u1 - u0) / pixel))), max(1, int(np.ceil((v1 - v0) / pixel)))
    origin = (u0 + pixel / 2) * u + (v0 + pixel / 2) * v + float(point @ n) * n
    direction = np.column_stack([u, v, n])
    return Geometry(size=(nu, nv, 1), spacing=(pixel, pixel, pixel), origin=origin, direction=direction.ravel())


def _label_layers(labels, volume: Volume):
    """[(layer sitk image, [(value, rgb)])] for a Segmentation or a label-map Volume."""
    if isinstance(labels, Volume):
        labels = Segmentation.from_labelmap(labels.array, labels.geometry)
    if not isinstance(labels, Segmentation):
        raise TypeError(f"labels must be a Segmentation or a label-map Volume, got {type(labels).__name__}")
    out = []
    for li, layer in enumerate(labels.layers):
        colors = [(s.label_value, s.color) for s in labels.segments if s.layer == li]
        if colors:
            out.append((to_sitk(layer, labels.geometry), colors))
    return out


def mpr_planes(volume: Volume, preset=DEFAULT_PRESET, point=None, labels=None, *, alpha: float = 0.4,
               max_pixels: int = 512) -> list:
    """[(plane name, plane Geometry, uint8 gray (rows, cols), RGBA overlay)] for axial, coronal, sagittal.

    Rows and columns follow the radiological display convention (see the module docstring);
    pixels are square, ``plane.spacing[0]`` mm wide.
    """
    level, width = resolve_window(preset)
    g = volume.geometry.to_lps()
    point = g.index_to_world((np.array(g.size) - 1) / 2.0) if point is None else np.asarray(point, dtype=float)
    if point.shape != (3,):
        raise ValueError(f"point must be 3 world coordinates (LPS mm), got {point!r}")
    image = Volume(volume.array, g).to_sitk()
    background = float(volume.array.min(initial=0))
    layers = _label_layers(labels, volume) if labels is not None else []
    panels = []
    for plane in ("axial", "coronal", "sagittal"):
        pg = _plane_geometry(g, plane, point, max_pixels)
        gray = apply_window(resample_image(image, pg, label=False, default=background)[0], level, width)
        rgba = np.zeros(gray.shape + (4,), dtype=np.float32)
        for layer_image, colors in layers:
            values = resample_image(layer_image, pg, label=True, default=0)[0]
            for value, color in colors:
                hit = values == value
                rgba[hit, :3] = color
                rgba[hit, 3] = alpha
        panels.append((plane, pg, gray, rgba))
    return panels


def render_mpr_png(volume: Volume, path, preset=DEFAULT_PRESET, point=None, labels=None, *,
                   title: str | None = None, alpha: float = 0.4, max_pixels: int = 512, dpi: int = 100,
                   crosshair: bool = True) -> Path:
    """Write a PNG of the axial, coronal and sagittal planes through ``point`` (LPS mm; default the centre)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    level, width = resolve_window(preset)
    g = volume.geometry.to_lps()
    point = g.index_to_world((np.array(g.size) - 1) / 2.0) if point is None else np.asarray(point, dtype=float)
    panels = mpr_planes(volume, (level, width), point, labels, alpha=alpha, max_pixels=max_pixels)
    layers = labels is not None
    widths = [pg.size[0] * pg.spacing[0] for _, pg, _, _ in panels]
    heights = [pg.size[1] * pg.spacing[1] for _, pg, _, _ in panels]
    scale = 4.0 / max(heights)  # inches per mm, so the tallest panel is 4 inches
    fig = Figure(figsize=(sum(widths) * scale + 0.6, max(heights) * scale + 0.8), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": widths})
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.86, wspace=0.04)
    for ax, (plane, pg, gray, rgba) in zip(axes, panels):
        w_mm, h_mm = pg.size[0] * pg.spacing[0], pg.size[1] * pg.spacing[1]
        extent = (0, w_mm, h_mm, 0)  # mm: square pixels, so the physical aspect ratio is kept
        ax.imshow(gray, cmap="gray", vmin=0, vmax=255, extent=extent, interpolation="nearest")
        if layers:
            ax.imshow(rgba, extent=extent, interpolation="nearest")
        if crosshair:
            u, v = (np.array(a) for a in _PLANE_AXES[plane])
            origin = np.array(pg.origin) - pg.spacing[0] / 2 * (u + v)
            ax.axvline(float((point - origin) @ u), color="yellow", lw=0.5, alpha=0.5)
            ax.axhline(float((point - origin) @ v), color="yellow", lw=0.5, alpha=0.5)
        left, right, top, bottom = _PLANE_LETTERS[plane]
        style = dict(color="orange", fontsize=9, transform=ax.transAxes, weight="bold")
        ax.text(0.01, 0.5, left, ha="left", va="center", **style)
        ax.text(0.99, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.99, top, ha="center", va="top", **style)
        ax.text(0.5, 0.01, bottom, ha="center", va="bottom", **style)
        ax.set_title(plane, color="white", fontsize=10)
        ax.set_axis_off()
    name = preset if isinstance(preset, str) else "custom"
    fig.suptitle(title or f"{name} window (L {level:g} / W {width:g} HU)", color="white", fontsize=11)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), format="png", facecolor=fig.get_facecolor())
    return path
