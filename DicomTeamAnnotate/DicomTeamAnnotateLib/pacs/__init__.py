"""PACS interoperability: DICOMweb import (QIDO-RS, WADO-RS), DICOM SEG export/import, STOW-RS.

* ``dicomweb``: connect to a DICOMweb server, query series, retrieve them into the local cache
  (resumable, atomic per instance), and import each series as a project case.
* ``reference``: reference mode: a case that records where its series lives in the PACS and
  fetches the pixels into the local cache on demand.
* ``seg_export``: a ``Segmentation`` as a DICOM SEG (highdicom), written to a file or STOWed.
* ``seg_import``: a DICOM SEG read back onto the source image geometry (highdicom, or our own
  per-frame-functional-groups reader) and imported as an annotation version.

Every module imports fast: `dicomweb_client` and `highdicom` are imported inside functions.
"""


class PacsError(RuntimeError):
    """A user-facing PACS/DICOMweb failure (unreachable server, refused credentials, bad data)."""
