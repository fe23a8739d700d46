"""The `dicomteam` command line: one registry (``main``), one file per group of commands.

- ``main``: the entry point, the core's commands and the modules' plug-ins (entry points).
- ``common``: CommandError (one line, exit code 2) and option helpers every command uses.
- ``ingest`` (`ingest`), ``info`` (`info`), ``store`` (`project ...`, `serve`, `push`, `pull`,
  `versions`, `status`), ``pacs`` (`project import-dicomweb`, `export-seg`, `import-seg`).
SamPrompt (`sam`), ConsensusReview (`consensus`) and TrainBridge (`export-nnunet`, `train`, ...)
register theirs from their own ``cli.py``.
"""
