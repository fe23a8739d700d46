"""`dicomteam info FILE`: geometry and labels of a volume, label map or Slicer segmentation."""
from __future__ import annotations

import json

from DicomTeamAnnotateLib.cli.common import CommandError
from DicomTeamAnnotateLib.core.segmentation import Segmentation
from DicomTeamAnnotateLib.io.segmentations import is_seg_nrrd, read_image_or_segmentation


def register(subparsers) -> None:
    """Add the ``info`` subcommand (cheap: the IO modules load when it runs)."""
    p = subparsers.add_parser("info", help="print a volume's or segmentation's geometry and labels",
                              description="Print the geometry (size, spacing, origin, direction, space) of a "
                                          ".nrrd/.nii(.gz)/.seg.nrrd file and, for segmentations and label maps, "
                                          "every segment (name, value, layer, colour, voxels, volume).")
    p.add_argument("file", help="a volume (.nrrd, .nii, .nii.gz, .mha), a label map, or a Slicer .seg.nrrd")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--labels", dest="as_labels", action="store_true", default=None,
                      help="read an image as a label map (default: decided from its content)")
    kind.add_argument("--image", dest="as_labels", action="store_false", help="read an image as a volume")
    p.add_argument("--names", help="JSON file of label names ({name: value} or {\"labels\": {...}})")
    p.set_defaults(func=run_info)


def describe(path, *, as_labels=None, names=None) -> dict:
    """A JSON-ready summary of a file: kind, geometry and segments or intensity range."""
    obj = read_image_or_segmentation(path, names=names, as_labels=as_labels)
    g = obj.geometry.to_lps()
    info = {"file": str(path), "geometry": {**g.to_dict(), "oblique": g.is_oblique()}}
    if isinstance(obj, Segmentation):
        info["kind"] = "segmentation" if is_seg_nrrd(path) else "labelmap"
        info["layers"] = int(obj.layers.shape[0])
        counts = _voxel_counts(obj)
        info["segments"] = [{
            "name": s.name, "id": s.id, "value": s.label_value, "layer": s.layer,
            "color": [round(c, 4) for c in s.color], "terminology": s.terminology,
            "voxels": counts[s.name], "volume_ml": round(counts[s.name] * g.voxel_volume_ml(), 3),
        } for s in obj.segments]
        for key in ("reference_extent_offset", "warnings"):
            if obj.metadata.get(key):
                info[key] = obj.metadata[key]
    else:
        a = obj.array
        info["kind"] = "volume"
        info["dtype"] = str(a.dtype)
        info["range"] = [float(a.min()), float(a.max())] if a.size else None
    return info


def _voxel_counts(seg: Segmentation) -> dict:
    """{segment name: voxels}; one bincount per layer (label values up to 65535), else a mask each."""
    import numpy as np

    counts = {}
    for li, layer in enumerate(seg.layers):
        in_layer = [s for s in seg.segments if s.layer == li]
        if layer.dtype.itemsize <= 2:
            bins = np.bincount(layer.ravel(), minlength=max([s.label_value for s in in_layer] + [0]) + 1)
            counts.update({s.name: int(bins[s.label_value]) for s in in_layer})
        else:
            counts.update({s.name: int(np.count_nonzero(layer == s.label_value)) for s in in_layer})
    return counts


def _names_from(path) -> dict | None:
    if not path:
        return None
    from pathlib import Path


    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"--names {path}: cannot read ({exc})") from None
    labels = doc.get("labels", doc) if isinstance(doc, dict) else None
    if not isinstance(labels, dict):
        raise CommandError(f"--names {path}: expected a JSON object of name -> value")
    try:
        return {int(v): str(k) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise CommandError(f"--names {path}: every value must be an integer label") from None


def _fmt(values, digits=6) -> str:
    return " ".join(f"{v:.{digits}g}" for v in values)


def format_text(info: dict) -> str:
    """Human-readable lines of ``describe``'s result."""
    g = info["geometry"]
    d = g["direction"]
    lines = [f"file:      {info['file']}",
             f"kind:      {info['kind']}" + (f" ({info['layers']} layer(s))" if "layers" in info else "")
             + (f", {info['dtype']}" if "dtype" in info else ""),
             f"size:      {g['size'][0]} x {g['size'][1]} x {g['size'][2]} (I x J x K)",
             f"spacing:   {_fmt(g['spacing'])} mm",
             f"origin:    {_fmt(g['origin'])} ({g['space']})",
             f"direction: i=({_fmt(d[0::3], 5)}) j=({_fmt(d[1::3], 5)}) k=({_fmt(d[2::3], 5)})"
             + ("  [oblique]" if g["oblique"] else ""),
             f"space:     {g['space']}"]
    if info.get("range"):
        lines.append(f"range:     {info['range'][0]:g} .. {info['range'][1]:g}")
    if "segments" in info:
        lines.append(f"segments:  {len(info['segments'])}")
        width = max([len(s["name"]) for s in info["segments"]] + [4])
        lines.append(f"  {'name':<{width}}  value  layer  color                voxels    volume_ml")
        for s in info["segments"]:
            color = " ".join(f"{c:.3f}" for c in s["color"])
            lines.append(f"  {s['name']:<{width}}  {s['value']:>5}  {s['layer']:>5}  {color:<19}  "
                         f"{s['voxels']:>8}  {s['volume_ml']:>10.3f}")
    for w in info.get("warnings", []):
        lines.append(f"warning:   {w}")
    return "\n".join(lines)


def run_info(args) -> int:
    """Print the summary of ``args.file``."""
    from pathlib import Path


    path = Path(args.file)
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    info = describe(path, as_labels=args.as_labels, names=_names_from(args.names))
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
