"""`dicomteam sam`: segment from a box (and clicks) on one slice, optionally propagated in 3D.

    dicomteam sam --image IMG --plane axial|coronal|sagittal --slice K --box A0,B0,A1,B1
                  [--point A,B,+|-]... [--propagate] [--window LEVEL,WIDTH] [--backend NAME]
                  [--checkpoint PATH] --out MASK.nii.gz
    dicomteam sam --backend remote --store URL --case ID --user U [--token T] [--model NAME]
                  --plane ... --slice K --box ... [--propagate] --out MASK.nii.gz

With ``--backend remote`` the project server's SAM answers (its GPU or CPU): it holds the case
image, so ``--image`` is optional (given, it must be the case's image: its grid is checked);
the output has the case's geometry.  A failure of the server says so and suggests the local
backend (exit code 3); a refusal (token, a case not assigned to you) exits 2.

A, B are the plane's in-plane voxel indices in increasing axis order (axial: i, j; coronal:
i, k; sagittal: j, k), inclusive, of the image as read from IMG (a volume file or a DICOM
folder).  The output is a 0/1 label map with IMG's exact geometry.
"""
from __future__ import annotations

import time

from DicomTeamAnnotateLib.cli.common import CommandError
from DicomTeamAnnotateLib.dicom.ingest import load_image as load
from DicomTeamAnnotateLib.io.volumes import has_volume_suffix, write_volume
from SamPromptLib import shared
from SamPromptLib.backends import DEFAULT_BACKEND, available_backends
from SamPromptLib.backends.remote import RemoteSamError
from SamPromptLib.planes import PLANES, check_box_inside, parse_box, parse_point, slice_count, slice_shape
from SamPromptLib.segmenter import SamSegmenter


def register(subparsers) -> None:
    """Add the `sam` subcommand (cheap: no model import here)."""
    p = subparsers.add_parser(
        "sam", help="segment from a box/clicks on one slice with a medical SAM, optionally propagated in 3D",
        description="Segment from a box (and +/- clicks) on one slice with LiteMedSAM (default) or SAM; "
                    "A,B are the plane's in-plane voxel indices (axial: i,j; coronal: i,k; sagittal: j,k).")
    p.add_argument("--image", metavar="IMG", help="volume file (.nii.gz, .nrrd, ...) or DICOM folder (optional with "
                                                   "--backend remote: the server has the case image)")
    p.add_argument("--plane", required=True, choices=PLANES)
    p.add_argument("--slice", required=True, type=int, metavar="K", help="slice index along the plane's normal axis")
    p.add_argument("--box", metavar="A0,B0,A1,B1", help="box corners, inclusive voxel indices (required for "
                                                         "box-only models such as the default)")
    p.add_argument("--point", action="append", default=[], metavar="A,B,+|-",
                   help="a positive (+) or negative (-) click; repeat for more")
    p.add_argument("--propagate", nargs="?", const="both", choices=("up", "down", "both"), default=None,
                   help="propagate through the volume from the prompted slice (default both directions)")
    p.add_argument("--window", metavar="LEVEL,WIDTH", help="intensity window, or a preset name "
                                                           "(default: soft tissue 40,400 for CT, else full range)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=available_backends())
    p.add_argument("--checkpoint", metavar="PATH", help="model weights (needed for sam-vit_*; LiteMedSAM ships its own)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    p.add_argument("--store", metavar="URL", help="--backend remote: the project server")
    p.add_argument("--case", metavar="ID", help="--backend remote: the case id in the project")
    p.add_argument("--user", metavar="U", help="--backend remote: project member (default: $DICOMTEAM_USER)")
    p.add_argument("--token", metavar="T", help="--backend remote: server token (default: $DICOMTEAM_TOKEN)")
    p.add_argument("--model", metavar="NAME", help="--backend remote: a backend the server offers (default: its own)")
    p.add_argument("--out", required=True, metavar="MASK.nii.gz", help="output 0/1 label map (IMG's geometry)")
    p.set_defaults(func=run_sam)


def load_image(path):
    """A Volume from a volume file, or from a DICOM folder/file through the ingest code."""
    return load(path)


def parse_window(text):
    """'LEVEL,WIDTH' -> (level, width); a preset name passes through; None stays None."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) == 2:
        try:
            level, width = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--window must be LEVEL,WIDTH (numbers) or a preset name, got {text!r}") from None
        if width <= 0:
            raise ValueError(f"--window width must be > 0, got {width:g}")
        return level, width
    return text


def run_sam(args) -> int:
    """Run the `sam` subcommand."""

    if not has_volume_suffix(args.out):
        raise CommandError(f"--out {args.out}: use a volume file name such as MASK.nii.gz or MASK.nrrd")
    box = parse_box(args.box) if args.box else None
    clicks = [parse_point(p) for p in args.point]
    if box is None and not clicks:
        raise CommandError("give --box A0,B0,A1,B1 (and optionally --point A,B,+|-)")
    remote = args.backend == "remote"
    if remote and not (args.store and args.case):
        raise CommandError("--backend remote needs --store URL and --case ID (and --user, --token or "
                           "$DICOMTEAM_USER/$DICOMTEAM_TOKEN)")
    if not remote and (args.store or args.case):
        raise CommandError("--store and --case go with --backend remote (the project server's SAM)")
    if not remote and not args.image:
        raise CommandError("give --image IMG (a volume file or DICOM folder), or use --backend remote --store --case")
    volume = load_image(args.image) if args.image else None
    started = time.perf_counter()
    segmenter = remote_segmenter(args, volume) if remote else None
    volume = segmenter.volume if remote else volume
    source = args.image or f"case {args.case}"
    n = slice_count(volume.array.shape, args.plane)
    if not 0 <= args.slice < n:
        raise CommandError(f"--slice {args.slice} is outside the {args.plane} slices of {source} (0..{n - 1})")
    shape = slice_shape(volume.array.shape, args.plane)
    if box is not None:
        check_box_inside(box, shape, "--box")
    for (a, b), _ in clicks:
        if not (0 <= a <= shape[1] - 1 and 0 <= b <= shape[0] - 1):
            raise CommandError(f"--point {a:g},{b:g} lies outside the {args.plane} slice (A 0..{shape[1] - 1}, "
                               f"B 0..{shape[0] - 1})")
    try:
        if not remote:
            # The process-wide model and embedding cache: scripts calling main() repeatedly reuse both.
            settings = shared.model_settings({"backend": args.backend, "checkpoint": args.checkpoint or "",
                                              "device": args.device})
            segmenter = SamSegmenter(volume, shared.backend_for(settings), window=parse_window(args.window),
                                     cache=shared.shared_cache())
    except ImportError as exc:
        raise CommandError(f"backend {args.backend} needs a package that is not installed ({exc.name}); "
                           "install the 'sam' extra: pip install 'dicomteamannotate[sam]'") from None
    try:
        mask = segmenter.segment(args.plane, args.slice, box=box, points=[p for p, _ in clicks] or None,
                                 labels=[lab for _, lab in clicks] or None, propagate=args.propagate or False)
    except RemoteSamError as exc:
        raise remote_error(exc) from None
    write_volume(mask, args.out)
    slices = mask.metadata["sam_slices"]
    print(f"wrote {args.out}: {int(mask.array.sum())} voxels on {len(slices)} {args.plane} slice(s) "
          f"{min(slices)}..{max(slices)} ({backend_label(segmenter.backend)}, window {segmenter.window[0]:g}/"
          f"{segmenter.window[1]:g}, {time.perf_counter() - started:.1f} s)")
    return 0


def backend_label(backend) -> str:
    """The backend as the summary line names it (the server and its device for the remote one)."""
    if getattr(backend, "addresses_slices", False):
        info = backend.describe()
        return f"remote {info['model']} on {info['server']} ({info['device']})"
    return backend.name


def remote_error(exc: RemoteSamError) -> CommandError:
    """A remote failure as a one-line error: exit 3 with the local fallback offered, 2 for a refusal."""
    if exc.fallback:
        return CommandError(f"{exc}; the local backend can do this: drop --backend remote (and give --image)", code=3)
    return CommandError(str(exc))


def remote_segmenter(args, volume) -> SamSegmenter:
    """The segmenter of ``--backend remote`` (the server's case image; ``volume`` checked against it)."""
    if args.checkpoint:
        raise CommandError("--checkpoint does not apply to --backend remote (the server has its models; --model)")
    try:
        return SamSegmenter(volume, "remote", window=parse_window(args.window), store=args.store, case=args.case,
                            user=args.user, token=args.token, model=args.model, precompute=bool(args.propagate))
    except RemoteSamError as exc:
        raise remote_error(exc) from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
