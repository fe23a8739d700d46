"""SamPrompt logic (Qt-free): SAM-like models segment from a box or clicks on a slice, propagated in 3D.

The SAM core (plain Python and numpy):

- ``backends``: the models behind one interface (LiteMedSAM, Meta's SAM, the project server's), by name.
- ``planes``: slices of a (K, J, I) volume along its three voxel planes, masks put back, prompt parsing.
- ``preprocess``: slice image -> model input (window, [0, 1], resize, pad) and logits back.
- ``cache``: image embeddings kept in memory (LRU, bounded in bytes) and computed ahead on a worker.
- ``segmenter``: the facade (``SamSegmenter``: one volume, one model) and the effect's ``PromptSession``.
- ``propagate``: 3D propagation: prompted slices (anchors) seed their neighbours, slice after slice.

The Slicer side (no Qt; Slicer and VTK are imported inside functions):

- ``effect_model``: what the SAM Prompt effect shows and does (the effect itself:
  SegmentEditorSamPromptLib/SegmentEditorEffect.py).
- ``panel_model``: the SamPrompt panel: model settings (shared with the effect) and precomputing a volume.
- ``shared``: what the effect and the panel share in one session: settings, one embedding cache, segmenters.
- ``mrml``: oriented images to Volumes and masks back to labelmaps (MRML/VTK).
- ``requirements``: the packages each backend installs at first use.

The server side (the other end of ``backends.remote``):

- ``service``: SAM on the project server: models, case images and embeddings every user shares.
- ``server_plugin``: the `dicomteam serve` plugin: prompt and propagation routes under ``/api/v1/plugins/sam``.
- ``wire``: the JSON form of prompts, masks and slice results between the remote backend and the server.

Command line and demo:

- ``cli``: `dicomteam sam`: a box (and clicks) on one slice, optionally propagated in 3D.
- ``demo``: an organ of the phantom segmented from one box, propagated, with a picture.
"""
