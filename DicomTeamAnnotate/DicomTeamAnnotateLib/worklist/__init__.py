"""The annotator's side of the project store.

- ``rows``: connect, my worklist with states, the offline banner's status.
- ``cases``: a case on my disk: download for work, pushes and submits.
- ``session``: the case open in Slicer (CaseSession): drafts, ontology, pushes.
- ``offline``: the offline queue and the push that falls back to it.
"""
