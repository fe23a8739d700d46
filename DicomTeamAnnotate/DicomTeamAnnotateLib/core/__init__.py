"""What every other package shares; imports nothing of the project outside ``DicomTeamAnnotateLib.core``.

- ``geometry``: Geometry (origin, spacing, direction, LPS/RAS) and resampling by physical space.
- ``volume``: Volume, a (K, J, I) array with its Geometry.
- ``segmentation``: Segment and Segmentation (named, possibly overlapping segments on one grid).
- ``windowing``: CT window presets, windowing to 8-bit, MPR pictures.
- ``metrics``: Dice, HD95, ASSD, surface Dice (NSD), volumes (one implementation for agreement,
  bias and model evaluation).
- ``surface``: boundary voxels and surface distances in mm (scipy distance transforms).
- ``atomic``: atomic file writes.
- ``hashing``: sha256 of files, CRC32C, threaded hashing.
- ``tasks``: one function on a worker thread, polled by a GUI (BackgroundTask, TaskCancelled).
"""
