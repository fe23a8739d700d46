"""The `dicomteam` command line: one registry (``main``), one file per group of commands.

- ``main``: the entry point, the core's commands and the modules' plug-ins (entry points).
- ``__main__``: ``python -m DicomTeamAnnotateLib.cli ...`` is `dicomteam ...`.
- ``common``: CommandError (one line, exit code 2), option helpers and opening a store, for every command.
- ``ingest``: `ingest` (one .nrrd per series plus its report).
- ``info``: `info` (geometry and labels of a volume, label map or segmentation).
- ``store``: `project ...`, `serve`, `push`, `pull`, `versions`, `status`.
- ``pacs``: `project import-dicomweb`, `export-seg`, `import-seg`.
- ``effort``: `effort` (what the annotation took, per annotator and per round of the loop).

SamPrompt (`sam`), ConsensusReview (`consensus`) and TrainBridge (`export-nnunet`, `train`, ...)
register theirs from their own ``cli.py``.
"""
