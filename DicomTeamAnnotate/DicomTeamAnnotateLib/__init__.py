"""DicomTeamAnnotate shared foundation (Qt-free): geometry, DICOM ingestion, IO, windowing, store, CLI."""
