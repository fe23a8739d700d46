"""Hostile ``.seg.nrrd`` files (issue 15, item 7), made from a valid one by editing its header text
and payload, for the io-level tests and the push to a real server.

Each builder takes a valid file and returns the path of its hostile twin:
``data file`` pointing outside the upload (absolute, relative), sizes whose product overflows
int64 (so a numpy product wraps to 0 and an empty payload "fits"), a layer count far above the
segment count, a segment in a layer that does not exist, a gzip bomb (a small declared size, 64
MiB of zeros), a bzip2 bomb, and a header that never ends.
"""
from __future__ import annotations

import bz2
import gzip
from pathlib import Path

BOMB_BYTES = 64 * 2**20


def split(path: Path) -> tuple[list[str], bytes]:
    """(header lines, payload) of an attached NRRD."""
    data = Path(path).read_bytes()
    end = data.index(b"\n\n")
    return data[:end].decode().split("\n"), data[end + 2:]


def join(path: Path, lines: list[str], payload: bytes) -> Path:
    Path(path).write_bytes(("\n".join(lines) + "\n\n").encode() + payload)
    return Path(path)


def with_field(lines: list[str], key: str, value: str | None) -> list[str]:
    """``lines`` with field ``key`` set to ``value`` (None removes it; a missing field is added)."""
    out = [line for line in lines if not line.startswith(f"{key}:")]
    if value is not None:
        out.insert(1, f"{key}: {value}" if not key.startswith("Segment") else f"{key}:={value}")
    return out


def sizes_of(lines: list[str]) -> list[int]:
    return [int(v) for v in next(line for line in lines if line.startswith("sizes:")).split(":", 1)[1].split()]


def data_file_outside(valid: Path, out: Path, target: str) -> Path:
    """The header alone, its voxels taken from ``target`` (a path outside the upload)."""
    lines, _ = split(valid)
    lines = with_field(with_field(lines, "encoding", "raw"), "data file", target)
    return join(out, lines, b"")


def overflowing_sizes(valid: Path, out: Path) -> Path:
    """A list axis of 2**50 layers: x 32 x 32 x 16 voxels = 2**64 bytes, which int64 wraps to 0."""
    lines, _ = split(valid)
    sizes = sizes_of(lines)
    spatial = sizes[-3:]
    layers = 2**64 // (spatial[0] * spatial[1] * spatial[2])
    lines = with_field(lines, "sizes", " ".join(map(str, [layers, *spatial])))
    lines = with_field(lines, "dimension", "4")
    lines = with_field(lines, "kinds", "list domain domain domain")
    directions = next(line for line in lines if line.startswith("space directions:")).split(":", 1)[1].split()
    lines = with_field(lines, "space directions", " ".join(["none", *directions[-3:]]))
    return join(out, with_field(lines, "encoding", "raw"), b"")


def many_layers(valid: Path, out: Path, layers: int = 4000) -> Path:
    """A list axis of ``layers`` frames for a couple of segments, as a small gzip stream (zeros)."""
    lines, _ = split(valid)
    sizes = sizes_of(lines)[-3:]
    directions = next(line for line in lines if line.startswith("space directions:")).split(":", 1)[1].split()
    lines = with_field(lines, "sizes", " ".join(map(str, [layers, *sizes])))
    lines = with_field(lines, "dimension", "4")
    lines = with_field(lines, "kinds", "list domain domain domain")
    lines = with_field(lines, "space directions", " ".join(["none", *directions[-3:]]))
    voxels = layers * sizes[0] * sizes[1] * sizes[2]
    return join(out, with_field(lines, "encoding", "gzip"), gzip.compress(bytes(voxels), compresslevel=1))


def segment_in_missing_layer(valid: Path, out: Path) -> Path:
    lines, payload = split(valid)
    return join(out, with_field(lines, "Segment0_Layer", str(2**40)), payload)


def gzip_bomb(valid: Path, out: Path) -> Path:
    """The valid header (a few KiB of voxels declared) over 64 MiB of gzipped zeros."""
    lines, _ = split(valid)
    return join(out, with_field(lines, "encoding", "gzip"), gzip.compress(bytes(BOMB_BYTES), compresslevel=9))


def bzip2_bomb(valid: Path, out: Path) -> Path:
    lines, _ = split(valid)
    return join(out, with_field(lines, "encoding", "bzip2"), bz2.compress(bytes(BOMB_BYTES), 9))


def endless_header(out: Path, megabytes: int = 17) -> Path:
    """'NRRD0004' and field lines, never a blank line: 17 MiB of header."""
    line = b"Segment0_Tags:=" + b"x" * 1000 + b"\n"
    Path(out).write_bytes(b"NRRD0004\n" + line * (megabytes * 2**20 // len(line)))
    return Path(out)
