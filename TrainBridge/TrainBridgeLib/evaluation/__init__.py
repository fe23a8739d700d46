"""Evaluation of predictions against ground truth, and what the panel shows of it."""
