"""Evaluation of predictions against ground truth, and what the panel shows of it.

- ``evaluate``: Dice, HD95, NSD and volumes per case and label, the worst cases and slices, a summary.
- ``review``: what the panel shows after an evaluation: a case's comparison, one label's view, worst cases and slices.
"""
