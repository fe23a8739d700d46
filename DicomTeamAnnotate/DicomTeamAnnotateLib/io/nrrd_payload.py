"""A NRRD file's header and voxel payload, read with bounds that hostile files cannot get past.

Every NRRD reader here (``.seg.nrrd``, and volumes SimpleITK cannot read) goes through this:

* the header is read from at most ``MAX_HEADER_BYTES`` and parsed by pynrrd;
* ``sizes`` are positive integers whose product is computed without overflow (Python ints) and
  must stay under ``MAX_PAYLOAD_BYTES``: a layer count of 2**62 is refused, not wrapped;
* where the payload lives is checked against a policy: a segmentation carries its voxels
  (``attached``), a detached ``.nhdr`` may name a file beside it (``sibling``), a volume the user
  points at may name any file (``any``);
* compressed payloads (gzip, bzip2) are decompressed only up to the declared size: a stream that
  yields one byte more is a decompression bomb and is refused, as is one that ends early.

Written by hand because pynrrd's ``read_data`` decompresses without a bound (a bzip2 bomb fills
memory) and reads any ``data file`` path; pynrrd still parses the header fields.
"""
from __future__ import annotations

import bz2
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_HEADER_BYTES = 16 * 2**20
MAX_PAYLOAD_BYTES = 16 * 2**30
GZIP_MAX_RATIO = 1032      # deflate cannot expand data more than ~1032:1 (RFC 1951's longest match per bit)
_CHUNK = 2**20
# NRRD type names (teem's and pynrrd's spellings) -> numpy kind + bytes
_TYPES = {}
for _names, _code in (
        (("signed char", "int8", "int8_t"), "i1"), (("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
        (("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
        (("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
        (("int", "signed int", "int32", "int32_t"), "i4"), (("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
        (("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"),
         "i8"),
        (("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
        (("float",), "f4"), (("double",), "f8")):
    for _name in _names:
        _TYPES[_name] = _code
_ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2", "ascii": "ascii",
              "text": "ascii", "txt": "ascii", "hex": "hex"}


@dataclass
class NrrdFile:
    """A checked NRRD header: where the payload is, how it is encoded, and how many bytes it declares."""

    path: Path
    header: dict
    sizes: list          # per file axis, fastest first
    dtype: np.dtype
    encoding: str        # raw, gzip, bzip2, ascii, hex
    data_path: Path      # the file holding the payload (``path`` itself when attached)
    data_offset: int     # where the payload starts in ``data_path`` (before byte/line skip)
    byte_skip: int = 0
    line_skip: int = 0

    @property
    def attached(self) -> bool:
        return self.data_path == self.path

    @property
    def nbytes(self) -> int:
        return math.prod(self.sizes) * self.dtype.itemsize

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.path}: {message}")


def _read_header_bytes(path: Path) -> tuple[list, int]:
    """(header lines, offset of the first payload byte), reading 64 KiB at a time up to MAX_HEADER_BYTES."""
    head = bytearray()
    with open(path, "rb") as fh:
        while len(head) <= MAX_HEADER_BYTES:
            chunk = fh.read(1 << 16)
            seen = max(0, len(head) - 2)
            head += chunk
            if not chunk or head.find(b"\n\n", seen) >= 0 or head.find(b"\n\r\n", seen) >= 0:
                break
    head = bytes(head)
    lines, offset = [], 0
    for line in head.splitlines(keepends=True):
        offset += len(line)
        if line.strip() == b"" and lines:
            return lines, offset
        lines.append(line)
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError(f"{path}: no end of the NRRD header in its first {MAX_HEADER_BYTES} bytes")
    return lines, offset  # a detached header (.nhdr) may end without a blank line


def read_header(path) -> tuple[dict, int]:
    """(header fields parsed by pynrrd, offset of the attached payload), reading at most MAX_HEADER_BYTES."""
    import nrrd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    lines, offset = _read_header_bytes(path)
    if not lines or not lines[0].startswith(b"NRRD"):
        raise ValueError(f"{path}: not a NRRD file (no 'NRRD000x' magic line)")
    try:
        return dict(nrrd.read_header(lines)), offset
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, OverflowError... on malformed fields
        raise ValueError(f"{path}: not a readable NRRD header ({exc})") from None


def open_nrrd(path, *, data_files: str = "any", limit: int = MAX_PAYLOAD_BYTES) -> NrrdFile:
    """Parse and check a NRRD header; ``data_files``: "attached", "sibling" or "any" (see the module doc)."""
    path = Path(path)
    header, offset = read_header(path)
    sizes = _sizes(path, header)
    type_name = str(header.get("type", "")).strip().lower()
    if type_name not in _TYPES:
        raise ValueError(f"{path}: field 'type' is {header.get('type')!r}, not a NRRD scalar type")
    encoding = _ENCODINGS.get(str(header.get("encoding", "")).strip().lower())
    if encoding is None:
        raise ValueError(f"{path}: field 'encoding' is {header.get('encoding')!r} (known: {', '.join(_ENCODINGS)})")
    dtype = np.dtype(_TYPES[type_name])
    if dtype.itemsize > 1 and encoding not in ("ascii",):
        endian = str(header.get("endian", "")).strip().lower()
        if endian not in ("little", "big"):
            raise ValueError(f"{path}: field 'endian' is {header.get('endian')!r}; a {type_name} payload needs "
                             "'little' or 'big'")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    total = math.prod(sizes) * dtype.itemsize
    if total > limit:
        raise ValueError(f"{path}: field 'sizes' {' '.join(map(str, sizes))} declares {total} bytes of voxels, "
                         f"more than the {limit} bytes a reader here accepts")
    byte_skip = _int_field(path, header, ("byte skip", "byteskip"), -1)
    line_skip = _int_field(path, header, ("line skip", "lineskip"), 0)
    if byte_skip == -1 and encoding != "raw":
        raise ValueError(f"{path}: field 'byte skip' is -1, which NRRD allows only with raw encoding")
    data_path = _data_path(path, header, data_files)
    return NrrdFile(path, header, sizes, dtype, encoding, data_path, 0 if data_path != path else offset,
                    byte_skip, line_skip)


def _sizes(path: Path, header: dict) -> list:
    try:
        dim = int(header["dimension"])
        sizes = [int(v) for v in np.asarray(header["sizes"], dtype=object).ravel()]
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ValueError(f"{path}: fields 'dimension' and 'sizes' must be integers") from None
    if not 1 <= dim <= 16 or len(sizes) != dim:
        raise ValueError(f"{path}: field 'sizes' gives {len(sizes)} axes, field 'dimension' says {dim}")
    if any(s < 1 for s in sizes):
        raise ValueError(f"{path}: field 'sizes' must be positive, got {' '.join(map(str, sizes))}")
    return sizes


def _int_field(path: Path, header: dict, keys: tuple, minimum: int) -> int:
    for key in keys:
        if key in header:
            try:
                value = int(header[key])
            except (TypeError, ValueError):
                raise ValueError(f"{path}: field '{key}' must be an integer, got {header[key]!r}") from None
            if value < minimum:
                raise ValueError(f"{path}: field '{key}' is {value}; it must be >= {minimum}")
            return value
    return 0


def _data_path(path: Path, header: dict, policy: str) -> Path:
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return path
    name = str(name).strip()
    if policy == "attached":
        raise ValueError(f"{path}: field 'data file' points at {name!r}; a segmentation must carry its voxels "
                         "(attached data)")
    if name.upper().startswith("LIST") or " " in name or "%" in name:
        if policy == "any":  # several data files: SimpleITK reads them (this module's reader does not)
            return path.parent / name
        raise ValueError(f"{path}: field 'data file' is {name!r}: several data files are not read here")
    target = (path.parent / name)
    if policy == "sibling" and (Path(name).name != name or name in (".", "..")):
        raise ValueError(f"{path}: field 'data file' is {name!r}; a detached segmentation's data must be a file "
                         "beside its header")
    if not target.is_file() and policy != "any":
        raise ValueError(f"{path}: field 'data file' names {target}, which does not exist")
    return target


# ----- the payload -------------------------------------------------------------------------------
def read_payload(nf: NrrdFile) -> np.ndarray:
    """The voxels in C order (numpy shape = the file's sizes reversed), native byte order."""
    count = math.prod(nf.sizes)
    with open(nf.data_path, "rb") as fh:
        fh.seek(nf.data_offset)
        for _ in range(nf.line_skip):
            if not fh.readline(MAX_HEADER_BYTES):
                raise nf.fail(f"field 'line skip' {nf.line_skip}: the data file has fewer lines")
        if nf.byte_skip == -1:
            fh.seek(0, os.SEEK_END)
            if fh.tell() - nf.data_offset < nf.nbytes:
                raise nf.fail(f"the data holds fewer than the {nf.nbytes} bytes the header's sizes need")
            fh.seek(-nf.nbytes, os.SEEK_END)
        elif nf.byte_skip and nf.encoding == "raw":
            fh.seek(nf.byte_skip, os.SEEK_CUR)
        if nf.encoding == "raw":
            data = np.fromfile(fh, dtype=nf.dtype, count=count)
            if data.size != count:
                raise nf.fail(f"the raw data is cut short: {data.size * nf.dtype.itemsize} of the {nf.nbytes} "
                              "bytes the header's sizes need")
        elif nf.encoding in ("gzip", "bzip2"):
            raw = _decompress_bounded(nf, fh)
            data = np.frombuffer(raw, dtype=nf.dtype)
        else:
            data = _read_text(nf, fh, count)
    return data.reshape(tuple(reversed(nf.sizes))).astype(nf.dtype.newbyteorder("="), copy=False)


def _read_text(nf: NrrdFile, fh, count: int) -> np.ndarray:
    text = fh.read().decode("ascii", "replace")
    try:
        if nf.encoding == "hex":
            data = np.frombuffer(bytes.fromhex("".join(text.split())), dtype=nf.dtype)
        else:
            data = np.array(text.split()[:count + 1], dtype=np.float64)
    except ValueError as exc:
        raise nf.fail(f"the {nf.encoding} data is not readable ({exc})") from None
    if data.size != count:
        raise nf.fail(f"the {nf.encoding} data holds {data.size} values, the header's sizes need {count}")
    return data.astype(nf.dtype.newbyteorder("="), copy=False) if nf.encoding == "ascii" else data


def _decompress_bounded(nf: NrrdFile, fh) -> memoryview:
    """Decompress at most ``nf.nbytes`` (+1 to see a bomb); skip ``byte skip`` bytes of the output first."""
    wanted = nf.nbytes + nf.byte_skip
    out = np.empty(wanted, dtype=np.uint8)  # pages are touched only as data arrives
    view = memoryview(out)
    gzip = nf.encoding == "gzip"
    d = zlib.decompressobj(zlib.MAX_WBITS | 32) if gzip else bz2.BZ2Decompressor()
    pos, pending = 0, b""
    try:
        while True:
            if gzip:
                data = pending or fh.read(_CHUNK)
            else:
                data = fh.read(_CHUNK) if d.needs_input else b""
            if not data and (gzip or d.needs_input):
                break
            piece = d.decompress(data, wanted - pos + 1)
            pending = d.unconsumed_tail if gzip else b""
            if pos + len(piece) > wanted:
                raise nf.fail(f"the {nf.encoding} data decompresses to more than the {nf.nbytes} bytes the header's "
                              "sizes declare (refused: a decompression bomb or a wrong header)")
            view[pos:pos + len(piece)] = piece
            pos += len(piece)
            if d.eof:
                rest = d.unused_data
                if gzip and rest.strip(b"\x00") and pos < wanted:  # concatenated gzip members
                    d, pending = zlib.decompressobj(zlib.MAX_WBITS | 32), rest
                    continue
                break
    except (zlib.error, OSError, EOFError) as exc:
        raise nf.fail(f"the {nf.encoding} data is damaged ({exc})") from None
    if pos < wanted or not d.eof:
        raise nf.fail(f"the {nf.encoding} data is cut short: {max(0, pos - nf.byte_skip)} of the {nf.nbytes} bytes "
                      "the header's sizes need")
    return view[nf.byte_skip:]


def payload_problem(nf: NrrdFile) -> str | None:
    """Why an attached payload cannot be the voxels its header declares, told cheaply (None when it can).

    Raw data must be exactly the declared bytes; a gzip stream must start like one, record that
    many bytes in its trailer (ISIZE, modulo 2**32), and be long enough to expand to them
    (``GZIP_MAX_RATIO``).  Reads at most 6 bytes of the payload.
    """
    if not nf.attached:
        return "the voxels are in another file ('data file'); only attached data is accepted"
    if nf.byte_skip or nf.line_skip:
        return "fields 'byte skip'/'line skip' are not accepted in an uploaded segmentation"
    have = nf.path.stat().st_size - nf.data_offset
    if nf.encoding == "raw":
        if have != nf.nbytes:
            return f"the raw data holds {have} bytes, the header's sizes need {nf.nbytes}"
    elif nf.encoding == "gzip":
        with open(nf.path, "rb") as fh:
            fh.seek(nf.data_offset)
            magic = fh.read(2)
            fh.seek(-4, os.SEEK_END)
            isize = int.from_bytes(fh.read(4), "little") if have >= 18 else -1
        if magic != b"\x1f\x8b" or isize != nf.nbytes % (1 << 32):
            return f"the gzip data is cut short or does not hold the {nf.nbytes} bytes the header's sizes need"
        if nf.nbytes > GZIP_MAX_RATIO * have + 1024:
            return (f"the header declares {nf.nbytes} bytes, more than {have} bytes of gzip data can expand to "
                    "(a decompression bomb)")
    elif nf.encoding == "bzip2":
        return "bzip2 data: Slicer cannot read it (its NRRD reader has no bzip2 and stops); save it with gzip"
    return None
