"""The annotator's side of the project store.

- ``rows``: connect, my worklist with states, the offline banner's status.
- ``cases``: a case on my disk: download for work, pushes and submits.
- ``session``: the case open in Slicer (CaseSession): drafts, ontology, pushes.
- ``offline``: the offline queue and the push that falls back to it.
- ``effort``: what the work on a case took (EffortTracker), the effort record pushed with a version.
- ``effort_report``: the project's effort from those records, per case, annotator and round of the loop.
"""
