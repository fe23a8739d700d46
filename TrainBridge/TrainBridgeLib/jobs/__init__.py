"""Background training jobs: the runner (a detached supervisor that knows no backend) and progress curves.

- ``runner``: a sequence of commands run by a detached supervisor, recorded in a job folder.
- ``progress``: the progress stream (one JSON record per epoch) and a PNG of its curves.
"""
