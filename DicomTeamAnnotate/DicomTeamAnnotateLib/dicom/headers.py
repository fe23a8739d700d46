"""Finding DICOM files (folders, file lists, ZIP archives) and reading their headers once.

A header is read with ``stop_before_pixels``; the byte offset of the Pixel Data element is
remembered so that decoding later reads only the pixel bytes (the header is never parsed
twice).  Every file that cannot become part of a volume is rejected with a reason naming what
is wrong, and the rest goes on.
"""
from __future__ import annotations

import io
import os
import struct
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Files that operating systems leave in folders and archives: skipped, counted in the notes.
OS_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
OS_JUNK_DIRS = {"__MACOSX"}

PIXEL_DATA_TAG = 0x7FE00010
FLOAT_PIXEL_TAGS = (0x7FE00008, 0x7FE00009)
DEFLATED = "1.2.840.10008.1.2.1.99"

# SOP classes that hold pixels but are not image volumes; named in the rejection reason.
NOT_VOLUMES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "DICOM SEG (a segmentation, not an image volume; read it as a segmentation)",
    "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated PDF",
}


class RejectedFile(Exception):
    """A file that is not turned into a volume; the message is the reason shown to the user."""


class MissingDecoder(RejectedFile):
    """A compressed file no installed plugin decodes (Slicer installs the decoders when a file needs them)."""

    def __init__(self, message: str, transfer_syntax: str):
        super().__init__(message)
        self.transfer_syntax = transfer_syntax


@dataclass(frozen=True)
class Source:
    """Where one file's bytes come from: a path, or a member of a ZIP archive."""

    label: str               # what reports show: the path, or "archive.zip!folder/file.dcm"
    path: str
    member: str | None = None


class SourceSet:
    """The files found under the given paths, and open handles on the ZIP archives among them."""

    def __init__(self):
        self.sources: list[Source] = []
        self.rejected: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.skipped_junk = 0
        self._seen: set[str] = set()
        self._zips: dict[str, zipfile.ZipFile] = {}
        self._lock = threading.Lock()

    def open(self, source: Source):
        """A binary file object on the source's bytes (a ZIP member is read into memory)."""
        if source.member is None:
            return open(source.path, "rb")
        with self._lock:  # one reader at a time on a shared ZipFile handle
            return io.BytesIO(self._zips[source.path].read(source.member))

    def close(self):
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----- collection ------------------------------------------------------------------------
    def add_path(self, path) -> None:
        """Add a file, a folder (recursively) or a ZIP archive."""
        path = Path(path)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in OS_JUNK_DIRS)
                for name in sorted(files):
                    self._add_file(Path(root) / name)
        elif path.is_file():
            self._add_file(path)
        else:
            self.rejected.append((str(path), "no such file or folder"))

    def _add_file(self, path: Path) -> None:
        real = os.path.realpath(path)
        if real in self._seen:  # the same file named twice (a folder and a file in it, say)
            return
        self._seen.add(real)
        if path.name in OS_JUNK_NAMES or path.name.startswith("._"):
            self.skipped_junk += 1
        elif path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
            self._add_zip(path)
        else:
            self.sources.append(Source(str(path), str(path)))

    def _add_zip(self, path: Path) -> None:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            self.rejected.append((str(path), f"unreadable ZIP archive ({exc})"))
            return
        self._zips[str(path)] = zf
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            name = info.filename
            parts = name.split("/")
            if info.is_dir():
                continue
            if any(p in OS_JUNK_DIRS for p in parts) or parts[-1] in OS_JUNK_NAMES or parts[-1].startswith("._"):
                self.skipped_junk += 1
            elif name.lower().endswith(".zip"):
                self.rejected.append((f"{path}!{name}", "ZIP archive inside a ZIP archive: extract it first"))
            else:
                self.sources.append(Source(f"{path}!{name}", str(path), name))


def collect_sources(paths) -> SourceSet:
    """Every candidate file under ``paths`` (a path, or a list of files/folders/ZIPs)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = SourceSet()
    for p in paths:
        found.add_path(p)
    if found.skipped_junk:
        found.notes.append(f"skipped {found.skipped_junk} operating-system file(s) (.DS_Store, __MACOSX, ...)")
    return found


# ----- headers -----------------------------------------------------------------------------------
@dataclass
class FileHeader:
    """One file's header (no pixel data) and where its pixel data starts."""

    source: Source
    ds: object                      # pydicom Dataset without Pixel Data
    pixel_offset: int | None        # byte offset of the Pixel Data element; None: re-read the file
    number_of_frames: int = 1
    transfer_syntax: str = ""
    extra: dict = field(default_factory=dict)


def _sop_class_name(ds) -> str:
    from pydicom.uid import UID

    uid = str(ds.get("SOPClassUID", "") or "")
    return UID(uid).name if uid else "unknown SOP class"


def read_header(sources: SourceSet, source: Source) -> FileHeader:
    """Parse one file's header; raise RejectedFile with the reason when it cannot be a slice."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        fh = sources.open(source)
    except OSError as exc:
        raise RejectedFile(f"cannot open ({exc.strerror or exc})") from None
    with fh:
        if fh.seek(0, io.SEEK_END) == 0:
            raise RejectedFile("empty file (0 bytes)")
        fh.seek(0)
        try:
            try:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
            except InvalidDicomError:
                # no preamble / "DICM" prefix: old ACR-NEMA-style files still parse when forced
                fh.seek(0)
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
                if not any(t in ds for t in (0x00080016, 0x00280010, 0x00200013, 0x0020000E)):
                    raise RejectedFile("not a DICOM file") from None
        except RejectedFile:
            raise
        except Exception as exc:  # pydicom raises many types on damaged input; all mean "unreadable"
            raise RejectedFile(f"unreadable DICOM header ({type(exc).__name__}: {exc})") from None
        offset = fh.tell()
        head = fh.read(4)
        size = fh.seek(0, io.SEEK_END)
    ds_meta = getattr(ds, "file_meta", None)
    ts = str(ds_meta.get("TransferSyntaxUID", "")) if ds_meta is not None else ""
    if str(ds.get("SOPClassUID", "")) == "1.2.840.10008.1.3.10" or "DirectoryRecordSequence" in ds:
        raise RejectedFile("DICOMDIR (a media directory index, not an image)")
    implicit, little = ds.original_encoding
    if ts == DEFLATED:
        offset = None  # the dataset is deflate-compressed: positions in the file mean nothing
    elif len(head) < 4:
        raise RejectedFile(f"no pixel data ({_sop_class_name(ds)})")
    else:
        tag = struct.unpack("<HH" if little else ">HH", head)
        tag = (tag[0] << 16) | tag[1]
        if tag in FLOAT_PIXEL_TAGS:
            raise RejectedFile("float/double pixel data is not supported")
        if tag != PIXEL_DATA_TAG:
            raise RejectedFile(f"no pixel data ({_sop_class_name(ds)})")
    reason = NOT_VOLUMES.get(str(ds.get("SOPClassUID", "")))
    if reason:
        raise RejectedFile(reason)
    frames = int_value(ds.get("NumberOfFrames"), 1) or 1
    header = FileHeader(source, ds, offset, frames, ts)
    _check_image_module(header, size, implicit)
    return header


def int_value(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _check_image_module(header: FileHeader, file_size: int, implicit: bool) -> None:
    """Reject what cannot become a greyscale volume; detect truncated native pixel data."""
    ds = header.ds
    missing = [k for k in ("Rows", "Columns", "BitsAllocated") if ds.get(k) in (None, "")]
    if missing:
        raise RejectedFile(f"image pixel module incomplete: missing {', '.join(missing)}")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    samples = int_value(ds.get("SamplesPerPixel"), 1)
    if samples != 1 or not photometric.startswith("MONOCHROME"):
        raise RejectedFile(f"colour image (PhotometricInterpretation {photometric!r}, {samples} samples per "
                           "pixel): only greyscale volumes are ingested")
    if header.pixel_offset is not None and header.transfer_syntax and not _is_encapsulated(header.transfer_syntax):
        bits = int(ds.BitsAllocated)
        n_pixels = int(ds.Rows) * int(ds.Columns) * header.number_of_frames
        expected = (n_pixels + 7) // 8 if bits == 1 else n_pixels * bits // 8
        available = file_size - header.pixel_offset - (8 if implicit else 12)
        if available < expected:
            raise RejectedFile(f"truncated: pixel data holds {max(available, 0)} of {expected} bytes")
    else:
        _check_decoder(header.transfer_syntax)


def _is_encapsulated(ts: str) -> bool:
    from pydicom.uid import UID

    return UID(ts).is_compressed if ts else False


def _check_decoder(ts: str) -> None:
    """Reject early when no installed plugin can decode this transfer syntax."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    if not ts or ts == DEFLATED:
        return
    try:
        decoder = get_decoder(UID(ts))
    except NotImplementedError:
        raise RejectedFile(f"transfer syntax {UID(ts).name} ({ts}) is not supported by pydicom") from None
    if not decoder.is_available:
        raise MissingDecoder(f"no installed decoder for transfer syntax {UID(ts).name} ({ts}); "
                             "install pylibjpeg plugins or python-gdcm", UID(ts).name)


def refresh_decoders() -> None:
    """Look again for decoder plugins installed since pydicom was imported (Slicer installs them at first use).

    pydicom decides once, when its decoders are registered, which plugins are available (and its pylibjpeg
    plugin module caches whether pylibjpeg imports): without this, files that need a just-installed decoder
    stay unreadable until Slicer restarts.  pydicom has no public "rescan", so the plugin is re-added through
    its public add/remove API.
    """
    import importlib

    from pydicom import uid
    from pydicom.pixels import get_decoder

    importlib.invalidate_caches()
    plugin = importlib.reload(importlib.import_module("pydicom.pixels.decoders.pylibjpeg"))
    syntaxes = (*uid.JPEGTransferSyntaxes, *uid.JPEGLSTransferSyntaxes, *uid.JPEG2000TransferSyntaxes,
                *uid.RLETransferSyntaxes)
    for ts in syntaxes:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            continue
        if "pylibjpeg" in decoder.available_plugins or not plugin.is_available(ts):
            continue
        if any(m.startswith("pylibjpeg ") for m in decoder.missing_dependencies):
            decoder.remove_plugin("pylibjpeg")
        decoder.add_plugin("pylibjpeg", ("pydicom.pixels.decoders.pylibjpeg", "_decode_frame"))


def float_list(value, n: int | None = None) -> np.ndarray | None:
    """A DS/FD value or multi-value as a float array (None when absent, blank, not numbers or not ``n`` long)."""
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, (str, bytes, int, float)) else list(value)
    try:
        out = np.array([float(v) for v in items], dtype=float)
    except (TypeError, ValueError):
        return None
    if (n is not None and out.size != n) or not np.all(np.isfinite(out)):
        return None
    return out
