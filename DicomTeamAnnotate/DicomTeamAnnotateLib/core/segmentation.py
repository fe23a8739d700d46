"""Segmentations in memory: named segments, possibly overlapping, on one geometry.

Mirrors Slicer's segmentation model (and the ``.seg.nrrd`` file): binary labelmap *layers*
(``layers[l, k, j, i]``), each segment living in one layer with one label value.  Segments
are identified by their terminology entry (category, type, type modifier, region, region
modifier: "right lung" and "left lung" share a type code) and else by name, never by label
value alone: two annotators' files may number the same organ differently.  ``match_segments``
is the one matcher every consumer uses (consensus inputs, training export, DICOM SEG import).

File IO lives in ``io/``; this module is pure numpy.
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


# Slicer keeps a segment's LabelValue in an int; layers are uint8/uint16/uint32 as the values need.
MAX_LABEL_VALUE = 2**31 - 1


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
        if not 1 <= self.label_value <= MAX_LABEL_VALUE:
            raise ValueError(f"segment '{self.name}': label value must be 1..{MAX_LABEL_VALUE}, got {self.label_value}")
        self.color = tuple(float(c) for c in self.color)
        if not self.id:
            self.id = self.name

    def key(self) -> str:
        """A readable matching key: the terminology's type, modifiers and region, else the normalised name.

        The category is left out: lists file one structure under different categories (see
        ``SegmentIdentity.same_as``, which compares it when both sides give one).
        """
        return segment_identity(self).key()

    def matches(self, other: Segment) -> bool:
        """Same structure? By terminology entry when both have one, else by name (never by value)."""
        return segment_identity(self).same_as(segment_identity(other))


# ----- terminology ------------------------------------------------------------------------------
# Slicer types every segment nobody typed as category and type SCT 85756007 "Tissue": that says
# nothing about the structure, so such an entry identifies nothing (the name does).
_TISSUE = ("SCT", "85756007")
# Codes that lists renamed: CID 7150's "Anatomical structure" was SCT 123037004 (Slicer's lists still
# write it) and is SCT 91723000 in today's DICOM; both mean the same category.
_EQUIVALENT_CODES = {("SCT", "123037004"): ("SCT", "91723000")}


@dataclass(frozen=True)
class Code:
    """One coded concept: coding scheme designator, code value, code meaning."""

    scheme: str
    value: str
    meaning: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Code | None:
        """'SCT^39607008^Lung' (Slicer's order: scheme, value, meaning); None for an empty code ('^^')."""
        fields = (text or "").split("^", 2)
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            return None
        return cls(fields[0].strip(), fields[1].strip(), fields[2].strip() if len(fields) > 2 else "")

    def key(self) -> tuple:
        """(scheme, value) for comparison: SNOMED RT (SRT) codes as their SNOMED CT (SCT) equivalent."""
        scheme, value = self.scheme.upper(), self.value
        if scheme == "SRT":
            # pydicom carries DICOM's SRT -> SCT table (its Code.__eq__ uses the same table)
            from pydicom.sr.coding import snomed_mapping

            mapped = snomed_mapping["SRT"].get(value)
            scheme, value = ("SCT", mapped) if mapped else (scheme, value)
        return _EQUIVALENT_CODES.get((scheme, value), (scheme, value))

    def triple(self) -> str:
        return f"{self.scheme}^{self.value}^{self.meaning}"


def _code_text(code: Code | None) -> str:
    return code.triple() if code is not None else "^^"


@dataclass(frozen=True)
class TerminologyEntry:
    """Slicer's terminology entry, field by field (``vtkSlicerTerminologiesModuleLogic``'s serialisation).

    ``context~category~type~type modifier~region context~region~region modifier``, each code
    ``SCHEME^VALUE^Meaning``.  The context names are not part of a structure's identity: since
    Slicer 5.10 the context may be empty or the name of a colour table.
    """

    category: Code | None
    type: Code | None
    type_modifier: Code | None = None
    region: Code | None = None
    region_modifier: Code | None = None
    context: str = ""
    region_context: str = ""

    @classmethod
    def parse(cls, text: str | None) -> TerminologyEntry | None:
        """The entry of a Slicer terminology string or a bare 'SCHEME^VALUE^Meaning' type; None if it names no type."""
        text = (text or "").strip()
        if not text:
            return None
        if "~" not in text:
            code = Code.parse(text)
            return cls(None, code) if code is not None else None
        parts = text.split("~")
        if len(parts) == 8 and parts[7] == "":  # colour tables end the entry with '~' (Slicer drops it too)
            parts = parts[:7]
        if len(parts) != 7:
            return None
        category, prop_type = Code.parse(parts[1]), Code.parse(parts[2])
        if prop_type is None:
            return None
        region = Code.parse(parts[5])
        # Slicer reads the region modifier only when there is a region
        region_modifier = Code.parse(parts[6]) if region is not None else None
        return cls(category, prop_type, Code.parse(parts[3]), region, region_modifier, parts[0], parts[4])

    def is_default(self) -> bool:
        """Slicer's 'Tissue / Tissue' given to every untyped segment."""
        return (self.type.key() == _TISSUE and (self.category is None or self.category.key() == _TISSUE)
                and self.type_modifier is None and self.region is None)

    def to_slicer(self, context: str = "", region_context: str = "") -> str:
        """The 7-field string Slicer writes."""
        return "~".join([self.context or context, _code_text(self.category), _code_text(self.type),
                         _code_text(self.type_modifier), self.region_context or region_context,
                         _code_text(self.region), _code_text(self.region_modifier)])


def terminology_code(term: str | None) -> str | None:
    """'scheme:value' of the type of a terminology string (the type alone: no identity, see segment_identity)."""
    entry = TerminologyEntry.parse(term)
    return f"{entry.type.scheme}:{entry.type.value}".lower() if entry is not None else None


# ----- identity and matching ------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentIdentity:
    """What makes a segment the structure it is: its terminology codes, else its name."""

    name: str                  # stripped, case-folded
    category: tuple | None     # (scheme, value) of each code; None when absent
    terms: tuple | None        # (type, type modifier, region, region modifier); None: no meaningful terminology

    def same_as(self, other: SegmentIdentity) -> bool:
        """Type, type modifier, region and region modifier equal (the category too when both give one);
        by name when either side has no terminology."""
        if self.terms is not None and other.terms is not None:
            return self.terms == other.terms and (self.category is None or other.category is None
                                                  or self.category == other.category)
        return self.name == other.name

    def key(self) -> str:
        """Readable: 'sct:39607008+sct:24028007' (type + modifier), '@region', else the name."""
        if self.terms is None:
            return self.name
        prop_type, modifier, region, region_modifier = (":".join(t).lower() if t else "" for t in self.terms)
        return (prop_type + (f"+{modifier}" if modifier else "") + (f"@{region}" if region else "")
                + (f"+{region_modifier}" if region_modifier else ""))


def segment_identity(segment: Segment) -> SegmentIdentity:
    """A segment's identity: category + type + type modifier + region + region modifier of its
    terminology entry (Slicer's 'Tissue' default counts as none), and its name as the fallback."""
    name = segment.name.strip().casefold()
    entry = TerminologyEntry.parse(segment.terminology)
    if entry is None or entry.is_default():
        return SegmentIdentity(name, None, None)

    def key(code):
        return code.key() if code is not None else None

    return SegmentIdentity(name, key(entry.category),
                           (key(entry.type), key(entry.type_modifier), key(entry.region), key(entry.region_modifier)))


class AmbiguousSegmentMatch(ValueError):
    """Segments of two inputs that cannot be paired one to one; the message names them."""


def _names(segments) -> str:
    return ", ".join(f"'{s.name}'" for s in segments)


# Tiers of match_segments, tried in order over the candidates still free.
_MATCH_TIERS = (
    lambda a, b: a.terms is not None and b.terms is not None and a.same_as(b) and a.name == b.name,
    lambda a, b: a.terms is not None and b.terms is not None and a.same_as(b),
    lambda a, b: (a.terms is None or b.terms is None) and a.name == b.name,
)


def match_segments(wanted: list, candidates: list, *, what: str = "") -> list:
    """For each of ``wanted``, the segment of ``candidates`` that is the same structure, or None.

    Tiers, each over the candidates still free: same terminology and same name; same
    terminology; same name where a side has no terminology (terminology decides when both
    have one: 'Liver' typed as spleen is no liver).  A structure that two candidates could be
    (two segments typed 'Lung' without modifiers, other names) or a candidate that two wanted
    segments claim raises ``AmbiguousSegmentMatch`` (``what``, e.g. the file, prefixes the
    message): never a guess.
    """
    wanted_ids = [segment_identity(s) for s in wanted]
    cand_ids = [segment_identity(s) for s in candidates]
    prefix = f"{what}: " if what else ""
    result: list = [None] * len(wanted)
    taken: set[int] = set()
    for tier in _MATCH_TIERS:
        claims: dict[int, int] = {}
        for w, wid in enumerate(wanted_ids):
            if result[w] is not None:
                continue
            hits = [c for c, cid in enumerate(cand_ids) if c not in taken and tier(wid, cid)]
            if len(hits) > 1:
                raise AmbiguousSegmentMatch(
                    f"{prefix}segment '{wanted[w].name}' could be any of {_names(candidates[c] for c in hits)} "
                    "(same terminology, other names): rename them or give them distinct terminology")
            if hits and hits[0] in claims:
                raise AmbiguousSegmentMatch(
                    f"{prefix}segments '{wanted[claims[hits[0]]].name}' and '{wanted[w].name}' both match "
                    f"'{candidates[hits[0]].name}': rename them or give them distinct terminology")
            if hits:
                claims[hits[0]] = w
        for c, w in claims.items():
            result[w] = candidates[c]
            taken.add(c)
    return result


def union_of_segments(segment_lists: list, sources: list | None = None) -> list:
    """Every distinct structure of several inputs, in order of first appearance (a list's own segments
    are never merged with each other); ``AmbiguousSegmentMatch`` naming the input when segments cannot
    be paired, or when two different structures carry one name."""
    union: list = []
    for n, segments in enumerate(segment_lists):
        what = str(sources[n]) if sources else f"input {n + 1}"
        matched = match_segments(union, list(segments), what=what)
        claimed = {id(m) for m in matched if m is not None}
        for s in segments:
            if id(s) in claimed:
                continue
            same_name = [u for u in union if u.name.strip().casefold() == s.name.strip().casefold()]
            if same_name:
                raise AmbiguousSegmentMatch(
                    f"{what}: segment '{s.name}' ({s.terminology or 'no terminology'}) is not the structure "
                    f"'{same_name[0].name}' of an earlier input ({same_name[0].terminology or 'no terminology'}), "
                    "but has its name: rename one or fix its terminology")
            union.append(s)
    return union


def layer_dtype(max_value: int):
    """The smallest unsigned type that holds label values up to ``max_value`` (uint8, uint16 or uint32)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"label value {max_value} is above {MAX_LABEL_VALUE}")


@dataclass
class Segmentation:
    """Segments on a common grid; ``layers`` is unsigned (L, K, J, I): uint8, or uint16/uint32 when a
    label value needs it (FreeSurfer's labels go to 2035 and are kept as they are)."""

    layers: np.ndarray
    geometry: Geometry
    segments: list[Segment]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.layers.ndim == 3:
            self.layers = self.layers[np.newaxis]
        check_array(self.layers, self.geometry, "segmentation layers")
        if self.layers.dtype.kind != "u":
            if self.layers.dtype.kind not in "iub" or (self.layers.size and self.layers.min() < 0):
                raise ValueError(f"segmentation layers must hold non-negative integers, got {self.layers.dtype}")
            self.layers = self.layers.astype(layer_dtype(int(self.layers.max(initial=0))))
        names = [s.name for s in self.segments]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"segmentation has duplicate segment names: {sorted(dupes)}")
        top = np.iinfo(self.layers.dtype).max
        for s in self.segments:
            if not 0 <= s.layer < self.layers.shape[0]:
                raise ValueError(f"segment '{s.name}' refers to layer {s.layer}, but there are "
                                 f"{self.layers.shape[0]} layers")
            if s.label_value > top:
                raise ValueError(f"segment '{s.name}': label value {s.label_value} does not fit {self.layers.dtype} "
                                 "layers")

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
        """The segment here that is ``other`` (``match_segments``: terminology entry, else name);
        ``AmbiguousSegmentMatch`` when several could be."""
        return match_segments([other], self.segments)[0]

    # ----- construction ---------------------------------------------------------------------
    @classmethod
    def from_masks(cls, masks: dict, geometry: Geometry, *, colors: dict | None = None,
                   terminology: dict | None = None, values: dict | None = None) -> Segmentation:
        """Build from {name: bool mask}; overlapping masks go to separate layers.

        ``values`` {name: label value} keeps those values where the layer has them free (else
        the next free value); by default a layer numbers its segments 1, 2, ...
        """
        colors, terminology, values = colors or {}, terminology or {}, values or {}
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
            used = {s.label_value for s in segments if s.layer == li}
            value = int(values.get(name) or 0)
            if value < 1 or value in used:
                value = 1 + max(used, default=0)
            if value > np.iinfo(layers[li].dtype).max:
                layers[li] = layers[li].astype(layer_dtype(value))
            layers[li][m] = value
            segments.append(Segment(name=name, label_value=value, layer=li,
                                    color=colors.get(name, default_color(n)), terminology=terminology.get(name)))
        if not layers:
            layers.append(np.zeros(geometry.shape, dtype=np.uint8))
        dtype = np.result_type(*layers)
        return cls(np.stack([layer.astype(dtype, copy=False) for layer in layers]), geometry, segments)

    @classmethod
    def from_labelmap(cls, labelmap: np.ndarray, geometry: Geometry, segments: list[Segment] | None = None,
                      names: dict | None = None) -> Segmentation:
        """One layer from an integer label map, its values kept (uint16/uint32 layers above 255).

        ``segments`` (with label values) name the labels; otherwise ``names`` {value: name} or
        "Segment_<value>" for every non-zero value present.
        """
        labelmap = np.asarray(labelmap)
        check_array(labelmap, geometry, "label map")
        if labelmap.dtype.kind not in "iub":
            raise ValueError(f"a label map must hold integers, got {labelmap.dtype}")
        if labelmap.min(initial=0) < 0:
            raise ValueError(f"negative label value {int(labelmap.min())} in a label map")
        if segments is None:
            values = present_values(labelmap)
            names = names or {}
            segments = [Segment(name=names.get(v, f"Segment_{v}"), label_value=v, color=default_color(i))
                        for i, v in enumerate(values)]
        segments = [replace(s, layer=0) for s in segments]
        top = max([int(labelmap.max(initial=0))] + [s.label_value for s in segments])
        return cls(labelmap.astype(layer_dtype(top), copy=False)[np.newaxis], geometry, segments)

    # ----- conversion -------------------------------------------------------------------------
    def own_values(self) -> dict | None:
        """{name: label value} when every segment has its own value (a label map can keep them), else None."""
        values = {s.name: s.label_value for s in self.segments}
        return values if len(set(values.values())) == len(values) else None

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
        """A copy where the named segments' voxels are replaced by ``masks`` {name: bool array} (values kept)."""
        all_masks = {s.name: self.mask(s.name) for s in self.segments}
        all_masks.update(masks)
        colors = {s.name: s.color for s in self.segments}
        terms = {s.name: s.terminology for s in self.segments}
        values = {s.name: s.label_value for s in self.segments}
        return Segmentation.from_masks(all_masks, self.geometry, colors=colors, terminology=terms, values=values)
