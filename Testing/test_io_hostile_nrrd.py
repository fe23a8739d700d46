"""Hostile .seg.nrrd files (issue 15, item 7) refused by every reader and by the push check
(``nrrd_payload_problem``): data outside the file, sizes that overflow, more layers than segments,
a segment in a missing layer, gzip and bzip2 bombs (decompression stops at the declared size),
a header that never ends."""
from __future__ import annotations

import resource
import time

import pytest
from corpus import hostile
from store_support import write_seg

from DicomTeamAnnotateLib.io.nrrd_payload import MAX_HEADER_BYTES
from DicomTeamAnnotateLib.io.seg_nrrd import nrrd_payload_problem, read_seg_nrrd, read_seg_nrrd_geometry
from DicomTeamAnnotateLib.io.segmentations import read_segmentation, read_segmentation_geometry
from DicomTeamAnnotateLib.io.volumes import read_volume


@pytest.fixture()
def valid(tmp_path):
    path = write_seg(tmp_path / "valid.seg.nrrd")
    assert nrrd_payload_problem(path) is None
    return path


def _hostile(tmp_path, valid, name):
    secret = tmp_path / "outside" / "secret.raw"
    secret.parent.mkdir()
    secret.write_bytes(bytes(range(256)) * 64)  # a reviewer's local file, 16384 bytes: the voxel count
    (tmp_path / "up").mkdir()
    out = tmp_path / "up" / f"{name}.seg.nrrd"
    builders = {
        "data-file-absolute": lambda: hostile.data_file_outside(valid, out, str(secret)),
        "data-file-relative": lambda: hostile.data_file_outside(valid, out, "../outside/secret.raw"),
        "sizes-overflow": lambda: hostile.overflowing_sizes(valid, out),
        "many-layers": lambda: hostile.many_layers(valid, out),
        "layer-missing": lambda: hostile.segment_in_missing_layer(valid, out),
        "gzip-bomb": lambda: hostile.gzip_bomb(valid, out),
        "bzip2-bomb": lambda: hostile.bzip2_bomb(valid, out),
    }
    return builders[name]()


CASES = ["data-file-absolute", "data-file-relative", "sizes-overflow", "many-layers", "layer-missing", "gzip-bomb",
         "bzip2-bomb"]
REASONS = {"data-file-absolute": "data file", "data-file-relative": "data file", "sizes-overflow": "sizes",
           "many-layers": "layers", "layer-missing": "Segment0_Layer", "gzip-bomb": "gzip",
           "bzip2-bomb": "bzip2"}


@pytest.mark.parametrize("case", CASES)
def test_push_check_refuses(tmp_path, valid, case):
    path = _hostile(tmp_path, valid, case)
    problem = nrrd_payload_problem(path)
    assert problem and REASONS[case] in problem, (case, problem)


@pytest.mark.parametrize("case", CASES)
def test_readers_refuse_without_decoding_what_the_header_does_not_declare(tmp_path, valid, case):
    path = _hostile(tmp_path, valid, case)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    for reader in (read_seg_nrrd, read_segmentation):
        with pytest.raises(ValueError, match=str(path.name)):
            reader(path)
    assert time.perf_counter() - start < 10
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 32, f"{case}: reading grew memory by {grown_mib:.0f} MiB"  # never the 64 MiB bomb
    if case in ("data-file-absolute", "data-file-relative", "sizes-overflow", "many-layers"):
        for reader in (read_seg_nrrd_geometry, read_segmentation_geometry):  # the header alone says no
            with pytest.raises(ValueError):
                reader(path)


def test_a_header_that_never_ends_is_refused_after_its_limit(tmp_path):
    path = hostile.endless_header(tmp_path / "endless.seg.nrrd", megabytes=MAX_HEADER_BYTES // 2**20 + 1)
    assert "header" in nrrd_payload_problem(path)
    for reader in (read_seg_nrrd, read_segmentation, read_volume):
        with pytest.raises(ValueError, match="header"):
            reader(path)


def test_a_detached_seg_nhdr_beside_its_data_is_still_read(tmp_path, valid):
    """Slicer can save .seg.nhdr: a data file beside the header is fine for a local read (never uploaded)."""
    import nrrd

    data, header = nrrd.read(str(valid), index_order="C")
    nrrd.write(str(tmp_path / "d.seg.nhdr"), data, header, index_order="C", detached_header=True)
    assert read_seg_nrrd(tmp_path / "d.seg.nhdr").names == read_seg_nrrd(valid).names
    assert "data file" in nrrd_payload_problem(tmp_path / "d.seg.nhdr")


def test_volume_reader_checks_sizes_before_itk_allocates(tmp_path, valid):
    path = hostile.overflowing_sizes(valid, tmp_path / "v.nrrd")
    with pytest.raises(ValueError, match="sizes"):
        read_volume(path)
