"""Image and segmentation files.

- ``volumes``: scalar volumes (.nrrd, .nhdr, .nii(.gz), .mha, .mhd) through SimpleITK.
- ``seg_nrrd``: Slicer's .seg.nrrd, exactly its layout (layers, extents, terminology).
- ``seg_nrrd_fields``: the per-segment fields of a .seg.nrrd header (``SegmentN_*``), parsed as Slicer does.
- ``seg_nrrd_legacy``: Slicer's legacy "4D spatial" .seg.nrrd (SlicerRT, Slicer 4.4-4.5).
- ``nrrd_payload``: a NRRD file's header and voxel payload, read within bounds hostile files cannot pass.
- ``segmentations``: any segmentation file: .seg.nrrd or an integer label map with its sidecar.
"""
