"""Decoding pixel data in parallel, straight into each volume's array, with the rescale to
real-world values (Hounsfield units for CT) applied on the way.

Output type (decided from the headers before decoding, as GDCM/SimpleITK do): the stored type
when no rescale applies; otherwise an integer type when every slope and intercept is an
integer, the smallest of int16/int32 holding the rescaled range of BitsStored; float32 when not.

Parallelism: the JPEG 2000 decoder (pylibjpeg-openjpeg) holds the GIL while it decodes, so
threads do not help there; compressed files are decoded in a pool of forked worker processes
(Linux, called from the main thread, outside Slicer).  Each job carries only the pixel-module
elements and the byte offset of the Pixel Data element: the header parsed once in the main
process is not parsed again.  Uncompressed data, small inputs, other platforms, calls from a
worker thread and Slicer's embedded Python use threads.  DICOMTEAM_DECODE=threads|processes
overrides the choice (tests use it).
"""
from __future__ import annotations

import io
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

import numpy as np

from DicomTeamAnnotateLib.dicom.frames import Frame
from DicomTeamAnnotateLib.dicom.headers import PIXEL_DATA_TAG, FileHeader, RejectedFile, SourceSet

PROGRESS_MIN_FILES = 50   # smaller inputs finish before a progress bar says anything useful
PROCESS_MIN_FILES = 8     # below this, starting worker processes costs more than it saves
# Elements pydicom's decoders read besides Pixel Data (pixel module, frames, offset tables).
PIXEL_KEYWORDS = ("SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "Rows",
                  "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                  "ExtendedOffsetTable", "ExtendedOffsetTableLengths")


def _stored_range(header: FileHeader) -> tuple[int, int, np.dtype]:
    ds = header.ds
    bits_alloc = int(ds.BitsAllocated)
    bits_stored = int(ds.get("BitsStored") or bits_alloc)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    if bits_alloc == 1:
        return 0, 1, np.dtype(np.uint8)
    size = {8: 8, 16: 16, 32: 32}.get(bits_alloc, 32)
    dtype = np.dtype(f"{'int' if signed else 'uint'}{size}")
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1, dtype
    return 0, (1 << bits_stored) - 1, dtype


def output_dtype(frames: list[Frame]) -> np.dtype:
    """The array type of a volume made of these frames (see the module docstring)."""
    ranges = {id(f.file): _stored_range(f.file) for f in frames}
    if all(f.slope == 1.0 and f.intercept == 0.0 for f in frames):
        return np.result_type(*{r[2] for r in ranges.values()})
    if all(float(f.slope).is_integer() and float(f.intercept).is_integer() for f in frames):
        ends = [f.slope * ranges[id(f.file)][e] + f.intercept for f in frames for e in (0, 1)]
        for dtype in (np.int16, np.int32):
            info = np.iinfo(dtype)
            if info.min <= min(ends) and max(ends) <= info.max:
                return np.dtype(dtype)
        return np.dtype(np.float64)
    return np.dtype(np.float32)


# ----- one file's decoding job (runs in a thread or a worker process) -------------------------------
def pixel_job(sources: SourceSet, header: FileHeader) -> tuple:
    """A small picklable description of how to decode one file's pixel data."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    mini = Dataset()
    for keyword in PIXEL_KEYWORDS:
        if keyword in header.ds:
            mini[keyword] = header.ds[keyword]
    implicit, little = header.ds.original_encoding
    mini.file_meta = FileMetaDataset()
    # files without a meta header still decode: their transfer syntax is what they were read as
    mini.file_meta.TransferSyntaxUID = header.transfer_syntax or (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    path = None if header.source.member is not None else header.source.path
    data = None
    if path is None:  # a ZIP member: worker processes cannot share the archive handle, so send the bytes
        with sources.open(header.source) as fh:
            data = fh.read()
    return path, data, header.pixel_offset, implicit, little, mini


def decode_job(job: tuple) -> np.ndarray:
    """Stored pixel values of one file: (rows, cols) or (frames, rows, cols)."""
    import pydicom
    from pydicom.filereader import read_dataset

    path, data, offset, implicit, little, mini = job
    try:
        if offset is None:  # deflated dataset: positions in the file mean nothing, read it whole
            ds = pydicom.dcmread(path if path else io.BytesIO(data), force=True)
        else:
            if path:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    tail = fh.read()
            else:
                tail = data[offset:]
            part = read_dataset(io.BytesIO(tail), implicit, little)
            if PIXEL_DATA_TAG not in part:
                raise RejectedFile("truncated or damaged: the Pixel Data element ends before its end marker")
            ds = mini
            ds[PIXEL_DATA_TAG] = part[PIXEL_DATA_TAG]
        array = ds.pixel_array
    except RejectedFile:
        raise
    except Exception as exc:  # decoders raise many types on damaged data; all mean "cannot decode"
        from pydicom.uid import UID

        ts = str(mini.file_meta.TransferSyntaxUID)
        raise RejectedFile(f"cannot decode pixel data ({UID(ts).name}): {type(exc).__name__}: {exc}") from None
    expected = (int(mini.Rows), int(mini.Columns))
    if array.shape[-2:] != expected:
        raise RejectedFile(f"decoded pixel data has shape {array.shape}, header says {expected}")
    return array


def _write(out: np.ndarray, k: int, frame: Frame, pixels: np.ndarray) -> None:
    if frame.slope == 1.0 and frame.intercept == 0.0:
        out[k] = pixels
    elif np.issubdtype(out.dtype, np.integer):
        out[k] = pixels.astype(np.int64 if out.dtype.itemsize > 2 else np.int32) * int(frame.slope) + int(frame.intercept)
    else:
        out[k] = pixels.astype(out.dtype) * out.dtype.type(frame.slope) + out.dtype.type(frame.intercept)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _use_processes(headers: list[FileHeader], workers: int) -> bool:
    """Worker processes pay off for many compressed files, where forking is safe."""
    from pydicom.uid import UID

    if os.environ.get("DICOMTEAM_DECODE") in ("threads", "processes"):
        return os.environ["DICOMTEAM_DECODE"] == "processes" and sys.platform.startswith("linux")
    in_slicer = "slicer" in sys.modules and hasattr(sys.modules["slicer"], "app")
    # forking from a worker thread of an application risks locks held by its other threads
    main_thread = threading.current_thread() is threading.main_thread()
    compressed = sum(1 for h in headers if h.transfer_syntax and UID(h.transfer_syntax).is_compressed)
    return (workers > 1 and compressed >= PROCESS_MIN_FILES and sys.platform.startswith("linux")
            and not in_slicer and main_thread)


def decode_stacks(sources: SourceSet, stacks: list[list[Frame]], *, workers: int | None = None,
                  progress: bool = False, on_file=None) -> tuple[list[np.ndarray], dict[int, str]]:
    """One (K, J, I) array per stack (frames in order); failures: {id(FileHeader): reason}.

    Each file is read and decoded once, whatever number of frames or stacks it feeds.
    ``on_file(done, total)`` is called after each file; an exception it raises cancels the rest.
    """
    outputs = [np.zeros((len(s), s[0].rows, s[0].cols), dtype=output_dtype(s)) for s in stacks]
    targets: dict[int, list] = {}
    headers: dict[int, FileHeader] = {}
    for out, stack in zip(outputs, stacks):
        for k, frame in enumerate(stack):
            targets.setdefault(id(frame.file), []).append((out, k, frame))
            headers[id(frame.file)] = frame.file
    failures: dict[int, str] = {}
    keys = list(headers)
    workers = min(workers or min(8, available_cpus()), max(len(keys), 1))

    def store(key: int, pixels: np.ndarray) -> None:
        for out, k, frame in targets[key]:
            plane = pixels if frame.index is None else (pixels[frame.index] if pixels.ndim == 3 else pixels)
            _write(out, k, frame, plane)

    bar = None
    if progress and len(keys) >= PROGRESS_MIN_FILES and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(keys), desc="decoding", unit="file", file=sys.stderr)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if bar:
            bar.update(1)
        if on_file:
            on_file(done, len(keys))

    try:
        if workers <= 1:
            for key in keys:
                _collect(key, lambda k=key: decode_job(pixel_job(sources, headers[k])), store, failures)
                tick()
        else:
            if _use_processes(list(headers.values()), workers):
                import multiprocessing

                pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
                futures = {pool.submit(decode_job, pixel_job(sources, headers[key])): key for key in keys}
            else:
                pool = ThreadPoolExecutor(max_workers=workers)
                futures = {pool.submit(lambda k: decode_job(pixel_job(sources, headers[k])), key): key
                           for key in keys}
            try:
                for future in as_completed(futures):
                    _collect(futures[future], future.result, store, failures)
                    tick()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # cancelled: do not wait for the rest
                raise
            pool.shutdown(wait=True)
    finally:
        if bar:
            bar.close()
    return outputs, failures


def _collect(key: int, get, store, failures: dict) -> None:
    """Store one file's decoded pixels, or record why it failed."""
    try:
        store(key, get())
    except RejectedFile as exc:
        failures[key] = str(exc)
    except (OSError, ValueError, EOFError) as exc:
        failures[key] = f"cannot read pixel data: {type(exc).__name__}: {exc}"
    except Exception as exc:  # e.g. a worker process that died inside a decoder: report, go on
        failures[key] = f"cannot decode pixel data: {type(exc).__name__}: {exc}"
