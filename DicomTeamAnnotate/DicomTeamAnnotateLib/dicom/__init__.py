"""DICOM ingestion: folders, file lists or ZIP archives in; volumes with full geometry out.

In pipeline order:

- ``headers``: find files, read headers once.
- ``frames``: one record per 2D image, single- or multi-frame.
- ``sort``: group into volumes, split, order.
- ``geometry``: the grid of a sorted stack, resampling when irregular.
- ``pixels``: parallel decoding with the rescale to real-world values.
- ``ingest``: the whole pipeline and its report.
"""
