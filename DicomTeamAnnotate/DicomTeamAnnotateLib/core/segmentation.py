"""Segmentations in memory: named segments, possibly overlapping, on one geometry.

Mirrors Slicer's segmentation model (and the ``.seg.nrrd`` file): binary labelmap *layers*
(``layers[l, k, j, i]``), each segment living in one layer with one label value.  Segments
are identified by name (and optionally a terminology code), never by label value alone:
two annotators' files may number the same organ differently.

File IO lives in ``segio.py``; this module is pure numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry, check_array, resample_like

# A small default palette (Slicer's GenericAnatomyColors-like), RGB in 0..1.
DEFAULT_COLORS = [
    (0.50, 0.68, 0.50), (0.95, 0.84, 0.57), (0.69, 0.48, 0.40), (0.44, 0.72, 0.82), (0.85, 0.40, 0.33),
    (0.86, 0.96, 0.08), (0.30, 0.45, 0.85), (0.90, 0.60, 0.85), (0.26, 0.80, 0.57), (0.98, 0.50, 0.10),
]


def default_color(index: int) -> tuple:
    return DEFAULT_COLORS[index % len(DEFAULT_COLORS)]


def present_values(array: np.ndarray) -> list[int]:
    """Non-zero values in a label map (bincount for 8/16-bit: much faster than np.unique's sort)."""
    if np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize <= 2 and array.min(initial=0) >= 0:
        return [int(v) for v in np.nonzero(np.bincount(array.ravel()))[0] if v != 0]
    return [int(v) for v in np.unique(array) if v != 0]


@dataclass
class Segment:
    """One segment: a name, a display colour, where its voxels live (layer, label value)."""

    name: str
    label_value: int
    color: tuple = (0.5, 0.5, 0.5)
    layer: int = 0
    id: str = ""
    terminology: str | None = None  # Slicer terminology entry string or "SCHEME^CODE^Meaning"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.name:
            raise ValueError("segment name must not be empty")
        self.label_value = int(self.label_value)
        if self.label_value <= 0:
            raise ValueError(f"segment '{self.name}': label value must be >= 1, got {self.label_value}")
        self.color = tuple(float(c) for c in self.color)
        if not self.id:
            self.id = self.name

    def key(self) -> str:
        """A matching key: the terminology code when given, else the normalised name."""
        return terminology_code(self.terminology) or self.name.strip().lower()

    def matches(self, other: Segment) -> bool:
        """Same structure? By terminology code when both have one, else by name (never by value)."""
        mine, theirs = terminology_code(self.terminology), terminology_code(other.terminology)
        if mine and theirs:
            return mine == theirs
        return self.name.strip().lower() == other.name.strip().lower()


def terminology_code(term: str | None) -> str | None:
    """The (scheme, code) of a Slicer terminology string or a 'SCHEME^CODE^Meaning' triple."""
    if not term:
        return None
    # Slicer: "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical
    # Structure~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^"; the type is field 2.
    parts = term.split("~")
    triple = parts[2] if len(parts) > 2 else parts[0]
    fields = triple.split("^")
    if len(fields) >= 2 and fields[0] and fields[1]:
        return f"{fields[0]}:{fields[1]}".lower()
    return None


@dataclass
class Segmentation:
    """Segments on a common grid; ``layers`` is uint8 (L, K, J, I)."""

    layers: np.ndarray
    geometry: Geometry
    segments: list[Segment]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.layers.ndim == 3:
            self.layers = self.layers[np.newaxis]
        check_array(self.layers, self.geometry, "segmentation layers")
        names = [s.name for s in self.segments]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"segmentation has duplicate segment names: {sorted(dupes)}")
        for s in self.segments:
            if not 0 <= s.layer < self.layers.shape[0]:
                raise ValueError(f"segment '{s.name}' refers to layer {s.layer}, but there are "
                                 f"{self.layers.shape[0]} layers")

    # ----- access -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def segment(self, name: str) -> Segment:
        for s in self.segments:
            if s.name == name:
                return s
        raise KeyError(f"no segment named '{name}' (segments: {', '.join(self.names) or 'none'})")

    def mask(self, name: str) -> np.ndarray:
        """Boolean (K, J, I) mask of one segment."""
        s = self.segment(name)
        return self.layers[s.layer] == s.label_value

    def find(self, other: Segment) -> Segment | None:
        """The segment here that is ``other``: same terminology code first, else ``Segment.matches``."""
        code = terminology_code(other.terminology)
        if code:
            for s in self.segments:
                if terminology_code(s.terminology) == code:
                    return s
        for s in self.segments:
            if s.matches(other):
                return s
        return None

    # ----- construction ---------------------------------------------------------------------
    @classmethod
    def from_masks(cls, masks: dict, geometry: Geometry, *, colors: dict | None = None,
                   terminology: dict | None = None) -> Segmentation:
        """Build from {name: bool mask}; overlapping masks go to separate layers."""
        colors = colors or {}
        terminology = terminology or {}
        layers: list[np.ndarray] = []
        segments: list[Segment] = []
        for n, (name, m) in enumerate(masks.items()):
            m = np.asarray(m, dtype=bool)
            check_array(m, geometry, f"mask '{name}'")
            for li, layer in enumerate(layers):  # noqa: B007 - li: the layer the mask goes to
                if not np.any(layer[m]):
                    break
            else:
                layers.append(np.zeros(geometry.shape, dtype=np.uint8))
                li = len(layers) - 1
            value = 1 + sum(1 for s in segments if s.layer == li)
            if value > 255:
                raise ValueError("more than 255 segments in one layer")
            layers[li][m] = value
            segments.append(Segment(name=name, label_value=value, layer=li,
                                    color=colors.get(name, default_color(n)), terminology=terminology.get(name)))
        if not layers:
            layers.append(np.zeros(geometry.shape, dtype=np.uint8))
        return cls(np.stack(layers), geometry, segments)

    @classmethod
    def from_labelmap(cls, labelmap: np.ndarray, geometry: Geometry, segments: list[Segment] | None = None,
                      names: dict | None = None) -> Segmentation:
        """One layer from an integer label map.

        ``segments`` (with label values) name the labels; otherwise ``names`` {value: name} or
        "Segment_<value>" for every non-zero value present.
        """
        labelmap = np.asarray(labelmap)
        check_array(labelmap, geometry, "label map")
        if segments is None:
            values = present_values(labelmap)
            names = names or {}
            segments = [Segment(name=names.get(v, f"Segment_{v}"), label_value=v, color=default_color(i))
                        for i, v in enumerate(values)]
        segments = [replace(s, layer=0) for s in segments]
        if labelmap.max(initial=0) > 255 or labelmap.min(initial=0) < 0:
            # keep one layer: remap values to 1..N in the uint8 layer, segments keep their names
            layer = np.zeros(labelmap.shape, dtype=np.uint8)
            remapped = []
            for i, s in enumerate(segments, start=1):
                layer[labelmap == s.label_value] = i
                remapped.append(replace(s, label_value=i))
            return cls(layer[np.newaxis], geometry, remapped)
        return cls(labelmap.astype(np.uint8)[np.newaxis], geometry, segments)

    # ----- conversion -------------------------------------------------------------------------
    def to_labelmap(self, values: dict | None = None, *, dtype=np.uint16) -> np.ndarray:
        """Single (K, J, I) label map; ``values`` {name: value} (default: 1..N in segment order).

        Where segments overlap, the later segment in ``values``/segment order wins.
        """
        values = values or {s.name: i for i, s in enumerate(self.segments, start=1)}
        out = np.zeros(self.geometry.shape, dtype=dtype)
        for name, value in values.items():
            out[self.mask(name)] = value
        return out

    def resampled(self, reference: Geometry) -> Segmentation:
        """The same segments on another grid (nearest neighbour, by physical position)."""
        if self.geometry.same_grid(reference):
            return self
        layers = np.stack([resample_like(layer, self.geometry, reference, label=True) for layer in self.layers])
        return Segmentation(layers, reference, [replace(s) for s in self.segments], dict(self.metadata))

    def with_masks(self, masks: dict) -> Segmentation:
        """A copy where the named segments' voxels are replaced by ``masks`` {name: bool array}."""
        all_masks = {s.name: self.mask(s.name) for s in self.segments}
        all_masks.update(masks)
        colors = {s.name: s.color for s in self.segments}
        terms = {s.name: s.terminology for s in self.segments}
        return Segmentation.from_masks(all_masks, self.geometry, colors=colors, terminology=terms)
