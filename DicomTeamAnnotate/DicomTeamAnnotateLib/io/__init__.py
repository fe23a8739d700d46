"""Image and segmentation files.

- ``volumes``: scalar volumes (.nrrd, .nhdr, .nii(.gz), .mha, .mhd) through SimpleITK.
- ``seg_nrrd``: Slicer's .seg.nrrd, exactly its layout (layers, extents, terminology).
- ``segmentations``: any segmentation file: .seg.nrrd or an integer label map with its sidecar.
"""
